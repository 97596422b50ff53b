"""``aegir server start|stop|status``: a local Prefect server (SQLite) on 127.0.0.1 for one-machine setups.

The server runs detached with its log and pid file in $PREFECT_HOME; ``start`` also sets PREFECT_API_URL in
the active Prefect profile, so ``prefect block ls`` and the UI see the same contexts as ``aegir``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aegir.errors import AegirError
from blocks.store import configured_api_url, prefect_home

STARTUP_TIMEOUT = 90.0


def _pid_file() -> Path:
    return prefect_home() / "aegir-server.pid"


def _log_file() -> Path:
    return prefect_home() / "aegir-server.log"


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _prefect_exe() -> str:
    candidate = Path(sys.executable).with_name("prefect")
    return str(candidate) if candidate.exists() else "prefect"


def _running_pid() -> int | None:
    try:
        pid = int(_pid_file().read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(port: int = 4200) -> str:
    api_url = f"http://127.0.0.1:{port}/api"
    current = configured_api_url()
    if current and _healthy(current):
        return f"A Prefect API is already running at {current}"
    if _healthy(api_url):
        _set_profile_url(api_url)
        return f"A Prefect API is already running at {api_url} (now the default)"
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }
    env.pop("PREFECT_API_URL", None)
    with open(_log_file(), "ab") as log:
        proc = subprocess.Popen(
            [_prefect_exe(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _pid_file().write_text(str(proc.pid))
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AegirError(f"the Prefect server exited during start-up; see {_log_file()}")
        if _healthy(api_url):
            _set_profile_url(api_url)
            _register_block_types(api_url)
            return f"Prefect server running at {api_url} (UI http://127.0.0.1:{port}, log {_log_file()})"
        time.sleep(0.5)
    raise AegirError(f"the Prefect server did not answer within {STARTUP_TIMEOUT:.0f} s; see {_log_file()}")


def _set_profile_url(api_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    subprocess.run(
        [_prefect_exe(), "config", "set", f"PREFECT_API_URL={api_url}"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _register_block_types(api_url: str) -> None:
    """So the UI can create servers, platforms and sites before any was saved from the CLI."""
    env = {**os.environ, "PREFECT_API_URL": api_url}
    result = subprocess.run(
        [_prefect_exe(), "block", "register", "-m", "blocks.types"], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise AegirError(f"registering the aegir block types failed: {result.stdout[-300:]}{result.stderr[-300:]}")


def stop() -> str:
    pid = _running_pid()
    if pid is None:
        return "No local Prefect server started by aegir is running"
    os.killpg(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    _pid_file().unlink(missing_ok=True)
    return f"Stopped the local Prefect server (pid {pid})"


def status() -> tuple[str, bool]:
    url = configured_api_url()
    if url is None:
        return "No Prefect API configured: start one with `aegir server start`", False
    if _healthy(url):
        return f"Prefect API at {url}: up", True
    return f"Prefect API at {url}: not answering (start it with `aegir server start`)", False
