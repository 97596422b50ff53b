"""A real multi-host-style Prefect setup for integration tests: a private PostgreSQL cluster, a ``prefect
server`` on it, and ``prefect`` CLI subprocesses (work pool, deploy, worker, serve) against it.

The PostgreSQL cluster is this test session's own (``initdb`` in a temp dir, trust auth, 127.0.0.1 on a free
port, run as the ``postgres`` user as initdb refuses root), so the test needs only the PostgreSQL binaries
(Debian's ``postgresql`` package, installed by scripts/setup.sh) and never touches the system cluster or its
auth config. Everything is stopped and removed afterwards; processes are stopped by their own pid only.

The server requires Prefect's basic auth (PREFECT_SERVER_API_AUTH_STRING in its environment, as in production);
its clients — workers, ``aegir serve``, ``prefect`` CLI calls — find the API URL and the credential the way the
README tells a remote worker to: a 0600 profile in their own PREFECT_HOME, nothing in their environment. The
test's own calls authenticate through ``tests.support.api`` (the credential registered for the server's URL).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import api
from tests.support.prefect_api import write_profile

VENV_BIN = str(Path(sys.executable).parent)
PREFECT = str(Path(VENV_BIN, "prefect"))
REPO_ROOT = Path(__file__).resolve().parents[2]
PG_USER = "postgres"
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(tool: str) -> str:
    """The newest installed PostgreSQL's ``tool`` (Debian keeps them in /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return found[-1]
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {tool} is not installed (scripts/setup.sh installs package postgresql)")
    return path


def _as_postgres(*argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["runuser", "-u", PG_USER, "--", *argv], capture_output=True, text=True, timeout=timeout, cwd="/"
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database (random name) on a private PostgreSQL cluster; yields its asyncpg connection URL."""
    tmp = Path(tempfile.mkdtemp(prefix="aegir-test-pg-"))
    shutil.chown(tmp, PG_USER, PG_USER)
    data, port = tmp / "data", free_port()
    _as_postgres(_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER, "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    try:
        _as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-l", str(tmp / "postgres.log"), "-o", options, "-w", "start")
        name = "aegir_test_" + uuid.uuid4().hex[:10]
        _as_postgres(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, name)
        yield f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{port}/{name}"
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Background:
    """A long-running CLI process (server, worker, serve) in its own session, with its output in a file."""

    name: str
    proc: subprocess.Popen
    log: Path

    def output(self, limit: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM to its process group, then SIGKILL if it has not ended in time (a worker whose server is gone
        can ignore the first SIGTERM)."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)


# A process started from a non-interactive shell's background job inherits SIGINT ignored, and so would the
# worker; but Prefect's worker stops on SIGTERM by sending itself SIGINT. Reset it, then exec the command.
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def start_background(name: str, argv: list[str], env: dict[str, str], cwd: Path, logs: Path) -> Background:
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _DEFAULT_SIGINT, *argv],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Background(name, proc, log)


@dataclass
class PrefectServer:
    """``prefect server`` on PostgreSQL; ``env`` is what the CLI, workers and served runs use to reach it (their
    PREFECT_HOME, ``home``, holds the profile with the URL and the credential, ``auth``)."""

    url: str
    home: Path
    tmp: Path
    env: dict[str, str] = field(repr=False)
    process: Background = field(repr=False)
    auth: str = field(repr=False)

    def prefect(self, *args: str, cwd: Path = REPO_ROOT, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PREFECT, *args], env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def start(self, name: str, *argv: str, cwd: Path | None = None, **env: str) -> Background:
        """A long-running process (``prefect worker start …``, ``aegir serve``) against this server."""
        return start_background(name, list(argv), {**self.env, **env}, cwd or self.tmp, self.tmp)

    def healthy(self) -> bool:
        """The server answers its health probe (unauthenticated by design) and an API route with the credential."""
        try:
            return (
                httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
                and api.get(f"{self.url}/admin/version", timeout=2.0).status_code == 200
            )
        except httpx.HTTPError:
            return False


def client_env(home: Path) -> dict[str, str]:
    """The environment of CLI subprocesses, workers and their flow runs: this server only, through the profile in
    ``home`` (no PREFECT_* of the test session, e.g. the harness's API), the venv first on PATH, quick polling,
    wide tables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PATH": os.pathsep.join([VENV_BIN, env.get("PATH", "/usr/bin:/bin")]),
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "AEGIR_TASK_RETRY_DELAYS": os.environ.get("AEGIR_TASK_RETRY_DELAYS", "0,0"),
            "COLUMNS": "250",
        }
    )
    return env


@contextlib.contextmanager
def prefect_server(database_url: str) -> Iterator[PrefectServer]:
    """``prefect server start`` on ``database_url`` with its own PREFECT_HOME, on a free port of 127.0.0.1,
    requiring a fresh credential; its clients' PREFECT_HOME (another one, as on another host) has the profile."""
    tmp = Path(tempfile.mkdtemp(prefix="aegir-test-prefect-"))
    home, server_home = tmp / "home", tmp / "server-home"
    home.mkdir(mode=0o700)
    server_home.mkdir(mode=0o700)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    auth = "admin:" + secrets.token_urlsafe(32)
    write_profile(home, url, auth)
    api.register(url, auth)
    env = client_env(home)
    server_env = {
        **client_env(server_home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url,
        "PREFECT_SERVER_API_AUTH_STRING": auth,
    }
    process = start_background(
        "server",
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        server_env,
        tmp,
        tmp,
    )
    server = PrefectServer(url=url, home=home, tmp=tmp, env=env, process=process, auth=auth)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.healthy():
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start:\n{process.output()}")
            time.sleep(0.2)
        yield server
    finally:
        process.stop()
        shutil.rmtree(tmp, ignore_errors=True)
