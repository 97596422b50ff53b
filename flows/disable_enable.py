"""disable-site and enable-site: switch a site's vhost between its normal and its disabled variant
(aegir-backend.md §3.8). No backup: nothing is destroyed."""

from __future__ import annotations

from typing import Any

from tasks import site as steps
from tasks.notify import task_flow
from tasks.operation import site_operation


def _switch(task: str, site: str, *, enable: bool) -> dict[str, Any]:
    name = steps.site_env(site).site.name
    with site_operation(name, task) as op:
        # 1. The site must be installed (to disable) or disabled (to enable).
        steps.require_status(name, "disabled" if enable else "installed")
        # 2. The other vhost variant (config-tested), one reload.
        op.push("previous vhost restored", steps.write_vhost, name, not enable)
        steps.write_vhost(name, enable)
        # 3. The web server gives the new answer: the site (200 with its name), or the disabled answer.
        steps.probe_site(name, enable)
        # 4. Record the status.
        steps.set_status(name, "installed" if enable else "disabled")
        return steps.record_verified(name)


@task_flow(name="disable-site", flow_run_name="disable-site {site}")
def disable_site(site: str) -> dict[str, Any]:
    """Disable a site: its vhost answers with the server's web_disable_url/<uri> (302), or a 503 page.

    Args:
        site: the site context name, e.g. @example.com
    """
    return _switch("disable-site", site, enable=False)


@task_flow(name="enable-site", flow_run_name="enable-site {site}")
def enable_site(site: str) -> dict[str, Any]:
    """Enable a disabled site again: its normal vhost, verified by HTTP.

    Args:
        site: the site context name, e.g. @example.com
    """
    return _switch("enable-site", site, enable=True)
