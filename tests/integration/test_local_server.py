"""`aegir server start|status|stop`: the one-machine setup's local Prefect server, as the README uses it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.integration.helpers import aegir

pytestmark = pytest.mark.integration

PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_start_status_stop_with_a_fresh_prefect_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    port = free_port()
    # nothing configured yet: a clear hint, exit 4
    status = aegir(env, "server", "status")
    assert status.returncode == 4 and "aegir server start" in status.stdout
    listing = aegir(env, "list")
    assert listing.returncode == 4 and "aegir server start" in listing.stderr
    try:
        started = aegir(env, "server", "start", "--port", str(port))
        assert started.returncode == 0, started.stderr + started.stdout
        assert f"127.0.0.1:{port}" in started.stdout
        profiles = tomllib.loads((tmp_path / "prefect" / "profiles.toml").read_text())
        active = profiles.get("active", "ephemeral")
        assert profiles["profiles"][active]["PREFECT_API_URL"] == f"http://127.0.0.1:{port}/api"
        assert aegir(env, "server", "status").returncode == 0
        # the block types are registered, so the UI can create contexts before any was saved
        types = subprocess.run([PREFECT, "block", "type", "ls"], env=env, capture_output=True, text=True, timeout=120)
        assert "aegir-server" in types.stdout and "aegir-site" in types.stdout, types.stdout + types.stderr
        # the CLI now finds the API through the profile alone
        saved = aegir(env, "save", "@server_local", "--context_type=server")
        assert saved.returncode == 0, saved.stderr
        assert "@server_local" in aegir(env, "list").stdout
        # starting again is harmless
        again = aegir(env, "server", "start", "--port", str(port))
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        stopped = aegir(env, "server", "stop")
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout
    assert aegir(env, "server", "status").returncode == 4
