"""backup-all benchmark: our backup-all flow over many small sites on one server vs the raw tools (not a test).

Starts a private Prefect server (temp PREFECT_HOME, free port) and a private nginx + php-fpm (the classes of
tests/support/webservers.py), registers a verified server on them (the real MariaDB, the drush stand-in of
tests/fixtures/drupal; ``db_task_limit`` left at its default, 2) and two verified sample ``d7`` platforms, A
and B. ONE site is installed for real (install-site) on A; the other --sites − 1 are copies of it made outside
the product: its site dir copied (``cp -a``, the uri replaced in settings.php), a database per copy imported
from the template's dump, a user per copy with its own password and the same grant hosts, a credentials file
written as deploy does (``render_credentials``), and the site block saved installed. The first --small sites
by name are on A, the rest on B. One copy is backed up with backup-site and checked before any timing.

Then, each round (the order of the two sizes flips every round), from a state where every site is due (the
sites' ``backups`` lists cleared and their archives deleted before every run):

* ours: ``backup_all(ignore_window=True, platform=A)`` (the --small sites) and ``backup_all(ignore_window=True)``
  (all --sites), in-process; wall time, the per-site rows of its summary table (result, size, seconds), CPU
  time of this process (Prefect engine and flows), its children (mysqldump, gzip, tar), the Prefect server and
  MariaDB, and the machine's busy CPU share over the run;
* raw: for each of the same sites ``mysqldump --single-transaction --quick --hex-blob DB | gzip`` + ``tar -czf``
  of its site dir, under ``xargs -P <db_task_limit>`` (as many dumps at once as ours).

Before the rounds, --solo times each: an empty flow run, with and without Prefect's flow-run heartbeats; a
backup-site flow run alone, with and without heartbeats (each a different site; with them, the median gives
the "ideal from one site", N × solo / db_task_limit); the data path alone, outside Prefect (``create_archive``
with our dump, as backup-archive calls it) and the raw per-site pipeline; all that after one untimed
backup-all run over the --small sites (unless --no-warmup): the first run after the setup pays once for what
later runs find ready. After the rounds, the task runs of every backup-site subflow of the last full run are
read from the Prefect API (where the time goes), and diagnostic runs over the --small sites: backup-all's
``parallel`` set to each of --widths (other fan-out widths, the same db slots), and heartbeats off in this
process. Every run also counts this process's API requests (by endpoint and status: the SQLite-backed
server's 503 "busy" answers) and the back-off Prefect's client slept. A run with a failed site stops the
benchmark (its timing would mean nothing).

Writes the section between ``<!-- backup-all:start -->`` and ``<!-- backup-all:end -->`` of docs/benchmarks.md.

    .venv/bin/python bench/backup_all.py [--sites 200] [--small 50] [--rounds 3] [--solo 5] [--widths 2,8]
        [--postgres] [--note TEXT] [--save FILE | --load FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import TICK, api_auth, postgres_database, process_cpu, root_db, sh, start_prefect, write_section  # noqa: E402 (the repo root is on the path only now)

AEGIR = str(Path(sys.executable).with_name("aegir"))
CPU_PARTS = ("self", "children", "server", "mariadb")  # PostgreSQL's backends come and go: in "machine" only


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------------------
# CPU accounting over a run (read-only: /proc)
# ---------------------------------------------------------------------------------------------------------
def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cpu_snapshot(server_pgrp: int) -> dict[str, float]:
    """CPU seconds so far: this process, its waited-for children, the Prefect server's process group, MariaDB;
    and the machine's busy and total jiffies (/proc/stat)."""
    t = os.times()
    snap = {"self": t.user + t.system, "children": t.children_user + t.children_system, "server": 0.0, "mariadb": 0.0}
    for pid, group, used in process_cpu():
        if group == server_pgrp:
            snap["server"] += used
        elif _comm(pid) in ("mariadbd", "mysqld"):
            snap["mariadb"] += used
    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:]]
    snap["idle"] = (cpu[3] + cpu[4]) / TICK
    snap["all"] = sum(cpu[:8]) / TICK
    return snap


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    used = {k: after[k] - before[k] for k in CPU_PARTS}
    total = after["all"] - before["all"]
    used["machine"] = total - (after["idle"] - before["idle"])  # busy CPU seconds, every process
    used["busy_share"] = 1 - (after["idle"] - before["idle"]) / total if total else float("nan")
    return used


# ---------------------------------------------------------------------------------------------------------
# the Prefect API
# ---------------------------------------------------------------------------------------------------------
def _all(api: str, what: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = {**body, "limit": 200, "offset": len(out)}
        got = httpx.post(f"{api}/{what}/filter", json=page, auth=api_auth(), timeout=30).raise_for_status().json()
        out += got
        if len(got) < 200:
            return out


def flow_profile(api: str, flow_run_id: str, parallel: int) -> dict[str, Any]:
    """The backup-all run, its task runs (due-sites, one site-task per site), its backup-site subflows and
    their task runs, from the API (times as the engine reported them); medians per site and totals."""
    deadline = time.monotonic() + 60
    while True:
        parent = httpx.get(f"{api}/flow_runs/{flow_run_id}", auth=api_auth(), timeout=10).raise_for_status().json()
        own = _all(api, "task_runs", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
        subs = _all(api, "flow_runs", {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}})
        sub_ids = [s["id"] for s in subs]
        tasks = []
        for i in range(0, len(sub_ids), 100):
            tasks += _all(api, "task_runs", {"flow_runs": {"id": {"any_": sub_ids[i : i + 100]}}})
        finished = all(r["start_time"] and r["end_time"] for r in [parent, *own, *subs, *tasks])
        if finished or time.monotonic() > deadline:
            break
        time.sleep(1)

    def span(r: dict[str, Any]) -> tuple[datetime, datetime]:
        return when(r["start_time"]), when(r["end_time"])

    def secs(a: datetime, b: datetime) -> float:
        return (b - a).total_seconds()

    start, end = span(parent)
    site_tasks = [span(r) for r in own if r["name"].startswith("backup-site @")]  # site-task: "{label} {site}"
    due = [span(r) for r in own if r["name"].rsplit("-", 1)[0] == "due-sites"]
    by_task: dict[str, list[float]] = defaultdict(list)
    of_flow: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for t in tasks:
        if t["start_time"] and t["end_time"]:
            s, e = span(t)
            by_task[t["name"].rsplit("-", 1)[0]].append(secs(s, e))
            of_flow[t["flow_run_id"]].append((s, e))
    sub_secs, before, after, between, in_tasks = [], [], [], [], []
    for sub in subs:
        if not (sub["start_time"] and sub["end_time"] and of_flow[sub["id"]]):
            continue
        s, e = span(sub)
        runs = sorted(of_flow[sub["id"]])
        sub_secs.append(secs(s, e))
        before.append(secs(s, runs[0][0]))  # flow start → first task run: the site lock, the journal
        after.append(secs(runs[-1][1], e))  # last task run → flow end: journal cleared, lock released, states
        between.append(sum(max(0.0, secs(a[1], b[0])) for a, b in zip(runs, runs[1:], strict=False)))
        in_tasks.append(sum(secs(a, b) for a, b in runs))
    first = min(s for s, _ in site_tasks)
    last = max(e for _, e in site_tasks)
    site_secs = [secs(s, e) for s, e in site_tasks]
    fan = secs(first, last)
    archive = sum(by_task.get("backup-archive", []))
    return {
        "flow": secs(start, end),
        "due_sites": sum(secs(s, e) for s, e in due),
        "lead": secs(start, first),
        "tail": secs(last, end),
        "fan_out": fan,
        "site_tasks": len(site_tasks),
        "site_task": median(site_secs),
        "site_task_sum": sum(site_secs),
        "concurrency": sum(site_secs) / fan if fan else float("nan"),
        "slot_busy": archive / (parallel * fan) if fan else float("nan"),
        "subflows": len(sub_secs),
        "subflow": median(sub_secs),
        "subflow_sum": sum(sub_secs),
        "site_task_outside_subflow": median(site_secs) - median(sub_secs),
        "before_tasks": median(before),
        "after_tasks": median(after),
        "between_tasks": median(between),
        "in_tasks": median(in_tasks),
        "tasks": {k: median(v) for k, v in by_task.items()},
        "task_p90": {k: sorted(v)[int(0.9 * (len(v) - 1))] for k, v in by_task.items()},
        "task_sums": {k: sum(v) for k, v in by_task.items()},
        "task_counts": {k: len(v) for k, v in by_task.items()},
    }


def latest_table(api: str, key: str) -> list[dict[str, Any]]:
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    data = (
        httpx.post(f"{api}/artifacts/filter", json=body, auth=api_auth(), timeout=10)
        .raise_for_status()
        .json()[0]["data"]
    )
    return json.loads(data) if isinstance(data, str) else data


# ---------------------------------------------------------------------------------------------------------
# what this process asks of the API, and what the run loggers say (counted in-process, nothing changed)
# ---------------------------------------------------------------------------------------------------------
class ApiCounter:
    """Every HTTP request this process sends (Prefect's clients and the block store are httpx clients), by
    endpoint (ids replaced), by status, and the failed ones by client and endpoint; the back-off Prefect's
    client sleeps before retrying a busy answer (from its debug log line, not printed); and the log lines that
    tell of waiting (the site lock's "waiting:" / "lock acquired after", Prefect's slot-acquisition timeouts)."""

    WATCH = ("waiting:", "lock acquired after", "failed to process item")
    BACKOFF = re.compile(r"retryable status code (\d+)\. Another attempt will be made in ([0-9.]+)s")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.status: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.lines: Counter[str] = Counter()
        self.backoff: Counter[str] = Counter()
        self.samples: list[str] = []

    def note(self, client: object, request: httpx.Request, status: int) -> None:
        path = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "{id}", request.url.path)
        endpoint = f"{request.method} {path.split('/api', 1)[-1]}"
        with self.lock:
            self.calls[endpoint] += 1
            self.status[str(status)] += 1
            if status >= 400:
                self.failed[f"{status} {type(client).__name__} {endpoint}"] += 1

    def install(self) -> None:
        sync_send, async_send, counter = httpx.Client.send, httpx.AsyncClient.send, self

        def send(client: httpx.Client, request: httpx.Request, *a: Any, **k: Any) -> httpx.Response:
            response = sync_send(client, request, *a, **k)
            counter.note(client, request, response.status_code)
            return response

        async def asend(client: httpx.AsyncClient, request: httpx.Request, *a: Any, **k: Any) -> httpx.Response:
            response = await async_send(client, request, *a, **k)
            counter.note(client, request, response.status_code)
            return response

        httpx.Client.send = send  # type: ignore[method-assign]
        httpx.AsyncClient.send = asend  # type: ignore[method-assign]

        def watch(record: logging.LogRecord) -> bool:
            text = record.getMessage()
            for w in self.WATCH:
                if w in text:
                    with self.lock:
                        self.lines[w] += 1
                        if len(self.samples) < 20:
                            self.samples.append(f"{record.levelname} {text[:300]}")
            return True

        for name in ("prefect.flow_runs", "prefect.task_runs", "prefect._internal.concurrency"):
            logging.getLogger(name).addFilter(watch)

        def backoff(record: logging.LogRecord) -> bool:
            found = self.BACKOFF.search(record.getMessage())
            if found:
                with self.lock:
                    self.backoff["retries"] += 1
                    self.backoff["seconds"] += float(found.group(2))  # type: ignore[assignment]
            return record.levelno > logging.DEBUG  # the debug lines counted, not printed

        client_logger = logging.getLogger("prefect.client")
        client_logger.setLevel(logging.DEBUG)
        client_logger.addFilter(backoff)

    def snapshot(self) -> tuple[Counter[Any], ...]:
        with self.lock:
            return tuple(Counter(c) for c in (self.calls, self.status, self.failed, self.lines, self.backoff))

    @staticmethod
    def since(before: tuple[Counter[Any], ...], after: tuple[Counter[Any], ...]) -> dict[str, Any]:
        calls, status, failed, lines, backoff = (a - b for a, b in zip(after, before, strict=True))
        return {
            "requests": sum(calls.values()),
            "by_endpoint": dict(calls.most_common()),
            "by_status": dict(sorted(status.items())),
            "failed": dict(failed.most_common()),
            "log_lines": dict(lines),
            "prefect_client_retries": backoff.get("retries", 0),
            "prefect_client_backoff_s": round(float(backoff.get("seconds", 0)), 2),
        }


# ---------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--solo", type=int, default=5, help="backup-site flows alone (and data paths) timed")
    parser.add_argument(
        "--widths",
        type=lambda v: [int(w) for w in v.split(",") if w],
        default=[2, 8],
        help="also one run of the smaller set with each of these backup-all `parallel` values (comma-separated)",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="the Prefect server on a fresh database of the machine's PostgreSQL"
    )
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="no untimed backup-all run before the rounds"
    )
    parser.add_argument("--note", default="", help="a sentence on the conditions of the run, for the report")
    parser.add_argument("--save", help="also write the measurements to this JSON file")
    parser.add_argument("--load", help="only write docs/benchmarks.md from measurements saved with --save")
    args = parser.parse_args()
    if args.load:
        saved = json.loads(Path(args.load).read_text())
        write_report({**saved, "note": args.note or saved.get("note", "")})
        return
    assert 1 < args.small < args.sites and 2 + 2 * args.solo <= args.sites

    home = Path(tempfile.mkdtemp(prefix="aegir-bench-backup-all-"))
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(postgres_database("aegir_bench")) if args.postgres else None
        env = start_prefect(home, database)
        api = os.environ["PREFECT_API_URL"]
        server_pgrp = int((home / "prefect" / "aegir-server.pid").read_text().strip())
        load = [os.getloadavg()[0]]
        try:
            results = run(api, args, home, server_pgrp)
        finally:
            with contextlib.suppress(Exception):
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=5)  # the flow runs' last logs, before the server stops
            subprocess.run([AEGIR, "server", "stop"], env=env, capture_output=True)
            shutil.rmtree(home, ignore_errors=True)
    database_kind = "PostgreSQL" if args.postgres else "SQLite"
    results.update(load=[*load, os.getloadavg()[0]], note=args.note, database=database_kind)
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1))
    write_report(results)


class Copies:
    """The sites copied from the template outside the product: their databases and users (dropped at the end)."""

    def __init__(self) -> None:
        self.dbs: list[str] = []
        self.users: list[tuple[str, str]] = []

    def cleanup(self) -> None:
        with root_db() as conn, conn.cursor() as cur:
            for db in self.dbs:
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            for user, host in self.users:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")


def run(api: str, args: argparse.Namespace, home: Path, server_pgrp: int) -> dict[str, Any]:
    from aegir import registry
    from aegir.archive import archive_name, create_archive, delete_archive
    from aegir.drupal.settings import CREDENTIALS_FILE, CREDENTIALS_MODE, render_credentials
    from aegir.errors import StoreUnavailable
    from aegir.services.db import random_password
    from aegir.services.dump import dump_database
    from aegir.services.vhost import DbParams
    from aegir.transport.local import LocalTransport
    from blocks.store import BlockStore
    from flows.backup_all import backup_all
    from flows.backup_site import backup_site
    from flows.install_site import install_site
    from tests.integration.sites import make_hosting
    from tests.support.webservers import run_nginx, run_php_fpm

    with contextlib.ExitStack() as stack:
        fpm = stack.enter_context(run_php_fpm())
        web = stack.enter_context(run_nginx(fpm.socket))
        admin = {"db_service_type": "mysql", "db_host": "127.0.0.1", "db_port": 3306, "db_user": "root"}
        store = BlockStore.from_environment()
        hosting = stack.enter_context(contextlib.contextmanager(make_hosting)(store, web, admin, "@server_bench"))
        stack.callback(shutil.rmtree, hosting.platforms_dir, ignore_errors=True)
        server = registry.load_server(store, hosting.server)
        parallel = server.db_task_limit
        plat_a, plat_b = hosting.verified_platform("d7"), hosting.verified_platform("d7")
        roots = {p: Path(registry.load_platform(store, p).docroot) for p in (plat_a, plat_b)}
        tag = uuid.uuid4().hex[:6]
        names = [f"@b{i:03d}{tag}.example.test" for i in range(args.sites)]
        platform_of = {n: plat_a if i < args.small else plat_b for i, n in enumerate(names)}
        template = names[0]
        registry.save(store, template, "site", {"platform": plat_a, "db_server": hosting.server})
        hosting.sites.append(template)
        print(f"bench: installing {template} …", flush=True)
        state = install_site(site=template, return_state=True)
        assert state.is_completed(), state.message
        tpl = hosting.load_site(template)
        tpl_dir = roots[plat_a] / "sites" / tpl.uri
        with root_db() as conn, conn.cursor() as cur:
            cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (tpl.db_user,))
            hosts = [h for (h,) in cur.fetchall()]
        dump = home / "template.sql"
        sh(f"mysqldump --single-transaction --quick {shlex.quote(tpl.db_name or '')} > {dump}")

        copies = Copies()
        stack.callback(copies.cleanup)
        print(f"bench: copying it into {args.sites - 1} sites …", flush=True)
        started = time.perf_counter()
        db_of = {template: tpl.db_name or ""}
        db_of.update({name: f"bench_ba_{tag}_{i:03d}" for i, name in enumerate(names[1:], start=1)})

        def copy(name: str) -> None:
            uri, db = name[1:], db_of[name]
            password = random_password()
            with root_db() as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
                copies.dbs.append(db)
                for host in hosts:
                    cur.execute(f"CREATE USER '{db}'@'{host}' IDENTIFIED BY %s", (password,))
                    copies.users.append((db, host))
                    cur.execute(f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{db}'@'{host}'")
            sh(f"mysql {db} < {dump}")
            site_dir = roots[platform_of[name]] / "sites" / uri
            sh(f"cp -a {shlex.quote(str(tpl_dir))} {shlex.quote(str(site_dir))}")
            settings = site_dir / "settings.php"
            mode = settings.stat().st_mode
            text = settings.read_text().replace(tpl.uri.replace(".", r"\."), uri.replace(".", r"\."))
            settings.write_text(text.replace(tpl.uri, uri))  # the uri, and its escaped trusted-host pattern
            os.chmod(settings, mode)
            creds = DbParams("mysql", db, db, password, server.db_address, server.db_port)
            (site_dir / CREDENTIALS_FILE).write_text(render_credentials(creds))
            os.chmod(site_dir / CREDENTIALS_FILE, CREDENTIALS_MODE)
            registry.save(
                store,
                name,
                "site",
                {"platform": platform_of[name], "db_server": hosting.server, "status": "installed",
                 "db_name": db, "db_user": db, "db_password": password, "packages": tpl.packages},
                allow_managed=True,
            )  # fmt: skip

        with ThreadPoolExecutor(max_workers=4) as pool:  # setup only, untimed
            list(pool.map(copy, names[1:]))
        print(f"bench: {args.sites - 1} copies in {time.perf_counter() - started:.0f} s", flush=True)

        def site_dir_of(name: str) -> Path:
            return roots[platform_of[name]] / "sites" / name[1:]

        def reset(only: list[str] | None = None) -> None:
            """Every site due again: its backups' archives deleted, its backups list cleared."""

            def clear(name: str) -> None:
                for attempt in range(4):  # a dropped keep-alive connection is not retried by the store
                    try:
                        site = hosting.load_site(name)
                        if site.backups:
                            for b in site.backups:
                                delete_archive(b["file"])
                            registry.save(store, name, None, {"backups": []}, allow_managed=True)
                        return
                    except StoreUnavailable as e:
                        print(f"bench: reset {name}, attempt {attempt + 1}: {e}", flush=True)
                        if attempt == 3:
                            raise
                        time.sleep(2)

            with ThreadPoolExecutor(max_workers=2) as pool:  # untimed
                list(pool.map(clear, only or names))
            backups = Path(server.backup_path)
            left = [p for p in backups.glob("*") if p.is_file()] if backups.exists() else []
            assert not left, f"left in {server.backup_path}: {left[:5]}"

        # one copy, backed up by backup-site, checked: the archive holds its own dump and site dir
        check = names[1]
        entry = backup_site(site=check)
        listing = sh(f"tar -tzf {shlex.quote(entry['file'])}")
        assert "settings.php" in listing and entry["db_name"] == db_of[check], listing[:2000]
        dumped = sh(f"tar -xzOf {shlex.quote(entry['file'])} --wildcards '*.sql' | head -c 400000")
        assert "CREATE TABLE" in dumped and "system" in dumped, dumped[:500]
        print(f"bench: {check} backed up by backup-site: {entry['size']} bytes; archive checked", flush=True)
        reset([check])
        site_kb = int(sh(f"du -sk {shlex.quote(str(tpl_dir))}").split()[0])
        dump_bytes = dump.stat().st_size
        with root_db() as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (tpl.db_name,))
            tables = int(cur.fetchone()[0])

        # one untimed backup-all run first: the first run after the setup pays once for what later runs find
        # ready (the flows and their task keys registered, the server's services catching up with the setup)
        warmup = None
        if args.warmup:
            start = time.perf_counter()
            state = backup_all(ignore_window=True, platform=plat_a, return_state=True)
            assert state.is_completed(), state.message
            warmup = time.perf_counter() - start
            reset()
            print(f"bench: warm-up run over {args.small} sites: {warmup:.1f} s", flush=True)
        counter = ApiCounter()
        counter.install()
        # alone: backup-site flows, our data path and the raw pipeline, --solo each (different sites)
        raw_dir = home / "raw"
        raw_dir.mkdir()
        solo: dict[str, list[float]] = defaultdict(list)
        master = LocalTransport("localhost")
        scratch = home / "scratch"
        from prefect import flow
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        @flow(name="bench-empty")
        def empty() -> None:
            """A flow run that does nothing: Prefect's own cost of one flow run here."""

        def timed(fn: Any) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        empty()  # the first flow run of a kind registers the flow: not timed
        for k in range(args.solo):
            name = names[2 + k]
            solo["empty_flow"].append(timed(empty))
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                solo["empty_flow_no_heartbeat"].append(timed(empty))
                other = names[2 + args.solo + k]
                solo["flow_no_heartbeat"].append(timed(lambda o=other: backup_site(site=o)))
            calls = counter.snapshot()
            start = time.perf_counter()
            backup_site(site=name, description="Automated backup")
            solo["flow"].append(time.perf_counter() - start)
            solo["requests"].append(ApiCounter.since(calls, counter.snapshot())["requests"])
            start = time.perf_counter()
            create_archive(
                path=str(scratch / archive_name(name[1:], datetime.now(UTC), "gzip")),
                site_transport=master,
                site_path=str(site_dir_of(name)),
                dump=lambda out, db=db_of[name]: dump_database(master, server, db, out),
                manifest={"site": name},
                compression="gzip",
            )
            solo["data"].append(time.perf_counter() - start)
            start = time.perf_counter()
            sh(raw_one(db_of[name], site_dir_of(name), raw_dir / name[1:]))
            solo["raw"].append(time.perf_counter() - start)
            shutil.rmtree(scratch)
            shutil.rmtree(raw_dir)
            raw_dir.mkdir()
        reset()
        print("bench: alone: " + ", ".join(f"{k} {median(v):.2f}" for k, v in solo.items()), flush=True)

        def ours(n: int, width: int | None = None) -> dict[str, Any]:
            """backup-all over n sites; ``width``: its ``parallel`` (default: its own, twice the dump slots)."""
            reset()
            before, calls = cpu_snapshot(server_pgrp), counter.snapshot()
            start = time.perf_counter()
            only = plat_a if n == args.small else None
            state = backup_all(ignore_window=True, platform=only, parallel=width, return_state=True)
            wall = time.perf_counter() - start
            cpu = cpu_used(before, cpu_snapshot(server_pgrp))
            api_use = ApiCounter.since(calls, counter.snapshot())
            rows = latest_table(api, "backup-all")
            assert len(rows) == n, f"backup-all backed up {len(rows)} sites, not {n}: {state.message}"
            failed = [r for r in rows if r["result"] != "ok"]
            ok = [r for r in rows if r["result"] == "ok"]
            if failed:  # the timing of a run with failures means nothing: stop, saying why
                errors = "; ".join(f"{r['site']}: {str(r.get('error'))[:300]}" for r in failed[:3])
                raise RuntimeError(f"backup-all: {len(failed)} of {n} sites failed, e.g. {errors}")
            return {
                "wall": wall,
                "width": width or 2 * parallel,
                "state": state.type.value,
                "failures": len(failed),
                "errors": [f"{r['site']}: {r.get('error')}" for r in failed[:5]],
                "seconds": [float(r["seconds"]) for r in rows],
                "sizes": [int(r["size"]) for r in ok],
                "flow_run": str(state.state_details.flow_run_id),
                "cpu": cpu,
                "api": api_use,
            }

        def raw(n: int, width: int) -> dict[str, Any]:
            shutil.rmtree(raw_dir)
            raw_dir.mkdir()
            todo = home / "raw-todo"
            todo.write_text("".join(f"{db_of[s]}\n{site_dir_of(s)}\n{raw_dir / s[1:]}\n" for s in names[:n]))
            one = raw_one('"$0"', '"$1"', '"$2"', quote=False)
            script = f"xargs -d '\\n' -P {width} -n 3 -a {todo} bash -e -o pipefail -c {shlex.quote(one)}"
            before = cpu_snapshot(server_pgrp)
            start = time.perf_counter()
            sh(script)
            wall = time.perf_counter() - start
            cpu = cpu_used(before, cpu_snapshot(server_pgrp))
            files = list(raw_dir.iterdir())
            assert len(files) == 2 * n, f"raw made {len(files)} files for {n} sites"
            return {"wall": wall, "parallel": width, "bytes": sum(f.stat().st_size for f in files), "cpu": cpu}

        def show(label: str, o: dict[str, Any], w: dict[str, Any]) -> None:
            print(
                f"bench: {label}: ours {o['wall']:.1f}s ({o['failures']} failed, {o['state']}), raw {w['wall']:.2f}s;"
                f" ours cpu " + ", ".join(f"{k} {v:.2f}" for k, v in o["cpu"].items())
                + f"; {o['api']['requests']} API requests, by status {o['api']['by_status']}, failed "
                f"{o['api']['failed']}, Prefect client back-off {o['api']['prefect_client_backoff_s']} s, log "
                f"lines {o['api']['log_lines']}",
                flush=True,
            )  # fmt: skip

        def checkpoint(**partial: Any) -> None:
            """What is measured so far, in --save's file (a later failure does not lose it)."""
            if args.save:
                saved = {"partial": True, "solo": dict(solo), "sites": args.sites, "small": args.small, **partial}
                Path(args.save).write_text(json.dumps(saved, indent=1))

        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            sizes = [args.small, args.sites] if r % 2 == 0 else [args.sites, args.small]
            measured: dict[str, Any] = {}
            for n in sizes:
                if r % 2 == 0:
                    o, w = ours(n), raw(n, parallel)
                else:
                    w, o = raw(n, parallel), ours(n)
                measured[str(n)] = {"ours": o, "raw": w}
                show(f"round {r + 1}, {n} sites", o, w)
            rounds.append(measured)
            checkpoint(rounds=rounds)
        last_full = next(r[str(args.sites)]["ours"]["flow_run"] for r in reversed(rounds))
        profile = flow_profile(api, last_full, parallel)
        print(f"bench: profile of the last {args.sites}-site run: {json.dumps(profile)}", flush=True)
        # diagnostics, on the smaller set: other fan-out widths (backup-all's `parallel`; the db slots stay 2),
        # and Prefect's flow-run heartbeats off in this process (every flow run's end waits for its heartbeat
        # thread's 1 s sleep)
        diagnostics: list[dict[str, Any]] = []
        for width in args.widths:
            diagnostics.append({"label": f"parallel {width}", "ours": ours(args.small, width)})
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            diagnostics.append({"label": "flow-run heartbeats off", "ours": ours(args.small)})
        for d in diagnostics:
            show(f"{d['label']}, {args.small} sites", d["ours"], d.get("raw") or {"wall": float("nan")})
            d["profile"] = flow_profile(api, d["ours"]["flow_run"], parallel)
            print(f"bench: profile: {json.dumps(d['profile'])}", flush=True)
        with contextlib.suppress(Exception):  # the archives go with the web server's dir anyway
            reset()
    return {
        "sites": args.sites,
        "small": args.small,
        "parallel": parallel,
        "rounds": rounds,
        "diagnostics": diagnostics,
        "warmup": warmup,
        "solo": dict(solo),
        "profile": profile,
        "site_kb": site_kb,
        "dump_bytes": dump_bytes,
        "tables": tables,
        "log_samples": counter.samples,
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "cpus": os.cpu_count(),
    }


def raw_one(db: str, site_dir: Any, out: Any, quote: bool = True) -> str:
    """One site by hand: the dump gzipped, the site dir tarred with gzip (as our archive holds both)."""
    q = shlex.quote if quote else str
    return (
        f"mysqldump --single-transaction --quick --hex-blob {q(str(db))} | gzip > {q(str(out))}.sql.gz && "
        f"tar -czf {q(str(out))}.tar.gz -C {q(str(site_dir))} ."
    )


# ---------------------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------------------
NOTES = """\
Setup: one verified server (the real MariaDB, a private nginx + php-fpm, the drush stand-in; `db_task_limit`
at its default, 2: each dump and archive holds one of the 2 slots of the `db-<server>` global concurrency
limit, and backup-all keeps twice that many backup-site subflows under way) on a private Prefect server
(`aegir server start`, on a fresh database of the machine's PostgreSQL with --postgres, else SQLite), and two
verified sample `d7` platforms. One site installed for real (install-site); the others are copies of it
made outside the product (site dir by `cp -a`, its uri in settings.php; a database per copy from the
template's dump; a user per copy with its own password and grant hosts; the credentials file as deploy writes
it; the site block saved installed). The smaller run is the sites of one platform
(`backup_all(ignore_window=True, platform=A)`), the larger every site (`backup_all(ignore_window=True)`), in
this process. Before every run each site's `backups` list is cleared and its archives deleted, so every site
is due. Raw: for each site `mysqldump --single-transaction --quick --hex-blob DB | gzip > f.sql.gz` and
`tar -czf f.tar.gz -C <site dir> .` (no fsync, no checksum, no record), run by `xargs -P 2` over the same
sites (the same parallelism). "Ideal from one site" is N × the median wall time of one backup-site flow run
alone / 2."""


def _med(rounds: list[dict[str, Any]], n: int, side: str, key: str = "wall") -> float:
    return median([r[str(n)][side][key] for r in rounds if str(n) in r])


def _cpu(o: dict[str, Any]) -> float:
    """CPU seconds of our side of a run: this process (engine, flows), its children, the Prefect server, MariaDB."""
    return sum(o["cpu"].get(k, 0.0) for k in CPU_PARTS)


def quarters(seconds: list[float]) -> list[float]:
    """The median of each quarter of a list (a run's per-site times in the order the sites finished)."""
    q = max(1, len(seconds) // 4)
    return [median(seconds[i * q : (i + 1) * q]) for i in range(4)]


def _server_per_site(rounds: list[dict[str, Any]], n: int) -> float:
    return median([r[str(n)]["ours"]["cpu"]["server"] / n for r in rounds])


def _cpu_per_site(rounds: list[dict[str, Any]], n: int) -> float:
    return median([_cpu(r[str(n)]["ours"]) / n for r in rounds])


def _who(failed: str) -> str:
    """``"503 PrefectHttpxAsyncClient POST /task_runs/"`` → ``"`POST /task_runs/` (Prefect's client)"``."""
    _, client, endpoint = failed.split(" ", 2)
    who = "the block store" if client == "Client" else "Prefect's client"
    return f"`{endpoint}` ({who})"


def _busy(o: dict[str, Any]) -> str:
    """The 429/502/503 answers of a run (the SQLite-backed server busy) and Prefect's client's back-off."""
    busy = sum(v for k, v in o["api"]["by_status"].items() if k in ("429", "502", "503"))
    return f"{busy} ({o['api']['prefect_client_backoff_s']:.0f} s)"


def where_time_goes(results: dict[str, Any]) -> str:
    p, n, slots = results["profile"], results["sites"], results["parallel"]
    tasks, solo = p["tasks"], results["solo"]
    last = [r[str(n)]["ours"] for r in results["rounds"]][-1]
    cpu, api_use, width = last["cpu"], last["api"], last.get("width", slots)
    top = sorted(api_use["by_endpoint"].items(), key=lambda kv: -kv[1])[:6]
    busy = {k: v for k, v in api_use["failed"].items() if k.split()[0] in ("429", "502", "503")}
    seconds = sorted(last["seconds"])
    text = (
        f"In the last {n}-site run (task-run times from the Prefect API), a site took a median "
        f"{p['site_task']:.2f} s in backup-all's site-task: {p['subflow']:.2f} s the backup-site subflow run and "
        f"{p['site_task_outside_subflow']:.2f} s creating and finishing that subflow run in the parent. Inside "
        f"the subflow the task runs take {p['in_tasks']:.2f} s (load-site {tasks.get('load-site', 0):.2f}, "
        f"backup-archive {tasks.get('backup-archive', 0):.2f} — waiting for a db slot, then the dump and the "
        f"archive —, record-backup {tasks.get('record-backup', 0):.2f}); before the first task run (the site "
        f"lock, the journal) {p['before_tasks']:.2f} s, between the task runs {p['between_tasks']:.2f} s, after "
        f"the last one {p['after_tasks']:.2f} s. The sites' times: a tenth ≤ {seconds[len(seconds) // 10]:.2f} "
        f"s, the median {median(seconds):.2f} s, the slowest {seconds[-1]:.1f} s. The data path alone, outside "
        f"Prefect (`create_archive` with our dump, as backup-archive calls it), takes "
        f"{median(solo['data']):.3f} s a site and the raw pipeline {median(solo['raw']):.3f} s; the rest of a "
        f"site's time is Prefect's work for its runs. {width} site backups were under way at once "
        f"({p['concurrency']:.2f} on average over the fan-out of {p['fan_out']:.0f} s); the {slots} db slots were "
        f"held {p['slot_busy']:.0%} of it (Σ backup-archive / ({slots} × fan-out), waits included). "
        f"What bounds the run is the Prefect server: it answers from one Python process (one CPU at most), and "
        f"it used {cpu['server']:.0f} CPU s in that {last['wall']:.0f} s run ({cpu['server'] / last['wall']:.0%} "
        f"of one CPU; {cpu['server'] / n:.2f} CPU s a site), against {cpu['self'] / n:.2f} CPU s a site in this "
        f"process (Prefect's engine and our flows) and {cpu['children'] / n:.3f} in mysqldump, gzip and tar; "
        f"the machine was busy {cpu['busy_share']:.0%} of its {results['cpus']} CPUs. This process sent "
        f"{api_use['requests']} API requests ({api_use['requests'] / n:.0f} a site; one backup-site flow run "
        f"alone: {median(solo.get('requests', [float('nan')])):.0f}); most: "
        + ", ".join(f"`{k}` {v}" for k, v in top)
        + ". What each costs the server is measured on its own in the next section (`bench/api_costs.py`): a "
        "context read ~30 ms of its CPU, a write ~40 ms, a task run ~45 ms, a flow run ~150–260 ms. Every flow "
        "run also ends by "
        "joining Prefect's heartbeat thread, which sleeps in 1 s steps, so a flow run's length is rounded up to "
        f"whole seconds: an empty flow run takes {median(solo['empty_flow']):.2f} s, "
        f"{median(solo['empty_flow_no_heartbeat']):.2f} s with heartbeats off; a backup-site flow run alone "
        f"{median(solo['flow']):.2f} s, {median(solo['flow_no_heartbeat']):.2f} s with heartbeats off."
    )
    if busy:
        text += (
            f' The server answered "busy" {sum(busy.values())} times (503: SQLite locked; '
            + ", ".join(f"{v}× {_who(k)}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1])[:4])
            + f"), Prefect's client sleeping {api_use['prefect_client_backoff_s']:.0f} s in its back-offs."
        )
    lines = api_use.get("log_lines", {})
    if lines.get("waiting:"):
        text += f' {lines["waiting:"]} site-lock waits were logged ("waiting: …").'
    return text


def diagnostic_row(d: dict[str, Any], small: int, base: float) -> str:
    o, prof = d["ours"], d["profile"]
    raw = f"{d['raw']['wall']:.2f}" if d.get("raw") else ""
    return (
        f"| {d['label']} | {small} | {o.get('width', o.get('parallel'))} | {o['wall']:.1f} ({o['wall'] / base:.2f}×) | "
        f"{raw} | "
        f"{prof['site_task']:.2f} | {prof['subflow']:.2f} | {prof['concurrency']:.2f} | {_busy(o)} | "
        f"{o['cpu']['busy_share']:.0%} | {o['failures']} |"
    )


def write_report(results: dict[str, Any]) -> None:
    rounds, n, small, par = results["rounds"], results["sites"], results["small"], results["parallel"]
    solo = median(results["solo"]["flow"])
    rows = []
    for size in (small, n):
        ours, raw = _med(rounds, size, "ours"), _med(rounds, size, "raw")
        ideal = size * solo / par
        secs = median([s for r in rounds for s in r[str(size)]["ours"]["seconds"]])
        fails = sum(r[str(size)]["ours"]["failures"] for r in rounds)
        rows.append(
            f"| {size} | {ours:.1f} | {raw:.2f} | {ours / raw:.0f}× | {ideal:.1f} | {ours / ideal:.2f}× | "
            f"{ours / size:.3f} | {raw / size:.4f} | {secs:.2f} | {_cpu_per_site(rounds, size):.2f} | "
            f"{_server_per_site(rounds, size):.2f} | {fails} |"
        )
    per_round = [
        f"| {i + 1} | {size} | {r[str(size)]['ours']['wall']:.1f} | {r[str(size)]['raw']['wall']:.2f} | "
        f"{r[str(size)]['ours']['wall'] / size:.3f} | {_busy(r[str(size)]['ours'])} | "
        f"{r[str(size)]['ours']['cpu']['busy_share']:.0%} | {r[str(size)]['ours']['failures']} |"
        for i, r in enumerate(rounds)
        for size in (small, n)
    ]
    base = _med(rounds, small, "ours")
    diagnostics = [diagnostic_row(d, small, base) for d in results.get("diagnostics", [])]
    growth = _med(rounds, n, "ours") / _med(rounds, small, "ours")
    cpu_small, cpu_full = _cpu_per_site(rounds, small), _cpu_per_site(rounds, n)
    growth_rounds = [r[str(n)]["ours"]["wall"] / r[str(small)]["ours"]["wall"] for r in rounds]
    raw_growth = _med(rounds, n, "raw") / _med(rounds, small, "raw")
    linear = n / small
    verdict = "linear" if growth <= linear * 1.1 else "worse than linear"
    sizes = [b for r in rounds for b in r[str(n)]["ours"]["sizes"]]
    load = results.get("load", [])
    conditions = f"1-min load average {load[0]:.2f} at the start, {load[-1]:.2f} at the end" if load else ""
    if results.get("note"):
        conditions += ("; " if conditions else "") + results["note"]
    solo_data = results["solo"]
    p = results["profile"]
    width = rounds[-1][str(n)]["ours"].get("width", par)
    server_small, server_full = _server_per_site(rounds, small), _server_per_site(rounds, n)
    lines = [
        "## backup-all over many small sites (`bench/backup_all.py`)",
        "",
        f"{n} small Drupal 7 sites on one server (each: {results['tables']} tables, a "
        f"{results['dump_bytes'] / 1024:.0f} KiB dump, a {results['site_kb']} KiB site dir; our archive "
        f"{median(sizes) / 1024:.1f} KiB), backed up by backup-all with its defaults: `db_task_limit` {par} (dumps "
        f"at once) and `parallel` {width} (site backups under way at once); the Prefect server on "
        f"{results.get('database', 'SQLite')}; {small} of them (one platform) for the smaller run. Median of "
        f"{len(rounds)} rounds"
        + (
            f" after an untimed warm-up run over the {small} ({results['warmup']:.1f} s)"
            if results.get("warmup")
            else ""
        )
        + ", "
        f"the order of the two sizes and of ours and raw flipped every round; {results['date']}, "
        f"{results['cpus']} CPUs" + (f" ({conditions})" if conditions else "") + ". One backup-site flow run "
        f"alone: {solo:.2f} s (median of {len(solo_data['flow'])}, each a different site).",
        "",
        f"| sites | ours wall (s) | raw `xargs -P {par}` (s) | ours / raw | ideal from one site, N × {solo:.2f} s"
        f" / {par} (s) | ours / ideal | ours per site (s) | raw per site (s) | backup-site per site, median "
        "`seconds` (s) | CPU s per site (ours: engine, children, Prefect server, MariaDB) | of which the Prefect "
        "server | failures |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Growth {small} → {n} sites: ours {growth:.2f}× the wall time for {linear:.1f}× the sites ({verdict} "
        "by wall time; per round " + ", ".join(f"{g:.2f}×" for g in growth_rounds) + "), "
        f"{_med(rounds, small, 'ours') / small:.3f} s → {_med(rounds, n, 'ours') / n:.3f} s a site; raw "
        f"{raw_growth:.2f}×; our CPU seconds "
        f"{cpu_small:.2f} → {cpu_full:.2f} a site ({cpu_full / cpu_small:.2f}× per site; CPU time is less "
        "sensitive than wall time to what else runs on the machine), the Prefect server's "
        f"{server_small:.2f} → {server_full:.2f} ({server_full / server_small:.2f}×). In the last run, on average "
        f"{p['subflow_sum'] / p['fan_out']:.2f} backup-site subflow runs were in progress at once (of {width} "
        "under way): the rest of the time went to creating and finishing them. Nothing in a run slows its later "
        f"sites: a site's median time by quarter of each {n}-site run (in the order they finished) was "
        + "; ".join(", ".join(f"{q:.2f}" for q in quarters(r[str(n)]["ours"]["seconds"])) + " s" for r in rounds)
        + ".",
        "",
        "| round | sites | ours wall (s) | raw wall (s) | ours per site (s) | busy answers (Prefect client "
        "back-off) | machine busy | failures |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *per_round,
        "",
        f"Diagnostic runs, once each on the {small}-site set, against its median above ({base:.1f} s): other "
        f"fan-out widths (backup-all's `parallel`; the db slots stay {par}), and Prefect's flow-run heartbeats "
        "off in this process (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY` unset; they detect crashed runs, so this is a "
        "measurement, not a setting we recommend):",
        "",
        "| run | sites | at once | ours wall (s) | raw (s) | site-task median (s) | subflow median (s) | "
        "busy at once (avg) | busy answers (back-off) | machine busy | failures |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *diagnostics,
        "",
        *NOTES.splitlines(),
        "",
        "Where the time goes: " + where_time_goes(results),
    ]
    write_section("backup-all", lines)


if __name__ == "__main__":
    main()
