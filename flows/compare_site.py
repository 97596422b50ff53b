"""compare-site: the migrate pre-flight, on its own (aegir compare @site @platform). Changes nothing."""

from __future__ import annotations

from typing import Any

from tasks import migrate as steps
from tasks import site as sites
from tasks.notify import task_flow


@task_flow(name="compare-site", flow_run_name="compare-site {site} {platform}")
def compare_site(site: str, platform: str) -> dict[str, Any]:
    """Compare a site's enabled modules and themes with a target platform: per package error (schema
    downgrade), warning (missing, or a lower version), upgrade or no change; and the target install profile.

    Args:
        site: the site context name, e.g. @example.com
        platform: the target platform context name, e.g. @platform_d7_new
    """
    # 1. The site must be installed (or disabled).
    name = sites.load_site(site)
    # 2. Fresh scans of both platforms and the site's database; the table artifact compare-<site>.
    return steps.compare_packages(name, platform)
