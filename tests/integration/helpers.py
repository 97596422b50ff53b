"""Helpers for integration tests: the aegir CLI as a subprocess, flow runs and their logs."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.support import api

AEGIR = str(Path(sys.executable).with_name("aegir"))


def aegir(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AEGIR, *args], env=env, input=stdin, capture_output=True, text=True, timeout=180)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def flow_run_logs(api_url: str, flow_run_id: Any) -> str:
    body = {"logs": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "limit": 200}
    response = api.post(f"{api_url}/logs/filter", json=body, timeout=10)
    response.raise_for_status()
    return "\n".join(entry["message"] for entry in response.json())


def flow_run(api_url: str, flow_run_id: Any) -> dict[str, Any]:
    response = api.get(f"{api_url}/flow_runs/{flow_run_id}", timeout=10)
    response.raise_for_status()
    return response.json()


def task_runs(api_url: str, flow_run_id: Any) -> list[dict[str, Any]]:
    """The flow run's task runs, oldest first."""
    body = {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 200}
    response = api.post(f"{api_url}/task_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    return response.json()
