"""delete-site (aegir-backend.md §3.9): a final pinned backup, then the vhost, the site dir and exactly this
site's database and user. The site block stays (status deleted) with its backups: `aegir restore` brings it back."""

from __future__ import annotations

from typing import Any

from tasks import backup as backups
from tasks import restore as steps
from tasks import site as sites
from tasks.notify import task_flow
from tasks.operation import site_operation

PRE_DELETE = "Pre-delete backup"


@task_flow(name="delete-site", flow_run_name="delete-site {site}")
def delete_site(site: str) -> dict[str, Any]:
    """Delete a (disabled) site after a final backup; its backups are kept.

    Args:
        site: the site context name, e.g. @example.com
    """
    name = sites.site_env(site).site.name
    with site_operation(name, "delete-site") as op:
        if op.resumed == "completed":  # this run was interrupted after its point of no return: finished now
            return {"name": name, "removed": [], "resumed": True}
        # 1. Disabled first (unless the web server allows deleting enabled sites); the db server answers.
        steps.validate_delete(name)
        # 2. A final, pinned backup.
        backups.push_archive_undo(op, name)
        final = backups.backup_archive(name, PRE_DELETE, None, True)
        backups.record_backup(name, final)
        # 3. Off the web server: vhost removed, reload.
        op.push("vhost restored", sites.write_vhost, name)
        sites.remove_vhost(name)
        # 4. The site dir moved aside (put back if the site cannot be deleted after all).
        aside = steps.plan_aside(name)
        op.push("site dir put back", steps.put_back_site_dir, name, aside)
        steps.set_aside_site_dir(name, aside)
        # 5. Exactly this site's database and user dropped, its dir and aliases removed; status deleted.
        removed = op.commit("site destroyed", steps.destroy_site, name, aside)
    return {"name": name, "removed": removed, "backup": final["id"]}
