"""verify-platform: build the codebase if needed, scan it, configure the web server (aegir-backend.md §3.2)."""

from __future__ import annotations

from typing import Any

from tasks import platform as steps
from tasks.notify import task_flow


@task_flow(name="verify-platform", flow_run_name="verify-platform {platform}")
def verify_platform(platform: str) -> dict[str, Any]:
    """Verify a platform: build root (drush make / git clone) if missing, scan Drupal, web server config.

    Args:
        platform: the platform context name, e.g. @platform_d7
    """
    # 1. Resolve the platform and its web server; unknown names fail before anything is touched.
    name = steps.load_platform(platform)
    # 2. Build root from the makefile or git repository when it does not exist yet; a remote web server gets
    #    the master's copy pushed (its own sites left alone).
    steps.build_root(name)
    steps.push_platform(name)
    # 3. Scan: docroot, Drupal version, modules/themes/profiles with versions and schema, sites/ writable.
    facts = steps.scan(name)
    # 4. The web server's platform conf (Apache), config-tested, reloaded.
    steps.web_config(name, facts["docroot"])
    # 5. Record the scan on the platform block; package table artifact.
    return steps.record_platform(name, facts)
