"""The one deploy primitive (DESIGN §7) behind restore, migrate and clone: a backup archive extracted into a
site dir and its dump imported into a NEW database and user, with the new credentials written only into that
dir's credentials file. Plain functions on a :class:`SiteEnv` — the live site's for a restore, the target's
for a migrate or clone."""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from prefect import get_run_logger

from aegir.archive import extract_archive
from aegir.contexts import SiteContext
from aegir.drupal import site as site_files
from aegir.errors import AegirError
from aegir.services.db import random_password
from aegir.services.dump import dump_database, import_database
from aegir.services.vhost import DbParams
from aegir.transport.factory import connected
from aegir.transport.local import LocalTransport

from .common import store
from .operation import db_slot
from .site import SiteEnv


def plan(env: SiteEnv, path: str) -> dict[str, str]:
    """Where a deploy goes — ``path`` and a free database name on the env's db server — chosen before
    anything is created, so that its undo can be journaled before it starts."""
    databases = env.databases()
    with databases.service.connect() as conn:
        return {"path": path, "db_name": databases.free_name(conn, env.site.uri)}


def _free_hosts(env: SiteEnv, db_name: str) -> list[str]:
    """The planned database must still be free; returns the hosts its user is granted from."""
    databases = env.databases()
    with databases.service.connect() as conn:
        if databases.service.database_exists(conn, db_name):
            raise AegirError(f"database {db_name} appeared meanwhile; nothing deployed, try again")
        return env.grant_hosts(conn)


def deploy(env: SiteEnv, backup: dict[str, Any], planned: dict[str, str]) -> dict[str, str]:
    """Extract ``backup`` into the planned dir (on the env's web server) and import its dump into the planned
    NEW database and user (on the env's db server)."""
    new_path, db_name = planned["path"], planned["db_name"]
    hosts = _free_hosts(env, db_name)
    password = random_password()
    databases = env.databases()
    fd, dump_path = tempfile.mkstemp(prefix=".deploy-", suffix=".sql", dir=os.path.dirname(backup["file"]))
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
            # the archive's modes, but every file is ours now (tar --no-same-owner): the web group back
            site_files.set_permissions(web, new_path, env.web.web_group)
            databases.create(db_name, db_name, password, hosts)
            with open(dump_path, "rb") as source, db_slot(env.db):
                import_database(LocalTransport("localhost"), env.db, db_name, source)
            creds = DbParams("mysql", db_name, db_name, password, env.db.db_address, env.db.db_port)
            web.write_file(
                posixpath.join(new_path, site_files.CREDENTIALS_FILE),
                site_files.render_credentials(creds),
                mode=site_files.CREDENTIALS_MODE,
            )
    finally:
        if os.path.exists(dump_path):
            os.unlink(dump_path)
    get_run_logger().info("backup %s deployed into %s and database %s", backup["id"], new_path, db_name)
    return {"path": new_path, "db_name": db_name}


def _pipe(produce: Callable[[BinaryIO], object], consume: Callable[[BinaryIO], object]) -> None:
    """``produce`` writes into a pipe (in a thread) while ``consume`` reads it: one streamed pass, no file.
    An error on either side stops the other and is raised."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def producer() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out:
                produce(out)
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            failure.append(e)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb") as source:
            consume(source)
    finally:
        thread.join()
    if failure:
        raise failure[0]


def prepare(env: SiteEnv, planned: dict[str, str], credentials: str | None = None) -> None:
    """Everything of a planned deploy that does not hold the site's data, made ahead (migrate-site does this
    before its maintenance window): the NEW database (empty) and user with its grants, the dir and the new
    credentials file in it — or, given ``credentials``, only that file (a database move: the site dir stays).
    :func:`copy_live` / :func:`copy_database` then fill them."""
    new_path, db_name = planned["path"], planned["db_name"]
    hosts = _free_hosts(env, db_name)
    password = random_password()
    env.databases().create(db_name, db_name, password, hosts)
    with connected(env.web) as web:
        if credentials is None:
            web.makedirs(new_path)
        creds = DbParams("mysql", db_name, db_name, password, env.db.db_address, env.db.db_port)
        web.write_file(
            credentials or posixpath.join(new_path, site_files.CREDENTIALS_FILE),
            site_files.render_credentials(creds),
            mode=site_files.CREDENTIALS_MODE,
        )


# written for the target by prepare (and write_files), never copied from the source
_OWN_FILES = (site_files.CREDENTIALS_FILE, "settings.php")


def copy_database(source: SiteEnv, env: SiteEnv, db_name: str) -> None:
    """The live site's database dumped straight into the (prepared, empty) database ``db_name`` on the env's
    db server, through a pipe, holding a dump/import slot of each db server (taken in name order)."""
    master = LocalTransport("localhost")
    with contextlib.ExitStack() as slots:
        for server in sorted({source.db.name: source.db, env.db.name: env.db}.items()):  # one order: no deadlock
            slots.enter_context(db_slot(server[1]))
        _pipe(
            lambda out: dump_database(master, source.db, source.site.db_name or "", out),
            lambda dump: import_database(master, env.db, db_name, dump),
        )


def copy_live(source: SiteEnv, env: SiteEnv, planned: dict[str, str]) -> dict[str, str]:
    """Fill a :func:`prepare`-d deploy straight from the live site — its database (:func:`copy_database`),
    its dir with a tar stream (all but the target's own credentials file and settings.php) — with no archive
    in between: one pass, as an admin would type it. migrate-site does this inside its maintenance window
    (the site is frozen; its pinned backup archive was written just before, and the old database and dir stay
    until the very end)."""
    new_path, db_name = planned["path"], planned["db_name"]
    copy_database(source, env, db_name)
    excludes = [f"--exclude=./{name}" for name in _OWN_FILES]
    with connected(source.web) as src, connected(env.web) as dst:
        _pipe(
            lambda out: src.run(["tar", "-C", source.site_path, *excludes, "-cf", "-", "."], stdout=out),
            lambda tar: dst.run(["tar", "-C", new_path, "-xpf", "-"], stdin=tar),
        )
        # the source's modes came along (and, on another web server, its groups may not exist there)
        site_files.set_permissions(dst, new_path, env.web.web_group)
    get_run_logger().info("%s copied into %s and database %s", source.site.name, new_path, db_name)
    return {"path": new_path, "db_name": db_name}


def recorded_by_a_site(db_server: str, db_name: str) -> str | None:
    """The site whose record names this database on this server, if any (destructive SQL is scoped to what
    no site record claims)."""
    valid, invalid = store().scan("site")
    for ctx in valid:
        if isinstance(ctx, SiteContext) and ctx.db_name == db_name and ctx.db_server == db_server:
            return ctx.name
    for bad in invalid:  # an invalid record still claims what it names
        if bad.data.get("db_name") == db_name and bad.data.get("db_server") == db_server:
            return bad.name
    return None


def discard(env: SiteEnv, path: str | None, db_name: str) -> None:
    """Undo of :func:`deploy`: the dir (when given) and the database and user — unless a site record names
    that database (then the deploy never created it: another site did)."""
    owner = recorded_by_a_site(env.db.name, db_name)
    if owner:
        get_run_logger().warning("database %s belongs to %s: kept", db_name, owner)
    else:
        env.databases().destroy(db_name, db_name)
    if path:
        with connected(env.web) as web:
            if web.exists(path):
                web.remove_tree(path)
