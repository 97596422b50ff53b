"""verify-site: regenerate everything from the record and prove the site works (aegir-backend.md §3.2)."""

from __future__ import annotations

from typing import Any

from tasks import site as steps
from tasks.notify import task_flow
from tasks.operation import site_operation


@task_flow(name="verify-site", flow_run_name="verify-site {site}")
def verify_site(site: str) -> dict[str, Any]:
    """Verify a site: settings.php, directory modes, vhost, reload, HTTP check, packages. Idempotent.

    Args:
        site: the site context name, e.g. @example.com
    """
    name = steps.site_env(site).site.name
    with site_operation(name, "verify-site"):
        # 1. The site must be installed on a verified platform.
        steps.load_site(name)
        # 2. settings.php, credentials file, hash salt, directory modes, aliases — from the record.
        steps.write_site_files(name)
        # 3. The vhost (config-tested), one reload.
        steps.write_vhost(name)
        # 4. The site answers through the web server (a disabled site with the disabled answer).
        steps.probe_site(name, enabled=steps.site_env(name).site.status != "disabled")
        # 5. Packages from the site's database; verified time.
        steps.record_packages(name)
        return steps.record_verified(name)
