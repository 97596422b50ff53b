"""restore-site (aegir-backend.md §3.4, §3.5): bring a site back to a backup — or a deleted site back to life.
The current database and files are removed only after the restored site answers."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks import backup as backups
from tasks import restore as steps
from tasks import site as sites
from tasks.common import Undo

SAFETY = "Generated before being restored to a previous version"


@flow(name="restore-site", flow_run_name="restore-site {site} {backup}")
def restore_site(site: str, backup: str = "latest") -> dict[str, Any]:
    """Restore a site from one of its backups: safety backup first, new database, switch, verify, cleanup.

    Args:
        site: the site context name, e.g. @example.com
        backup: a backup id (aegir backups @site) or latest
    """
    # 1. The backup belongs to this site and its archive is intact: checked before anything is touched.
    name = sites.site_env(site).site.name
    entry = steps.validate_restore(name, backup)
    live = sites.site_env(name).site.status != "deleted"
    undo = Undo()
    try:
        if live:
            # 2. Maintenance mode on the live site, then a pinned safety backup of it.
            undo.push("maintenance mode off", steps.maintenance_mode, name, False)
            steps.maintenance_mode(name, True)
            safety = backups.backup_archive(name, SAFETY, None, True)
            backups.record_backup(name, safety)
        # 3. Deploy: the archive's files next to the live dir, its dump into a NEW database and user.
        deployed = steps.deploy_archive(name, entry)
        undo.push(
            f"database {deployed['db_name']} dropped", steps.discard_deploy, name, deployed["path"], deployed["db_name"]
        )
        # 4. Switch: the deployed dir in place (the live one kept aside); the record names the new database.
        previous = steps.switch_site(name, deployed)
        undo.push("previous site dir and database credentials back", steps.switch_back, name, previous)
        # 5. settings.php, credentials, modes from the record; the vhost; one reload.
        sites.write_site_files(name)
        sites.write_vhost(name)
        # 6. Online again (the restored database may hold maintenance mode), checked through the web server.
        steps.maintenance_mode(name, False)
        sites.probe_site(name, sites.site_env(name).site.status != "disabled")
        sites.record_packages(name)
    except Exception as e:
        undo.fail("restore-site", e)
    # 7. Only now: the previous database and user, and the previous site dir, are removed.
    steps.remove_previous(name, previous)
    return {**sites.record_verified(name), "backup": entry["id"]}
