"""One site task over many sites (backup-all, migrate-platform): each site's task is its own flow run (a
subflow: seen, retried and locked on its own), at most ``parallel`` at once. A site's failure is recorded in
its result, not raised, so the others go on; ``halt`` stops new ones from starting."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

SiteRun = Callable[[str], dict[str, Any]]


@task(name="site-task", task_run_name="{label} {site}", cache_policy=NO_CACHE)
def run_for_site(label: str, site: str, run: SiteRun) -> dict[str, Any]:
    """``run(site)`` (a task flow); its failure becomes this site's result.

    This task run around each subflow is needed: a subflow called from a task gets a random key for its
    tracking task run, while subflows called from threads of the flow itself share the flow's counter of
    keys, unlocked — two sites could get the same key, and Prefect would then hand the second site the
    first one's subflow run instead of running it."""
    start = time.monotonic()
    try:
        outcome = {"result": "ok", **run(site)}
    except Exception as e:  # noqa: BLE001 - one site's failure must not stop the others
        get_run_logger().error("%s %s failed: %s", label, site, e)
        outcome = {"result": "failed", "error": str(e)}
    return {"site": site, **outcome, "seconds": round(time.monotonic() - start, 2)}


def fan_out(
    label: str,
    sites: list[str],
    run: SiteRun,
    parallel: int,
    halt: Callable[[list[dict[str, Any]]], bool] | None = None,
    progress_key: str | None = None,
) -> list[dict[str, Any]]:
    """``run`` for each site, ``parallel`` at once, in the given order; sites not started because ``halt``
    said so get result "not started". Progress (share of sites done) in a progress artifact."""
    logger = get_run_logger()
    results: list[dict[str, Any]] = []
    pending = list(sites)
    progress = create_progress_artifact(0.0, key=progress_key, description=f"{label}: {len(sites)} sites")
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix=label) as pool:
        running: set[Future[dict[str, Any]]] = set()
        while pending or running:
            while pending and len(running) < max(1, parallel) and not (halt and halt(results)):
                site = pending.pop(0)
                running.add(pool.submit(contextvars.copy_context().run, run_for_site, label, site, run))
                logger.info(
                    "%s %s started: %d under way, %d of %d done", label, site, len(running), len(results), len(sites)
                )
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            results += [f.result() for f in done]
            update_progress_artifact(progress, 100.0 * len(results) / max(1, len(sites)))
    results += [{"site": site, "result": "not started"} for site in pending]
    return results


def result_table(key: str, rows: list[dict[str, Any]], columns: tuple[str, ...], description: str) -> None:
    """A table artifact of these columns of the rows (the summary of a run over many sites)."""
    create_table_artifact(key=key, table=[{c: r.get(c) for c in columns} for r in rows], description=description)
