"""Sub-tasks of restore-site and delete-site. The old database and files go only after the new ones are
verified; credentials travel through the site dirs' credentials files and the site block, never between tasks."""

from __future__ import annotations

import posixpath
from typing import Any

from prefect import get_run_logger

from aegir.archive import verify_archive
from aegir.drupal import site as site_files
from aegir.errors import AegirError, InputError
from aegir.services.db import MysqlService, SiteDatabases
from aegir.services.http import http_service_for
from aegir.transport.factory import connected

from . import deploy, migrate
from .common import record, step
from .site import SiteEnv, apply_vhost, record_credentials, remove_previous_site, site_env, stamp


def find_backup(env: SiteEnv, backup_id: str) -> dict[str, Any]:
    backups = sorted(env.site.backups, key=lambda b: b["created"], reverse=True)
    if not backups:
        raise InputError("backup", f"{env.site.name} has no backups (aegir backup {env.site.name})")
    if backup_id == "latest":
        return backups[0]
    for b in backups:
        if b["id"] == backup_id:
            return b
    raise InputError("backup", f"{env.site.name} has no backup {backup_id!r} (see aegir backups {env.site.name})")


@step("validate-restore")
def validate_restore(name: str, backup_id: str) -> dict[str, Any]:
    """The backup exists, belongs to this site, and its archive is intact (checksums) — before anything is
    touched. Returns the backup entry."""
    env = site_env(name)
    if env.site.status not in ("installed", "disabled", "deleted"):
        raise InputError("site", f"{env.site.name} is {env.site.status}: nothing to restore into")
    if env.platform.verified is None:
        raise InputError("platform", f"{env.platform.name} has not been verified: run aegir verify {env.platform.name}")
    entry = find_backup(env, backup_id)
    manifest = verify_archive(entry["file"], expected_sha256=entry.get("sha256"))
    if manifest.get("uri") != env.site.uri:
        raise InputError("backup", f"{entry['id']} is a backup of {manifest.get('uri')!r}, not of {env.site.uri}")
    MysqlService(env.db).version()
    get_run_logger().info("backup %s verified (%s, %d bytes)", entry["id"], entry["file"], entry["size"])
    check_schemas(env, entry["id"], manifest)
    return {k: entry[k] for k in ("id", "file", "sha256")}


def check_schemas(env: SiteEnv, backup_id: str, manifest: dict[str, Any]) -> None:
    """The backup's schemas (its manifest's packages) against a fresh scan of the platform's code, before
    anything is touched (Aegir's deploy check): a database ahead of the code — a schema downgrade, Drupal
    cannot go back — is refused with the comparison (table artifact ``compare-<site>``); one behind it gets
    ``drush updatedb`` after the switch (``updatedb-when-behind``, which reads the restored database itself)."""
    logger = get_run_logger()
    packages = manifest.get("packages") or []
    if not packages:
        logger.warning("backup %s lists no packages: its schemas are checked once it is deployed", backup_id)
        return
    scan = migrate.fresh_scan(env.platform.name)
    comparison = migrate.compare_with(env, packages, scan)
    what = f"backup {backup_id} of {env.site.name}"
    migrate.publish_comparison(env, env.platform.name, scan, comparison, what)
    if not comparison.ok:
        raise InputError(
            "backup",
            f"{backup_id} holds a database from newer code than {env.platform.name} (Drupal {scan.core_version}): "
            f"{migrate.refusal(comparison)} — Drupal cannot go back to older code; refused, nothing changed "
            f"(the comparison: aegir compare's table, artifact compare-{env.site.slug})",
        )
    if comparison.updates_pending:
        logger.info("%s is behind the code of %s: updatedb runs after the switch", what, env.platform.name)


@step("maintenance-mode")
def maintenance_mode(name: str, on: bool) -> None:
    """drush vset maintenance_mode / state:set system.maintenance_mode on the live site."""
    env = site_env(name)
    with connected(env.web) as transport:
        env.drush(transport).maintenance(on)


@step("plan-deploy")
def plan_deploy(name: str) -> dict[str, str]:
    """Where the backup will be deployed — a hidden dir next to the live site and a free database name —
    chosen before anything is created, so that the undo is known (and journaled) before the deploy starts."""
    env = site_env(name)
    return deploy.plan(env, posixpath.join(posixpath.dirname(env.site_path), f".{env.site.uri}.restore-{stamp()}"))


@step("deploy-archive")
def deploy_archive(name: str, backup: dict[str, Any], plan: dict[str, str]) -> dict[str, str]:
    """Extract the archive into the planned dir and import its dump into a NEW database and user; the new
    credentials are written into the new dir's credentials file only."""
    return deploy.deploy(site_env(name), backup, plan)


@step("discard-deploy")
def discard_deploy(name: str, path: str, db_name: str) -> None:
    """Undo of deploy-archive: the new dir, and the new database and user — unless a site record names that
    database (the deploy never created it, and another site did)."""
    env = site_env(name)
    deploy.discard(env, path if path.startswith(posixpath.dirname(env.site_path) + "/.") else None, db_name)


@step("plan-switch")
def plan_switch(name: str, deployed: dict[str, str]) -> dict[str, Any]:
    """What the switch will do, known (and journaled) before it starts: where the live dir goes, and the
    database the record names now (names only; the password stays in the live dir's credentials file)."""
    env = site_env(name)
    with connected(env.web) as web:
        live = web.exists(env.site_path)
    return {
        "aside": site_files.set_aside_path(env.site_path, stamp()) if live else "",
        "db_name": env.site.db_name,
        "db_user": env.site.db_user,
        "status": env.site.status,
        "deployed": deployed["path"],
    }


@step("switch-site")
def switch_site(name: str, previous: dict[str, Any]) -> None:
    """Put the deployed dir in place (the live one moved aside, kept) and make the site record point at the
    new database."""
    env = site_env(name)
    with connected(env.web) as web:
        creds = site_files.read_credentials(web, previous["deployed"])
        if creds is None:
            raise AegirError(f"{previous['deployed']} holds no database credentials")
        if previous["aside"]:
            site_files.move_dir(web, env.site_path, previous["aside"])
        site_files.move_dir(web, previous["deployed"], env.site_path)
    record_credentials(env, creds, "disabled" if previous["status"] == "disabled" else "installed")


@step("switch-back")
def switch_back(name: str, previous: dict[str, Any]) -> None:
    """Undo of switch-site, from whatever point it reached: the deployed dir back to its hidden place, the
    live dir back, the record and the vhost rewritten from the live dir's own credentials file."""
    env = site_env(name)
    aside, deployed = previous["aside"], previous["deployed"]
    with connected(env.web) as web:
        moved_aside = bool(aside) and web.exists(aside)
        if (moved_aside or not aside) and web.exists(env.site_path) and not web.exists(deployed):
            site_files.move_dir(web, env.site_path, deployed)  # the deployed dir had been moved in
        if moved_aside:
            site_files.move_dir(web, aside, env.site_path)
        if not aside:  # a deleted site was being brought back: deleted again, off the web server
            http = http_service_for(env.web)
            if http.remove_vhost(web, env.site.uri):
                http.reload(web)
            site_files.unmap_sites_php(web, env.docroot, env.site.uri)
            record(env.site, status=previous["status"], db_name=None, db_user=None, db_password=None)
            return
        env = record_credentials(env, site_files.read_credentials(web, env.site_path), previous["status"])
        apply_vhost(env, web, always_reload=False)


@step("updatedb-when-behind")
def updatedb_when_behind(name: str) -> bool:
    """drush updatedb on the restored database when it is behind the platform's code (as a migrate's deploy
    does); a database ahead of the code fails the restore (rolled back). Returns whether caches were cleared."""
    env = site_env(name)
    return migrate.updatedb_when_behind(env, f"the restored database of {env.site.name}")


@step("remove-previous")
def remove_previous(name: str, previous: dict[str, Any]) -> list[str]:
    """Only now that the restored site works: the previous database, user and site dir go."""
    return remove_previous_site(site_env(name), previous)


# ---------------------------------------------------------------------------------------------------------
# delete
# ---------------------------------------------------------------------------------------------------------
@step("validate-delete")
def validate_delete(name: str) -> str:
    """Deleting needs a disabled site (unless the web server's delete_enabled_sites allows it)."""
    env = site_env(name)
    if env.site.status == "deleted":
        raise InputError("site", f"{env.site.name} is already deleted")
    if env.site.status != "disabled" and not env.web.delete_enabled_sites:
        raise InputError(
            "site",
            f"{env.site.name} is {env.site.status}: disable it first (aegir disable {env.site.name}), or set "
            f"--delete_enabled_sites=true on {env.web.name}",
        )
    MysqlService(env.db).version()  # the db server answers: the delete cannot stop half-way for that
    return env.site.name


@step("plan-aside")
def plan_aside(name: str) -> str:
    """Where the site dir will be kept until the site is gone (journaled before the move)."""
    return site_files.set_aside_path(site_env(name).site_path, stamp())


@step("set-aside-site-dir")
def set_aside_site_dir(name: str, aside: str) -> None:
    env = site_env(name)
    with connected(env.web) as web:
        if web.exists(env.site_path):
            site_files.move_dir(web, env.site_path, aside)


@step("put-back-site-dir")
def put_back_site_dir(name: str, aside: str) -> None:
    env = site_env(name)
    with connected(env.web) as web:
        if aside and web.exists(aside):
            site_files.move_dir(web, aside, env.site_path)


@step("destroy-site")
def destroy_site(name: str, aside: str) -> list[str]:
    """The point of no return: drop exactly the database and user recorded for THIS site, remove its dir and
    aliases; the block stays (status deleted) with its backups."""
    env = site_env(name)
    removed = SiteDatabases(MysqlService(env.db)).destroy(env.site.db_name, env.site.db_user)
    with connected(env.web) as web:
        if web.exists(aside):
            web.remove_tree(aside)
            removed.append(env.site_path)
        site_files.unmap_sites_php(web, env.docroot, env.site.uri)
    record(env.site, status="deleted", db_name=None, db_user=None, db_password=None, packages=[])
    get_run_logger().info("deleted %s: %s", env.site.name, ", ".join(removed))
    return removed
