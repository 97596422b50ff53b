"""Migrate downtime benchmark: our migrate-site flow vs the raw tools by hand (not a test).

Starts a private Prefect server (temp PREFECT_HOME, free port) and a private nginx + php-fpm (the classes of
tests/support/webservers.py), registers a verified server on them (the real MariaDB, the drush stand-in of
tests/fixtures/drupal), installs a site on a sample ``d7-older`` platform and grows its database to ~--db-mb
of extra rows (half compressible text, half random bytes). Then, each round, alternating (the order flips
every round), median of N rounds:

* ours: the migrate-site flow, in-process, to a fresh verified ``d7-newer`` copy. The flow plans the target (a
  free database name) and takes its pinned backup archive first, with the site still online, then turns
  maintenance mode on and copies the frozen site
  in one streamed pass (``deploy-target``: our dump piped into our import, ``tar | tar`` for the site dir).
  Downtime = from the start of the ``maintenance-mode`` (on) task run to the end of the ``target-maintenance``
  (off) task run, read from the Prefect API; also every task run's duration (before, inside and after the
  downtime) and the whole flow's wall time. The backup compression (--compressions, default gzip only) is
  outside the downtime now; other compressions only change the wall time.
* raw, by hand: ``drush vset maintenance_mode 1`` on the source, ``CREATE DATABASE`` (+ a GRANT to the site's
  user), ``mysqldump --single-transaction --quick DB | mysql NEWDB``, ``cp -a`` of the site dir into another
  ``d7-newer`` copy, the new database name into its credentials file, ``drush updatedb -y`` and
  ``drush vset maintenance_mode 0`` on the copy

Before every run (ours and raw) the site's schema versions are set back to ``d7-older``'s, so every run is
the same upgrade (the same pending updates) onto the same kind of platform: a migrate is only ever an upgrade
or a no-change (the pre-flight refuses schema downgrades), so the site cannot go back and forth.

After the rounds, the data path of the downtime is timed outside Prefect (median of --rounds each): raw
``mysqldump | mysql``, the same shell pipe with our client options (and with ``--no-autocommit`` added back,
the option our dumps dropped), and our ``dump_database`` → ``import_database`` through deploy-target's own
pipe; the site dir by ``cp -a`` and by our ``tar | tar``.

Writes the section between ``<!-- migrate:start -->`` and ``<!-- migrate:end -->`` of docs/benchmarks.md.

    .venv/bin/python bench/migrate.py [--rounds 3] [--db-mb 100] [--compressions gzip[,zstd]] [--note TEXT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import api_auth, root_db, sh, start_prefect, write_section  # noqa: E402 (the repo root is on the path only now)

AEGIR = str(Path(sys.executable).with_name("aegir"))
RAW_DB = "aegir_bench_migrate_raw"
LOREM = (
    b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
    b"dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip. "
)
ON, OFF = "maintenance-mode", "target-maintenance"


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
        runs = httpx.post(f"{api}/task_runs/filter", json=body, auth=api_auth(), timeout=10).raise_for_status().json()
        done = all(r["end_time"] and r["start_time"] for r in runs)
        if (done and any(r["name"].rsplit("-", 1)[0] == OFF for r in runs)) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def downtime(runs: list[dict[str, Any]]) -> tuple[float, dict[str, float], dict[str, str]]:
    """Maintenance on (start of the maintenance-mode run) → off (end of target-maintenance); the duration of
    every task run by task name, and its phase: before the downtime (site online), in it, or after it (the
    gaps between the task runs inside the downtime: "(between task runs)")."""
    named = sorted(
        ((r["name"].rsplit("-", 1)[0], when(r["start_time"]), when(r["end_time"])) for r in runs), key=lambda n: n[1]
    )
    start = min(s for n, s, _ in named if n == ON)
    end = max(e for n, _, e in named if n == OFF)
    tasks: dict[str, float] = defaultdict(float)
    phase: dict[str, str] = {}
    for name, s, e in named:
        tasks[name] += (e - s).total_seconds()
        phase[name] = "before" if e <= start else "after" if s >= end else "downtime" if s >= start else "overlap"
    for task in ("plan-target", "backup-archive"):
        assert phase.get(task) == "before", f"{task} is not before maintenance on: {phase}"
    total = (end - start).total_seconds()
    tasks[BETWEEN] = total - sum(v for k, v in tasks.items() if phase[k] == "downtime")
    phase[BETWEEN] = "downtime"
    return total, dict(tasks), phase


def profile_pieces(site: Any, server: Any, site_path: str, reps: int) -> tuple[dict[str, float], dict[str, int]]:
    """The data path of our downtime (deploy-target's copy of the frozen site), outside Prefect, median of
    ``reps`` each: raw ``mysqldump | mysql``; the same shell pipe with our client options, and with
    ``--no-autocommit`` added back (one commit per table, the option our dumps dropped); our dump_database →
    import_database through deploy-target's own pipe (``tasks.deploy._pipe``, as ``copy_live`` calls it);
    each dump alone into /dev/null; the site dir by ``cp -a`` and by our ``tar | tar``."""
    from aegir.services.dump import DUMP_OPTIONS, IMPORT_OPTIONS, dump_database, import_database
    from aegir.transport.local import LocalTransport
    from tasks.deploy import _pipe

    master, db = LocalTransport("localhost"), site.db_name or ""
    tcp = f"--protocol=tcp -h {server.db_address} -P {server.db_port} -u {server.db_user}"
    raw_dump = f"mysqldump --single-transaction --quick {db}"
    hex_dump = f"mysqldump --single-transaction --quick --hex-blob {db}"
    tcp_pipe = f"mysqldump {tcp} --single-transaction --quick {db} | mysql {tcp} {RAW_DB}"
    opts_pipe = f"mysqldump {tcp} {' '.join(DUMP_OPTIONS)} {db} | mysql {tcp} {' '.join(IMPORT_OPTIONS)} {RAW_DB}"
    assert "--no-autocommit" not in DUMP_OPTIONS, "PIECE_NOAC adds --no-autocommit back: relabel it"
    noac_pipe = opts_pipe.replace(" --quick ", " --quick --no-autocommit ", 1)
    scratch = Path(tempfile.mkdtemp(prefix="aegir-bench-migrate-pieces-"))

    def ours_copy() -> None:
        _pipe(
            lambda out: dump_database(master, server, db, out),
            lambda dump: import_database(master, server, RAW_DB, dump),
        )

    def ours_dump() -> None:
        with open(os.devnull, "wb") as out:
            dump_database(master, server, db, out)

    def ours_tar() -> None:
        (scratch / "ours").mkdir()
        _pipe(
            lambda out: master.run(["tar", "-C", site_path, "-cf", "-", "."], stdout=out),
            lambda tar: master.run(["tar", "-C", str(scratch / "ours"), "-xpf", "-"], stdin=tar),
        )

    into_db: dict[str, Any] = {
        PIECE_RAW: lambda: sh(f"{raw_dump} | mysql {RAW_DB}"),
        "raw, but `mysqldump --hex-blob` (unix socket)": lambda: sh(f"{hex_dump} | mysql {RAW_DB}"),
        "raw, but both clients over TCP": lambda: sh(tcp_pipe),
        PIECE_OPTS: lambda: sh(opts_pipe),
        PIECE_NOAC: lambda: sh(noac_pipe),
        PIECE_OURS: ours_copy,
    }
    alone: dict[str, Any] = {
        "raw `mysqldump` > /dev/null": lambda: sh(f"{raw_dump} > /dev/null"),
        "our dump (`--hex-blob`, DEFINERs stripped in Python) > /dev/null": ours_dump,
        "site dir: raw `cp -a`": lambda: sh(f"cp -a {site_path} {scratch / 'raw'}"),
        "site dir: our `tar -cf - \\| tar -xpf -` through the same pipe": ours_tar,
    }
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        for rep in range(reps):  # the database pieces in a rotated order: none always follows the same one
            turn = [*into_db][rep % len(into_db) :] + [*into_db][: rep % len(into_db)]
            for label, piece in {**{k: into_db[k] for k in turn}, **alone}.items():
                if label in into_db:
                    sh(f"mysql -e 'CREATE DATABASE {RAW_DB}'")
                start = time.perf_counter()
                piece()
                samples[label].append(time.perf_counter() - start)
                sh(f"mysql -e 'DROP DATABASE IF EXISTS {RAW_DB}'")
                for d in ("raw", "ours"):
                    shutil.rmtree(scratch / d, ignore_errors=True)
        with open(os.devnull, "wb") as out:
            ours_size = dump_database(master, server, db, out)
        raw_size = int(sh(f"{raw_dump} | wc -c").strip())
        site_kb = int(sh(f"du -sk {site_path}").split()[0])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        sh(f"mysql -e 'DROP DATABASE IF EXISTS {RAW_DB}'")
    archives = {}
    for b in site.backups:  # the latest archive of each compression (all taken before maintenance on)
        if b.get("compression"):
            archives[b["compression"]] = int(b.get("size") or 0)
    sizes = {"dump": ours_size, "raw_dump": raw_size, "site_dir": site_kb * 1024, **archives}
    return {k: median(v) for k, v in samples.items()}, sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db-mb", type=int, default=100)
    parser.add_argument(
        "--compressions",
        default="gzip",
        help="backup compressions ours runs with, comma-separated (default: gzip only; the backup archive is "
        "taken before maintenance on, so this changes the wall time, not the downtime)",
    )
    parser.add_argument("--note", default="", help="a sentence on the conditions of the run, for the report")
    parser.add_argument("--save", help="also write the measurements to this JSON file")
    parser.add_argument("--load", help="only write docs/benchmarks.md from measurements saved with --save")
    args = parser.parse_args()
    if args.load:
        write_report(json.loads(Path(args.load).read_text()))
        return

    home = Path(tempfile.mkdtemp(prefix="aegir-bench-migrate-"))
    env = start_prefect(home)
    api = os.environ["PREFECT_API_URL"]
    load = [os.getloadavg()[0]]
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
    results.update(load=[*load, os.getloadavg()[0]], note=args.note)
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
            total, tasks, phase = downtime(task_runs(api, str(state.state_details.flow_run_id)))
            return {"downtime": total, "wall": wall, "tasks": tasks, "phase": phase}

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
                    print(
                        f"  {k}: " + ", ".join(f"{t} {d:.2f} ({v['phase'][t]})" for t, d in v["tasks"].items()),
                        flush=True,
                    )
        print("bench: timing the data path of deploy-target outside Prefect …", flush=True)
        site = hosting.load_site(name)
        site_path = str(Path(registry.load_platform(store, site.platform).docroot) / "sites" / uri)
        pieces, sizes = profile_pieces(site, registry.load_server(store, hosting.server), site_path, args.rounds)
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
target-maintenance (off) task run of the migrate-site flow (Prefect API task-run times). Before it, with the
site still online and not counted: validate-migrate, previous-location, preflight (the package comparison),
plan-target (a free database name on the target db server), prepare-target (the NEW, empty database and the
NEW database user: `CREATE DATABASE`, `CREATE USER` + `GRANT` for each grant host; the target dir with the new
credentials file, settings.php, the files dirs, the salt and sites.php), backup-archive (the pinned
pre-migration archive: our dump, compressed, fsynced, checksummed) and record-backup. Inside it, each step a
Prefect task run (state round-trips to the API, plus the gaps between the runs): maintenance-mode (`drush vset
maintenance_mode 1` on the live site); deploy-target — holding one of the db server's dump/import slots (a
Prefect global concurrency limit), the frozen site copied in one streamed pass: our `mysqldump`
(`--single-transaction --quick --skip-lock-tables --routines --triggers --hex-blob
--default-character-set=utf8mb4 --max-allowed-packet=1G`; no `--no-autocommit`, so each multi-row INSERT
commits on its own, as raw mysqldump's defaults; the admin credentials as an option file on an inherited
pipe, over TCP) read by Python, DEFINER clauses stripped while streaming and the completion trailer checked,
written into an OS pipe that a second thread feeds to `mysql` importing into the new database; then the site
dir (all but the target's own credentials file and settings.php) by `tar -cf - | tar -xpf -` through the same
kind of pipe; updatedb (`drush updatedb -y` with the target platform's code; it clears the caches itself after
running updates, so target-cache-clear — `drush cc all` — runs only when it ran none); target-vhost (the vhost
written, the web server's config test, one reload: the switch); target-maintenance (`drush vset
maintenance_mode 0` on the target). After it, in the wall time only: probe-target (HTTP through the web
server) and finish-migrate (the record names the target; the old dir, database and user go).

Raw is the minimum a careful admin types, one bash script, no checks: `drush vset maintenance_mode 1`; `CREATE
DATABASE` + a `GRANT` to the site's existing user (no new user); `mysqldump --single-transaction --quick DB |
mysql NEWDB` (mysqldump's defaults: binary columns as escaped bytes, no `--hex-blob`; each multi-row INSERT
committed on its own, as ours; no `--routines`; the unix socket; no DEFINER handling, no trailer check); `cp
-a` of the site dir; the new database name into the copied credentials file with `sed`; `drush updatedb -y`;
`drush vset maintenance_mode 0`. No backup, no new user, no settings.php, no cache clear, no vhost, config
test or reload, no probe, no Prefect. Every run is the same upgrade: before each one the site's schema
versions are set back to `d7-older`'s and it goes to a fresh `d7-newer` copy (a migrate can only go up or
sideways, the pre-flight refuses schema downgrades); raw also needs the `GRANT` and the new database name in
the copied credentials file, or updatedb would hit the old database."""


FLOOR = """\
Both now move the data once, streamed and import-bound, so the ratio is set by (a) how much slower our one
pass is than raw's — our client options (`--hex-blob` sends the random half as hex, twice its size; the
commits are now raw's, one per multi-row INSERT), TCP instead of the unix socket, and the Python relay
(DEFINER filter, a pipe and a thread between the two clients) — which the pieces above split, and (b) the
fixed cost around it: six task runs (plan-target now runs before maintenance on), each a few drush/mysql/nginx
calls plus its Prefect state round trips, and the gaps between them, against raw's three drush calls. (b) does
not grow with the database, so it weighs most on small sites; (a) does."""


BETWEEN = "(between task runs)"
PIECE_RAW = "raw `mysqldump --single-transaction --quick DB \\| mysql NEWDB` (unix socket)"
PIECE_OPTS = "the same shell pipe with our client options, over TCP (no Python between the clients)"
PIECE_NOAC = "the same, with `--no-autocommit` added back (one commit per table: the option ours dropped)"
PIECE_OURS = "ours: `dump_database` → `import_database` through deploy-target's pipe (Python relay, DEFINERs stripped)"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def task_medians(rounds: list[dict[str, Any]], c: str) -> dict[str, float]:
    names = dict.fromkeys(t for r in rounds for t in r[c]["tasks"])
    return {t: median([r[c]["tasks"].get(t, 0.0) for r in rounds]) for t in names}


def profile_text(results: dict[str, Any]) -> str:
    """Where the downtime goes, in words, from the medians (one sentence per compression)."""
    rounds, raw = results["rounds"], median([r["raw"]["downtime"] for r in results["rounds"]])
    pieces, out = results.get("pieces", {}), []
    raw_pass, our_pass = pieces.get(PIECE_RAW), pieces.get(PIECE_OURS)
    for c in results["compressions"]:
        task, phase = task_medians(rounds, c), rounds[-1][c]["phase"]
        down = median([r[c]["downtime"] for r in rounds])
        deploy, between = task.get("deploy-target", 0.0), task.get(BETWEEN, 0.0)
        others = {k: v for k, v in task.items() if phase.get(k) == "downtime" and k not in ("deploy-target", BETWEEN)}
        top = sorted(others.items(), key=lambda kv: -kv[1])[:3]
        text = (
            f"{c}: downtime {down:.1f} s vs raw {raw:.1f} s ({down - raw:+.1f} s). deploy-target {deploy:.1f} s "
            f"({deploy / raw:.2f}× the whole raw downtime on its own)"
        )
        if raw_pass and our_pass:
            text += (
                f"; outside Prefect (the pieces in a rotated order, under the same load as each other but not as the "
                f"rounds) our streamed pass takes {our_pass:.1f} s against raw's `mysqldump | mysql` "
                f"{raw_pass:.1f} s ({our_pass / raw_pass:.2f}×)"
            )
            if PIECE_OPTS in pieces and PIECE_NOAC in pieces:
                text += (
                    f" — the same options in a shell pipe without Python {pieces[PIECE_OPTS]:.1f} s, and with "
                    f"`--no-autocommit` added back (our old option) {pieces[PIECE_NOAC]:.1f} s"
                )
        text += (
            f"; the {len(others)} other task runs in the window {sum(others.values()):.1f} s (largest: "
            + ", ".join(f"{k} {v:.2f}" for k, v in top)
            + f"), Prefect between task runs {between:.1f} s. Before maintenance on (online, not downtime): "
            f"backup-archive {task.get('backup-archive', 0.0):.1f} s, "
            f"record-backup {task.get('record-backup', 0.0):.1f} s."
        )
        out.append(text)
    return " ".join(out)


def write_report(results: dict[str, Any]) -> None:
    rounds, compressions = results["rounds"], results["compressions"]
    raw = [r["raw"]["downtime"] for r in rounds]
    rows = []
    for c in compressions:
        down, wall = [r[c]["downtime"] for r in rounds], [r[c]["wall"] for r in rounds]
        default = " (default)" if c == "gzip" else ""
        rows.append((f"downtime, {c} backup archive{default}: migrate-site vs raw by hand", median(down), median(raw)))
        rows.append((f"migrate-site flow wall time, {c} backup archive, vs raw downtime", median(wall), median(raw)))
    per_round = [
        f"| {i + 1} | {r['raw']['downtime']:.2f} | "
        + " | ".join(f"{r[c]['downtime']:.2f} ({r[c]['downtime'] / r['raw']['downtime']:.2f}×)" for c in compressions)
        + " |"
        for i, r in enumerate(rounds)
    ]
    medians = {c: task_medians(rounds, c) for c in compressions}
    phase = {t: p for r in rounds for c in compressions for t, p in r[c]["phase"].items()}
    order = {"before": 0, "downtime": 1, "after": 2}
    names = sorted(dict.fromkeys(t for c in compressions for t in medians[c]), key=lambda t: order.get(phase[t], 3))
    breakdown = [
        f"| {t} | {phase[t]} | " + " | ".join(f"{medians[c].get(t, 0.0):.2f}" for c in compressions) + " |"
        for t in names
    ]
    breakdown += [
        "| **downtime (maintenance on → off)** | | "
        + " | ".join(f"**{median([r[c]['downtime'] for r in rounds]):.2f}**" for c in compressions)
        + " |",
        "| **whole flow, wall time** | | "
        + " | ".join(f"**{median([r[c]['wall'] for r in rounds]):.2f}**" for c in compressions)
        + " |",
    ]
    sizes = results.get("sizes", {})
    first = compressions[0]
    ratio = median([r[first]["downtime"] for r in rounds]) / median(raw)
    verdict = "meets" if ratio <= 1.2 else "misses"
    per_round_ratio = median([r[first]["downtime"] / r["raw"]["downtime"] for r in rounds])
    load = results.get("load", [])
    conditions = f"1-min load average {load[0]:.1f} at the start, {load[-1]:.1f} at the end" if load else ""
    if results.get("note"):
        conditions += ("; " if conditions else "") + results["note"]
    mib = 2**20
    lines = [
        "## Migrate downtime (`bench/migrate.py`)",
        "",
        f"A Drupal 7 site (drush stand-in, real MariaDB, nginx + php-fpm) with {results['db_mb']} MB of extra "
        f"database rows (half text, half random bytes; {results['db_size_mb']:.0f} MiB in InnoDB; our dump "
        f"{sizes.get('dump', 0) / mib:.0f} MiB, raw's {sizes.get('raw_dump', 0) / mib:.0f} MiB; site dir "
        f"{sizes.get('site_dir', 0) / 1024:.0f} KiB; backup archive "
        + ", ".join(f"{c} {sizes.get(c, 0) / mib:.0f} MiB" for c in compressions)
        + ") migrated "
        f"`d7-older` schema → a fresh `d7-newer` platform; median of {len(rounds)} rounds, ours and raw "
        f"alternating (order flipped every round); {results['date']}, {results['cpus']} CPUs"
        + (f" ({conditions})" if conditions else "")
        + f". Target (issue #5): downtime ≤ 1.2× raw — the default ({first}) {verdict} it at {ratio:.3f}× "
        f"(median over median; the median of the per-round ratios is {per_round_ratio:.2f}×).",
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
        "Every task run of ours (median s; phase: before maintenance on — site online —, in the downtime, or "
        "after maintenance off):",
        "",
        "| task | phase | " + " | ".join(compressions) + " |",
        "|---|---|" + "---:|" * len(compressions),
        *breakdown,
        "",
        f"The data path of deploy-target outside Prefect, piece by piece (after the rounds, median of "
        f"{len(rounds)} each, the database pieces in a rotated order; s):",
        "",
        "| piece | s |",
        "|---|---:|",
        *(f"| {k} | {v:.2f} |" for k, v in results.get("pieces", {}).items()),
        "",
        *NOTES.splitlines(),
        "",
        "Where our downtime goes (medians): " + profile_text(results),
        "",
        *FLOOR.splitlines(),
    ]
    write_section("migrate", lines)


if __name__ == "__main__":
    main()
