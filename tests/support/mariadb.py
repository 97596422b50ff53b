"""MariaDB for the tests: the machine's server on 127.0.0.1:3306 (root, empty password, as on the
development machines; or a private one on AEGIR_TEST_MARIADB_PORT, see scripts/test.sh), and a real admin
account with a password per session, so tests can prove that passwords never leak."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

# scripts/test.sh runs a second shard of the suite against a private MariaDB on another port
PORT = int(os.environ.get("AEGIR_TEST_MARIADB_PORT", "3306"))
MARIADB = {"db_service_type": "mysql", "db_host": "127.0.0.1", "db_port": PORT}


def connect(database: str | None = None, **options: Any) -> pymysql.connections.Connection:
    """root on the test MariaDB."""
    return pymysql.connect(host="127.0.0.1", port=PORT, user="root", password="", database=database, **options)


def root_connection() -> pymysql.connections.Connection:
    return connect(autocommit=True)


def databases() -> set[str]:
    with root_connection() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return {r[0] for r in cur.fetchall()}


def users(name: str) -> list[str]:
    with root_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (name,))
        return [r[0] for r in cur.fetchall()]


@pytest.fixture(scope="session")
def db_admin() -> Iterator[dict[str, Any]]:
    """A real MariaDB admin account (all privileges, grant option) with a random password."""
    user, password = f"aegir_adm_{secrets.token_hex(3)}", "S3cret-" + secrets.token_hex(8)
    root = root_connection()
    with root.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}' WITH GRANT OPTION")
    yield {**MARIADB, "db_user": user, "db_password": password}
    with root.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
    root.close()


def users_like(prefix: str) -> list[tuple[str, str]]:
    with root_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT User, Host FROM mysql.user WHERE User LIKE %s", (prefix + "%",))
        return list(cur.fetchall())
