"""Sub-tasks of restore-site and delete-site. The old database and files go only after the new ones are
verified; credentials travel through the site dirs' credentials files and the site block, never between tasks."""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Any

from prefect import get_run_logger, task

from aegir.archive import extract_archive, verify_archive
from aegir.drupal import site as site_files
from aegir.errors import AegirError, InputError
from aegir.services.db import MysqlService, SiteDatabases, random_password
from aegir.services.dump import import_database
from aegir.services.http import http_service_for
from aegir.services.vhost import DbParams
from aegir.transport.factory import connected
from aegir.transport.local import LocalTransport

from .common import record
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


@task(name="validate-restore")
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
    return {k: entry[k] for k in ("id", "file", "sha256")}


@task(name="maintenance-mode")
def maintenance_mode(name: str, on: bool) -> None:
    """drush vset maintenance_mode / state:set system.maintenance_mode on the live site."""
    env = site_env(name)
    with connected(env.web) as transport:
        env.drush(transport).maintenance(on)


@task(name="deploy-archive")
def deploy_archive(name: str, backup: dict[str, Any]) -> dict[str, str]:
    """Extract the archive next to the live site (a hidden dir) and import its dump into a NEW database and
    user; the new credentials are written into the new dir's credentials file only."""
    env = site_env(name)
    databases = env.databases()
    with databases.service.connect() as conn:
        db_name = databases.free_name(conn, env.site.uri)
        hosts = databases.grant_hosts(conn)
    new_path = posixpath.join(posixpath.dirname(env.site_path), f".{env.site.uri}.restore-{stamp()}")
    password = random_password()
    master = LocalTransport("localhost")
    fd, dump_path = tempfile.mkstemp(prefix=".restore-", suffix=".sql", dir=os.path.dirname(backup["file"]))
    try:
        with connected(env.web) as web:
            with os.fdopen(fd, "wb") as dump_out:
                extract_archive(
                    backup["file"],
                    site_transport=web,
                    site_path=new_path,
                    dump_out=dump_out,
                    expected_sha256=backup.get("sha256"),
                )
            databases.create(db_name, db_name, password, hosts)
            with open(dump_path, "rb") as source:
                import_database(master, env.db, db_name, source)
            creds = DbParams("mysql", db_name, db_name, password, env.db.db_address, env.db.db_port)
            web.write_file(
                posixpath.join(new_path, site_files.CREDENTIALS_FILE),
                site_files.render_credentials(creds),
                mode=site_files.CREDENTIALS_MODE,
            )
    except Exception:
        discard_deploy.fn(name, new_path, db_name)
        raise
    finally:
        if os.path.exists(dump_path):
            os.unlink(dump_path)
    get_run_logger().info("backup %s deployed into %s and database %s", backup["id"], new_path, db_name)
    return {"path": new_path, "db_name": db_name}


@task(name="discard-deploy")
def discard_deploy(name: str, path: str, db_name: str) -> None:
    """Undo of deploy-archive: the new dir and the new database and user (exactly those)."""
    env = site_env(name)
    SiteDatabases(MysqlService(env.db)).destroy(db_name, db_name)
    with connected(env.web) as web:
        if path.startswith(posixpath.dirname(env.site_path) + "/.") and web.exists(path):
            web.remove_tree(path)


@task(name="switch-site")
def switch_site(name: str, deployed: dict[str, str]) -> dict[str, Any]:
    """Put the deployed dir in place (the live one moved aside, kept) and make the site record point at the
    new database. Returns what the undo and the final cleanup need (names only)."""
    env = site_env(name)
    with connected(env.web) as web:
        creds = site_files.read_credentials(web, deployed["path"])
        if creds is None:
            raise AegirError(f"{deployed['path']} holds no database credentials")
        aside = site_files.move_aside(web, env.site_path, stamp())
        site_files.move_dir(web, deployed["path"], env.site_path)
    previous = {
        "aside": aside,
        "db_name": env.site.db_name,
        "db_user": env.site.db_user,
        "status": env.site.status,
        "deployed": deployed["path"],
    }
    record_credentials(env, creds, "disabled" if env.site.status == "disabled" else "installed")
    return previous


@task(name="switch-back")
def switch_back(name: str, previous: dict[str, Any]) -> None:
    """Undo of switch-site: the old dir and credentials back, the vhost rewritten from them."""
    env = site_env(name)
    with connected(env.web) as web:
        site_files.move_dir(web, env.site_path, previous["deployed"])
        if not previous["aside"]:  # a deleted site was being brought back: deleted again, off the web server
            http = http_service_for(env.web)
            if http.remove_vhost(web, env.site.uri):
                http.reload(web)
            site_files.update_sites_php(web, env.docroot, env.site.uri, [])
            record(env.site, status=previous["status"], db_name=None, db_user=None, db_password=None)
            return
        site_files.move_dir(web, previous["aside"], env.site_path)
        env = record_credentials(env, site_files.read_credentials(web, env.site_path), previous["status"])
        apply_vhost(env, web)


@task(name="remove-previous")
def remove_previous(name: str, previous: dict[str, Any]) -> list[str]:
    """Only now that the restored site works: the previous database, user and site dir go."""
    return remove_previous_site(site_env(name), previous)


# ---------------------------------------------------------------------------------------------------------
# delete
# ---------------------------------------------------------------------------------------------------------
@task(name="validate-delete")
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
    return env.site.name


@task(name="set-aside-site-dir")
def set_aside_site_dir(name: str) -> str:
    env = site_env(name)
    with connected(env.web) as web:
        return site_files.move_aside(web, env.site_path, stamp())


@task(name="put-back-site-dir")
def put_back_site_dir(name: str, aside: str) -> None:
    env = site_env(name)
    with connected(env.web) as web:
        if aside and web.exists(aside):
            site_files.move_dir(web, aside, env.site_path)


@task(name="destroy-site")
def destroy_site(name: str, aside: str) -> list[str]:
    """The point of no return: drop exactly the database and user recorded for THIS site, remove its dir and
    aliases; the block stays (status deleted) with its backups."""
    env = site_env(name)
    removed = SiteDatabases(MysqlService(env.db)).destroy(env.site.db_name, env.site.db_user)
    with connected(env.web) as web:
        if aside:
            web.remove_tree(aside)
            removed.append(env.site_path)
        site_files.update_sites_php(web, env.docroot, env.site.uri, [])
    record(env.site, status="deleted", db_name=None, db_user=None, db_password=None, packages=[])
    get_run_logger().info("deleted %s: %s", env.site.name, ", ".join(removed))
    return removed
