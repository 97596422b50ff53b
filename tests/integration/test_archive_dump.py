"""Dumps, imports and backup archives against the real MariaDB (and the test sshd for a remote site).

A background thread samples every process's /proc/*/cmdline and /proc/*/environ as fast as it can while
dumps and imports run: the admin password must never show up there (DESIGN §10.2).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pymysql
import pytest

from aegir.archive import ArchiveError, archive_name, create_archive, extract_archive, verify_archive
from aegir.contexts import ServerContext
from aegir.services.dump import DumpError, dump_database, import_database
from aegir.transport import LocalTransport
from tests.support.mariadb import root_connection

pytestmark = pytest.mark.integration

# quotes, a backslash, a hash, a space and a tab: the option file must carry them all
PASSWORD = "Pw#1 'q\"\\x\t" + secrets.token_hex(6)


class SecretWatch:
    """Scans /proc/*/cmdline and /proc/*/environ in a loop; remembers any process showing the secret."""

    def __init__(self, secret: str) -> None:
        self.needle = secret.encode()
        self.hits: list[str] = []
        self.passes = 0
        self.commands_seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for what in ("cmdline", "environ"):
                    try:
                        with open(f"/proc/{pid}/{what}", "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    if what == "cmdline" and data:
                        self.commands_seen.add(os.path.basename(data.split(b"\0", 1)[0]).decode(errors="replace"))
                    if self.needle in data:
                        self.hits.append(f"{pid} {what}: {data[:200]!r}")
            self.passes += 1

    def __enter__(self) -> SecretWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def admin() -> Iterator[ServerContext]:
    """A MariaDB admin account whose password needs escaping in an option file."""
    user = f"aegir_arc_{secrets.token_hex(3)}"
    with root_connection() as conn, conn.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY %s", (PASSWORD,))
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}' WITH GRANT OPTION")
    try:
        yield ServerContext(
            name="@server_master", db_service_type="mysql", db_host="127.0.0.1", db_user=user, db_password=PASSWORD
        )
    finally:
        with root_connection() as conn, conn.cursor() as cur:
            for host in ("127.0.0.1", "localhost"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")


def _db(name: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1", user="root", password="", database=name, autocommit=True, charset="utf8mb4"
    )


@contextlib.contextmanager
def database(name: str) -> Iterator[str]:
    with _db() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield name
    finally:
        with _db() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="module")
def source_db() -> Iterator[str]:
    """~2.5 MB of rows: multibyte text with quotes and newlines, binary blobs with NUL bytes, plus a view, a
    trigger and a procedure defined by the site's own user (whom a restore replaces by a new one)."""
    rnd = random.Random(7)
    name = f"aegir_arc_{secrets.token_hex(4)}"
    site_user = f"{name}_u"
    with database(name), _db(name) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{site_user}'@'localhost' IDENTIFIED BY %s", (secrets.token_hex(8),))
        cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{site_user}'@'localhost'")
        try:
            cur.execute(
                "CREATE TABLE node (nid INT PRIMARY KEY AUTO_INCREMENT, title VARCHAR(255) NOT NULL, body LONGTEXT)"
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )
            cur.execute("CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB")
            cur.execute(
                "CREATE TABLE cache (cid VARCHAR(255) PRIMARY KEY, data MEDIUMBLOB, expire INT NOT NULL)"
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )
            words = ["drupal", "Ægir", "naïve", "日本語", "emoji 🚀", "it's", 'say "hi"', "back\\slash", "line\nbreak"]
            rows = [(f"Title {i} {rnd.choice(words)}", " ".join(rnd.choices(words, k=120))) for i in range(1500)]
            cur.executemany("INSERT INTO node (title, body) VALUES (%s, %s)", rows)
            cur.executemany(
                "INSERT INTO blobs (id, data) VALUES (%s, %s)",
                [(i, rnd.randbytes(40_000) + bytes(2000)) for i in range(20)],
            )
            cur.executemany(
                "INSERT INTO cache (cid, data, expire) VALUES (%s, %s, %s)",
                [(f"cid:{i}", rnd.randbytes(500), i) for i in range(600)],
            )
            definer = f"DEFINER=`{site_user}`@`localhost`"
            cur.execute(f"CREATE {definer} VIEW node_titles AS SELECT nid, title FROM node")
            cur.execute(
                f"CREATE {definer} TRIGGER node_trim BEFORE INSERT ON node FOR EACH ROW SET NEW.title = TRIM(NEW.title)"
            )
            cur.execute(f"CREATE {definer} PROCEDURE node_count() SELECT COUNT(*) FROM node")
            yield name
        finally:
            cur.execute(f"DROP USER IF EXISTS '{site_user}'@'localhost'")


def definers(name: str) -> set[str]:
    with _db() as conn, conn.cursor() as cur:
        found = set()
        for sql in (
            "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s",
            "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
            "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
        ):
            cur.execute(sql, (name,))
            found.update(r[0].split("@")[0] for r in cur.fetchall())
        return found


def checksums(name: str) -> dict[str, tuple[int, int]]:
    with _db(name) as conn, conn.cursor() as cur:
        out = {}
        for table in ("node", "blobs", "cache"):
            cur.execute(f"CHECKSUM TABLE `{table}`")
            checksum = cur.fetchone()[1]
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            out[table] = (checksum, cur.fetchone()[0])
        return out


@pytest.fixture
def site_dir(tmp_path) -> Path:
    s = tmp_path / "platform" / "sites" / "example.com"
    (s / "files" / "styles").mkdir(parents=True)
    (s / "private" / "temp").mkdir(parents=True)
    (s / "settings.php").write_text("<?php\n$databases = [];\n")
    (s / "settings.php").chmod(0o440)
    for i in range(30):
        (s / "files" / "styles" / f"img{i}.jpg").write_bytes(os.urandom(10_000 + i))
    (s / "files" / "latest.jpg").symlink_to("styles/img1.jpg")
    (s / "private" / "temp" / "upload.tmp").write_text("temporary")
    return s


def manifest() -> dict:
    return {"site": "@example.com", "uri": "example.com", "platform": "@platform_x", "reason": "test"}


def import_from_pipe(server: ServerContext, db_name: str) -> tuple[io.BufferedWriter, threading.Thread, list]:
    """A writable stream whose bytes are imported into ``db_name`` while they arrive."""
    r, w = os.pipe()
    reader, writer = os.fdopen(r, "rb"), os.fdopen(w, "wb")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            import_database(LocalTransport(), server, db_name, reader)
        except BaseException as e:
            errors.append(e)
        finally:
            reader.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return writer, t, errors


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_dump_archive_import_round_trip(tmp_path, admin, source_db, site_dir, compression):
    local = LocalTransport()
    backups = tmp_path / "backups"
    path = backups / archive_name("example.com", datetime.now(UTC), compression)
    target_db = source_db + "_r"
    with SecretWatch(PASSWORD) as watch, database(target_db):
        info = create_archive(
            path=str(path),
            site_transport=local,
            site_path=str(site_dir),
            dump=lambda out: dump_database(local, admin, source_db, out),
            manifest={**manifest(), "db_name": source_db},
            compression=compression,
        )
        assert info.manifest["dump_bytes"] > 2_000_000
        assert verify_archive(str(path), expected_sha256=info.sha256)["db_name"] == source_db

        writer, importer, errors = import_from_pipe(admin, target_db)
        restored = tmp_path / "restored" / "example.com"
        try:
            extract_archive(str(path), site_transport=local, site_path=str(restored), dump_out=writer)
        finally:
            writer.close()
            importer.join()
        assert not errors, errors
        assert checksums(target_db) == checksums(source_db)
        # DEFINERs were stripped: the importing admin defines the view, trigger and procedure, so they keep
        # working when the old site user is dropped
        assert definers(source_db) == {source_db + "_u"}
        assert definers(target_db) == {admin.db_user}
        with _db(target_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM node_titles")
            assert cur.fetchone()[0] == 1500
            cur.execute("INSERT INTO node (title, body) VALUES ('  padded  ', 'x')")
            cur.execute("SELECT title FROM node WHERE body = 'x'")
            assert cur.fetchone()[0] == "padded"
            cur.execute("CALL node_count()")
            assert cur.fetchone()[0] == 1501
    assert watch.passes > 3 and {"mysqldump", "mysql"} & watch.commands_seen, (watch.passes, watch.commands_seen)
    assert watch.hits == []
    assert (restored / "settings.php").read_text() == (site_dir / "settings.php").read_text()
    assert os.readlink(restored / "files" / "latest.jpg") == "styles/img1.jpg"
    assert os.listdir(restored / "private" / "temp") == []
    assert sorted(os.listdir(backups)) == sorted([path.name, path.name + ".json"])


def test_dump_of_a_missing_database_makes_no_archive(tmp_path, admin, site_dir):
    local = LocalTransport()
    missing = f"aegir_missing_{secrets.token_hex(3)}"
    with pytest.raises(DumpError) as e:
        dump_database(local, admin, missing, io.BytesIO())
    assert missing in str(e.value) and "Unknown database" in str(e.value)
    assert PASSWORD not in str(e.value)

    backups = tmp_path / "backups"
    for compression in ("gzip", "zstd"):
        with SecretWatch(PASSWORD) as watch, pytest.raises(ArchiveError) as e:
            create_archive(
                path=str(backups / archive_name("example.com", datetime.now(UTC), compression)),
                site_transport=local,
                site_path=str(site_dir),
                dump=lambda out: dump_database(local, admin, missing, out),
                manifest=manifest(),
                compression=compression,
            )
        assert missing in str(e.value) and "dump failed" in str(e.value)
        assert PASSWORD not in str(e.value)
        assert watch.hits == []
        assert os.listdir(backups) == []


def test_wrong_password_is_a_clear_failure(admin, source_db):
    wrong = admin.model_copy(update={"db_password": admin.db_password.__class__("not-" + PASSWORD)})
    with pytest.raises(DumpError) as e:
        dump_database(LocalTransport(), wrong, source_db, io.BytesIO())
    assert "Access denied" in str(e.value) and "not-" + PASSWORD not in str(e.value)


def test_import_failure_is_reported(admin):
    with database(f"aegir_arc_{secrets.token_hex(4)}") as target, pytest.raises(DumpError) as e:
        import_database(LocalTransport(), admin, target, io.BytesIO(b"CREATE TABLE t (x INT);\nTHIS IS NOT SQL;\n"))
    assert "import into database" in str(e.value) and "syntax" in str(e.value)
    assert PASSWORD not in str(e.value)


def test_remote_site_through_ssh(tmp_path, admin, source_db, site_dir, ssh_transport):
    """The site directory is read (and restored) through SSH; dump and archive stay on the master."""
    local = LocalTransport()
    path = tmp_path / "backups" / archive_name("example.com", datetime.now(UTC), "gzip")
    with SecretWatch(PASSWORD) as watch:
        info = create_archive(
            path=str(path),
            site_transport=ssh_transport,
            site_path=str(site_dir),
            dump=lambda out: dump_database(local, admin, source_db, out),
            manifest=manifest(),
        )
    assert watch.hits == []
    assert info.manifest["files_count"] == 31  # settings.php + 30 images; private/temp left out
    assert verify_archive(str(path), expected_sha256=info.sha256) == info.manifest

    restored = tmp_path / "remote-restore" / "example.com"
    target_db = source_db + "_s"
    with database(target_db):
        writer, importer, errors = import_from_pipe(admin, target_db)
        try:
            extract_archive(str(path), site_transport=ssh_transport, site_path=str(restored), dump_out=writer)
        finally:
            writer.close()
            importer.join()
        assert not errors, errors
        assert checksums(target_db) == checksums(source_db)
    for f in ["settings.php", *(f"files/styles/img{i}.jpg" for i in range(30))]:
        assert (restored / f).read_bytes() == (site_dir / f).read_bytes()
    assert (restored / "settings.php").stat().st_mode & 0o777 == 0o440
    assert os.readlink(restored / "files" / "latest.jpg") == "styles/img1.jpg"
    assert not (restored / "database.sql").exists()
