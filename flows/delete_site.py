"""delete-site (aegir-backend.md §3.9): a final pinned backup, then the vhost, the site dir and exactly this
site's database and user. The site block stays (status deleted) with its backups: `aegir restore` brings it back."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks import backup as backups
from tasks import restore as steps
from tasks import site as sites
from tasks.common import Undo

PRE_DELETE = "Pre-delete backup"


@flow(name="delete-site", flow_run_name="delete-site {site}")
def delete_site(site: str) -> dict[str, Any]:
    """Delete a (disabled) site after a final backup; its backups are kept.

    Args:
        site: the site context name, e.g. @example.com
    """
    # 1. Disabled first (unless the web server allows deleting enabled sites).
    name = steps.validate_delete(site)
    # 2. A final, pinned backup.
    final = backups.backup_archive(name, PRE_DELETE, None, True)
    backups.record_backup(name, final)
    undo = Undo()
    try:
        # 3. Off the web server: vhost removed, reload.
        undo.push("vhost restored", sites.write_vhost, name)
        sites.remove_vhost(name)
        # 4. The site dir moved aside (put back if the next step fails).
        aside = steps.set_aside_site_dir(name)
        undo.push("site dir put back", steps.put_back_site_dir, name, aside)
        # 5. Exactly this site's database and user dropped, its dir and aliases removed; status deleted.
        removed = steps.destroy_site(name, aside)
    except Exception as e:
        undo.fail("delete-site", e)
    return {"name": name, "removed": removed, "backup": final["id"]}
