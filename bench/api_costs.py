"""What each kind of Prefect API work costs the Prefect server, in its CPU time (not a test).

The Prefect server answers from one Python process, so its CPU time per operation bounds how many site tasks
an hour one server can orchestrate (bench/backup_all.py finds it busy most of a backup-all run). Starts a
private Prefect server (``aegir server start`` on a fresh database of the machine's PostgreSQL; SQLite with
--sqlite), saves a server, a platform and --sites site contexts, then times --n repetitions of each operation
below, in this process, one at a time, and reads the server process group's CPU time (/proc) before and after
(after a pause, so the server's services have recorded the events of the loop):

* context store (our block documents): a read of one context (``find``), of two in one request
  (``find_many``), a whole write (``put``) and a one-field write merged by the server (``update_data``);
* Prefect: an empty flow run, a flow run with three tasks, a flow run that takes and releases a site lock (a
  global concurrency limit slot with a lease), a flow run making ten keyed table artifacts, a flow run with
  ten empty subflow runs (each subflow called from a task, as fan-out does). Flow-run heartbeats are off for
  these (their cost is the last row: an empty flow run with them on).

The read is repeated with more site contexts stored (--sites, then 5 × --sites) to show whether its cost grows
with the number of sites. Writes the section between ``<!-- api-costs:start -->`` and ``<!-- api-costs:end -->``
of docs/benchmarks.md.

    .venv/bin/python bench/api_costs.py [--n 60] [--sites 200] [--sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import group_cpu, postgres_database, start_prefect, write_section  # noqa: E402 (the repo root is on the path only now)

AEGIR = str(Path(sys.executable).with_name("aegir"))
SETTLE = 2.0  # seconds for the server's services to record what a loop sent


def measure(pgrp: int, fn: Callable[[], Any], n: int) -> dict[str, float]:
    """Server CPU and wall time per call of ``fn`` over ``n`` calls (one untimed call first)."""
    fn()
    time.sleep(SETTLE)
    cpu, start = group_cpu(pgrp), time.perf_counter()
    for _ in range(n):
        fn()
    wall = time.perf_counter() - start
    time.sleep(SETTLE)
    return {"cpu_ms": 1000 * (group_cpu(pgrp) - cpu) / n, "wall_ms": 1000 * wall / n}


def run(args: argparse.Namespace, pgrp: int) -> dict[str, Any]:
    from prefect import flow, task
    from prefect.artifacts import create_table_artifact
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from aegir import registry
    from aegir.contexts import SiteContext, build
    from blocks.store import BlockStore
    from tasks.operation import _slot

    store = BlockStore.from_environment()
    server = {"http_service_type": "nginx", "db_service_type": "mysql", "db_host": "127.0.0.1", "db_user": "root"}
    registry.save(store, "@server_cost", "server", server)
    registry.save(store, "@platform_cost", "platform", {"root": "/tmp", "web_server": "@server_cost"})
    stored = 0

    def store_sites(total: int) -> None:
        nonlocal stored
        while stored < total:
            site = {"name": f"@s{stored:05d}.example.test", "platform": "@platform_cost", "db_server": "@server_cost"}
            store.put(build(SiteContext, site))
            stored += 1

    store_sites(args.sites)
    first = store.find("@s00000.example.test")
    assert first is not None

    @task
    def nothing() -> None:
        """A task that does nothing."""

    @flow(name="cost-empty")
    def empty() -> None:
        """A flow run that does nothing."""

    @flow(name="cost-three-tasks")
    def three_tasks() -> None:
        nothing()
        nothing()
        nothing()

    @flow(name="cost-site-lock")
    def site_lock() -> None:
        with _slot("site-cost-example-test", 1, 10):
            pass

    @flow(name="cost-artifacts")
    def artifacts() -> None:
        for _ in range(10):
            create_table_artifact(key="backups-cost", table=[{"id": "x", "size": 1}], description="cost")

    @task
    def call_empty() -> None:
        empty()

    @flow(name="cost-subflows")
    def subflows() -> None:
        for _ in range(10):
            call_empty()

    rows: list[tuple[str, dict[str, float]]] = []
    n = args.n

    def row(label: str, fn: Callable[[], Any], times: int, per: int = 1) -> None:
        m = measure(pgrp, fn, times)
        rows.append((label, {k: v / per for k, v in m.items()}))
        print(f"bench: {label}: {rows[-1][1]['cpu_ms']:.1f} ms CPU, {rows[-1][1]['wall_ms']:.1f} ms wall", flush=True)

    row(f"context read (`find`), {stored} sites stored", lambda: store.find("@s00000.example.test"), n)
    row("two contexts in one read (`find_many`)", lambda: store.find_many(["@platform_cost", "@server_cost"]), n)
    row("context write, whole (`put`)", lambda: store.put(first), n)
    one_field = {"operation": None}
    row("context write, one field merged (`update_data`)", lambda: store.update_data("site", first.name, one_field), n)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        row("flow run, empty", empty, max(5, n // 3))
        row("flow run with 3 tasks", three_tasks, max(5, n // 3))
        row("flow run taking and releasing a site lock", site_lock, max(5, n // 3))
        row("keyed table artifact (in a flow run of 10; per artifact)", artifacts, max(2, n // 10), per=10)
        row("subflow run called from a task (in a flow run of 10; per subflow)", subflows, 2, per=10)
    row("flow run, empty, heartbeats on (the default)", empty, max(5, n // 6))
    scaling = []
    for total in (args.sites, 5 * args.sites):
        store_sites(total)
        m = measure(pgrp, lambda: store.find("@s00000.example.test"), n)
        scaling.append((total, m))
        print(f"bench: read with {total} sites stored: {m['cpu_ms']:.1f} ms CPU", flush=True)
    return {"rows": rows, "scaling": scaling, "n": n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60, help="repetitions of each context-store operation")
    parser.add_argument("--sites", type=int, default=200, help="site contexts stored first (then 5 times as many)")
    parser.add_argument("--sqlite", action="store_true", help="the Prefect server on SQLite instead of PostgreSQL")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="aegir-bench-api-costs-"))
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        database = None if args.sqlite else stack.enter_context(postgres_database("aegir_bench_costs"))
        env = start_prefect(home, database)
        pgrp = int((home / "prefect" / "aegir-server.pid").read_text().strip())
        try:
            results = run(args, pgrp)
        finally:
            with contextlib.suppress(Exception):
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=5)
            subprocess.run([AEGIR, "server", "stop"], env=env, capture_output=True)
            shutil.rmtree(home, ignore_errors=True)
    db = "SQLite" if args.sqlite else "PostgreSQL"
    lines = [
        "## What Prefect API work costs the server (`bench/api_costs.py`)",
        "",
        f"The Prefect server's CPU time per operation (its process group, from /proc), one operation at a time "
        f"from one client, the server on {db}; {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, 1-min load "
        f"average {load:.2f} at the start. The server answers from one Python process, so this is what bounds "
        "how many site tasks one server orchestrates per second: a backup-site run costs it about 9 context "
        "reads, 4 one-field writes, a subflow run with 4 task runs, two lock slots (site and db) and two "
        "artifacts.",
        "",
        "| operation | server CPU (ms) | wall, one client (ms) |",
        "|---|---:|---:|",
        *[f"| {label} | {m['cpu_ms']:.1f} | {m['wall_ms']:.1f} |" for label, m in results["rows"]],
        "",
        "A context read with more sites stored: "
        + ", ".join(f"{total} sites {m['cpu_ms']:.1f} ms" for total, m in results["scaling"])
        + " of server CPU.",
    ]
    write_section("api-costs", lines)


if __name__ == "__main__":
    main()
