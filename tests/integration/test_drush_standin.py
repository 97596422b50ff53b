"""The drush stand-in and the stand-in front controller (tests/fixtures/drupal) against the real MariaDB.

Each test gets a throw-away database and user, writes a minimal settings.php itself, and drops both at the
end. Outputs are compared with real drush 8.4.12 on Drupal 7 (shared/reference/drush8) and drush 12.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pymysql
import pytest

from aegir.drupal import phpserial
from tests.fixtures.drupal import make_platforms as mp

pytestmark = pytest.mark.integration

DRUSH = str(mp.DRUSH)
SAMPLE_KEYS = ["package", "project", "display_name", "name", "type", "status", "path", "version"]


# -- helpers ----------------------------------------------------------------------------------------------
def _root() -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


@dataclass
class SiteDb:
    name: str
    user: str
    password: str

    def query(self, sql: str, *params: object) -> list[tuple]:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=self.name)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def tables(self) -> set[str]:
        return {r[0] for r in self.query("SHOW TABLES")}


@pytest.fixture
def site_db() -> Iterator[SiteDb]:
    token = secrets.token_hex(4)
    db = SiteDb(f"standin_{token}", f"standin_{token}", "Pw-" + secrets.token_hex(8))
    with _root() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"CREATE USER '{db.user}'@'{host}' IDENTIFIED BY %s", (db.password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{db.name}`.* TO '{db.user}'@'{host}'")
    yield db
    with _root() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{db.name}`")
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"DROP USER IF EXISTS '{db.user}'@'{host}'")


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("standin")
    base.chmod(0o755)
    kinds = ("d7", "d7-newer", "d7-updatefail", "d7-broken", "d10", "d10-newer", "d11")
    return {kind: mp.build(kind, base / kind) for kind in kinds}


def write_settings(docroot: Path, site_dir: str, db: SiteDb, major: int, salt: str, port: int = 3306) -> Path:
    directory = docroot / "sites" / site_dir
    directory.mkdir(parents=True, exist_ok=True)
    spec = (
        f"array('driver' => 'mysql', 'database' => '{db.name}', 'username' => '{db.user}', "
        f"'password' => '{db.password}', 'host' => '127.0.0.1', 'port' => '{port}', 'prefix' => '')"
    )
    salt_line = f"$drupal_hash_salt = '{salt}';" if major == 7 else f"$settings['hash_salt'] = '{salt}';"
    path = directory / "settings.php"
    path.write_text(f"<?php\n$databases['default']['default'] = {spec};\n{salt_line}\n")
    return path


def map_site(docroot: Path, uri: str) -> None:
    """Map ``uri`` to ``sites/<uri>`` in sites/sites.php, as Aegir does for every site."""
    (docroot / "sites" / "sites.php").write_text(f"<?php\n$sites['{uri}'] = '{uri}';\n")


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (relative)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def drush(*args: str, executable: str = DRUSH, cwd: str | None = None, env: dict | None = None):
    return subprocess.run(
        [executable, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env, stdin=subprocess.DEVNULL
    )


def flat(text: str) -> str:
    """drush 8 wraps its log lines at 80 columns: join them again for matching."""
    return re.sub(r"\s*\[(ok|success|error|warning|notice|cancel)\]\s*", " ", text).replace("\n", " ")


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def hmac_b64(data: str, key: str) -> str:
    raw = hmac.new(key.encode(), data.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def php_server() -> Iterator:
    """``start(docroot) -> base URL``: PHP's built-in server on the docroot (stopped at teardown)."""
    procs: list[subprocess.Popen] = []

    def start(docroot: Path) -> int:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("db_")}
        proc = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{port}", "-t", str(docroot)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            time.sleep(0.05)
        raise RuntimeError("php -S did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def get(port: int, host: str, path: str, cookies: dict | None = None) -> httpx.Response:
    return httpx.get(
        f"http://127.0.0.1:{port}{path}", headers={"Host": host}, cookies=cookies, follow_redirects=False, timeout=10
    )


def title(response: httpx.Response) -> str:
    m = re.search(r"<title>([^<]*)</title>", response.text)
    return m.group(1) if m else ""


def install_d7(root: Path, site_db: SiteDb, uri: str = "example.test", *extra: str) -> subprocess.CompletedProcess:
    write_settings(root, uri, site_db, 7, "salt-" + uri)
    return ok(
        drush(
            "--nocolor",
            "-r",
            str(root),
            "-l",
            f"http://{uri}",
            "site-install",
            "standard",
            f"--account-mail=admin@{uri}",
            f"--site-mail=admin@{uri}",
            "--site-name=Example Test Site",
            *extra,
            "-y",
        )
    )


# -- Drupal 7 / drush 8 ------------------------------------------------------------------------------------
def test_d7_install_status_variables_login_and_pm_list(platforms: dict[str, Path], site_db: SiteDb) -> None:
    root = platforms["d7"]
    result = install_d7(root, site_db)
    assert result.stdout == (
        f"You are about to DROP all tables in your '{site_db.name}' database. Do you want to continue? (y/n): y\n"
    )
    log = flat(result.stderr)
    assert "Starting Drupal installation. This takes a while. Consider using the --notify global option." in log
    assert re.search(r"Installation complete\.  User name: admin  User password: \w{10}", log)
    assert re.search(r"^Installation complete\. .*\[ok\]$", result.stderr, re.MULTILINE)

    # the tables and rows of an installed Drupal 7
    assert {"system", "variable", "users", "sessions", "cache", "node", "field_data_body"} <= site_db.tables()
    schema = dict(site_db.query("SELECT name, schema_version FROM system WHERE type = 'module' AND status = 1"))
    assert schema["system"] == 7084 and schema["user"] == 7019 and schema["standard"] == 0 and schema["path"] == 0
    assert dict(site_db.query("SELECT name, schema_version FROM system WHERE status = 0"))["views"] == -1
    variables = dict(site_db.query("SELECT name, value FROM variable"))
    assert variables["site_name"] == b's:17:"Example Test Site";'
    assert variables["install_profile"] == b's:8:"standard";' and variables["maintenance_mode"] == b"i:0;"
    name, password_hash, mail, login = site_db.query("SELECT name, pass, mail, login FROM users WHERE uid = 1")[0]
    assert (name, mail, login) == ("admin", "admin@example.test", 0)
    assert password_hash.startswith("$S$D") and len(password_hash) == 55
    (body,) = site_db.query("SELECT body_value FROM field_data_body WHERE entity_id = 1")[0]
    assert '<img src="/sites/example.test/files/welcome.png"' in body
    assert (root / "sites/example.test/files/welcome.png").is_file()

    args = ["-r", str(root), "-l", "http://example.test"]
    status = json.loads(ok(drush(*args, "status", "--format=json")).stdout)
    assert status["drupal-version"] == "7.80" and status["drush-version"] == "8.4.12"
    assert status["db-status"] == "Connected" and status["bootstrap"] == "Successful"
    assert status["db-name"] == site_db.name and status["db-username"] == site_db.user
    assert status["root"] == str(root) and status["site"] == "sites/example.test"
    assert status["files"] == "sites/example.test/files" and status["install-profile"] == "standard"
    table = ok(drush("--nocolor", *args, "status")).stdout
    assert re.search(r"^ Drupal version {18}:  7\.80 +$", table, re.MULTILINE)
    assert re.search(r"^ Database {24}:  Connected +$", table, re.MULTILINE)
    fields = ok(drush(*args, "st", "--fields=drupal-version,db-name")).stdout.splitlines()
    assert [line.split(":", 1)[0].strip() for line in fields if line.strip()] == ["Drupal version", "Database name"]
    assert site_db.password not in table + json.dumps(status)

    result = ok(drush("--nocolor", *args, "vset", "maintenance_mode", "1"))
    assert result.stderr == "maintenance_mode was set to 1." + " " * 41 + "[success]\n"
    assert site_db.query("SELECT value FROM variable WHERE name = 'maintenance_mode'")[0][0] == b"i:1;"
    assert ok(drush(*args, "vget", "maintenance_mode")).stdout == "maintenance_mode: 1\n"
    assert ok(drush(*args, "vget", "site_name")).stdout == "site_name: 'Example Test Site'\n"
    ok(drush(*args, "vset", "maintenance_mode", "0"))
    assert "No matching variable found." in drush(*args, "vget", "no_such_variable").stderr
    assert ok(drush("--nocolor", *args, "cc", "all")).stderr.startswith("'all' cache was cleared.")

    # uli: the link Drupal 7's user_pass_rehash() would make
    url = ok(drush("-r", str(root), "-l", "http://example.test:8080", "uli", "--no-browser")).stdout.strip()
    m = re.fullmatch(r"http://example\.test:8080/user/reset/1/(\d+)/([A-Za-z0-9_-]+)/login", url)
    assert m, url
    assert abs(int(m.group(1)) - time.time()) < 30
    assert m.group(2) == hmac_b64(f"{m.group(1)}01", "salt-example.test" + password_hash)

    # pm-list: the shape of real drush 8's JSON
    enabled = json.loads(ok(drush(*args, "pm-list", "--type=module", "--status=enabled", "--format=json")).stdout)
    sample = json.loads(Path("/work/shared/reference/drush8/pm-list.enabled-modules.sample.json").read_text())
    assert all(list(record) == SAMPLE_KEYS == list(next(iter(sample.values()))) for record in enabled.values())
    assert enabled["text"] == {
        "package": "Core",
        "project": "",
        "display_name": "Text (text)",
        "name": "Text (text)",
        "type": "Module",
        "status": "Enabled",
        "path": "modules/field/modules/text",
        "version": "7.80",
    }
    assert "views" not in enabled and "system_test" not in enabled and "standard" not in enabled
    everything = json.loads(ok(drush(*args, "pml", "--format=json")).stdout)
    assert everything["views"]["status"] == "Not installed" and everything["views"]["version"] == "7.x-3.29"
    assert everything["views"]["project"] == "views" and everything["bartik"]["type"] == "Theme"
    assert "Package" in ok(drush(*args, "pml", "--type=theme")).stdout

    # sql-query: tab-separated rows without a header
    rows = ok(drush(*args, "sqlq", "SELECT name, schema_version FROM system WHERE name IN ('node','user')")).stdout
    assert rows == "node\t7016\nuser\t7019\n"


def test_d7_locale_profile_and_command_errors(platforms: dict[str, Path], site_db: SiteDb) -> None:
    root = platforms["d7"]
    install_d7(root, site_db, "de.example.test", "--locale=de")
    assert site_db.query("SELECT status FROM system WHERE name = 'locale'")[0][0] == 1
    assert (
        b's:8:"language";s:2:"de";' in site_db.query("SELECT value FROM variable WHERE name = 'language_default'")[0][0]
    )

    args = ["--nocolor", "-r", str(root), "-l", "http://de.example.test"]
    result = drush(*args, "si", "standard", "--locale=xx", "-y")
    assert result.returncode == 1 and "'xx' is not available" in flat(result.stderr)
    result = drush(*args, "si", "nope", "-y")
    assert result.returncode == 1 and "The profile nope does not exist." in result.stderr
    assert "locale" in {r[0] for r in site_db.query("SELECT name FROM system")}  # nothing was dropped
    result = drush(*args, "si", "--account-name", "admin", "standard", "-y")  # drush 8: no "--opt value"
    assert result.returncode == 1 and "The profile admin does not exist." in result.stderr
    result = drush(*args, "vset", "maintenance_mode", "1", "--input-format=integer")
    assert result.returncode == 1 and "Unknown option: --input-format." in flat(result.stderr)

    # drush 12 names are not drush 8's
    for command in (
        ["site:install", "standard"],
        ["state:set", "system.maintenance_mode", "1"],
        ["cr"],
        ["user:login"],
    ):
        result = drush(*args, *command)
        assert result.returncode == 1, command
        assert f"The drush command '{' '.join(command)}' could not be found." in flat(result.stderr)

    # --db-url and --sites-subdir (transcript §6): drush writes the missing settings.php itself
    db_url = f"mysql://{site_db.user}:{site_db.password}@127.0.0.1:3306/{site_db.name}"
    other = ["--nocolor", "-r", str(root), "-l", "http://other.example.test"]
    result = ok(drush(*other, "si", "minimal", f"--db-url={db_url}", "--sites-subdir=other.example.test", "-y"))
    assert result.stdout.startswith(
        "You are about to create a sites/other.example.test/settings.php file and DROP all tables in your "
    )
    settings = (root / "sites/other.example.test/settings.php").read_text()
    assert f"'database' => '{site_db.name}'" in settings and "$drupal_hash_salt = '" in settings
    status = json.loads(ok(drush(*other, "status", "--format=json")).stdout)
    assert status["install-profile"] == "minimal" and status["bootstrap"] == "Successful"

    # no Drupal root: like real drush
    result = drush("vget", "site_name", cwd="/")
    assert result.returncode == 1
    assert "Command variable-get needs a higher bootstrap level to run" in flat(result.stderr)


def test_d7_migration_runs_the_pending_updates(platforms: dict[str, Path], site_db: SiteDb) -> None:
    install_d7(platforms["d7"], site_db, "migrate.example.test")
    target = platforms["d7-newer"] / "sites" / "migrate.example.test"
    shutil.copytree(platforms["d7"] / "sites" / "migrate.example.test", target)
    args = ["--nocolor", "-r", str(platforms["d7-newer"]), "-l", "http://migrate.example.test"]

    pending = ok(drush(*args, "updatedb-status")).stdout
    assert pending.splitlines()[:4] == [
        " Module  Upda  Description                                                  ",
        "         te                                                                 ",
        "         ID                                                                 ",
        " System  7085  Remove FLoC-blocking variable.                               ",
    ]
    assert " User    7020  Add changed field to users table." in pending

    result = ok(drush(*args, "updb", "-y"))
    assert result.stdout.endswith("Do you wish to run all pending updates? (y/n): y\n")
    performed = re.findall(r"^Performed update: (\w+) +\[ok\]$", result.stderr, re.MULTILINE)
    assert performed == [f"system_update_{n}" for n in (7085, 7086, 7087, 7088)] + ["user_update_7020"]
    assert result.stderr.endswith(
        "'all' cache was cleared." + " " * 47 + "[success]\nFinished performing updates." + " " * 48 + "[ok]\n"
    )
    schema = dict(site_db.query("SELECT name, schema_version FROM system WHERE name IN ('system','user')"))
    assert schema == {"system": 7088, "user": 7020}
    # system_update_7087 enables the Announcements module, as on real 7.105
    assert site_db.query("SELECT status FROM system WHERE name = 'announcements_feed'")[0][0] == 1
    assert "No database updates required" in ok(drush(*args, "updbst")).stderr
    assert "No database updates required" in ok(drush(*args, "updb", "-y")).stderr
    status = json.loads(ok(drush(*args, "st", "--format=json")).stdout)
    assert status["drupal-version"] == "7.105" and status["bootstrap"] == "Successful"


def test_d7_failing_update_stops_its_module(platforms: dict[str, Path], site_db: SiteDb) -> None:
    install_d7(platforms["d7"], site_db, "fail.example.test")
    shutil.copytree(
        platforms["d7"] / "sites" / "fail.example.test", platforms["d7-updatefail"] / "sites" / "fail.example.test"
    )
    args = ["--nocolor", "-r", str(platforms["d7-updatefail"]), "-l", "http://fail.example.test"]
    result = drush(*args, "updatedb", "-y")
    assert result.returncode == 1
    log = flat(result.stderr)
    assert "Performed update: system_update_7085" in log
    assert "Failed: DrupalUpdateException: Update 7086 failed: sessions table locked in system_update_7086()" in log
    assert "system_update_7087" not in log and "Finished performing updates." not in log
    schema = dict(site_db.query("SELECT name, schema_version FROM system WHERE name IN ('system','user')"))
    assert schema == {"system": 7085, "user": 7020}


def test_d7_broken_profile_fails_half_way(platforms: dict[str, Path], site_db: SiteDb) -> None:
    root = platforms["d7-broken"]
    write_settings(root, "broken.example.test", site_db, 7, "salt")
    args = ["--nocolor", "-r", str(root), "-l", "http://broken.example.test"]
    result = drush(*args, "site-install", "broken", "--site-name=Broken", "-y")
    assert result.returncode == 1
    assert "WD php: Exception: broken profile: install failed half-way in broken_install()" in flat(result.stderr)
    assert "Installation complete" not in result.stderr
    # Drupal 7's exception handler prints the plain message on stdout; drush's shutdown reports the rest
    assert "Exception: broken profile: install failed half-way in broken_install() (line" in result.stdout
    assert flat(result.stderr.splitlines()[-1]).strip() == (
        "Drush command terminated abnormally due to an unrecoverable error."
    )
    assert {"system", "variable", "users"} <= site_db.tables()  # some tables were created
    assert site_db.query("SELECT value FROM variable WHERE name = 'install_task'")[0][0] != b's:4:"done";'
    status = json.loads(ok(drush(*args, "status", "--format=json")).stdout)
    assert status["db-status"] == "Connected" and "bootstrap" not in status
    result = drush(*args, "vget", "site_name")
    assert result.returncode == 1 and "Drush was not able to start (bootstrap) the Drupal database." in result.stderr


def test_d7_sql_dump_keeps_the_password_off_argv(platforms: dict[str, Path], site_db: SiteDb, tmp_path: Path) -> None:
    root = platforms["d7"]
    install_d7(root, site_db, "dump.example.test")
    # a mysqldump that records its command line and the option file it is handed, then runs the real one
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = shutil.which("mysqldump")
    recorder = bin_dir / "mysqldump"
    recorder.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\nexec {real} "$@"\n')
    recorder.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    dump = tmp_path / "dump.sql"
    args = ["--nocolor", "-r", str(root), "-l", "http://dump.example.test"]
    result = ok(drush(*args, "sql-dump", f"--result-file={dump}", env=env))
    assert flat(result.stderr).strip() == f"Database dump saved to {dump}"
    text = dump.read_text()
    assert "CREATE TABLE `system`" in text and "Example Test Site" in text
    argv = (tmp_path / "argv").read_text()
    assert argv.startswith("--defaults-extra-file=/dev/fd/3 ") and site_db.name in argv
    assert site_db.password not in argv and site_db.password not in result.stdout + result.stderr

    gz = ok(drush(*args, "sql-dump", "--gzip", f"--result-file={tmp_path}/z.sql", env=env))
    assert "z.sql.gz" in gz.stderr and (tmp_path / "z.sql.gz").stat().st_size > 500
    assert b"CREATE TABLE" in subprocess.run(["zcat", str(tmp_path / "z.sql.gz")], capture_output=True).stdout


def test_d7_make_copies_and_clones(platforms: dict[str, Path], tmp_path: Path) -> None:
    makefile = mp.write_makefile(tmp_path / "platform.make", platforms["d7"])
    result = ok(drush("--nocolor", "make", str(makefile), str(tmp_path / "built")))
    assert "drupal-7.80 downloaded." in result.stderr
    assert (tmp_path / "built/includes/bootstrap.inc").read_text() == (
        platforms["d7"] / "includes/bootstrap.inc"
    ).read_text()
    again = drush("--nocolor", "make", str(makefile), str(tmp_path / "built"))
    assert again.returncode == 1 and "exists" in again.stderr

    repo = tmp_path / "repo"
    shutil.copytree(platforms["d7-newer"], repo, ignore=shutil.ignore_patterns("sites"))
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.test", "-c", "user.name=t"]
    for step in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "core"], ["tag", "7.105"]):
        subprocess.run([*git, *step], check=True, capture_output=True)
    git_make = tmp_path / "git.make"
    git_make.write_text(
        "core = 7.x\napi = 2\nprojects[drupal][type] = core\nprojects[drupal][download][type] = git\n"
        f"projects[drupal][download][url] = {repo}\nprojects[drupal][download][tag] = 7.105\n"
    )
    ok(drush("make", "--working-copy", str(git_make), str(tmp_path / "wc")))
    assert (tmp_path / "wc/.git").is_dir() and "'7.105'" in (tmp_path / "wc/includes/bootstrap.inc").read_text()
    ok(drush("make", str(git_make), str(tmp_path / "plain")))
    assert not (tmp_path / "plain/.git").exists() and (tmp_path / "plain/index.php").is_file()
    bad = tmp_path / "bad.make"
    bad.write_text("core = 7.x\napi = 2\nprojects[] = drupal\n")
    assert drush("make", str(bad), str(tmp_path / "nowhere")).returncode == 1
    assert not (tmp_path / "nowhere").exists()


def test_d7_front_controller(platforms: dict[str, Path], site_db: SiteDb, php_server) -> None:
    root = platforms["d7"]
    install_d7(root, site_db, "web.example.test")
    port = php_server(root)
    host = f"web.example.test:{port}"

    front = get(port, host, "/")
    assert front.status_code == 200 and title(front) == "Welcome to Example Test Site | Example Test Site"
    assert re.search(r"<h1[^>]*>.*Example Test Site.*</h1>", front.text)
    assert get(port, host, "/sites/web.example.test/files/welcome.png").status_code == 200
    assert get(port, host, "/no/such/page").status_code == 404
    assert get(port, host, "/user/1").status_code == 403

    args = ["-r", str(root), "-l", f"http://{host}"]
    ok(drush(*args, "vset", "maintenance_mode", "1"))
    down = get(port, host, "/")
    assert down.status_code == 503 and title(down) == "Site under maintenance | Example Test Site"
    ok(drush(*args, "vset", "maintenance_mode", "0"))
    assert get(port, host, "/").status_code == 200

    url = ok(drush(*args, "uli", "--no-browser")).stdout.strip()
    path = url.split(host, 1)[1]
    login = get(port, host, path)
    assert login.status_code == 302
    assert re.fullmatch(rf"http://{re.escape(host)}/user/1/edit\?pass-reset-token=[\w-]+", login.headers["location"])
    cookie = login.headers["set-cookie"]
    name = "SESS" + hashlib.md5(b"web.example.test").hexdigest()
    assert re.match(rf"{name}=[\w-]+; path=/; HttpOnly", cookie)
    sid = cookie.split(";")[0].split("=", 1)[1]
    account = get(port, host, "/user/1", cookies={name: sid})
    assert account.status_code == 200 and title(account) == "admin | Example Test Site"
    assert site_db.query("SELECT login FROM users WHERE uid = 1")[0][0] > 0
    assert site_db.query("SELECT uid FROM sessions WHERE sid = %s", sid) == [(1,)]
    used = get(port, host, path)
    assert used.status_code == 403
    assert "You have tried to use a one-time login link that has either been used or is no longer valid." in used.text

    # a site whose database is unreachable, and a host without settings
    write_settings(root, "offline.example.test", site_db, 7, "salt", port=free_port())
    offline = get(port, f"offline.example.test:{port}", "/")
    assert offline.status_code == 503 and "Site off-line" in offline.text and "database" in offline.text
    assert get(port, f"unknown-host.invalid:{port}", "/").status_code == 500


# -- Drupal 10 / drush 12 -----------------------------------------------------------------------------------
def test_d10_basics_with_drush12_names(platforms: dict[str, Path], site_db: SiteDb, php_server) -> None:
    root = platforms["d10"]
    vendor_drush = str(root / "vendor/bin/drush")
    write_settings(root / "web", "d10.example.test", site_db, 10, "salt-d10")
    map_site(root / "web", "d10.example.test")
    args = ["-r", str(root), "-l", "http://d10.example.test"]
    result = ok(
        drush(
            *args,
            "site:install",
            "standard",
            "--account-mail=a@d10.example.test",
            "--site-name=Ten",
            "--sites-subdir=d10.example.test",
            "-y",
            executable=vendor_drush,
        )
    )
    assert result.stdout.startswith(f" You are about to:\n * DROP all tables in your '{site_db.name}' database.\n")
    assert " // Do you want to continue?: yes." in result.stdout
    assert " [notice] Starting Drupal installation. This takes a while." in result.stderr
    assert re.search(
        r"^ \[success\] Installation complete\.  User name: admin  User password: \w+$", result.stderr, re.MULTILINE
    )
    assert {"key_value", "config", "users", "users_field_data", "sessions", "node_field_data", "node__body"} <= (
        site_db.tables()
    )
    schema = dict(site_db.query("SELECT name, value FROM key_value WHERE collection = 'system.schema'"))
    # ModuleInstaller: max(8000, the highest hook_update_N, hook_update_last_removed()): block has only the latter
    assert schema["system"] == b"i:10201;" and schema["block"] == b"i:8003;" and schema["standard"] == b"i:8000;"
    assert schema["path_alias"] == b"i:8000;"  # hidden and required: installed on every site
    # every post-update of what was installed, and every removed one, registered as run: nothing pending
    existing = site_db.query(
        "SELECT value FROM key_value WHERE collection = 'post_update' AND name = 'existing_updates'"
    )
    ran = phpserial.loads(existing[0][0])
    assert "block_post_update_make_weight_integer" in ran and "block_post_update_disabled_region_update" in ran
    assert "path_alias_post_update_update_path_alias_revision_indexes" in ran
    assert "block_post_update_set_menu_block_depth_to_null_if_zero" not in ran  # 10.3's: not in this code
    extension = site_db.query("SELECT data FROM config WHERE name = 'core.extension'")[0][0]
    assert b's:7:"profile";s:8:"standard";' in extension and b's:7:"olivero";' in extension

    status = json.loads(ok(drush(*args, "status", "--format=json", executable=vendor_drush)).stdout)
    assert status["drupal-version"] == "10.2.3" and status["bootstrap"] == "Successful"
    assert status["root"] == str(root / "web") and status["drush-version"].startswith("12.")
    assert status["db-name"] == site_db.name and "db-password" not in status

    # the docroot works as --root too (drush 12 accepts both)
    docroot_args = ["-r", str(root / "web"), "-l", "d10.example.test"]
    assert ok(drush(*docroot_args, "cget", "system.site", "name")).stdout == "'system.site:name': Ten\n"
    result = ok(drush(*docroot_args, "state:set", "system.maintenance_mode", "1", "--input-format=integer"))
    assert result.stdout == result.stderr == ""
    assert ok(drush(*docroot_args, "sget", "system.maintenance_mode")).stdout == "1\n"
    assert ok(drush(*docroot_args, "cache:rebuild")).stderr == " [success] Cache rebuild complete.\n"

    port = php_server(root / "web")
    host = f"d10.example.test:{port}"
    down = get(port, host, "/")
    assert down.status_code == 503 and title(down) == "Site under maintenance | Ten"
    ok(drush(*docroot_args, "sset", "system.maintenance_mode", "0", "--input-format=integer"))
    front = get(port, host, "/")
    assert front.status_code == 200 and title(front) == "Welcome to Ten | Ten"

    url = ok(drush("-r", str(root), "-l", f"http://{host}", "user:login", "--no-browser")).stdout.strip()
    m = re.fullmatch(rf"http://{re.escape(host)}/user/reset/1/(\d+)/([\w-]+)/login", url)
    assert m, url
    password_hash = site_db.query("SELECT pass FROM users_field_data WHERE uid = 1")[0][0]
    assert m.group(2) == hmac_b64(f"{m.group(1)}01a@d10.example.test", "salt-d10" + password_hash)
    login = get(port, host, url.split(host, 1)[1])
    assert login.status_code == 302
    name = "SESS" + hashlib.md5(b"d10.example.test").hexdigest()
    sid = login.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert get(port, host, "/user/1", cookies={name: sid}).status_code == 200
    assert get(port, host, url.split(host, 1)[1]).status_code == 403

    modules = json.loads(ok(drush(*args, "pm:list", "--type=module", "--status=enabled", "--format=json")).stdout)
    assert modules["node"] == {
        "package": "Core",
        "project": "",
        "display_name": "Node (node)",
        "name": "node",
        "type": "module",
        "path": "core/modules/node",
        "status": "Enabled",
        "version": "10.2.3",
    }
    assert "ctools" not in modules
    everything = json.loads(ok(drush(*args, "pml", "--format=json")).stdout)
    assert everything["ctools"]["status"] == "Disabled" and everything["ctools"]["version"] == "4.0.4"

    # drush 8 names are not drush 12's
    for command in (["vset", "maintenance_mode", "1"], ["variable-get", "site_name"], ["make", "x.make", "y"]):
        result = drush(*args, *command)
        assert result.returncode == 1 and f'Command "{command[0]}" is not defined.' in result.stderr
    result = drush(*args, "cc", "all")
    assert result.returncode == 1 and "`cache-clear all` is deprecated" in result.stderr

    assert ok(drush(*args, "updatedb:status")).stderr == " [success] No database updates required.\n"

    # migrate to 10.3.1: updatedb runs the two new system updates, then the new post-updates (sorted by name)
    shutil.copytree(root / "web/sites/d10.example.test", platforms["d10-newer"] / "web/sites/d10.example.test")
    map_site(platforms["d10-newer"] / "web", "d10.example.test")  # without it Drupal 10 would use sites/default
    newer = ["-r", str(platforms["d10-newer"]), "-l", "http://d10.example.test"]
    pending = ok(drush(*newer, "updatedb:status")).stdout
    assert "10300 - Add the {router}.alias index." in pending
    assert re.search(r"block +set_menu_block_depth_to_null_if_zero +post-update +Updates menu blocks", pending)
    result = ok(drush(*newer, "updatedb", "-y"))
    assert " [notice] Update started: system_update_10300" in result.stderr
    started = re.findall(r"Update started: (\w+)", result.stderr)
    assert started == [
        "system_update_10300",
        "system_update_10301",
        "block_post_update_set_menu_block_depth_to_null_if_zero",
        "node_post_update_set_node_type_description_and_help_to_null",
    ]
    assert result.stderr.endswith(" [success] Finished performing updates.\n")
    schema = dict(site_db.query("SELECT name, value FROM key_value WHERE collection = 'system.schema'"))
    assert schema["system"] == b"i:10301;" and schema["block"] == b"i:8003;"
    existing = site_db.query(
        "SELECT value FROM key_value WHERE collection = 'post_update' AND name = 'existing_updates'"
    )
    assert "node_post_update_set_node_type_description_and_help_to_null" in phpserial.loads(existing[0][0])
    assert ok(drush(*newer, "updb", "-y")).stderr == " [success] No pending updates.\n"

    # Drupal 11 removed the updates up to 10201 of system: a site still at 10101 is too old to update
    conn = pymysql.connect(
        host="127.0.0.1", port=3306, user="root", password="", database=site_db.name, autocommit=True
    )
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE key_value SET value = 'i:10101;' WHERE collection = 'system.schema' AND name = 'system'")
    shutil.copytree(root / "web/sites/d10.example.test", platforms["d11"] / "web/sites/d10.example.test")
    shutil.copy(root / "web/sites/sites.php", platforms["d11"] / "web/sites/sites.php")  # Drupal 8+ finds it so
    eleven = ["-r", str(platforms["d11"]), "-l", "http://d10.example.test"]
    refused = drush(*eleven, "updatedb", "-y")
    assert refused.returncode == 1
    assert (
        "The installed version of the system module is too old to update. Update to an intermediate version first "
        "(last removed version: 10201, installed version: 10101)." in refused.stderr
    )
    schema = dict(site_db.query("SELECT name, value FROM key_value WHERE collection = 'system.schema'"))
    assert schema["system"] == b"i:10101;"  # nothing ran


# -- which site directory: Drupal's lookup, and drush's own idea of it ------------------------------------------
D10_NO_DB = (
    "Error: Call to a member function getInstallTasks() on null in "
    "Drush\\Commands\\core\\SiteInstallCommands->validate()"
)


def test_d10_without_sites_php_every_host_is_sites_default(tmp_path: Path, site_db: SiteDb, php_server) -> None:
    """DrupalKernel::findSitePath(): no sites/sites.php, no multi-site — sites/<uri> is never looked at."""
    root = mp.build("d10", tmp_path / "d10")
    docroot = root / "web"
    assert not (docroot / "sites" / "sites.php").exists() and (docroot / "sites" / "example.sites.php").is_file()
    write_settings(docroot, "ten.example.test", site_db, 10, "salt")
    before = tree(root)
    args = ["-r", str(root), "-l", "http://ten.example.test:8088", "site:install", "standard", "-y"]
    result = drush(*args, "--sites-subdir=ten.example.test", executable=str(root / "vendor/bin/drush"))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == ' [warning] Undefined array key "" SiteInstallCommands.php:300'
    assert lines[1].startswith(" [error]  " + D10_NO_DB + " (line 300 of ")
    assert len(lines) > 15 and lines[-1].endswith(" {main}")  # the real message, then a long stack trace
    assert all(re.match(r"#\d+ ", line) for line in lines[2:])
    assert tree(root) == before and site_db.tables() == set()  # validate failed: nothing written, nothing dropped
    status = json.loads(ok(drush("-r", str(root), "-l", "http://ten.example.test", "status", "--format=json")).stdout)
    assert status["site"] == "sites/default" and "db-name" not in status

    # the front controller answers every host from sites/default; with a sites.php it finds the site's dir
    port = php_server(docroot)
    offline = get(port, f"ten.example.test:{port}", "/")
    assert offline.status_code == 500 and "No sites/default/settings.php" in offline.text
    map_site(docroot, "ten.example.test")
    assert get(port, f"ten.example.test:{port}", "/").headers.get("location", "").endswith("/core/install.php")
    (docroot / "sites" / "sites.php").write_text("<?php\n")  # an empty map: the directories are scanned
    assert get(port, f"ten.example.test:{port}", "/").status_code == 302


def test_d10_site_install_needs_sites_subdir_to_leave_sites_default_alone(tmp_path: Path, site_db: SiteDb) -> None:
    """drush 12/13's getSitesSubdirFromUri() strips the whole of "http://host" (sic): without --sites-subdir
    the pre-command hook takes sites/default and copies default.settings.php there."""
    root = mp.build("d10", tmp_path / "d10")
    docroot = root / "web"
    write_settings(docroot, "ten.example.test", site_db, 10, "salt")
    map_site(docroot, "ten.example.test")
    vendor = str(root / "vendor/bin/drush")
    args = ["-r", str(root), "-l", "http://ten.example.test", "site:install", "standard", "-y"]
    before = tree(root)
    result = ok(drush(*args, executable=vendor))
    assert " * Create a sites/default/settings.php file\n" in result.stdout
    stray = docroot / "sites" / "default" / "settings.php"
    assert stray.read_bytes() == (docroot / "sites" / "default" / "default.settings.php").read_bytes()
    assert tree(root) - before == {"web/sites/default/settings.php"} | _public_files(docroot, "ten.example.test", root)
    assert "$settings['hash_salt'] = 'salt';" in (docroot / "sites/ten.example.test/settings.php").read_text()
    stray.unlink()

    result = ok(drush(*args, "--sites-subdir=ten.example.test", executable=vendor))
    assert "Create a" not in result.stdout and not stray.exists()
    status = json.loads(ok(drush("-r", str(root), "-l", "http://ten.example.test:8088", "st", "--format=json")).stdout)
    assert status["site"] == "sites/ten.example.test" and status["bootstrap"] == "Successful"


def test_d10_site_install_into_a_new_subdir_writes_sites_php(tmp_path: Path, site_db: SiteDb) -> None:
    """Without a sites.php, drush 12/13 copies example.sites.php to sites/sites.php for a site of its own dir."""
    root = mp.build("d10", tmp_path / "d10")
    db_url = f"mysql://{site_db.user}:{site_db.password}@127.0.0.1:3306/{site_db.name}"
    args = ["-r", str(root), "-l", "http://new.example.test", "si", "minimal", f"--db-url={db_url}", "-y"]
    result = ok(drush(*args, "--sites-subdir=new.example.test", executable=str(root / "vendor/bin/drush")))
    assert " * Create a sites/new.example.test/settings.php file\n * Create a sites/sites.php file\n" in result.stdout
    sites_php = root / "web" / "sites" / "sites.php"
    assert sites_php.read_bytes() == (root / "web" / "sites" / "example.sites.php").read_bytes()
    assert f"'database' => '{site_db.name}'" in (root / "web/sites/new.example.test/settings.php").read_text()
    assert not (root / "web" / "sites" / "default" / "settings.php").exists()


def test_d7_site_install_with_a_port_copies_default_settings_php(tmp_path: Path, site_db: SiteDb) -> None:
    """drush 8's drush_sitealias_local_site_path(): "seven.example.test:8088" becomes the directory name
    "seven.example.test.8088", which does not exist, so site-install's own dir is sites/default; Drupal 7's
    conf_path() still finds sites/seven.example.test (no sites.php needed) and installs there."""
    root = mp.build("d7", tmp_path / "d7")
    write_settings(root, "seven.example.test", site_db, 7, "salt")
    before = tree(root)
    args = ["--nocolor", "-r", str(root), "site-install", "standard", "-y"]
    result = ok(drush("-l", "http://seven.example.test:8088", *args))
    assert result.stdout.startswith("You are about to create a sites/default/settings.php file and DROP all tables")
    stray = root / "sites" / "default" / "settings.php"
    assert stray.read_bytes() == (root / "sites" / "default" / "default.settings.php").read_bytes()
    assert tree(root) - before == {"sites/default/settings.php"} | _public_files(root, "seven.example.test", root)
    status = json.loads(
        ok(drush("-r", str(root), "-l", "http://seven.example.test:8088", "st", "--format=json")).stdout
    )
    assert status["site"] == "sites/seven.example.test" and status["bootstrap"] == "Successful"
    stray.unlink()

    for uri, extra in (
        ("http://seven.example.test", ()),
        ("http://seven.example.test:8088", ("--sites-subdir=seven.example.test",)),
    ):
        result = ok(drush("-l", uri, *args, *extra))
        assert result.stdout.startswith("You are about to DROP all tables") and not stray.exists(), uri
    # a sites.php key with drush's own form of the port also leads drush there
    (root / "sites" / "sites.php").write_text("<?php\n$sites['seven.example.test.8088'] = 'seven.example.test';\n")
    ok(drush("-l", "http://seven.example.test:8088", *args))
    assert not stray.exists()


def _public_files(docroot: Path, uri: str, root: Path) -> set[str]:
    """What the installer writes under the site's own dir (public files)."""
    site = docroot / "sites" / uri
    return {str(p.relative_to(root)) for p in site.rglob("*")} - {str((site / "settings.php").relative_to(root))}


def test_d10_broken_profile_fails_half_way_with_drupals_backtrace(tmp_path: Path, site_db: SiteDb) -> None:
    root = mp.build("d10-broken", tmp_path / "d10")
    write_settings(root / "web", "broken.example.test", site_db, 10, "salt")
    map_site(root / "web", "broken.example.test")
    args = ["-r", str(root), "-l", "http://broken.example.test", "si", "broken", "--sites-subdir=broken.example.test"]
    result = drush(*args, "-y", executable=str(root / "vendor/bin/drush"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith(" [error]")]
    assert errors == [
        " [error]  RuntimeException: broken profile: install failed half-way in broken_install() (line 18 of "
        f"{root}/web/core/profiles/broken/broken.install) #0 {root}/web/core/lib/Drupal/Core/Extension/"
        "ModuleHandler.php(388): broken_install()"
    ]
    trace = result.stderr.split(" [error]  ", 1)[1].splitlines()[1:]
    assert len(trace) > 20 and trace[-1].endswith(" {main}") and all(re.match(r"#\d+ ", line) for line in trace)
    assert "Installation complete" not in result.stderr and "config" in site_db.tables()


# -- what real Drupal does that hid broken sites: the page cache, the hash salt, a large login answer --------
def test_d10_page_cache_answers_while_a_missing_hash_salt_fails_every_other_page(
    platforms: dict[str, Path], site_db: SiteDb, php_server
) -> None:
    root = platforms["d10"]
    settings = write_settings(root / "web", "cache.example.test", site_db, 10, "salt-cache")
    args = ["-r", str(root), "-l", "http://cache.example.test"]
    ok(drush(*args, "site:install", "standard", "--site-name=Cached", "-y", executable=str(root / "vendor/bin/drush")))
    port = php_server(root / "web")
    host = f"cache.example.test:{port}"

    first = get(port, host, "/")
    assert first.status_code == 200 and first.headers["x-drupal-cache"] == "MISS"
    again = get(port, host, "/")
    assert again.status_code == 200 and again.headers["x-drupal-cache"] == "HIT" and again.text == first.text
    login = get(port, host, "/user/login")
    assert login.status_code == 200 and title(login) == "Log in | Cached"

    # the salt gone (as when the web server cannot read it): the cached page still answers, nothing else does
    settings.write_text(settings.read_text().replace("$settings['hash_salt'] = 'salt-cache';", ""))
    for path in ("/", "/user/login"):  # both were cached by the visits above
        assert get(port, host, path).headers["x-drupal-cache"] == "HIT", path
    for path in ("/?uncached=1", "/user/login?probe=1", "/no/such/page"):
        broken = get(port, host, path)
        assert broken.status_code == 500 and "Missing $settings['hash_salt'] in settings.php." in broken.text, path
    # a session skips the page cache: a logged-in visitor gets the error as well
    session = {"SESS" + hashlib.md5(b"cache.example.test").hexdigest(): "x"}
    assert get(port, host, "/", cookies=session).status_code == 500
    # a cache rebuild empties the page cache too
    ok(drush(*args, "cr"))
    assert get(port, host, "/").status_code == 500


def test_d7_page_cache_is_the_cache_variable_and_a_login_answer_has_more_than_8k_of_headers(
    platforms: dict[str, Path], site_db: SiteDb, php_server
) -> None:
    root = platforms["d7"]
    install_d7(root, site_db, "big.example.test")
    port = php_server(root)
    host = f"big.example.test:{port}"
    args = ["-r", str(root), "-l", f"http://{host}"]
    assert "x-drupal-cache" not in get(port, host, "/").headers  # off after an install, as in Drupal 7
    ok(drush(*args, "vset", "cache", "1"))
    assert get(port, host, "/").headers["x-drupal-cache"] == "MISS"
    assert get(port, host, "/").headers["x-drupal-cache"] == "HIT"

    url = ok(drush(*args, "uli", "--no-browser")).stdout.strip()
    login = get(port, host, url.split(host, 1)[1])
    assert login.status_code == 302
    size = sum(len(k) + len(v) + 4 for k, v in login.headers.multi_items())
    assert size > 8192 and max(len(k) + len(v) + 4 for k, v in login.headers.multi_items()) < 8000
    assert len(login.headers.get_list("set-cookie")) > 40
    assert login.headers["set-cookie"].startswith("SESS" + hashlib.md5(b"big.example.test").hexdigest())

    # a salt the web server sees differently from drush (here: none) makes every login link invalid
    settings = root / "sites" / "big.example.test" / "settings.php"
    url = ok(drush(*args, "uli", "--no-browser")).stdout.strip()
    settings.write_text(settings.read_text().replace("$drupal_hash_salt = 'salt-big.example.test';", ""))
    rejected = get(port, host, url.split(host, 1)[1])
    assert rejected.status_code == 403 and "has either been used or is no longer valid" in rejected.text
