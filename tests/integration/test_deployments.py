"""prefect.yaml's deployments end to end, as the README's multi-host setup runs them: `prefect server` on
PostgreSQL, the `aegir` process work pool, `prefect --no-prompt deploy --all` from the repository root, a
process worker started elsewhere (the pull step finds the code); then every deployment run on that worker both
ways a user starts one — `prefect deployment run NAME/NAME --param k=v …`, and the UI's Run → Custom run (a
POST of the form's parameters to the deployment's create_flow_run) — by two site lifecycles at once, every run
checked by its effect (site record, served pages, backups, artifacts); then `aegir serve` taking over the same
deployments with no worker at all."""

from __future__ import annotations

import contextvars
import json
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from aegir import registry
from deployments.serve import load_config
from flows.delete_site import PRE_DELETE
from flows.migrate_site import PRE_MIGRATE
from flows.restore_site import SAFETY
from flows.runner import FLOWS
from tasks.backup import ON_REQUEST
from tasks.housekeeping import AUTOMATED
from tests.integration.helpers import AEGIR, flow_run, flow_run_logs, unique
from tests.integration.sites import Hosting, make_hosting
from tests.support import api
from tests.support.prefect_server import (
    PREFECT,
    REPO_ROOT,
    Background,
    PrefectServer,
    postgres_database,
    prefect_server,
)

pytestmark = pytest.mark.integration

NAMES = [spec["name"] for spec in load_config()]
RUN_TIMEOUT = 150
POLL_SECONDS = 0.5
WORKER_LIMIT = 4  # flow runs at once on the worker: the two lifecycles below need 2


@pytest.fixture(scope="module")
def server() -> Iterator[PrefectServer]:
    with postgres_database() as database, prefect_server(database) as s:
        yield s


@pytest.fixture(scope="module")
def worker(server: PrefectServer) -> Iterator[Background]:
    """The work pool, every deployment, and a worker started outside the checkout (stopped before the server)."""
    pool = server.prefect("work-pool", "create", "aegir", "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deployed = server.prefect("--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    process = server.start("worker", PREFECT, "worker", "start", "--pool", "aegir", "--limit", str(WORKER_LIMIT))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def hosting(server: PrefectServer, nginx_server, db_admin) -> Iterator[Hosting]:
    """A verified server and its contexts on *this* Prefect server (the setup flows run in-process here)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    from blocks.store import BlockStore

    results = server.tmp / "results"
    settings = {
        PREFECT_API_URL: server.url,
        PREFECT_API_AUTH_STRING: server.auth,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH: results,
    }
    with temporary_settings(settings):
        try:
            yield from make_hosting(BlockStore(server.url, server.auth), nginx_server, db_admin, prefix="@server_dep")
        finally:
            # the in-process runs' log and event workers send to THIS server: drain them while it is up, or
            # the session's test harness later waits forever for them to reach a server that is gone
            APILogWorker.drain_all(timeout=30)
            EventsWorker.drain_all(timeout=30)


def wait_final(server: PrefectServer, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        run = flow_run(server.url, run_id)
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        assert time.monotonic() < deadline, f"flow run {run_id} still {run['state_type']}"
        time.sleep(POLL_SECONDS)


def deployment(server: PrefectServer, name: str) -> dict[str, Any]:
    response = api.get(f"{server.url}/deployments/name/{name}/{name}", timeout=10)
    response.raise_for_status()
    return response.json()


def artifacts(server: PrefectServer, run_id: str) -> list[dict[str, Any]]:
    body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    response = api.post(f"{server.url}/artifacts/filter", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def worker_states(server: PrefectServer) -> list[str]:
    response = api.post(f"{server.url}/work_pools/aegir/workers/filter", json={}, timeout=10)
    response.raise_for_status()
    return [w["status"] for w in response.json()]


def run_logs(server: PrefectServer, run_id: str) -> str:
    """The logs of a flow run and of its subflows (backup-all's and migrate-platform's site tasks)."""
    body = {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
    subflows = api.post(f"{server.url}/flow_runs/filter", json=body, timeout=10).json()
    return "\n".join(
        f"--- {r.get('name', run_id)}: {r.get('state_name', '')}\n" + flow_run_logs(server.url, r["id"])[-3000:]
        for r in [{"id": run_id}, *subflows]
    )


def sites_dir(hosting: Hosting, platform: str) -> Path:
    return Path(registry.load_platform(hosting.store, platform).docroot, "sites")


@dataclass(eq=False)
class Starter:
    """Starts runs of the deployments one way and waits for each: ``cli`` is `prefect deployment run NAME/NAME
    --param k=v …` (values read as JSON first, so strings are given as is, the rest as JSON; not --watch, which
    lingers 3 s after the end for stray logs: the run is polled instead); ``api`` is what the UI's Run → Custom
    run posts, the form's parameters to the deployment's create_flow_run. Every run must complete on the worker,
    as that deployment's run with exactly these parameters."""

    server: PrefectServer
    way: str
    ids: dict[str, str]
    took: list[tuple[str, float]] = field(default_factory=list)  # (deployment, seconds from start to final)

    def __call__(self, name: str, **params: Any) -> dict[str, Any]:
        start = time.monotonic()
        run = self._cli(name, params) if self.way == "cli" else self._api(name, params)
        self.took.append((name, time.monotonic() - start))
        logs = "" if run["state_type"] == "COMPLETED" else run_logs(self.server, run["id"])
        assert run["state_type"] == "COMPLETED", f"{self.way} {name} {params}: {run['state']['message']}\n{logs}"
        assert run["deployment_id"] == self.ids[name] and run["work_pool_name"] == "aegir", run
        assert run["parameters"] == params, run["parameters"]
        return run

    def _cli(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        args = [
            arg
            for key, value in params.items()
            for arg in ("--param", f"{key}={value if isinstance(value, str) else json.dumps(value)}")
        ]
        result = self.server.prefect("deployment", "run", f"{name}/{name}", *args)
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", result.stdout)
        assert result.returncode == 0 and run_id, result.stdout + result.stderr
        return wait_final(self.server, run_id.group(1))

    def _api(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        response = api.post(
            f"{self.server.url}/deployments/{self.ids[name]}/create_flow_run", json={"parameters": params}, timeout=10
        )
        assert response.status_code == 201, response.text
        return wait_final(self.server, response.json()["id"])


def verify_here(platform: str) -> None:
    from flows.verify_platform import verify_platform

    state = verify_platform(platform=platform, return_state=True)
    assert state.is_completed(), state.message


@dataclass
class Lifecycle:
    """One site's life, all of it by deployment runs started one way."""

    site: str
    clone: str
    platform: str  # the site is installed on it, once verify-platform's run has verified it
    upgrade: str  # migrate-site's target (an upgrade)
    target: str  # where the clone is made, and where migrate-platform moves the site from ``upgrade``
    targets_verified: Callable[[], None] = lambda: None  # waits until ``upgrade`` and ``target`` are verified


def live_site(run: Starter, hosting: Hosting, life: Lifecycle) -> None:
    """verify-server and verify-platform, then every site task on one site (and its clone) until delete-site."""
    store, web = hosting.store, hosting.web
    name, uri, clone = life.site, life.site[1:], life.clone

    def site(n: str = name) -> Any:
        return registry.load_site(store, n)

    started = datetime.now(UTC).replace(microsecond=0)
    assert registry.load_platform(store, life.platform).verified is None
    in_parallel(
        partial(run, "verify-server", server=hosting.server), partial(run, "verify-platform", platform=life.platform)
    )
    assert registry.load_server(store, hosting.server).verified >= started
    platform = registry.load_platform(store, life.platform)
    assert platform.verified is not None and platform.drupal_version.startswith("7."), platform

    run("install-site", site=name)
    assert (site().status, site().platform, site().backups) == ("installed", life.platform, [])
    web.wait_for(uri, status=200, text=uri)

    # backup-all on the site's platform (outside the nightly window): the site is due, never backed up yet
    run("backup-all", platform=life.platform, ignore_window=True)
    [automated] = site().backups
    assert automated["reason"] == AUTOMATED and Path(automated["file"]).is_file(), automated

    before = site().verified
    run("verify-site", site=name)
    assert site().verified > before
    web.wait_for(uri, status=200, text=uri)

    login = run("login-reset", site=name)
    links = [a["data"] for a in artifacts(run.server, login["id"]) if (a["key"] or "").startswith("login-")]
    assert len(links) == 1 and uri in links[0] and "/user/reset/" in links[0], links

    # backups: one taken and deleted by its id, another taken and restored
    run("backup-site", site=name)
    first = site().backups[0]
    assert first["reason"] == ON_REQUEST and not first["pinned"] and Path(first["file"]).is_file(), first
    run("backup-delete", site=name, ids=[first["id"]])
    assert [b["id"] for b in site().backups] == [automated["id"]] and not Path(first["file"]).exists()
    run("backup-site", site=name)
    second = site().backups[0]
    assert second["id"] != first["id"] and Path(second["file"]).is_file()
    db_before = site().db_name
    run("restore-site", site=name, backup=second["id"])
    restored = site()
    assert restored.status == "installed" and restored.db_name != db_before  # a new database, switched to
    assert (restored.backups[0]["reason"], restored.backups[0]["pinned"]) == (SAFETY, True)
    web.wait_for(uri, status=200, text=uri)

    life.targets_verified()
    # the migrate pre-flight, then the upgrade
    compare = run("compare-site", site=name, platform=life.upgrade)
    tables = [a for a in artifacts(run.server, compare["id"]) if (a["key"] or "").startswith("compare-")]
    assert len(tables) == 1 and life.upgrade in tables[0]["description"], tables
    rows = json.loads(tables[0]["data"])
    assert "REFUSED" not in tables[0]["description"] and "upgrade" in {r["status"] for r in rows}, rows
    run("migrate-site", site=name, platform=life.upgrade)
    migrated = site()
    assert (migrated.status, migrated.platform) == ("installed", life.upgrade)
    assert migrated.backups[0]["reason"] == PRE_MIGRATE and migrated.backups[0]["pinned"]
    web.wait_for(uri, status=200, text=uri)
    assert (sites_dir(hosting, life.upgrade) / uri).is_dir()
    assert not (sites_dir(hosting, life.platform) / uri).exists()

    run("clone-site", site=name, new_uri=clone[1:], platform=life.target)  # onto another platform too
    copy = site(clone)
    assert (copy.status, copy.platform, copy.backups) == ("installed", life.target, [])
    assert copy.db_name and copy.db_name != site().db_name and (sites_dir(hosting, life.target) / clone[1:]).is_dir()
    web.wait_for(clone[1:], status=200)
    web.wait_for(uri, status=200, text=uri)  # the source stays online

    run("disable-site", site=name)
    assert site().status == "disabled"
    web.wait_for(uri, status=503)
    run("enable-site", site=name)
    assert site().status == "installed"
    web.wait_for(uri, status=200, text=uri)

    # retention: at most 1 unpinned backup, the newest (on request); the automated one goes, pinned ones stay
    kept = site().backups
    assert [b["id"] for b in kept if not b["pinned"]] == [second["id"], automated["id"]]
    run("purge-backups", site=name, max_count=1)
    assert site().backups == [b for b in kept if b["id"] != automated["id"]]
    assert not Path(automated["file"]).exists() and Path(second["file"]).is_file()

    # migrate-platform: every site of the upgrade platform (this one: the canary) joins its clone on the target
    run("migrate-platform", platform=life.upgrade, target=life.target, canary=1)
    assert (site().status, site().platform) == ("installed", life.target)
    assert (sites_dir(hosting, life.target) / uri).is_dir() and not (sites_dir(hosting, life.upgrade) / uri).exists()
    web.wait_for(uri, status=200, text=uri)

    run("disable-site", site=name)
    run("delete-site", site=name)
    deleted = site()
    assert (deleted.status, deleted.db_name) == ("deleted", None)
    assert (deleted.backups[0]["reason"], deleted.backups[0]["pinned"]) == (PRE_DELETE, True)
    assert Path(deleted.backups[0]["file"]).is_file()
    web.wait_for(uri, status=404)
    web.wait_for(clone[1:], status=200)  # the clone lives on


def in_background(*calls: Callable[[], None]) -> Callable[[], None]:
    """Each call started in its own thread (with this thread's context: Prefect's settings); returns the wait for
    every one to end, which then raises the first failure, if any."""
    pool = ThreadPoolExecutor(max_workers=len(calls))
    futures = [pool.submit(contextvars.copy_context().run, call) for call in calls]
    pool.shutdown(wait=False)

    def wait() -> None:
        for error in [f.exception() for f in futures]:
            if error is not None:
                raise error

    return wait


def in_parallel(*calls: Callable[[], None]) -> None:
    in_background(*calls)()


# -------------------------------------------------------------------------------------------------------
def test_the_server_requires_the_credential_its_clients_find_in_their_profile(server, worker):
    """Prefect's basic auth is on: no credential or a wrong one gets 401 (the health probe excepted); the CLI
    and the worker authenticate with the 0600 profile of their PREFECT_HOME alone."""
    for call in (
        lambda auth: httpx.get(f"{server.url}/deployments/name/backup-all/backup-all", auth=auth, timeout=10),
        lambda auth: httpx.post(f"{server.url}/block_documents/filter", json={}, auth=auth, timeout=10),
        lambda auth: httpx.post(f"{server.url}/flow_runs/filter", json={}, auth=auth, timeout=10),
    ):
        assert call(None).status_code == 401
        assert call(("admin", "guess")).status_code == 401
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    assert api.post(f"{server.url}/block_documents/filter", json={}, timeout=10).status_code == 200
    assert not {"PREFECT_API_URL", "PREFECT_API_AUTH_STRING"} & set(server.env)
    assert stat.S_IMODE((server.home / "profiles.toml").stat().st_mode) == 0o600
    pools = server.prefect("work-pool", "ls")
    assert pools.returncode == 0 and "aegir" in pools.stdout, pools.stdout + pools.stderr
    # the worker's heartbeat reached the server: it authenticated too
    deadline = time.monotonic() + 60
    while "ONLINE" not in worker_states(server):
        assert worker.alive() and time.monotonic() < deadline, worker.output()
        time.sleep(POLL_SECONDS)
    assert "Unauthorized" not in worker.output(), worker.output()


def test_deploy_all_creates_a_deployment_per_task_with_the_schedules(server, worker):
    assert sorted(NAMES) == sorted(FLOWS) and len(NAMES) == 17  # a deployment per task flow
    nightly = deployment(server, "backup-all")["schedules"]
    assert [(s["slug"], s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in nightly] == [
        ("nightly", "0 2 * * *", "UTC", True)
    ]
    assert [s["slug"] for s in deployment(server, "purge-backups")["schedules"]] == ["daily"]
    assert [n for n in NAMES if deployment(server, n)["schedules"]] == ["backup-all", "purge-backups"]
    commands = [
        ("deployment", "ls", "--output", "json"),
        ("deployment", "ls"),
        ("deployment", "schedule", "ls", "backup-all/backup-all"),
        ("deployment", "schedule", "ls", "purge-backups/purge-backups"),
        ("--no-prompt", "deploy", "--name", "backup-all"),  # deploying again
    ]
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        listed, table, nightly_ls, daily_ls, again = pool.map(lambda argv: server.prefect(*argv), commands)
    assert listed.returncode == 0, listed.stderr
    deployments = {f"{d['name']}/{d['name']}": d for d in json.loads(listed.stdout)}
    assert sorted(deployments) == sorted(f"{n}/{n}" for n in NAMES)
    assert {d["work_pool_name"] for d in deployments.values()} == {"aegir"}
    assert table.returncode == 0 and all(f"{n}/{n}" in table.stdout for n in NAMES), table.stdout + table.stderr
    for schedules, cron in ((nightly_ls, "0 2 * * *"), (daily_ls, "30 4 * * *")):
        assert schedules.returncode == 0 and f"cron: {cron}" in schedules.stdout, schedules.stdout + schedules.stderr
    # deploying again updates the schedule (its slug) instead of adding a second one
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert [s["id"] for s in deployment(server, "backup-all")["schedules"]] == [nightly[0]["id"]]
    # the UI's run form: every parameter described, the required ones marked
    schema = deployment(server, "migrate-site")["parameter_openapi_schema"]
    assert schema["required"] == ["site", "platform"]
    assert all(p.get("description") for p in schema["properties"].values()), schema
    # and the server checks a run's parameters against that schema, as the form does
    refused = api.post(
        f"{server.url}/deployments/{deployment(server, 'verify-site')['id']}/create_flow_run",
        json={"parameters": {}},
        timeout=10,
    )
    assert refused.status_code in (409, 422) and "site" in refused.text, refused.text


def test_every_deployment_runs_from_the_cli_and_like_the_ui(server, worker, hosting):
    """Two site lifecycles at once on the worker: one started entirely by `prefect deployment run`, the other
    entirely like the UI's Run button; every deployment of prefect.yaml runs at least once each way."""
    ids = {n: deployment(server, n)["id"] for n in NAMES}
    cli, api = Starter(server, "cli", ids), Starter(server, "api", ids)
    lives = {}
    for starter in (cli, api):  # the contexts are saved here, with the test's Prefect settings
        platform = hosting.platform("d7-older")
        lives[starter] = Lifecycle(
            site=hosting.site(platform),
            clone="@" + unique("c") + ".example.test",
            platform=platform,
            upgrade=hosting.platform("d7-newer"),
            target=hosting.platform("d7-newer"),
        )
        hosting.sites.append(lives[starter].clone)  # its database is dropped afterwards too
    # the platforms to migrate to are verified here, in-process, while the lifecycles begin
    targets = [p for life in lives.values() for p in (life.upgrade, life.target)]
    targets_verified = in_background(*(partial(verify_here, p) for p in targets))
    start = time.monotonic()
    try:
        for life in lives.values():
            life.targets_verified = targets_verified
        in_parallel(*(partial(live_site, starter, hosting, life) for starter, life in lives.items()))
    finally:
        wall = time.monotonic() - start
        for starter in lives:
            runs = ", ".join(f"{n} {t:.1f}" for n, t in starter.took)
            print(f"\n{starter.way}: {len(starter.took)} runs in {wall:.1f} s: {runs}")
        targets_verified()
    assert {n for n, _ in cli.took} == {n for n, _ in api.took} == set(NAMES)


def test_aegir_serve_takes_the_deployments_over_without_a_worker(server, worker, hosting):
    worker.stop()
    served = server.start("serve", AEGIR, "serve")
    try:
        deadline = time.monotonic() + 60
        while "being served" not in served.output():
            assert served.alive() and time.monotonic() < deadline, served.output()
            time.sleep(0.2)
        assert {deployment(server, n)["work_pool_name"] for n in NAMES} == {None}
        # --watch (the README's way) ends ~3 s after the run (it waits for stray logs): by then the runner is done
        # with it. Stopped while still busy with a run, `aegir serve` may leave the deployments unpaused (Prefect's
        # runner does not await its own stop on SIGTERM: "coroutine 'Runner.astop' was never awaited").
        watch = ("--watch", "--watch-timeout", str(RUN_TIMEOUT))
        result = server.prefect(
            "deployment", "run", "verify-server/verify-server", "--param", f"server={hosting.server}", *watch
        )
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", result.stdout)
        assert run_id and result.returncode == 0, result.stdout[-2000:] + result.stderr + served.output()
        run = flow_run(server.url, run_id.group(1))
        assert run["state_type"] == "COMPLETED" and run["work_pool_name"] is None, served.output()
        assert run["parameters"] == {"server": hosting.server}
    finally:
        served.stop()
    # stopping the serve process pauses its deployments, so no scheduled backup piles up meanwhile
    assert deployment(server, "backup-all")["paused"] is True, served.output()


def served_output(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def wait_served(proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while "being served" not in served_output(log):
        assert proc.poll() is None and time.monotonic() < deadline, served_output(log)[-3000:]
        time.sleep(0.2)


def scheduled(server: PrefectServer) -> set[tuple[bool, bool]]:
    """(paused, schedule active) of every schedule of the scheduled deployments."""
    found = set()
    for name in ("backup-all", "purge-backups"):
        d = deployment(server, name)
        found |= {(d["paused"], s["active"]) for s in d["schedules"]}
    return found


def test_aegir_serve_stops_on_sigint_and_sigterm_and_leaves_nothing_scheduled(server, worker, hosting, tmp_path):
    """Issue 16, finding 4: a serve started in the background (SIGINT ignored, as a non-interactive shell's `&`
    leaves it) stops on SIGINT; a SIGTERM while a run is finishing stops it too; each time the deployments end
    paused and their schedules inactive (`prefect deployment schedule ls` tells the truth), and the next serve
    makes them active again."""
    worker.stop()
    log = tmp_path / "serve.log"

    def start(**kwargs: Any) -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen(
                [AEGIR, "serve"], env=server.env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, **kwargs,
            )  # fmt: skip

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    served = start(preexec_fn=ignore_sigint)
    try:
        wait_served(served, log)
        assert scheduled(server) == {(False, True)}
        served.send_signal(signal.SIGINT)
        assert served.wait(timeout=60) == 0, served_output(log)[-3000:]
    finally:
        if served.poll() is None:
            served.kill()
    assert scheduled(server) == {(True, False)}, served_output(log)[-3000:]

    log = tmp_path / "serve-again.log"  # "being served" again, in a log of its own
    served = start()
    try:
        wait_served(served, log)
        assert scheduled(server) == {(False, True)}
        argv = ("deployment", "run", "verify-server/verify-server", "--param", f"server={hosting.server}")
        started = server.prefect(*argv)
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", started.stdout).group(1)
        deadline = time.monotonic() + RUN_TIMEOUT
        while flow_run(server.url, run_id)["state_type"] not in ("RUNNING", "COMPLETED"):
            assert time.monotonic() < deadline, served_output(log)[-3000:]
            time.sleep(0.1)
        served.send_signal(signal.SIGTERM)
        assert served.wait(timeout=90) == 0, served_output(log)[-3000:]
    finally:
        if served.poll() is None:
            served.kill()
    assert scheduled(server) == {(True, False)}, served_output(log)[-3000:]
    assert "deployments paused, their schedules inactive" in served_output(log)
