"""backup-all (Aegir's backup queue and backup window, aegir-backend.md §6.1–§6.2): automated backups of every
installed, enabled site that is due, oldest first, as many at once as the db servers' dump slots allow."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal

from prefect import get_run_logger
from prefect.states import Failed
from pydantic import Field

from aegir.backup_policy import BackupWindow
from flows.backup_site import backup_site
from tasks import housekeeping as steps
from tasks.fanout import fan_out, result_table
from tasks.notify import task_flow


def _back_up(compression: str | None, site: str) -> dict[str, Any]:
    entry = backup_site(site, steps.AUTOMATED, compression)
    return {"backup": entry["id"], "size": entry["size"]}


@task_flow(name="backup-all", flow_run_name="backup-all")
def backup_all(
    window: BackupWindow = BackupWindow(),  # noqa: B008 (a frozen model: a safe default, shown in the form)
    default_interval: str = "1d",
    compression: Literal["gzip", "zstd"] | None = None,
    platform: str | None = None,
    ignore_window: bool = False,
    dry_run: bool = False,
    parallel: Annotated[int, Field(ge=1, le=32)] | None = None,
) -> Any:
    """Back up every installed and enabled site whose last backup is older than its interval, oldest first;
    each site's backup is its own backup-site run; one failed site does not stop the others.

    Args:
        window: when automated backups may run (days, start and end time, time zone); a window crossing
            midnight (22:00–04:00) belongs to the day it starts on
        default_interval: how often a site is backed up unless its own backup_interval says otherwise
            (e.g. 6h, 1d, 7d)
        compression: gzip or zstd (default: each backup server's backup_compression)
        platform: only the sites of this platform, e.g. @platform_d7 (default: every site)
        ignore_window: run now even outside the window
        dry_run: only list the sites that are due
        parallel: how many site backups are under way at once (default: twice the db servers' dump slots
            together: one dumping per slot while another starts or finishes); the dumps themselves never
            exceed each db server's db_task_limit
    """
    logger = get_run_logger()
    # 1. Inside the backup window (server time zone as configured), unless told to ignore it.
    if not (ignore_window or window.contains(datetime.now(UTC))):
        logger.info("outside the backup window (%s): nothing to do", window.describe())
        return []
    # 2. The sites that are due, oldest backup first, and the db servers' dump slots; the sites whose context is
    #    invalid are reported, never backed up, and stop no other site.
    plan = steps.find_due_sites(default_interval, platform)
    invalid = plan["invalid"]
    if dry_run or not plan["due"]:
        columns = ("site", "last_backup", "interval", "db_server", "error")
        summary = f"{len(plan['due'])} sites due for a backup" + _invalid_note(invalid)
        result_table("backup-all", plan["due"] + invalid, columns, summary)
        return Failed(message=summary) if invalid and not dry_run else plan["due"] + invalid
    # 3. Each due site backed up (a backup-site run each), `parallel` under way at once, each dump in a db slot.
    sites = [d["site"] for d in plan["due"]]
    width = parallel or 2 * plan["slots"]
    results = fan_out("backup-site", sites, partial(_back_up, compression), width, None, "backup-all") + invalid
    # 4. The summary (site, result, size, duration); the run fails if any site failed.
    failed = [r["site"] for r in results if r["result"] not in ("ok", "invalid")]
    summary = (
        f"{len(results) - len(failed) - len(invalid)} of {len(results)} sites backed up"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + _invalid_note(invalid)
    )
    failed += [r["site"] for r in invalid]
    result_table("backup-all", results, ("site", "result", "backup", "size", "seconds", "error"), summary)
    return Failed(message=summary) if failed else results


def _invalid_note(invalid: list[dict[str, Any]]) -> str:
    return f"; invalid, skipped: {'; '.join(r['error'] for r in invalid)}" if invalid else ""
