"""Sub-tasks of backup-site and backup-delete: one archive per backup (DESIGN §7), recorded on the site block."""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from aegir import registry
from aegir.archive import archive_name, create_archive, delete_archive
from aegir.contexts import MASTER, ServerContext
from aegir.errors import InputError
from aegir.leftovers import unrecorded_archives
from aegir.services.dump import dump_database
from aegir.transport.factory import connected
from aegir.transport.local import LocalTransport

from .common import record, step, store
from .operation import Operation, db_slot
from .site import SiteEnv, read_packages, site_env

ON_REQUEST = "Generated on request"


def backup_server(env: SiteEnv) -> ServerContext:
    """Backups live on the master (Aegir's spoke model): the web server itself when it is this machine."""
    return env.web if env.web.is_local else registry.load_server(store(), MASTER)


def _packages_now(env: SiteEnv) -> list[dict[str, Any]]:
    """The packages the dump will hold — its schema versions, read from the database just before it is
    dumped — so that a restore can tell, before it touches anything, whether the backup is behind the code it
    goes onto (updatedb) or ahead of it (refused). The recorded ones if the database cannot be read."""
    try:
        return read_packages(env)
    except Exception as e:  # noqa: BLE001 - the dump decides whether the backup fails
        get_run_logger().warning(
            "%s: packages not read from its database (%s): the manifest lists the recorded ones", env.site.name, e
        )
        return env.site.packages


@step("backup-archive")
def backup_archive(name: str, reason: str, compression: str | None = None, pinned: bool = False) -> dict[str, Any]:
    """Dump the database (credentials through an inherited fd) and archive it with the site dir, streamed;
    the archive appears only complete (fsynced, renamed into place), 0600 in a 0700 dir."""
    env = site_env(name)
    server = backup_server(env)
    compression = compression or server.backup_compression
    when = datetime.now(UTC)
    path = posixpath.join(server.backup_path, archive_name(env.site.uri, when, compression))
    manifest = {
        "site": env.site.name,
        "uri": env.site.uri,
        "platform": env.platform.name,
        "drupal_version": env.platform.drupal_version,
        "packages": _packages_now(env),
        "db_name": env.site.db_name,
        "reason": reason,
    }
    master = LocalTransport("localhost")
    with connected(env.web) as web, db_slot(env.db):
        info = create_archive(
            path=path,
            site_transport=web,
            site_path=env.site_path,
            dump=lambda out: dump_database(master, env.db, env.site.db_name or "", out),
            manifest=manifest,
            compression=compression,
        )
    entry = {
        "id": posixpath.basename(info.path).split(".tar.")[0],
        "file": info.path,
        "server": server.name,
        "size": info.size,
        "sha256": info.sha256,
        "created": when.isoformat(timespec="seconds"),
        "reason": reason,
        "pinned": pinned,
        "compression": compression,
        "platform": env.platform.name,
        "db_name": env.site.db_name,
    }
    get_run_logger().info("backup %s: %s, %d bytes (%s)", entry["id"], info.path, info.size, compression)
    return entry


@step("record-backup")
def record_backup(name: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Add the backup to the site block (newest first) and show the site's backups as a table artifact."""
    site = registry.load_site(store(), name)
    backups = sorted([entry, *site.backups], key=lambda b: b["created"], reverse=True)
    record(site, backups=backups)
    backup_table(site.slug, site.name, backups)
    return backups


def backup_table(slug: str, site: str, backups: list[dict[str, Any]]) -> None:
    create_table_artifact(
        key=f"backups-{slug}",
        table=[{k: b.get(k) for k in ("id", "created", "size", "reason", "pinned", "compression")} for b in backups],
        description=f"Backups of {site}, newest first",
    )


@step("discard-archive")
def discard_archive(path: str) -> None:
    """Undo of a temporary archive (clone's)."""
    delete_archive(path)


def push_archive_undo(op: Operation, name: str) -> None:
    """Before a backup-archive: its undo, persisted before it starts — the archives of the site this task
    made that no backup record names are removed (a backup recorded before the task stopped keeps its
    archive)."""
    since = datetime.now(UTC).isoformat(timespec="seconds")
    op.push("archives made but not recorded removed", discard_unrecorded_archives, name, since)


@step("discard-unrecorded-archives")
def discard_unrecorded_archives(name: str, since: str) -> list[str]:
    """Undo of backup-archive (see :func:`push_archive_undo`)."""
    env = site_env(name)
    recorded = [b["file"] for b in env.site.backups if b.get("file")]
    found = unrecorded_archives(backup_server(env).backup_path, env.site.uri, datetime.fromisoformat(since), recorded)
    for path in found:
        delete_archive(path)
    return found


@step("delete-backups")
def delete_backups(name: str, ids: list[str], force: bool) -> list[str]:
    """Remove the given backups' files and records; pinned ones only with ``force``. Unknown ids are refused
    before anything is removed."""
    site = registry.load_site(store(), name)
    known = {b["id"]: b for b in site.backups}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise InputError("id", f"{site.name} has no backup {', '.join(unknown)} (see aegir backups {site.name})")
    pinned = [i for i in ids if known[i].get("pinned") and not force]
    if pinned:
        raise InputError("id", f"{', '.join(pinned)} is pinned (a safety backup): add --force to delete it anyway")
    logger = get_run_logger()
    for i in ids:
        delete_archive(known[i]["file"])
        logger.info("deleted backup %s (%s, %s)", i, known[i]["file"], known[i].get("reason"))
    backups = [b for b in site.backups if b["id"] not in ids]
    record(site, backups=backups)
    backup_table(site.slug, site.name, backups)
    return ids
