"""purge-backups (Aegir's backup garbage collection, aegir-backend.md §6.3, per site and with caps): one run
over all sites, never one queued task per backup; pinned safety backups are never removed."""

from __future__ import annotations

from itertools import groupby
from typing import Annotated, Any

from prefect import get_run_logger
from prefect.states import Failed
from pydantic import Field, ValidationError

from aegir.backup_policy import DEFAULT_RULES, RetentionPolicy
from aegir.errors import InputError
from tasks import housekeeping as steps
from tasks.fanout import result_table
from tasks.notify import task_flow
from tasks.operation import site_operation

RULES = [f"{r.older_than}:{r.keep_one_per or 'none'}" for r in DEFAULT_RULES]


@task_flow(name="purge-backups", flow_run_name="purge-backups")
def purge_backups(
    site: str | None = None,
    rules: list[str] = RULES,  # noqa: B006 (never mutated; shown in the form)
    max_count: Annotated[int, Field(ge=1)] | None = None,
    max_bytes: Annotated[int, Field(ge=1)] | None = None,
    dry_run: bool = False,
) -> Any:
    """Remove old backups by the retention rules, per site; every removal logged with its reason.

    Args:
        site: only this site, e.g. @example.com (default: every site)
        rules: "older than X keep 1 per Y" rules as X:Y, e.g. 7d:1w (units h, d, w, mo, y; Y "none": keep
            none); the default keeps daily for 7 days, weekly for 5 weeks, monthly for 12 months
        max_count: at most this many (unpinned) backups per site, the newest
        max_bytes: at most this many bytes of backups per site (the oldest unpinned ones go first)
        dry_run: only list what would be removed, and why
    """
    try:
        policy = RetentionPolicy(rules=rules, max_count=max_count, max_bytes=max_bytes)
    except ValidationError as e:
        error = InputError.from_validation(e)
        if error.field in ("max_count", "max_bytes"):
            raise error from None
        raise InputError("rules", str(error).removeprefix("rules: ")) from None
    get_run_logger().info("retention: %s", policy.describe())
    # 1. Per site, the backups the rules remove and why (pinned never); sites whose context is invalid are
    #    reported and left alone, and stop no other site.
    plan = steps.plan_purge(site, policy)
    invalid = [] if site else steps.invalid_sites(statuses=("installed", "disabled", "deleted"))
    # 2. Unless a dry run: each site's removals under its lock (files, then records), each logged.
    removed: list[dict[str, Any]] = []
    if not dry_run:
        for name, group in groupby(plan, key=lambda r: r["site"]):
            removals = list(group)
            with site_operation(name, "purge-backups"):
                ids = set(steps.purge_site(name, removals))
            removed += [r for r in removals if r["id"] in ids]
    # 3. Leftovers of interrupted backups and deploys (untouched for a day) in the backup directories.
    leftovers = steps.purge_leftovers(dry_run)
    # 4. What went (or would go) as a table.
    shown = plan if dry_run else removed
    verb = "would remove" if dry_run else "removed"
    summary = f"{verb} {len(shown)} backups and {len(leftovers)} leftovers; {policy.describe()}"
    if invalid:
        summary += f"; invalid, skipped: {'; '.join(r['error'] for r in invalid)}"
    result_table("purge-backups", shown + invalid, ("site", "id", "created", "size", "reason", "error"), summary)
    return Failed(message=summary) if invalid and not dry_run else shown + invalid
