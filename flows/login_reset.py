"""login-reset: a fresh one-time login link for the site's administrator (aegir-backend.md §3.10)."""

from __future__ import annotations

from tasks import site as steps
from tasks.notify import task_flow
from tasks.operation import site_operation


@task_flow(name="login-reset", flow_run_name="login-reset {site}")
def login_reset(site: str) -> str:
    """Generate a one-time login link (drush uli / user:login), shown as a link artifact.

    Args:
        site: the site context name, e.g. @example.com
    """
    name = steps.site_env(site).site.name
    with site_operation(name, "login-reset"):
        # 1. The site must be installed.
        steps.load_site(name)
        # 2. drush uli --no-browser; the link is the result and a link artifact.
        return steps.login_link(name)
