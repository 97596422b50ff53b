"""Sub-tasks of compare, migrate-site and clone-site (aegir-backend.md §3.5–§3.7)."""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import SecretStr

from aegir import registry
from aegir.archive import delete_archive
from aegir.contexts import SiteContext, check_hostname
from aegir.drupal import site as site_files
from aegir.drupal.compare import Comparison, compare_site, format_table
from aegir.drupal.rename import content_columns, site_name_fix, statements
from aegir.drupal.scan import scan_platform
from aegir.errors import AegirError, InputError
from aegir.services.db import MysqlService, SiteDatabases
from aegir.services.http import http_service_for
from aegir.transport.factory import connected

from . import deploy
from .common import TRANSIENT_RETRIES, record, step, store
from .platform import platform_and_server
from .site import SiteEnv, apply_vhost, probe, read_packages, site_env, stamp, write_files


def _fresh_scan(platform_name: str) -> tuple[Any, Any]:
    platform, server = platform_and_server(platform_name)
    with connected(server) as transport:
        return platform, scan_platform(transport, platform.root)


def fresh_scan(platform_name: str) -> Any:
    """A fresh scan (``PlatformScan``) of a platform's code."""
    return _fresh_scan(platform_name)[1]


def compare_with(env: SiteEnv, site_pkgs: list[dict[str, Any]], target_scan: Any) -> Comparison:
    """The site's packages (from its database, or a backup's manifest) against a platform's scan."""
    return compare_site(site_pkgs, target_scan.package_dicts(), env.site.profile, target_scan.profile_dicts())


def publish_comparison(
    env: SiteEnv, platform_name: str, target_scan: Any, comparison: Comparison, what: str = ""
) -> str:
    """The comparison as the table artifact ``compare-<site>`` and the run's log; returns its summary line."""
    summary = f"{what or env.site.name} → {platform_name} (Drupal {target_scan.core_version}): {comparison.summary()}"
    create_table_artifact(
        key=f"compare-{env.site.slug}",
        table=comparison.rows(),
        description=summary + ("" if comparison.ok else " — REFUSED: " + refusal(comparison)),
    )
    get_run_logger().info("%s\n%s", summary, format_table(comparison, changed_only=True))
    return summary


def refusal(comparison: Comparison) -> str:
    """The error rows of a comparison, one line."""
    return "; ".join(f"{c.name}: {c.reason}" for c in comparison.errors)


@step("compare-packages", **TRANSIENT_RETRIES)
def compare_packages(name: str, target: str, same_platform: bool = False) -> dict[str, Any]:
    """Pre-flight: the site's enabled packages — read fresh from its database, versions from a fresh scan of
    its platform — against a fresh scan of the target platform. Table artifact ``compare-<site>``.
    ``same_platform``: the target may be the site's own platform (a clone: are its updates pending?)."""
    env = site_env(name)
    target_platform, target_scan = _fresh_scan(target)
    if target_platform.name == env.platform.name and not same_platform:
        raise InputError("platform", f"{env.site.name} is already on {target_platform.name}")
    current_scan = target_scan if target_platform.name == env.platform.name else fresh_scan(env.platform.name)
    if target_scan.major != current_scan.major:
        raise InputError(
            "platform",
            f"{target_platform.name} is Drupal {target_scan.major}, {env.site.name} runs Drupal {current_scan.major}: "
            "a major upgrade is a content migration, not a platform migrate",
        )
    comparison = compare_with(env, read_packages(env, current_scan.package_dicts()), target_scan)
    publish_comparison(env, target_platform.name, target_scan, comparison)
    return {
        "site": env.site.name,
        "platform": target_platform.name,
        "drupal_version": target_scan.core_version,
        "profile": comparison.profile,
        "target_profile": comparison.target_profile,
        "ok": comparison.ok,
        "summary": comparison.summary(),
        "counts": comparison.counts(),
        "changes": comparison.rows(),
        "updates_pending": comparison.updates_pending,
    }


def updatedb_when_behind(env: SiteEnv, what: str) -> bool:
    """Only when the site's database is behind its platform's code (a fresh comparison of the two): ``drush
    updatedb``; a database ahead of the code (a schema downgrade) is an error. Returns whether the caches were
    cleared (updatedb does after running updates)."""
    scan = fresh_scan(env.platform.name)
    comparison = compare_with(env, read_packages(env, scan.package_dicts()), scan)
    if not comparison.ok:
        publish_comparison(env, env.platform.name, scan, comparison, what)
        raise AegirError(f"{what} is ahead of the code of {env.platform.name}: {refusal(comparison)}")
    if not comparison.updates_pending:
        get_run_logger().info("%s: no updates pending on %s", what, env.platform.name)
        return False
    with connected(env.web) as transport:
        out, cleared = env.drush(transport).updatedb()
    get_run_logger().info("updatedb on %s: %s", env.site.uri, " | ".join(out.strip().splitlines()[-3:]))
    return cleared


# ---------------------------------------------------------------------------------------------------------
# migrate / rename / clone: the site as it will be (the "target"), built from the record plus the target's
# platform, uri and db server; its database credentials come from the target dir's own credentials file.
# The site record itself changes only at the end (finish-migrate), so a rollback never has to restore it.
# ---------------------------------------------------------------------------------------------------------
def target_env(name: str, target: dict[str, str]) -> SiteEnv:
    s = store()
    current = registry.load_site(s, name)
    platform = registry.load_platform(s, target["platform"])
    web = registry.load_server(s, platform.web_server)
    db = registry.load_server(s, target["db_server"])
    site = current.model_copy(
        update={
            "name": target["name"],
            "uri": target["uri"],
            "platform": platform.name,
            "db_server": db.name,
            "operation": None,
            **({"aliases": [], "redirection": None, "backups": []} if target.get("clone") else {}),
        }
    )
    tenv = SiteEnv(site, platform, web, db)
    with connected(web) as transport:
        creds = site_files.read_credentials(transport, tenv.site_path)
    if creds is not None:
        site = site.model_copy(
            update={"db_name": creds.name, "db_user": creds.user, "db_password": SecretStr(creds.password)}
        )
    return SiteEnv(site, platform, web, db)


def _uri_in_use(uri: str, name: str) -> str | None:
    valid, invalid = store().scan("site")
    for ctx in valid:
        live = isinstance(ctx, SiteContext) and ctx.name != name and ctx.status != "deleted"
        if live and (uri == ctx.uri or uri in ctx.aliases):
            return ctx.name
    for bad in invalid:  # an invalid record still claims its name and aliases
        if bad.name != name and (bad.name == f"@{uri}" or uri in (bad.data.get("aliases") or [])):
            return bad.name
    return None


@step("validate-migrate")
def validate_migrate(
    name: str, platform: str, new_uri: str | None, db_server: str | None, clone: bool = False
) -> dict[str, str]:
    """Everything a migrate (or rename, or clone) needs, checked before anything is touched; returns the
    target: platform, uri, name, db server."""
    env = site_env(name)
    s = store()
    target_platform = registry.load_platform(s, platform)
    if target_platform.verified is None:
        raise InputError("platform", f"{target_platform.name} has not been verified: run aegir verify {platform}")
    if target_platform.status == "locked":
        raise InputError("platform", f"{target_platform.name} is locked: no sites can be moved onto it")
    try:
        uri = check_hostname(new_uri) if new_uri else env.site.uri
    except ValueError as e:
        raise InputError("new_uri", str(e)) from None
    db = registry.load_server(s, db_server or env.site.db_server)
    if db.db_service_type == "null":
        raise InputError("db_server", f"{db.name} has no database service")
    target = {"platform": target_platform.name, "uri": uri, "name": f"@{uri}" if uri != env.site.uri else env.site.name}
    target["db_server"] = db.name
    if clone:
        target["clone"] = "yes"
    if clone and uri == env.site.uri:
        raise InputError("new_uri", "a clone needs its own domain")
    if not clone and (target_platform.name, uri, db.name) == (env.platform.name, env.site.uri, env.site.db_server):
        raise InputError(
            "platform", f"{env.site.name} is already on {target_platform.name} with that uri and db server"
        )
    if uri != env.site.uri:
        owner = _uri_in_use(uri, env.site.name) or (s.find(target["name"]) and target["name"])
        if owner:
            raise InputError("new_uri", f"{uri} is already used by {owner}")
    tenv = target_env(name, target)
    tenv.check_db_reachable()
    if tenv.major != env.major:
        raise InputError(
            "platform", f"{target_platform.name} is Drupal {tenv.major}, {env.site.name} runs Drupal {env.major}"
        )
    if tenv.site_path == env.site_path and tenv.web.name == env.web.name:
        target["db_only"] = "yes"  # the same dir, another db server: only the database moves
    else:
        with connected(tenv.web) as transport:
            if transport.exists(tenv.site_path):
                raise InputError("new_uri", f"{tenv.site_path} already exists on {tenv.web.name}: move it away first")
    MysqlService(db).version()
    return target


@step("preflight")
def preflight(name: str, target: dict[str, str]) -> str | None:
    """On another platform — and for a clone, on the same one too — the package comparison
    (compare-packages); an error refuses the target before anything is touched. Returns the comparison's
    summary (None for a migrate on the same platform)."""
    same = target["platform"] == site_env(name).platform.name
    if same and not target.get("clone"):
        return None
    comparison = compare_packages.fn(name, target["platform"], same_platform=same)
    if not comparison["ok"]:
        errors = [f"{c['name']}: {c['reason']}" for c in comparison["changes"] if c["status"] == "error"]
        raise InputError("platform", f"the pre-flight refuses {target['platform']}: {'; '.join(errors)}")
    return comparison["summary"]


def _moved_credentials(site_path: str) -> str:
    """Where a database move keeps the new credentials until the switch: a hidden file next to the site dir."""
    return posixpath.join(posixpath.dirname(site_path), f".{posixpath.basename(site_path)}.dbmove-{stamp()}.php")


@step("plan-target")
def plan_target(name: str, target: dict[str, str]) -> dict[str, str]:
    """The target site dir (for a database move: the hidden file of the new credentials) and a free database
    name on the target db server (journaled before anything is made)."""
    tenv = target_env(name, target)
    return deploy.plan(tenv, _moved_credentials(tenv.site_path) if target.get("db_only") else tenv.site_path)


@step("prepare-target")
def prepare_target(name: str, target: dict[str, str], planned: dict[str, str]) -> None:
    """Before a migrate's maintenance window: the target's NEW (empty) database and user, its dir with the
    new credentials file, settings.php and sites.php — nothing that holds the site's data. A database move
    makes only the database and user, and the hidden credentials file."""
    if target.get("db_only"):
        deploy.prepare(target_env(name, target), planned, credentials=planned["path"])
        return
    deploy.prepare(target_env(name, target), planned)
    tenv = target_env(name, target)
    with connected(tenv.web) as transport:
        write_files(tenv, transport)


@step("deploy-target")
def deploy_target(name: str, backup: dict[str, Any] | None, target: dict[str, str], planned: dict[str, str]) -> None:
    """The site's data into the target: the backup archive into the target dir and a NEW database and user on
    the target db server, then settings.php, modes and aliases for the target (clone); or, with no backup
    given, the live site itself copied in one streamed pass into the prepared target (migrate, inside its
    maintenance window)."""
    if backup is None and target.get("db_only"):
        deploy.copy_database(site_env(name), target_env(name, target), planned["db_name"])
        return
    if backup is None:
        deploy.copy_live(site_env(name), target_env(name, target), planned)
        return
    deploy.deploy(target_env(name, target), backup, planned)
    tenv = target_env(name, target)
    with connected(tenv.web) as transport:
        write_files(tenv, transport)


@step("discard-target")
def discard_target(name: str, target: dict[str, str], planned: dict[str, str]) -> None:
    """Undo of deploy-target: the target dir, database and user, its vhost and aliases — never the live
    site's (the record still names the old location until finish-migrate)."""
    env, tenv = site_env(name), target_env(name, target)
    if (env.site.db_server, env.site.db_name) == (tenv.db.name, planned["db_name"]):
        raise AegirError(f"refusing to discard database {planned['db_name']}: it is the live site's")
    if target.get("db_only"):  # the live dir stays; only the new database, user and credentials file go
        deploy.discard(tenv, planned["path"], planned["db_name"])
        return
    if tenv.site_path == env.site_path:
        raise AegirError(f"refusing to discard {tenv.site_path}: it is the live site")
    deploy.discard(tenv, tenv.site_path, planned["db_name"])
    with connected(tenv.web) as transport:
        if tenv.site.uri != env.site.uri or tenv.web.name != env.web.name:
            http = http_service_for(tenv.web)
            if http.remove_vhost(transport, tenv.site.uri):
                http.reload(transport)
        site_files.unmap_sites_php(transport, tenv.docroot, tenv.site.uri)
        if tenv.docroot == env.docroot and tenv.web.name == env.web.name:  # a rename: the live site's aliases back
            site_files.update_sites_php(transport, env.docroot, env.site.uri, env.site.aliases)


@step("switch-database")
def switch_database(name: str, planned: dict[str, str]) -> None:
    """A database move's switch: the new credentials file replaces the live one (one rename); the site runs
    on the new database from here. Undone by writing the record's (old) credentials back."""
    env = site_env(name)
    with connected(env.web) as transport:
        if transport.exists(planned["path"]):
            site_files.move_dir(transport, planned["path"], posixpath.join(env.site_path, site_files.CREDENTIALS_FILE))
    get_run_logger().info("%s now uses the new database %s", env.site.name, planned["db_name"])


@step("updatedb")
def updatedb(name: str, target: dict[str, str], when_behind: bool = False) -> bool:
    """drush updatedb on the target (the new platform's code against the imported database) — with
    ``when_behind`` only if the imported database is behind that code (a clone on its own platform). Returns
    whether it cleared the caches (drush does after running updates): then no separate cache clear is needed."""
    tenv = target_env(name, target)
    if when_behind:
        return updatedb_when_behind(tenv, tenv.site.name)
    with connected(tenv.web) as transport:
        out, cleared = tenv.drush(transport).updatedb()
    get_run_logger().info("updatedb on %s: %s", tenv.site.uri, " | ".join(out.strip().splitlines()[-3:]))
    return cleared


@step("rename-fixups")
def rename_fixups(name: str, target: dict[str, str], old_uri: str) -> int:
    """On a new uri: the old uri's paths and links in content follow (aegir-backend.md §3.5)."""
    tenv = target_env(name, target)
    service = MysqlService(tenv.db)
    changed = 0
    with service.connect(tenv.site.db_name) as conn:
        rows = service.execute(
            conn,
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s",
            tenv.site.db_name,
        )
        columns = content_columns([(str(t), str(c), str(k)) for t, c, k in rows], tenv.major)
        for sql, params in statements(columns, old_uri, tenv.site.uri, tenv.major):
            with conn.cursor() as cur:
                changed += cur.execute(sql, params)
        changed += _rename_site_name(service, conn, old_uri, tenv.site.uri, tenv.major)
        conn.commit()
    get_run_logger().info("%s → %s: %d rows of content rewritten", old_uri, tenv.site.uri, changed)
    return changed


def _rename_site_name(service: MysqlService, conn: Any, old_uri: str, new_uri: str, major: int) -> int:
    """The site name follows the uri (Drupal 7: ``variable`` site_name; Drupal 8+: ``config`` system.site)."""
    if major == 7:
        select = "SELECT value FROM variable WHERE name = %s", ("site_name",)
        update = "UPDATE variable SET value = %s WHERE name = %s"
    else:
        select = "SELECT data FROM config WHERE collection = '' AND name = %s", ("system.site",)
        update = "UPDATE config SET data = %s WHERE collection = '' AND name = %s"
    rows = service.execute(conn, *select)
    new = site_name_fix(rows[0][0], old_uri, new_uri, major) if rows else None
    if new is None:
        return 0
    service.execute(conn, update, (new, select[1][0]))
    return 1


@step("target-cache-clear")
def target_cache_clear(name: str, target: dict[str, str]) -> None:
    tenv = target_env(name, target)
    with connected(tenv.web) as transport:
        tenv.drush(transport).cache_clear()


@step("target-maintenance")
def target_maintenance(name: str, target: dict[str, str], on: bool) -> None:
    tenv = target_env(name, target)
    with connected(tenv.web) as transport:
        tenv.drush(transport).maintenance(on)


@step("target-vhost")
def target_vhost(name: str, target: dict[str, str]) -> None:
    """The target's vhost (config-tested), one reload. Same uri on the same web server: this is the switch."""
    tenv = target_env(name, target)
    with connected(tenv.web) as transport:
        apply_vhost(tenv, transport, tenv.site.status != "disabled")


@step("probe-target")
def probe_target(name: str, target: dict[str, str]) -> dict[str, Any]:
    tenv = target_env(name, target)
    return probe(tenv, tenv.site.status != "disabled")


@step("unpin-backup")
def unpin_backup(name: str, backup_id: str) -> None:
    """A rolled-back migrate's backup is kept, but no longer pinned (retention may remove it)."""
    site = registry.load_site(store(), name)
    record(site, backups=[{**b, "pinned": False} if b["id"] == backup_id else b for b in site.backups])


def _previous(env: SiteEnv) -> dict[str, Any]:
    return {
        "name": env.site.name,
        "uri": env.site.uri,
        "platform": env.platform.name,
        "web_server": env.web.name,
        "db_server": env.site.db_server,
        "db_name": env.site.db_name,
        "db_user": env.site.db_user,
        "site_path": env.site_path,
        "docroot": env.docroot,
    }


@step("previous-location")
def previous_location(name: str) -> dict[str, Any]:
    """Names of everything the old location holds (carried explicitly to the cleanup)."""
    return _previous(site_env(name))


@step("finish-migrate")
def finish_migrate(name: str, target: dict[str, str], previous: dict[str, Any]) -> dict[str, Any]:
    """The point of no return, idempotent: the record names the target (a rename moves it to the new name);
    then the old dir, the old database and user (exactly those the old record named), the old vhost and
    aliases go."""
    s = store()
    current = s.find(previous["name"])
    if isinstance(current, SiteContext) and current.platform == previous["platform"] and current.uri == previous["uri"]:
        tenv = target_env(name, target)
        creds = tenv.site
        moved = current.model_copy(
            update={
                "name": target["name"],
                "uri": target["uri"],
                "platform": target["platform"],
                "db_server": target["db_server"],
                "db_name": creds.db_name,
                "db_user": creds.db_user,
                "db_password": creds.db_password,
                "verified": datetime.now(UTC),
                "operation": current.operation if target["name"] == previous["name"] else None,
            }
        )
        s.put(type(current).model_validate(moved.model_dump()))
    new = registry.load_site(s, target["name"])
    removed: list[str] = []
    old_db = registry.load_server(s, previous["db_server"])
    if (previous["db_server"], previous["db_name"]) != (new.db_server, new.db_name):
        removed += SiteDatabases(MysqlService(old_db)).destroy(previous["db_name"], previous["db_user"])
    old_web = registry.load_server(s, previous["web_server"])
    with connected(old_web) as transport:
        new_env = site_env(new.name)
        if previous["site_path"] != new_env.site_path and transport.exists(previous["site_path"]):
            transport.remove_tree(previous["site_path"])
            removed.append(previous["site_path"])
        if (previous["uri"], previous["web_server"]) != (new.uri, new_env.web.name):
            http = http_service_for(old_web)
            if http.remove_vhost(transport, previous["uri"]):
                http.reload(transport)
                removed.append(f"vhost {previous['uri']}")
        if previous["docroot"] != new_env.docroot or previous["uri"] != new.uri:
            site_files.unmap_sites_php(transport, previous["docroot"], previous["uri"])
    if target["name"] != previous["name"] and current is not None:
        s.remove(current)  # renamed: the old name is gone (its backups moved with the record)
    get_run_logger().info("%s now on %s; removed: %s", new.name, new.platform, ", ".join(removed) or "nothing")
    return {"name": new.name, "uri": new.uri, "platform": new.platform, "url": new_env.url, "db_name": new.db_name}


@step("create-clone")
def create_clone(name: str, target: dict[str, str], archive: str) -> dict[str, Any]:
    """The point of no return of a clone, idempotent: the clone's own site block (its own database and user,
    no aliases, no backups yet); the temporary archive removed."""
    s = store()
    tenv = target_env(name, target)
    if s.find(target["name"]) is None:
        facts = {**tenv.site.model_dump(), "verified": datetime.now(UTC), "packages": []}
        s.put(SiteContext.model_validate(facts))
    delete_archive(archive)
    get_run_logger().info("%s cloned to %s on %s", name, tenv.site.name, tenv.platform.name)
    return {"name": tenv.site.name, "uri": tenv.site.uri, "platform": tenv.platform.name, "url": tenv.url}
