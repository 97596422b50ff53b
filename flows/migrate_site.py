"""migrate-site (aegir-backend.md §3.6): move a site to another platform (an upgrade), to a new uri (a rename)
and/or to another db server. Pre-flight first; the old site, its database and files go only after the new
one answers; any failure puts everything back."""

from __future__ import annotations

from typing import Any

from tasks import backup as backups
from tasks import migrate as steps
from tasks import restore
from tasks import site as sites
from tasks.notify import task_flow
from tasks.operation import site_operation

PRE_MIGRATE = "Pre-migration backup"


@task_flow(name="migrate-site", flow_run_name="migrate-site {site} {platform}")
def migrate_site(
    site: str, platform: str, new_uri: str | None = None, db_server: str | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Migrate a site: backup, maintenance on, copy to the target, updatedb, fix-ups, verify, maintenance
    off, then the old site removed. Rolled back on any failure.

    Args:
        site: the site context name, e.g. @example.com
        platform: the target platform, e.g. @platform_d7_new (the same platform with new_uri: a rename)
        new_uri: a new domain for the site (rename)
        db_server: move the database to this server (default: where it is)
        dry_run: only the pre-flight and the plan; nothing is changed
    """
    name = sites.site_env(site).site.name
    with site_operation(name, "migrate-site", steps=16) as op:
        if op.resumed == "completed":
            return {"name": name, "resumed": True}
        # 1. Pre-flight: the target exists, is verified and free; package comparison (an error refuses).
        sites.load_site(name)
        target = steps.validate_migrate(name, platform, new_uri, db_server)
        previous = steps.previous_location(name)
        comparison = steps.preflight(name, target)
        plan = {"target": target, "comparison": comparison}
        if dry_run:
            return {"name": name, "dry_run": True, **plan}
        # 2. The target made ready while the site stays online: a free database name, then the NEW (empty)
        #    database and user, the dir with its credentials and settings.php. A pinned backup of the site as
        #    it is (a consistent dump), kept — but unpinned — if the migrate is rolled back. Then maintenance
        #    mode on: the downtime starts.
        planned = steps.plan_target(name, target)
        op.push("target dir, database and vhost removed", steps.discard_target, name, target, planned)
        steps.prepare_target(name, target, planned)
        backups.push_archive_undo(op, name)
        backup = backups.backup_archive(name, PRE_MIGRATE, None, True)
        op.push(f"backup {backup['id']} unpinned", steps.unpin_backup, name, backup["id"])
        backups.record_backup(name, backup)
        op.push("maintenance mode off", restore.maintenance_mode, name, False)
        restore.maintenance_mode(name, True)
        # 3. Deploy: the frozen site copied into the target in one streamed pass (no archive round trip inside
        #    the downtime); a database move copies only the database.
        steps.deploy_target(name, None, target, planned)
        if target.get("db_only"):
            # 4. A database move: the same code and dir; drush's credentials file now names the new database.
            op.push("the record's (old) database credentials back", sites.write_site_files, name)
            steps.switch_database(name, planned)
        else:
            # 4. On a new uri, its paths in content follow; updatedb with the target's code; caches cleared (by
            #    updatedb itself when it ran updates).
            if target["uri"] != previous["uri"]:
                steps.rename_fixups(name, target, previous["uri"])
            if not steps.updatedb(name, target):
                steps.target_cache_clear(name, target)
        # 5. The target's vhost (it carries the database credentials to PHP: the switch when the uri and web
        #    server stay), verified through the web server.
        op.push("vhost of the old location back", sites.restore_vhost, name)
        steps.target_vhost(name, target)
        steps.target_maintenance(name, target, False)
        steps.probe_target(name, target)
        # 6. Only now: the record names the target; the old dir, database, user and vhost go.
        result = op.commit("old location removed", steps.finish_migrate, name, target, previous)
    return {**result, "backup": backup["id"], **plan}
