"""backup-site and backup-delete (aegir-backend.md §3.3, §3.12): one archive per backup, recorded on the site."""

from __future__ import annotations

from typing import Any, Literal

from tasks import backup as steps
from tasks import site as sites
from tasks.notify import task_flow
from tasks.operation import site_operation


@task_flow(name="backup-site", flow_run_name="backup-site {site}")
def backup_site(
    site: str, description: str = steps.ON_REQUEST, compression: Literal["gzip", "zstd"] | None = None
) -> dict[str, Any]:
    """Back up a site: database dump (credentials through a pipe, never argv) and site files in one archive
    on the master, checksummed; recorded on the site block.

    Args:
        site: the site context name, e.g. @example.com
        description: why (shown in the backup list)
        compression: gzip (.tar.gz) or zstd (.tar.zst); default: the backup server's backup_compression
    """
    name = sites.site_env(site).site.name
    with site_operation(name, "backup-site") as op:
        # 1. Only installed (or disabled) sites with a recorded database.
        sites.load_site(name)
        # 2. The archive: dump + site dir + manifest, streamed, complete or nothing (removed again if the task
        #    stops before recording it).
        steps.push_archive_undo(op, name)
        entry = steps.backup_archive(name, description, compression)
        # 3. Recorded on the site block; backup table artifact.
        steps.record_backup(name, entry)
        return entry


@task_flow(name="backup-delete", flow_run_name="backup-delete {site}")
def backup_delete(site: str, ids: list[str], force: bool = False) -> list[str]:
    """Delete backups of a site (files and records). Pinned safety backups need force.

    Args:
        site: the site context name, e.g. @example.com
        ids: backup ids as listed by `aegir backups @site`
        force: also delete pinned backups
    """
    name = sites.site_env(site).site.name
    with site_operation(name, "backup-delete"):
        # 1. Every id must be a backup of this site; pinned ones need force — checked before anything goes.
        # 2. Files removed, records removed, table artifact updated.
        return steps.delete_backups(name, ids, force)
