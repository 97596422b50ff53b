"""Migrate downtime benchmark: our migrate-site flow vs the raw tools by hand (not a test).

Starts a private Prefect server (temp PREFECT_HOME, free port) and a private nginx + php-fpm (the classes of
tests/support/webservers.py), registers a verified server on them (the real MariaDB, the drush stand-in of
tests/fixtures/drupal), installs a site on a sample ``d7-older`` platform and grows its database to ~--db-mb
of extra rows (half compressible text, half random bytes). Then, each round, alternating (the order flips
every round), median of N rounds:

* ours: the migrate-site flow, in-process, to a fresh verified ``d7-newer`` copy; downtime = from the start of
  the ``maintenance-mode`` (on) task run to the end of the ``target-maintenance`` (off) task run, read from
  the Prefect API; also the whole flow's wall time; once per backup compression (--compressions)
* raw, by hand: ``drush vset maintenance_mode 1`` on the source, ``CREATE DATABASE`` (+ a GRANT to the site's
  user), ``mysqldump --single-transaction --quick DB | mysql NEWDB``, ``cp -a`` of the site dir into another
  ``d7-newer`` copy, the new database name into its credentials file, ``drush updatedb -y`` and
  ``drush vset maintenance_mode 0`` on the copy

Before every run (ours and raw) the site's schema versions are set back to ``d7-older``'s, so every run is
the same upgrade (the same pending updates) onto the same kind of platform: a migrate is only ever an upgrade
or a no-change (the pre-flight refuses schema downgrades), so the site cannot go back and forth.

Writes the section between ``<!-- migrate:start -->`` and ``<!-- migrate:end -->`` of docs/benchmarks.md.

    .venv/bin/python bench/migrate.py [--rounds 3] [--db-mb 100] [--compressions gzip,zstd]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402 (the repo root is on the path only now)

AEGIR = str(Path(sys.executable).with_name("aegir"))
RAW_DB = "aegir_bench_migrate_raw"
LOREM = (
    b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
    b"dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip. "
)
ON, OFF = "maintenance-mode", "target-maintenance"


def sh(script: str) -> None:
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"raw step failed (exit {done.returncode}): {done.stderr[-2000:]}")


def root_db() -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)


def grow_database(db: str, mb: int) -> None:
    """~mb MB of extra rows in the site's database: half text (compressible), half random bytes."""
    with root_db() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{db}`.bench_text (id INT PRIMARY KEY, title VARCHAR(255), body MEDIUMTEXT)")
        cur.execute(f"CREATE TABLE `{db}`.bench_blob (id INT PRIMARY KEY, data LONGBLOB)")
        rows = mb * 1024 * 1024 // 2 // 1024
        for start in range(0, rows, 1000):
            ids = range(start, min(start + 1000, rows))
            text = [(i, f"Node {i}", (LOREM * 8)[:800] + os.urandom(112).hex().encode()) for i in ids]
            cur.executemany(f"INSERT INTO `{db}`.bench_text VALUES (%s, %s, %s)", text)
            cur.executemany(f"INSERT INTO `{db}`.bench_blob VALUES (%s, %s)", [(i, os.urandom(1024)) for i in ids])


def reset_schema(db: str, versions: dict[str, int]) -> None:
    """The site's modules back at ``d7-older``'s schema versions: the same updates pend before every run."""
    with root_db() as conn, conn.cursor() as cur:
        for module, version in versions.items():
            cur.execute(
                f"UPDATE `{db}`.system SET schema_version = %s WHERE name = %s AND type = 'module'"
                " AND schema_version > %s",
                (version, module, version),
            )
        cur.execute(f"SELECT schema_version FROM `{db}`.system WHERE name = 'system'")
        assert cur.fetchone()[0] == versions["system"]


def schema_of(db: str, module: str = "system") -> int:
    with root_db() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT schema_version FROM `{db}`.system WHERE name = %s", (module,))
        return int(cur.fetchone()[0])


def db_size_mb(db: str) -> float:
    with root_db() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'")
        for (table,) in cur.fetchall():
            cur.execute(f"ANALYZE TABLE `{db}`.`{table}`")
            cur.fetchall()
        cur.execute(
            "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,)
        )
        return float(cur.fetchone()[0] or 0) / 2**20


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def task_runs(api: str, flow_run_id: str) -> list[dict[str, Any]]:
    """The flow run's task runs, all finished (states reach the API asynchronously: wait for them)."""
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 200}
    deadline = time.monotonic() + 60
    while True:
        runs = httpx.post(f"{api}/task_runs/filter", json=body, timeout=10).raise_for_status().json()
        done = all(r["end_time"] and r["start_time"] for r in runs)
        if (done and any(r["name"].rsplit("-", 1)[0] == OFF for r in runs)) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def downtime(runs: list[dict[str, Any]]) -> tuple[float, dict[str, float]]:
    """Maintenance on (start of the first maintenance-mode run) → off (end of target-maintenance), and the
    duration of every task run in between, by task name (the rest: between the task runs)."""
    named = [(r["name"].rsplit("-", 1)[0], when(r["start_time"]), when(r["end_time"])) for r in runs]
    start = min(s for n, s, _ in named if n == ON)
    end = max(e for n, _, e in named if n == OFF)
    tasks: dict[str, float] = defaultdict(float)
    for name, s, e in named:
        if s >= start and e <= end:
            tasks[name] += (e - s).total_seconds()
    total = (end - start).total_seconds()
    tasks["(between task runs)"] = total - sum(tasks.values())
    return total, dict(tasks)


def profile_pieces(site: Any, server: Any, compressions: list[str]) -> tuple[dict[str, float], dict[str, int]]:
    """The data path of our downtime, piece by piece, on the live site's database and its latest pre-migration
    archive of each compression (the same work backup-archive and deploy-target do, outside Prefect)."""
    from aegir.archive import extract_archive, verify_archive
    from aegir.services.dump import dump_database, import_database
    from aegir.transport.local import LocalTransport

    master, db, pieces = LocalTransport("localhost"), site.db_name, {}
    scratch = Path(tempfile.mkdtemp(prefix="aegir-bench-migrate-pieces-"))
    dump = "mysqldump --single-transaction --quick"
    try:
        for label, command in (
            ("raw `mysqldump \\| mysql NEWDB`", f"{dump} {db} | mysql {RAW_DB}"),
            ("raw `mysqldump` > /dev/null", f"{dump} {db} > /dev/null"),
            ("raw `mysqldump --hex-blob` > /dev/null", f"{dump} --hex-blob {db} > /dev/null"),
        ):
            sh(f"mysql -e 'CREATE DATABASE {RAW_DB}'")
            start = time.perf_counter()
            sh(command)
            pieces[label] = time.perf_counter() - start
            sh(f"mysql -e 'DROP DATABASE {RAW_DB}'")
        with open(os.devnull, "wb") as out:
            start = time.perf_counter()
            size = dump_database(master, server, db, out)
            pieces["our dump (`--hex-blob`, DEFINERs stripped) > /dev/null"] = time.perf_counter() - start
        for c in compressions:
            backup = next(b for b in site.backups if b.get("compression") == c)
            start = time.perf_counter()
            verify_archive(backup["file"], expected_sha256=backup["sha256"])
            pieces[f"{c}: verify the archive"] = verify = time.perf_counter() - start
            start = time.perf_counter()
            with open(scratch / "dump.sql", "wb") as out:
                extract_archive(backup["file"], site_transport=master, site_path=str(scratch / c), dump_out=out,
                                expected_sha256=backup["sha256"])  # fmt: skip
            pieces[f"{c}: extract (site dir + dump file), after its own verify"] = time.perf_counter() - start - verify
            sh(f"mysql -e 'CREATE DATABASE {RAW_DB}'")
            start = time.perf_counter()
            with open(scratch / "dump.sql", "rb") as src:
                import_database(master, server, RAW_DB, src)
            pieces[f"{c}: import the dump file"] = time.perf_counter() - start
            sh(f"mysql -e 'DROP DATABASE {RAW_DB}'")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        sh(f"mysql -e 'DROP DATABASE IF EXISTS {RAW_DB}'")
    return pieces, {"dump": size, **{c: next(b["size"] for b in site.backups if b.get("compression") == c)
                                     for c in compressions}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db-mb", type=int, default=100)
    parser.add_argument("--compressions", default="gzip,zstd", help="backup compressions ours runs with (gzip first)")
    parser.add_argument("--save", help="also write the measurements to this JSON file")
    parser.add_argument("--load", help="only write docs/benchmarks.md from measurements saved with --save")
    args = parser.parse_args()
    if args.load:
        write_report(json.loads(Path(args.load).read_text()))
        return

    home = Path(tempfile.mkdtemp(prefix="aegir-bench-migrate-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home / "prefect"), AEGIR_ROOT=str(home / "aegir"))
    subprocess.run([AEGIR, "server", "start", "--port", str(port)], env=env, check=True, capture_output=True)
    api = f"http://127.0.0.1:{port}/api"
    os.environ.update(PREFECT_HOME=env["PREFECT_HOME"], PREFECT_API_URL=api)
    try:
        results = run(api, args)
    finally:
        with contextlib.suppress(Exception):
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)  # the flow runs' last logs, before the server stops
        subprocess.run([AEGIR, "server", "stop"], env=env, capture_output=True)
        with root_db() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {RAW_DB}")
        shutil.rmtree(home, ignore_errors=True)
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1))
    write_report(results)


def run(api: str, args: argparse.Namespace) -> dict[str, Any]:
    from aegir import registry
    from aegir.drupal.settings import CREDENTIALS_FILE
    from blocks.store import BlockStore
    from flows.install_site import install_site
    from flows.migrate_site import migrate_site
    from tests.fixtures.drupal import make_platforms
    from tests.integration.sites import DRUSH, make_hosting
    from tests.support.webservers import run_nginx, run_php_fpm

    compressions = args.compressions.split(",")
    older = make_platforms.spec("d7-older").schema_versions()
    newer = make_platforms.spec("d7-newer").schema_versions()["system"]
    with contextlib.ExitStack() as stack:
        fpm = stack.enter_context(run_php_fpm())
        web = stack.enter_context(run_nginx(fpm.socket))
        admin = {"db_service_type": "mysql", "db_host": "127.0.0.1", "db_port": 3306, "db_user": "root"}
        store = BlockStore.from_environment()
        hosting = stack.enter_context(contextlib.contextmanager(make_hosting)(store, web, admin, "@server_bench"))
        stack.callback(shutil.rmtree, hosting.platforms_dir, ignore_errors=True)
        name = hosting.site(hosting.verified_platform("d7-older"))
        uri, url = name[1:], f"http://{name[1:]}:{web.port}"
        state = install_site(site=name, return_state=True)
        assert state.is_completed(), state.message
        print(f"bench: growing {hosting.load_site(name).db_name} by {args.db_mb} MB of rows …", flush=True)
        grow_database(hosting.load_site(name).db_name or "", args.db_mb)
        size = db_size_mb(hosting.load_site(name).db_name or "")
        raw_root = make_platforms.build("d7-newer", hosting.platforms_dir / "raw-target")
        drush = f"{shlex.quote(DRUSH)} --nocolor"

        def ours(compression: str) -> dict[str, Any]:
            registry.save(store, hosting.server, None, {"backup_compression": compression})
            target = hosting.verified_platform("d7-newer")
            reset_schema(hosting.load_site(name).db_name or "", older)
            start = time.perf_counter()
            state = migrate_site(site=name, platform=target, return_state=True)
            wall = time.perf_counter() - start
            assert state.is_completed(), state.message
            site = hosting.load_site(name)
            assert site.platform == target and schema_of(site.db_name or "") == newer
            web.wait_for(uri, status=200, text=uri)
            total, tasks = downtime(task_runs(api, str(state.state_details.flow_run_id)))
            return {"downtime": total, "wall": wall, "tasks": tasks}

        def raw() -> dict[str, Any]:
            site = hosting.load_site(name)
            src = registry.load_platform(store, site.platform).docroot
            db, user = site.db_name or "", site.db_user or ""
            reset_schema(db, older)
            with root_db() as conn, conn.cursor() as cur:
                cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (user,))
                grants = "".join(f"GRANT ALL ON {RAW_DB}.* TO '{user}'@'{h}'; " for (h,) in cur.fetchall())
            creds = raw_root / "sites" / uri / CREDENTIALS_FILE
            script = f"""
                {drush} -r {src} -l {url} vset maintenance_mode 1
                mysql -e "CREATE DATABASE {RAW_DB}; {grants}"
                mysqldump --single-transaction --quick {db} | mysql {RAW_DB}
                cp -a {src}/sites/{uri} {raw_root}/sites/{uri}
                sed -i "s/\\['db_name'\\] = '{db}'/['db_name'] = '{RAW_DB}'/" {creds}
                {drush} -r {raw_root} -l {url} updatedb -y
                {drush} -r {raw_root} -l {url} vset maintenance_mode 0
            """
            start = time.perf_counter()
            sh(script)
            total = time.perf_counter() - start
            assert schema_of(RAW_DB) == newer and schema_of(db) == older["system"]  # updatedb ran on the copy
            # undo, untimed: the live site out of maintenance, the copy gone
            sh(f"{drush} -r {src} -l {url} vset maintenance_mode 0; mysql -e 'DROP DATABASE {RAW_DB}'")
            shutil.rmtree(raw_root / "sites" / uri)
            return {"downtime": total, "wall": total}

        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            order = ["raw", *compressions] if r % 2 else [*compressions, "raw"]
            measured = {what: raw() if what == "raw" else ours(what) for what in order}
            rounds.append(measured)
            print(
                f"bench: round {r + 1}: "
                + ", ".join(f"{k} downtime {v['downtime']:.2f}s wall {v['wall']:.2f}s" for k, v in measured.items()),
                flush=True,
            )
            for k, v in measured.items():
                if "tasks" in v:
                    print(f"  {k}: " + ", ".join(f"{t} {d:.2f}" for t, d in v["tasks"].items()), flush=True)
        print("bench: timing the pieces of backup-archive and deploy-target on their own …", flush=True)
        pieces, sizes = profile_pieces(
            hosting.load_site(name), registry.load_server(store, hosting.server), compressions
        )
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in pieces.items()), flush=True)
    return {
        "pieces": pieces,
        "sizes": sizes,
        "rounds": rounds,
        "compressions": compressions,
        "db_mb": args.db_mb,
        "db_size_mb": size,
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "cpus": os.cpu_count(),
    }


NOTES = """\
Downtime is what a visitor sees: from the start of the maintenance-mode (on) task run to the end of the
target-maintenance (off) task run of the migrate-site flow (Prefect API task-run times). Raw is the minimum
a careful admin types: no backup archive, no new database user, no vhost, no checks. Ours, during the same
window, also writes the pinned pre-migration backup archive (dump with `--hex-blob`, so the random half
travels as hex, compressed, fsynced, checksummed), then verifies and decompresses that archive to import it
(the same deploy primitive as restore), creates a new database user, writes settings.php, clears the caches
and writes and reloads the target vhost (the switch); each step is a Prefect task run (state round-trips to
the API). The HTTP probe and the removal of the old site come after maintenance off (in the wall time only).
Every run is the same upgrade: before each one the site's schema versions are set back to `d7-older`'s and
it goes to a fresh `d7-newer` copy (a migrate can only go up or sideways, the pre-flight refuses schema
downgrades); raw also needs a `GRANT` and the new database name in the copied credentials file, or updatedb
would hit the old database."""


FLOOR = """\
Raw is one streamed pass (`mysqldump | mysql`, import-bound). Ours moves the data three times in series inside
the downtime — dump + compress into the archive; verify (decompress) the archive; decompress it again into a
dump file and import that file — so backup-archive + deploy-target alone set the floor of the ratio, whatever
Prefect costs; the other task runs and the gaps between them are a fixed cost that weighs most on small
sites."""


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def profile_text(results: dict[str, Any]) -> str:
    """Where the downtime goes, in words, from the medians (one sentence per compression)."""
    rounds, raw = results["rounds"], median([r["raw"]["downtime"] for r in results["rounds"]])
    out = []
    for c in results["compressions"]:
        task = {t: median([r[c]["tasks"].get(t, 0.0) for r in rounds]) for r in rounds for t in r[c]["tasks"]}
        data = task.get("backup-archive", 0.0) + task.get("deploy-target", 0.0)
        between = task.pop("(between task runs)", 0.0)
        rest = sum(v for k, v in task.items() if k not in ("backup-archive", "deploy-target"))
        out.append(
            f"{c}: backup-archive {task.get('backup-archive', 0.0):.1f} s + deploy-target "
            f"{task.get('deploy-target', 0.0):.1f} s = {data:.1f} s ({data / raw:.1f}× the whole raw downtime on "
            f"their own), the {len(task) - 2} other task runs {rest:.1f} s, Prefect between task runs {between:.1f} s."
        )
    return " ".join(out)


def write_report(results: dict[str, Any]) -> None:
    rounds, compressions = results["rounds"], results["compressions"]
    raw = [r["raw"]["downtime"] for r in rounds]
    rows = []
    for c in compressions:
        down, wall = [r[c]["downtime"] for r in rounds], [r[c]["wall"] for r in rounds]
        default = " (default)" if c == "gzip" else ""
        rows.append((f"downtime, {c} archive{default}: migrate-site vs raw by hand", median(down), median(raw)))
        rows.append((f"migrate-site flow wall time, {c} archive, vs raw downtime", median(wall), median(raw)))
    per_round = [
        f"| {i + 1} | {r['raw']['downtime']:.2f} | "
        + " | ".join(f"{r[c]['downtime']:.2f} ({r[c]['downtime'] / r['raw']['downtime']:.2f}×)" for c in compressions)
        + " |"
        for i, r in enumerate(rounds)
    ]
    names = list(dict.fromkeys(t for r in rounds for c in compressions for t in r[c]["tasks"]))
    breakdown = [
        f"| {t} | " + " | ".join(f"{median([r[c]['tasks'].get(t, 0.0) for r in rounds]):.2f}" for c in compressions)
        for t in names
    ]
    sizes = results.get("sizes", {})
    first = compressions[0]
    ratio = median([r[first]["downtime"] for r in rounds]) / median(raw)
    verdict = "meets" if ratio <= 1.2 else "misses"
    lines = [
        "## Migrate downtime (`bench/migrate.py`)",
        "",
        f"A Drupal 7 site (drush stand-in, real MariaDB, nginx + php-fpm) with {results['db_mb']} MB of extra "
        f"database rows (half text, half random bytes; {results['db_size_mb']:.0f} MiB in InnoDB, our dump "
        f"{sizes.get('dump', 0) / 2**20:.0f} MiB, archives "
        + ", ".join(f"{c} {sizes.get(c, 0) / 2**20:.0f} MiB" for c in compressions)
        + ") migrated "
        f"`d7-older` schema → a fresh `d7-newer` platform; median of {len(rounds)} rounds, ours and raw "
        f"alternating (order flipped every round); {results['date']}, {results['cpus']} CPUs. Target (issue #5): "
        f"downtime ≤ 1.2× raw — the default ({first}) {verdict} it at {ratio:.2f}×.",
        "",
        "| what | ours (s) | raw (s) | ours / raw |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {o:.2f} | {r:.2f} | {o / r:.2f}× |" for name, o, r in rows),
        "",
        "Downtime per round (s):",
        "",
        "| round | raw | " + " | ".join(f"ours, {c}" for c in compressions) + " |",
        "|---:|---:|" + "---:|" * len(compressions),
        *per_round,
        "",
        "Where our downtime goes (median s per task run between maintenance on and off):",
        "",
        "| task | " + " | ".join(compressions) + " |",
        "|---|" + "---:|" * len(compressions),
        *(line + " |" for line in breakdown),
        "",
        "The same data path outside Prefect, piece by piece (once, after the rounds; s):",
        "",
        "| piece | s |",
        "|---|---:|",
        *(f"| {k} | {v:.2f} |" for k, v in results.get("pieces", {}).items()),
        "",
        *NOTES.splitlines(),
        "",
        "Where our downtime goes (medians): " + profile_text(results) + " " + FLOOR,
    ]
    write_section("migrate", lines)


if __name__ == "__main__":
    main()
