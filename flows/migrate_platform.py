"""migrate-platform: every site of a platform migrated to another (Aegir's "migrate all sites" batch), a canary
batch first, then the rest with bounded parallelism, halting once too many have failed. Each site is its own
migrate-site run: pre-flight, rollback and crash resume per site as always."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from prefect import get_run_logger
from prefect.states import Failed
from pydantic import Field

from aegir.contexts import normalise_name
from flows.migrate_site import migrate_site
from tasks import housekeeping
from tasks import platform as platforms
from tasks.fanout import fan_out, result_table
from tasks.notify import task_flow

COLUMNS = ("site", "result", "platform", "seconds", "error")


def _migrate(target: str, site: str) -> dict[str, Any]:
    result = migrate_site(site, target)
    return {"platform": result["platform"]}


def _too_many(max_failures: int, results: list[dict[str, Any]]) -> bool:
    return sum(r["result"] == "failed" for r in results) > max_failures


@task_flow(name="migrate-platform", flow_run_name="migrate-platform {platform} {target}")
def migrate_platform(
    platform: str,
    target: str,
    canary: Annotated[int, Field(ge=0)] = 1,
    parallel: Annotated[int, Field(ge=1, le=16)] = 2,
    max_failures: Annotated[int, Field(ge=0)] = 0,
) -> Any:
    """Migrate every site of a platform to another: the canary sites first, one at a time (any failure
    halts), then the rest, a few at a time, halting once more than max_failures have failed. A failed site is
    rolled back by its own migrate-site run and stays where it was.

    Args:
        platform: the platform whose sites move, e.g. @platform_d7_old
        target: the platform they move to, e.g. @platform_d7_new
        canary: how many sites go first, one at a time
        parallel: how many of the rest migrate at once
        max_failures: how many failed sites (after the canary) are tolerated before no new ones start
    """
    logger = get_run_logger()
    # 1. The target checked; the platform's sites (installed or disabled), in name order.
    sites = platforms.platform_sites(platform, target)
    logger.info("%d sites on %s → %s", len(sites), platform, target)
    invalid = housekeeping.invalid_sites(normalise_name(platform), ("installed", "disabled"))  # reported, not moved
    # 2. The canary batch, one at a time; a failure halts everything.
    results = fan_out("migrate-site", sites[:canary], partial(_migrate, target), 1, partial(_too_many, 0), None)
    if _too_many(0, results):
        results += [{"site": s, "result": "not started"} for s in sites[canary:]]
    else:
        # 3. The rest, `parallel` at once, until more than max_failures have failed.
        rest = partial(_too_many, max_failures)
        results += fan_out("migrate-site", sites[canary:], partial(_migrate, target), parallel, rest, None)
    # 4. The result per site; the run fails if any site failed, was not started or is invalid.
    results += invalid
    bad = [r for r in results if r["result"] != "ok"]
    summary = f"{len(results) - len(bad)} of {len(results)} sites migrated to {target}" + (
        f"; failed or not started: {', '.join(r['site'] for r in bad)}" if bad else ""
    )
    result_table("migrate-platform", results, COLUMNS, summary)
    return Failed(message=summary) if bad else results
