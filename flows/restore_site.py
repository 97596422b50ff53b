"""restore-site (aegir-backend.md §3.4, §3.5): bring a site back to a backup — or a deleted site back to life.
The current database and files are removed only after the restored site answers."""

from __future__ import annotations

from typing import Any

from tasks import backup as backups
from tasks import restore as steps
from tasks import site as sites
from tasks.notify import task_flow
from tasks.operation import site_operation

SAFETY = "Generated before being restored to a previous version"


@task_flow(name="restore-site", flow_run_name="restore-site {site} {backup}")
def restore_site(site: str, backup: str = "latest") -> dict[str, Any]:
    """Restore a site from one of its backups: safety backup first, new database, switch, updatedb when the
    backup is behind the platform's code (refused before anything changes when it is ahead), verify, cleanup.

    Args:
        site: the site context name, e.g. @example.com
        backup: a backup id (aegir backups @site) or latest
    """
    name = sites.site_env(site).site.name
    with site_operation(name, "restore-site", steps=16) as op:
        if op.resumed == "completed":  # this run was interrupted after its point of no return: finished now
            return sites.record_verified(name)
        # 1. The backup belongs to this site and its archive is intact: checked before anything is touched.
        entry = steps.validate_restore(name, backup)
        if sites.site_env(name).site.status != "deleted":
            # 2. Maintenance mode on the live site, then a pinned safety backup of it.
            op.push("maintenance mode off", steps.maintenance_mode, name, False)
            steps.maintenance_mode(name, True)
            backups.push_archive_undo(op, name)
            backups.record_backup(name, backups.backup_archive(name, SAFETY, None, True))
        # 3. Deploy: the archive's files next to the live dir, its dump into a NEW database and user.
        plan = steps.plan_deploy(name)
        op.push(f"database {plan['db_name']} dropped", steps.discard_deploy, name, plan["path"], plan["db_name"])
        steps.deploy_archive(name, entry, plan)
        # 4. Switch: the deployed dir in place (the live one kept aside); the record names the new database.
        previous = steps.plan_switch(name, plan)
        op.push("previous site dir and database credentials back", steps.switch_back, name, previous)
        steps.switch_site(name, previous)
        # 5. settings.php, credentials, modes from the record; updatedb when the restored database is behind
        #    the platform's code (before the vhost hands its credentials to PHP); the vhost; one reload.
        sites.write_site_files(name)
        steps.updatedb_when_behind(name)
        sites.write_vhost(name)
        # 6. Online again (the restored database may hold maintenance mode), checked through the web server.
        steps.maintenance_mode(name, False)
        sites.probe_site(name, sites.site_env(name).site.status != "disabled")
        sites.record_packages(name)
        # 7. Only now: the previous database and user, and the previous site dir, are removed.
        op.commit("previous site removed", steps.remove_previous, name, previous)
    return {**sites.record_verified(name), "backup": entry["id"]}
