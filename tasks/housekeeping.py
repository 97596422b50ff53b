"""Sub-tasks of backup-all and purge-backups: Aegir's backup manager (aegir-backend.md §6) as two flows, each
one run over all sites (never one queued task per backup)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger

from aegir import registry
from aegir.archive import delete_archive
from aegir.backup_policy import (
    RetentionPolicy,
    SiteDue,
    backups_to_remove,
    due_sites,
    format_duration,
    last_backup_time,
    parse_duration,
)
from aegir.contexts import ServerContext, SiteContext
from aegir.errors import InputError
from aegir.leftovers import remove_leftover, stale_leftovers

from .backup import backup_table
from .common import record, step, store

AUTOMATED = "Automated backup"
LEFTOVER_AGE = 86400.0  # a partial archive untouched for a day belongs to no running backup


def _sites() -> list[SiteContext]:
    return sorted((c for c in store().list("site") if isinstance(c, SiteContext)), key=lambda c: c.name)


def invalid_sites(platform: str | None = None, statuses: tuple[str, ...] = ("installed",)) -> list[dict[str, Any]]:
    """The sites a fleet run would have worked on but cannot, because their stored context is invalid (an
    edit outside ``aegir save``): each as a failed result naming the field and the rule, so the run reports
    them and goes on with every other site."""
    _, invalid = store().scan("site")
    rows = [
        {"site": i.name, "result": "invalid", "error": str(i)}
        for i in invalid
        if i.data.get("status") in statuses and platform in (None, i.data.get("platform"))
    ]
    for row in rows:
        get_run_logger().error("skipped %s: %s", row["site"], row["error"])
    return sorted(rows, key=lambda r: r["site"])


@step("due-sites")
def find_due_sites(default_interval: str, platform: str | None = None) -> dict[str, Any]:
    """Installed (and enabled) sites whose newest backup is older than their interval — the site's own
    ``backup_interval``, else ``default_interval``; "off": never —, oldest backup first; and the dump slots of
    their db servers together. Only the sites of ``platform`` when given."""
    try:
        default = parse_duration(default_interval)
    except ValueError as e:
        raise InputError("default_interval", str(e)) from None
    only = registry.load_platform(store(), platform).name if platform else None
    candidates, db_servers = [], {}
    for site in _sites():
        if site.status != "installed" or site.backup_interval == "off" or only not in (None, site.platform):
            continue
        interval = parse_duration(site.backup_interval) if site.backup_interval else default
        candidates.append(SiteDue(site.name, last_backup_time(site.backups), interval))
        db_servers[site.name] = site.db_server
    slots: dict[str, int] = {}
    due = []
    for d in due_sites(candidates, datetime.now(UTC)):
        server = db_servers[d.name]
        if server not in slots:
            db = registry.load_server(store(), server)
            slots[server] = db.db_task_limit if isinstance(db, ServerContext) else 1
        last = d.last_backup.isoformat(timespec="seconds") if d.last_backup else None
        due.append({"site": d.name, "last_backup": last, "interval": format_duration(d.interval), "db_server": server})
    get_run_logger().info("%d sites due for a backup", len(due))
    return {"due": due, "slots": sum(slots.values()), "invalid": invalid_sites(only)}


@step("plan-purge")
def plan_purge(site: str | None, policy: RetentionPolicy) -> list[dict[str, Any]]:
    """Per site (one, or every site), the backups the retention rules remove — with the site's own
    backup_max_count / backup_max_bytes over the run's — each with its reason; pinned backups never. Oldest
    first."""
    now = datetime.now(UTC)
    sites = [registry.load_site(store(), site)] if site else _sites()
    plan = []
    for ctx in sites:
        own = {"max_count": ctx.backup_max_count, "max_bytes": ctx.backup_max_bytes}
        site_policy = policy.model_copy(update={k: v for k, v in own.items() if v is not None})
        for removal in backups_to_remove(ctx.backups, site_policy, now):
            b = removal.backup
            plan.append(
                {
                    "site": ctx.name,
                    "id": b["id"],
                    "created": b.get("created"),
                    "size": b.get("size"),
                    "reason": removal.reason,
                }  # fmt: skip
            )
    return plan


@step("purge-site")
def purge_site(name: str, removals: list[dict[str, Any]]) -> list[str]:
    """Remove these backups of one site (file, then record), each logged with its reason. Checked against the
    freshest record: a backup pinned or gone meanwhile is left alone."""
    site = registry.load_site(store(), name)
    known = {b["id"]: b for b in site.backups}
    logger = get_run_logger()
    removed = []
    for r in removals:
        backup = known.get(r["id"])
        if backup is None or backup.get("pinned"):
            continue
        delete_archive(backup["file"])
        removed.append(r["id"])
        logger.info("deleted backup %s of %s (%s): %s", r["id"], name, backup["file"], r["reason"])
    if removed:
        current = registry.load_site(store(), name)
        backups = [b for b in current.backups if b["id"] not in removed]
        record(current, backups=backups)
        backup_table(current.slug, current.name, backups)
    return removed


@step("purge-leftovers")
def purge_leftovers(dry_run: bool) -> list[str]:
    """Partial archives, archive work dirs and deploy dumps left by interrupted work, untouched for a day, in
    the backup directories of this machine's servers."""
    dirs = sorted({s.backup_path for s in store().list("server") if isinstance(s, ServerContext) and s.is_local})
    found = [path for d in dirs for path in stale_leftovers(d, LEFTOVER_AGE)]
    logger = get_run_logger()
    for path in found:
        if not dry_run:
            remove_leftover(path)
        logger.info("%s leftover %s", "would remove" if dry_run else "removed", path)
    return found
