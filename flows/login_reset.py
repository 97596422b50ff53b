"""login-reset: a fresh one-time login link for the site's administrator (aegir-backend.md §3.10)."""

from __future__ import annotations

from prefect import flow

from tasks import site as steps


@flow(name="login-reset", flow_run_name="login-reset {site}")
def login_reset(site: str) -> str:
    """Generate a one-time login link (drush uli / user:login), shown as a link artifact.

    Args:
        site: the site context name, e.g. @example.com
    """
    # 1. The site must be installed.
    name = steps.load_site(site)
    # 2. drush uli --no-browser; the link is the result and a link artifact.
    return steps.login_link(name)
