"""docs/benchmarks.md: each benchmark owns one section between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql

TICK = os.sysconf("SC_CLK_TCK")  # /proc counts CPU time in these
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def api_auth() -> tuple[str, str] | None:
    """The API credential the CLI uses (the profile ``aegir server start`` wrote), for a bench's own calls."""
    from blocks.store import basic_auth, configured_auth

    return basic_auth(configured_auth())


def write_section(name: str, lines: list[str]) -> None:
    """Replace (or append) the section ``name`` with ``lines`` (without the markers) and print it."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = "\n".join([start, *lines, end])
    text = DOC.read_text()
    if start in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
    print(section)


def start_prefect(home: Path, database_url: str | None = None) -> dict[str, str]:
    """A private Prefect server (``aegir server start`` on a free port, state under ``home``; its database
    SQLite, or ``database_url``), set in this process's environment; returns the environment to stop it with
    (``aegir server stop``)."""
    aegir = str(Path(sys.executable).with_name("aegir"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home / "prefect"), AEGIR_ROOT=str(home / "aegir"))
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    subprocess.run([aegir, "server", "start", "--port", str(port)], env=env, check=True, capture_output=True)
    os.environ.update(PREFECT_HOME=env["PREFECT_HOME"], PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    return env


def sh(script: str) -> str:
    """A bash script (errexit, pipefail) of the raw tools a benchmark compares with; its stdout."""
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"raw step failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def root_db() -> pymysql.connections.Connection:
    """root on the machine's MariaDB (127.0.0.1, no password)."""
    return pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust), dropped after;
    yields its asyncpg URL for a Prefect server."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c"]
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def process_cpu() -> Iterator[tuple[str, int, float]]:
    """(pid, process group, CPU seconds so far) of every process still running (read-only: /proc)."""
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        yield pid, int(fields[2]), (int(fields[11]) + int(fields[12])) / TICK


def group_cpu(pgrp: int) -> float:
    """CPU seconds so far of every process in the process group (a Prefect server and its children)."""
    return sum(used for _, group, used in process_cpu() if group == pgrp)
