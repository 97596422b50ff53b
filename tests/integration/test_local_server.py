"""`aegir server start|status|stop`: the one-machine setup's local Prefect server, as the README uses it —
authenticated (Prefect's basic auth, a credential made once), its PREFECT_HOME private whatever the umask or
location, the CLI authenticating through the profile alone."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import AEGIR, aegir
from tests.support import api

pytestmark = pytest.mark.integration

PREFECT = str(Path(sys.executable).with_name("prefect"))

# What an older `aegir server start` left running: an API that answers without a credential.
UNAUTHENTICATED_API = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Open(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'"3.8.8"')

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Open).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_umask(env: dict[str, str], umask: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``aegir ARGS`` under this umask (a shell sets it, then execs the command)."""
    argv = ["sh", "-c", f'umask {umask}; exec "$0" "$@"', AEGIR, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)


def not_private(home: Path) -> list[str]:
    """Every entry under ``home`` (itself included) with a permission bit for group or others."""
    found = []
    for path in [home, *home.rglob("*")]:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
            found.append(f"{stat.S_IMODE(st.st_mode):04o} {path}")
    return found


def acl_supported(directory: Path) -> bool:
    try:
        return bool(os.getxattr(directory, "system.posix_acl_default"))
    except OSError:
        return False


def test_start_status_stop_with_a_fresh_prefect_home(tmp_path):
    # PREFECT_HOME outside any home directory, in a world-readable directory, left 0755 with a 0644 profiles
    # file by an older install: start makes it private whatever the location and the umask
    parent = Path(tempfile.mkdtemp(prefix="aegir-prefect-home-"))
    parent.chmod(0o755)
    home = parent / "prefect"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "AEGIR_ROOT": str(tmp_path / "aegir")})
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    outputs: list[subprocess.CompletedProcess[str]] = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        outputs.append(aegir(env, *args))
        return outputs[-1]

    # nothing configured yet: a clear hint, exit 4
    status = run("server", "status")
    assert status.returncode == 4 and "aegir server start" in status.stdout
    listing = run("list")
    assert listing.returncode == 4 and "aegir server start" in listing.stderr
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    (home / "profiles.toml").write_text('active = "ephemeral"\n\n[profiles.ephemeral]\n')
    (home / "profiles.toml").chmod(0o644)

    # an older install's server, answering without authentication, whose pid file is ours: refused, with the way
    # out; `aegir server stop` stops it
    older = subprocess.Popen(
        [sys.executable, "-c", UNAUTHENTICATED_API, str(port)], start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while older.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/admin/version", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        (home / "aegir-server.pid").write_text(str(older.pid))
        refused = run("server", "start", "--port", str(port))
        assert refused.returncode == 1 and "WITHOUT authentication" in refused.stderr, refused.stderr
        assert "aegir server stop" in refused.stderr, refused.stderr
        stopped_older = run("server", "stop")
        assert stopped_older.returncode == 0 and f"pid {older.pid}" in stopped_older.stdout
        older.wait(timeout=10)
    finally:
        if older.poll() is None:
            older.kill()
            older.wait()

    try:
        started = with_umask(env, "000", "server", "start", "--port", str(port))
        outputs.append(started)
        assert started.returncode == 0, started.stderr + started.stdout
        assert f"127.0.0.1:{port}" in started.stdout
        credential_file = home / "aegir-api-auth"
        assert str(credential_file) in started.stdout and "admin:<password>" in started.stdout, started.stdout
        credential = credential_file.read_text().strip()
        assert re.fullmatch(r"admin:[A-Za-z0-9_-]{43}", credential), "not a credential made by aegir"
        assert stat.S_IMODE(credential_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert not_private(home) == []

        # the profile holds the URL and the credential
        profiles_file = home / "profiles.toml"
        assert stat.S_IMODE(profiles_file.stat().st_mode) == 0o600
        profiles = tomllib.loads(profiles_file.read_text())
        active = profiles["profiles"][profiles.get("active", "ephemeral")]
        assert active["PREFECT_API_URL"] == url
        assert active["PREFECT_API_AUTH_STRING"] == credential

        # the server has the credential in its environment (readable by its owner only), never in its argv
        pid = int((home / "aegir-server.pid").read_text())
        assert credential not in Path(f"/proc/{pid}/cmdline").read_text()
        environ = Path(f"/proc/{pid}/environ")
        assert f"PREFECT_SERVER_API_AUTH_STRING={credential}" in environ.read_bytes().decode().split("\0")
        assert stat.S_IMODE(environ.stat().st_mode) & 0o077 == 0

        # without the credential: 401 from the API, the health probe answers; the UI asks for a login
        unauthenticated = httpx.post(f"{url}/block_documents/filter", json={}, timeout=10)
        assert unauthenticated.status_code == 401, unauthenticated.text
        assert httpx.get(f"{url}/admin/version", timeout=10).status_code == 401
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        wrong = httpx.post(f"{url}/block_documents/filter", json={}, auth=("admin", "guess"), timeout=10)
        assert wrong.status_code == 401
        ui_settings = httpx.get(f"http://127.0.0.1:{port}/ui-settings", timeout=10)
        assert ui_settings.status_code == 200 and ui_settings.json()["auth"] == "BASIC", ui_settings.text
        api.register(url, credential)
        assert api.post(f"{url}/block_documents/filter", json={}, timeout=10).status_code == 200

        status = run("server", "status")
        assert status.returncode == 0 and "authenticated" in status.stdout, status.stdout
        # a wrong credential in the environment wins over the profile, and status says so
        rejected = aegir({**env, "PREFECT_API_AUTH_STRING": "admin:guess"}, "server", "status")
        assert rejected.returncode == 4 and "credential rejected" in rejected.stdout, rejected.stdout

        # the CLI and `prefect` authenticate through the profile alone (no credential in their environment)
        assert not any(k.startswith("PREFECT_") and k != "PREFECT_HOME" for k in env)
        # the block types are registered, so the UI can create contexts before any was saved
        types = subprocess.run([PREFECT, "block", "type", "ls"], env=env, capture_output=True, text=True, timeout=120)
        outputs.append(types)
        assert "aegir-server" in types.stdout and "aegir-site" in types.stdout, types.stdout + types.stderr
        saved = run("save", "@server_local", "--context_type=server")
        assert saved.returncode == 0, saved.stderr
        assert "@server_local" in run("list").stdout
        # a task under umask 000 too: what its flow run writes into PREFECT_HOME (results, memo) is private
        verified = with_umask(env, "000", "verify", "@server_local")
        outputs.append(verified)
        assert verified.returncode == 0, verified.stderr[-3000:]
        blocks = subprocess.run(
            [PREFECT, "block", "ls"], env={**env, "COLUMNS": "250"}, capture_output=True, text=True, timeout=120
        )
        outputs.append(blocks)
        assert blocks.returncode == 0 and "server-local" in blocks.stdout, blocks.stdout + blocks.stderr
        assert not_private(home) == [], sorted(str(p.relative_to(home)) for p in home.rglob("*"))
        # whatever a later Prefect client writes there under any umask is private too (a default ACL; where the
        # file system has none, only what `aegir server start` finds is made private)
        if acl_supported(home):
            writer = 'umask 000; mkdir -p "$PREFECT_HOME/storage/x" && echo r > "$PREFECT_HOME/storage/x/result"'
            subprocess.run(["sh", "-c", writer], env=env, check=True)
            assert not_private(home) == []

        # starting again is harmless
        again = run("server", "start", "--port", str(port))
        assert again.returncode == 0 and "already running" in again.stdout
        # a restart reuses the credential: the profile and every client keep working
        assert run("server", "stop").returncode == 0
        restarted = run("server", "start", "--port", str(port))
        assert restarted.returncode == 0, restarted.stderr + restarted.stdout
        assert credential_file.read_text().strip() == credential
        assert tomllib.loads(profiles_file.read_text())["profiles"][profiles.get("active", "ephemeral")] == active
        assert "@server_local" in run("list").stdout
        assert not_private(home) == []
    finally:
        stopped = run("server", "stop")
        after = run("server", "status")
        log = (home / "aegir-server.log").read_text(errors="replace") if (home / "aegir-server.log").exists() else ""
        shutil.rmtree(parent, ignore_errors=True)
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout
    assert after.returncode == 4 and "not answering" in after.stdout, after.stdout
    # the credential never appears in anything printed or logged
    assert "Uvicorn running" in log or "prefect" in log.lower(), log[-2000:]
    assert credential not in log
    leaked = [" ".join(o.args) for o in outputs if credential in o.stdout + o.stderr]
    assert leaked == [], leaked
