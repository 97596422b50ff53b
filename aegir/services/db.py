"""The db service (MySQL / MariaDB) administered with pymysql from the master.

Identifiers are always quoted; errors name user, host and port but never a password.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from aegir.contexts import ServerContext
from aegir.errors import AegirError
from aegir.transport.base import Transport

_IDENT_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_PASSWORD_ALPHABET = string.ascii_letters + string.digits
# client-side errors meaning "could not reach the server": worth retrying
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}


class DbError(AegirError):
    transient = False


class DbConnectionError(DbError):
    transient = True


def quote_ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise DbError(f"refusing unsafe database identifier {name!r}")
    return f"`{name}`"


def quote_host(host: str) -> str:
    if not re.match(r"^[A-Za-z0-9.%:_-]{1,255}$", host):
        raise DbError(f"refusing unsafe host {host!r}")
    return f"'{host}'"


def random_password(length: int = 24) -> str:
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


class MysqlService:
    """Admin operations on one db server, with its admin credentials."""

    def __init__(self, server: ServerContext) -> None:
        if server.db_service_type != "mysql":
            raise DbError(f"{server.name} has no mysql db service")
        self.server = server
        self.host = server.db_address
        self.port = server.db_port
        self.user = server.db_user or ""
        self._password = server.db_password.get_secret_value() if server.db_password else ""

    @property
    def where(self) -> str:
        return f"user {self.user!r} at {self.host}:{self.port}"

    def _sanitise(self, text: str) -> str:
        return text.replace(self._password, "********") if self._password else text

    @contextmanager
    def connect(self, database: str | None = None) -> Iterator[pymysql.connections.Connection]:
        try:
            conn = pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self._password,
                database=database,
                connect_timeout=10,
                autocommit=True,
                charset="utf8mb4",
            )
        except pymysql.err.OperationalError as e:
            code = e.args[0] if e.args else 0
            if code in _UNREACHABLE:
                raise DbConnectionError(
                    f"cannot reach the database server of {self.server.name} at {self.host}:{self.port}"
                ) from None
            if code == 1045:
                raise DbError(
                    f"the database server of {self.server.name} refused {self.where} (access denied): "
                    "check db_user / db_password"
                ) from None
            raise DbError(f"cannot connect as {self.where}: {self._sanitise(str(e.args[-1]))}") from None
        try:
            yield conn
        finally:
            conn.close()

    def execute(self, conn: pymysql.connections.Connection, sql: str, args: Any = None) -> list[tuple]:
        if args is not None and not isinstance(args, tuple | list | dict):
            args = (args,)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.err.MySQLError as e:
            statement = sql.split(" IDENTIFIED ")[0]
            raise DbError(
                f"{statement[:120]!s} failed on {self.host}:{self.port}: {self._sanitise(str(e.args[-1]))}"
            ) from None

    def version(self) -> str:
        with self.connect() as conn:
            return str(self.execute(conn, "SELECT VERSION()")[0][0])

    def seen_as(self, conn: pymysql.connections.Connection) -> str:
        """The host this server sees our connection coming from (the host part of USER())."""
        return str(self.execute(conn, "SELECT USER()")[0][0]).rpartition("@")[2]

    def seen_from(self, transport: Transport) -> str:
        """The host this server sees a connection from ``transport``'s machine as (a remote web server), found
        as Aegir's grant_host does: a login that must fail, run there, and the host in the refusal."""
        argv = ["mysql", "--no-defaults", "-u", PROBE_USER, "-h", self.server.db_address,
                "-P", str(self.server.db_port), "-e", "SELECT VERSION()"]  # fmt: skip
        result = transport.run(argv, check=False, timeout=30)
        output = (result.stderr + result.stdout).decode(errors="replace")
        return parse_seen_host(output, result.exit_code, self.server.name, transport.host)

    def database_exists(self, conn: pymysql.connections.Connection, name: str) -> bool:
        rows = self.execute(conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", name)
        return bool(rows)

    def verify(self) -> dict[str, Any]:
        """Prove the admin credentials can create a database and grant/revoke a user; clean up after."""
        token = secrets.token_hex(4)
        db, user = f"aegir_verify_{token}", f"aegir_verify_{token}"
        with self.connect() as conn:
            version = str(self.execute(conn, "SELECT VERSION()")[0][0])
            host = self.seen_as(conn)
            try:
                self.execute(conn, f"CREATE DATABASE {quote_ident(db)}")
                if not self.database_exists(conn, db):
                    raise DbError(f"CREATE DATABASE {db} reported success but the database does not exist")
                self.execute(
                    conn,
                    f"CREATE USER {quote_ident(user)}@{quote_host(host)} IDENTIFIED BY %s",
                    random_password(),
                )
                self.execute(
                    conn,
                    f"GRANT ALL PRIVILEGES ON {quote_ident(db)}.* TO {quote_ident(user)}@{quote_host(host)}",
                )
                self.execute(
                    conn,
                    f"REVOKE ALL PRIVILEGES ON {quote_ident(db)}.* FROM {quote_ident(user)}@{quote_host(host)}",
                )
            finally:
                self.execute(conn, f"DROP USER IF EXISTS {quote_ident(user)}@{quote_host(host)}")
                self.execute(conn, f"DROP DATABASE IF EXISTS {quote_ident(db)}")
        return {
            "db_version": version,
            "db_can_create_database": True,
            "db_can_grant": True,
            "db_seen_as": host,
        }


# ---------------------------------------------------------------------------------------------------------
# site databases (aegir-backend.md §2.6): name from the uri, a user per site, grants, scoped destroy
# ---------------------------------------------------------------------------------------------------------
DB_NAME_LENGTH = 16  # Aegir's limit (MySQL < 5.7 user names); the user is named like the database


def _db_name_source(uri: str) -> str:
    """Aegir's rule: the uri without a leading ``www.``, dots and dashes removed."""
    return re.sub(r"[^a-z0-9_]", "", uri.lower().removeprefix("www.")) or "site"


def db_name_base(uri: str) -> str:
    """The first choice of a site's database name: its source, first 16 characters."""
    return _db_name_source(uri)[:DB_NAME_LENGTH]


def db_name_candidates(uri: str) -> Iterator[str]:
    """``examplecom``, then ``examplecom_0`` … ``examplecom_99`` (shortened to stay within 16)."""
    base = _db_name_source(uri)
    yield db_name_base(uri)
    for i in range(100):
        suffix = f"_{i}"
        yield base[: DB_NAME_LENGTH - len(suffix)] + suffix


class SiteDatabases:
    """Create and destroy per-site databases and users on one db server (admin connection)."""

    def __init__(self, service: MysqlService) -> None:
        self.service = service

    def user_hosts(self, conn: pymysql.connections.Connection, user: str) -> list[str]:
        rows = self.service.execute(conn, "SELECT Host FROM mysql.user WHERE User = %s", user)
        return sorted(str(r[0]) for r in rows)

    def free_name(self, conn: pymysql.connections.Connection, uri: str) -> str:
        """The first candidate that is neither a database nor a user on this server."""
        for name in db_name_candidates(uri):
            if not self.service.database_exists(conn, name) and not self.user_hosts(conn, name):
                return name
        raise DbError(f"no free database name for {uri} on {self.service.server.name} (tried 101 names)")

    def grant_hosts(self, conn: pymysql.connections.Connection, extra: Iterable[str] = ()) -> list[str]:
        """Hosts the site user may connect from: '%' when the server grants all hosts, else the host the
        db server sees us as, 127.0.0.1 and localhost, plus ``extra`` (e.g. a remote web server as seen)."""
        if self.service.server.db_grant_all_hosts:
            return ["%"]
        hosts = [self.service.seen_as(conn), "127.0.0.1", "localhost", *extra]
        return list(dict.fromkeys(h for h in hosts if h))

    def create(self, name: str, user: str, password: str, hosts: Iterable[str]) -> None:
        """CREATE DATABASE, then the user at each host with ALL PRIVILEGES on exactly that database.
        Refuses when the database or the user already exists (never adopts someone else's)."""
        db, who = quote_ident(name), quote_ident(user)
        with self.service.connect() as conn:
            if self.service.database_exists(conn, name):
                raise DbError(f"database {name} already exists on {self.service.server.name}: not reusing it")
            if self.user_hosts(conn, user):
                raise DbError(f"database user {user} already exists on {self.service.server.name}: not reusing it")
            self.service.execute(conn, f"CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            for host in hosts:
                self.service.execute(conn, f"CREATE USER {who}@{quote_host(host)} IDENTIFIED BY %s", password)
                self.service.execute(conn, f"GRANT ALL PRIVILEGES ON {db}.* TO {who}@{quote_host(host)}")

    def destroy(self, name: str | None, user: str | None) -> list[str]:
        """Drop exactly this database and this user (every host it has). Missing parts are fine.
        Returns what was removed, for the log."""
        removed: list[str] = []
        with self.service.connect() as conn:
            if name and self.service.database_exists(conn, name):
                self.service.execute(conn, f"DROP DATABASE {quote_ident(name)}")
                removed.append(f"database {name}")
            if user:
                for host in self.user_hosts(conn, user):
                    self.service.execute(conn, f"DROP USER {quote_ident(user)}@{quote_host(host)}")
                    removed.append(f"user {user}@{host}")
        return removed


PROBE_USER = "intntnllyInvalid"
_SEEN = (
    re.compile(rf"Access denied for user '{PROBE_USER}'@'([^']+)'"),
    re.compile(r"Host '([^']+)' is not allowed to connect"),
)


def parse_seen_host(output: str, exit_code: int, server: str, source: str) -> str:
    """The host in a refused probe login (see :meth:`MysqlService.seen_from`); a probe that could not connect,
    or whose login did NOT fail, is an error naming both ends."""
    for pattern in _SEEN:
        match = pattern.search(output)
        if match:
            return match.group(1)
    last = output.strip().splitlines()[-1] if output.strip() else f"exit code {exit_code}"
    if exit_code == 0:
        raise DbError(
            f"a login to {server} as a user that does not exist succeeded from {source}: anonymous logins are "
            "allowed there; remove them (DELETE FROM mysql.user WHERE User = '') before hosting sites on it"
        )
    raise DbError(f"{server} cannot be reached from {source}: {last}")
