"""Shared setup for the platform and site integration tests: a verified server on a private web server
with the real MariaDB, sample platforms from tests/fixtures/drupal, and cleanup of every database made."""

from __future__ import annotations

import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegir import registry
from aegir.contexts import SiteContext
from tests.fixtures.drupal import make_platforms
from tests.integration.helpers import unique
from tests.support import mariadb
from tests.support.mariadb import root_connection
from tests.support.webservers import WebServer, make_tmpdir

DRUSH = str(Path(make_platforms.__file__).with_name("drush"))


@dataclass
class Hosting:
    """One verified server (a private web server + the real MariaDB) and the platforms made on it."""

    store: Any
    web: WebServer
    server: str
    platforms_dir: Path
    sites: list[str] = field(default_factory=list)

    def platform(self, kind: str, **props: Any) -> str:
        """A sample platform of ``kind`` saved (not verified) on this server."""
        name = unique(f"@platform_{kind.replace('-', '')}_")
        root = props.pop("root", None) or str(make_platforms.build(kind, self.platforms_dir / name[1:]))
        registry.save(self.store, name, "platform", {"root": root, "web_server": self.server, **props})
        return name

    def verified_platform(self, kind: str, **props: Any) -> str:
        from flows.verify_platform import verify_platform

        name = self.platform(kind, **props)
        state = verify_platform(platform=name, return_state=True)
        assert state.is_completed(), state.message
        return name

    def site(self, platform: str, **props: Any) -> str:
        uri = unique("s") + ".example.test"
        registry.save(self.store, "@" + uri, "site", {"platform": platform, "db_server": self.server, **props})
        self.sites.append("@" + uri)
        return "@" + uri

    def load_site(self, name: str) -> SiteContext:
        return registry.load_site(self.store, name)

    def cleanup(self) -> None:
        """Drop the databases and users every site of this module ended up with (or left behind)."""
        with root_connection() as conn, conn.cursor() as cur:
            for name in self.sites:
                prefix = name[1:].replace(".", "").replace("-", "")[:13]
                cur.execute(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s", (prefix + "%",)
                )
                for (db,) in cur.fetchall():
                    cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
                cur.execute("SELECT User, Host FROM mysql.user WHERE User LIKE %s", (prefix + "%",))
                for user, host in cur.fetchall():
                    cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")


def make_hosting(
    store: Any, web: WebServer, db_admin: dict[str, Any], prefix: str = "@server_sites"
) -> Iterator[Hosting]:
    from flows.verify_server import verify_server

    name = unique(prefix)
    registry.save(store, name, "server", {**web.server_fields(), **db_admin, "drush_path": DRUSH})
    state = verify_server(server=name, return_state=True)
    assert state.is_completed(), state.message
    hosting = Hosting(store, web, name, make_tmpdir("aegir-test-platforms-"))
    try:
        yield hosting
    finally:
        hosting.cleanup()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def site_database_exists(name: str) -> bool:
    with root_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return cur.fetchone() is not None


def query_site(db: str, sql: str) -> list[tuple]:
    conn = mariadb.connect(db)
    with conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def enable_d7_module(db: str, module: str, schema_version: int) -> None:
    """What `drush en` leaves in a Drupal 7 database for an extra module: status 1 and its schema version."""
    conn = mariadb.connect(db, autocommit=True)
    try:
        with conn.cursor() as cur:
            changed = cur.execute(
                "UPDATE system SET status = 1, schema_version = %s WHERE name = %s AND type = 'module'",
                (schema_version, module),
            )
            assert changed == 1, f"{module} is not in {db}.system"
    finally:
        conn.close()


def replace_code(root: str | Path, kind: str) -> None:
    """The platform's code replaced in place by that of another sample ``kind`` of the same layout — as an
    admin updating (or rolling back) a platform's core — with its site directories left as they are."""
    root = Path(root)
    fresh = make_platforms.build(kind, root.with_name(root.name + ".code"))
    try:
        shutil.copytree(fresh, root, dirs_exist_ok=True)
    finally:
        shutil.rmtree(fresh)


def schemas(db: str, major: int) -> dict[str, int]:
    """The installed schema version of each enabled module (``system`` table / ``key_value`` system.schema)."""
    from aegir.drupal import phpserial

    if major == 7:
        rows = query_site(db, "SELECT name, schema_version FROM system WHERE type = 'module' AND status = 1")
        return {str(n): int(v) for n, v in rows}
    rows = query_site(db, "SELECT name, value FROM key_value WHERE collection = 'system.schema'")
    return {str(n): int(phpserial.loads(v)) for n, v in rows}


def post_updates_run(db: str) -> set[str]:
    from aegir.drupal import phpserial

    rows = query_site(db, "SELECT value FROM key_value WHERE collection = 'post_update' AND name = 'existing_updates'")
    return set(phpserial.loads(rows[0][0])) if rows else set()


def updatedb_status(hosting: Hosting, name: str) -> str:
    """What ``drush updatedb-status`` says on the site (its own drush, as the product runs it)."""
    site = hosting.load_site(name)
    platform = registry.load_platform(hosting.store, site.platform)
    vendor = Path(platform.root, "vendor/bin/drush")
    drush = str(vendor) if vendor.exists() else DRUSH
    done = subprocess.run(
        [drush, "-r", platform.root, "-l", f"http://{site.uri}", "updbst"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr
