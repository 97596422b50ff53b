"""Crash tests: restore-site and delete-site are killed (SIGKILL, the whole `aegir` process) at every step
boundary; `aegir resume <flow-run-id>` must then leave the site fully restored (or fully deleted), never half:
database present and named by the record, settings pointing at it, vhost serving, no stray dirs, databases,
users or locks. Another task on the site after a crash rolls the interrupted one back instead (site exactly as
before). Also the per-site lock: one task at a time, --no-wait, different sites in parallel."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegir import registry
from aegir.contexts import slugify
from tests.integration.helpers import AEGIR, aegir, flow_run, flow_run_logs
from tests.integration.sites import Hosting, make_hosting
from tests.integration.test_backup_restore import retitle, titles
from tests.integration.test_backup_restore import run as run_flow
from tests.integration.test_install_site import install
from tests.support import api
from tests.support.mariadb import databases, users_like

pytestmark = pytest.mark.integration

KILLED = -9


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_cr")


@pytest.fixture(scope="module")
def site(prefect_api, hosting) -> dict[str, str]:
    """One installed D7 site with one backup taken of its original content."""
    platform = hosting.verified_platform("d7")
    name = hosting.site(platform)
    assert install(name).is_completed()
    made = aegir(prefect_api.env, "backup", name, "--description=the original")
    assert made.returncode == 0, made.stderr
    docroot = registry.load_platform(hosting.store, platform).docroot
    return {
        "name": name,
        "platform": platform,
        "backup": hosting.load_site(name).backups[0]["id"],
        "sites": os.path.join(docroot, "sites"),
    }


def run_id(stderr: str) -> str:
    found = re.search(r"^Flow run \S+(?: \S+)* \(([0-9a-f-]{36})\)", stderr, re.M)
    assert found, stderr
    return found.group(1)


def killed_at(env: dict[str, str], fault: str, *args: str) -> str:
    """Run `aegir ARGS` with a SIGKILL at the given step boundary; returns the interrupted flow run's id."""
    done = aegir({**env, "AEGIR_FAULT": fault}, *args)
    assert done.returncode == KILLED, (fault, done.returncode, done.stderr)
    return run_id(done.stderr)


def wait_for_log(api_url: str, run: str, text: str) -> None:
    """Run logs reach the API in batches, shortly after the run: wait for ``text`` (up to 15 s)."""
    deadline = time.monotonic() + 15
    while text not in flow_run_logs(api_url, run):
        assert time.monotonic() < deadline, f"{text!r} not in the logs of {run}"
        time.sleep(0.5)


def resume(run: str) -> None:
    """``aegir resume`` in-process (the CLI's own path is tested below): saves a Python start per case."""
    from flows.runner import resume_flow_run

    ok, result = resume_flow_run(run, False, lambda *_: None)
    assert ok, result


def stray_dirs(site: dict[str, str]) -> list[str]:
    uri = site["name"][1:]
    return sorted(p for p in os.listdir(site["sites"]) if p.startswith(f".{uri}"))


def running(hosting: Hosting, name: str, task: str, proc: subprocess.Popen) -> None:
    """Wait until ``task`` holds the site (its journal is written)."""
    deadline = time.monotonic() + 60
    while (hosting.load_site(name).operation or {}).get("task") != task:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)


def lock_slots(api_url: str, name: str) -> int:
    response = api.get(f"{api_url}/v2/concurrency_limits/site-{slugify(name)}", timeout=10)
    response.raise_for_status()
    return response.json()["active_slots"]


def assert_whole(prefect_api, hosting: Hosting, site: dict[str, str], content: list[str]) -> None:
    """The site is whole: record, database, dir, vhost agree; content as expected; nothing stray."""
    name, uri = site["name"], site["name"][1:]
    record = hosting.load_site(name)
    assert record.operation is None and record.status == "installed"
    assert titles(hosting, name, 7) == content
    db_like = record.db_name.rsplit("_", 1)[0] if re.search(r"_\d+$", record.db_name) else record.db_name
    assert sorted(d for d in databases() if d.startswith(db_like)) == [record.db_name]
    site_users = users_like(db_like)
    assert site_users and {u for u, _ in site_users} == {record.db_user}
    creds = Path(site["sites"], uri, "aegir.credentials.php").read_text()
    assert f"'{record.db_name}'" in creds
    assert stray_dirs(site) == []
    hosting.web.wait_for(uri, status=200, text=uri)
    assert lock_slots(prefect_api.url, name) == 0


def kill_points(text: str) -> list[str]:
    return [f"{point}:kill" for point in text.split()]


# a kill after every step that changes something (read-only steps — planning, probing — leave the world as
# the step before them did), and right before the first and the last
RESTORE_KILL_POINTS = kill_points("""
    validate-restore:after maintenance-mode#1:after backup-archive:after record-backup:after
    deploy-archive:before deploy-archive:after switch-site:after write-site-files:after updatedb-when-behind:after
    write-vhost:after maintenance-mode#2:after remove-previous:before remove-previous:after
""")


@pytest.mark.parametrize("fault", RESTORE_KILL_POINTS)
def test_restore_killed_at_each_step_then_resumed_is_fully_restored(prefect_api, hosting, site, fault):
    name = site["name"]
    original = titles(hosting, name, 7)
    retitle(hosting, name, 7, f"changed before {fault}")
    run = killed_at(prefect_api.env, fault, "restore", name, site["backup"])

    resume(run)
    assert flow_run(prefect_api.url, run)["state_type"] == "COMPLETED"
    wait_for_log(prefect_api.url, run, "was interrupted: recovering")
    assert_whole(prefect_api, hosting, site, [t for t in original])
    assert titles(hosting, name, 7) != [f"changed before {fault}"]


def test_another_task_after_a_crash_rolls_the_interrupted_restore_back(prefect_api, hosting, site):
    name = site["name"]
    retitle(hosting, name, 7, "changed, then a restore crashed")
    run = killed_at(prefect_api.env, "switch-site:after:kill", "restore", name, site["backup"])
    assert hosting.load_site(name).operation["flow_run"] == run

    verified = aegir(prefect_api.env, "verify", name)
    assert verified.returncode == 0, verified.stderr
    # exactly as before the restore: the changed content, the old database, served
    assert_whole(prefect_api, hosting, site, ["changed, then a restore crashed"] * len(titles(hosting, name, 7)))
    # the interrupted run cannot be resumed into a second restore by accident: it is done (rolled back) and
    # a resume of it now runs the restore afresh, as asked
    resumed = aegir(prefect_api.env, "resume", run)
    assert resumed.returncode == 0, resumed.stderr
    assert "changed, then a restore crashed" not in titles(hosting, name, 7)


@pytest.mark.parametrize("fault", kill_points("backup-archive:after record-backup:after"))
def test_a_backup_killed_leaves_no_unrecorded_archive_and_no_record_without_one(prefect_api, hosting, site, fault):
    name, uri = site["name"], site["name"][1:]
    backup_dir = Path(registry.load_server(hosting.store, hosting.server).backup_path)
    before = [b["id"] for b in hosting.load_site(name).backups]
    killed_at(prefect_api.env, fault, "backup", name)

    verified = aegir(prefect_api.env, "verify", name)  # the next task on the site recovers first
    assert verified.returncode == 0, verified.stderr
    record = hosting.load_site(name)
    assert record.operation is None
    # recorded before the kill: kept, with its archive; not recorded: its archive removed
    assert len(record.backups) == len(before) + (1 if fault.startswith("record-backup") else 0)
    archives = [p for p in backup_dir.iterdir() if p.name.startswith(uri) and p.name.endswith((".tar.gz", ".tar.zst"))]
    assert sorted(str(p) for p in archives) == sorted(b["file"] for b in record.backups)
    assert lock_slots(prefect_api.url, name) == 0


DELETE_KILL_POINTS = kill_points("""
    backup-archive:after record-backup:after remove-vhost:after set-aside-site-dir:after
    destroy-site:before destroy-site:after
""")


@pytest.mark.parametrize("fault", DELETE_KILL_POINTS)
def test_delete_killed_at_each_step_then_resumed_is_fully_deleted(prefect_api, hosting, site, fault):
    name, uri = site["name"], site["name"][1:]
    assert run_flow("flows.disable_enable:disable_site", site=name).is_completed()
    db_name, db_user = hosting.load_site(name).db_name, hosting.load_site(name).db_user
    run = killed_at(prefect_api.env, fault, "delete", name)

    resume(run)
    record = hosting.load_site(name)
    assert record.status == "deleted" and record.operation is None and record.db_name is None
    assert db_name not in databases() and users_like(db_user) == []
    assert not Path(site["sites"], uri).exists() and stray_dirs(site) == []
    hosting.web.wait_for(uri, status=404)
    assert record.backups[0]["reason"] == "Pre-delete backup" and record.backups[0]["pinned"]
    assert lock_slots(prefect_api.url, name) == 0

    # the pre-delete backup brings it back, whole
    assert run_flow("flows.restore_site:restore_site", site=name).is_completed()
    assert_whole(prefect_api, hosting, site, titles(hosting, name, 7))


MIGRATE_KILL_POINTS = kill_points("""
    prepare-target:after maintenance-mode#1:after record-backup:after deploy-target:before deploy-target:after
    updatedb:after target-cache-clear:after target-vhost:after target-maintenance:after
    finish-migrate:before finish-migrate:after
""")


@pytest.fixture(scope="module")
def twin(hosting, site) -> str:
    """A second platform with the same code as the site's: migrates go back and forth between the two."""
    return hosting.verified_platform("d7-same")


@pytest.mark.parametrize("fault", MIGRATE_KILL_POINTS)
def test_migrate_killed_at_each_step_then_resumed_is_fully_migrated(prefect_api, hosting, site, twin, fault):
    name, uri = site["name"], site["name"][1:]
    record = hosting.load_site(name)
    source = record.platform
    target = twin if source == site["platform"] else site["platform"]
    content = titles(hosting, name, 7)
    run = killed_at(prefect_api.env, fault, "migrate", name, target)

    resume(run)
    after = hosting.load_site(name)
    assert after.platform == target and after.operation is None
    moved = {**site, "sites": site_dirs(hosting, target)}
    assert_whole(prefect_api, hosting, moved, content)
    assert (
        not Path(site_dirs(hosting, source), uri).exists()
        and stray_dirs({**site, "sites": site_dirs(hosting, source)}) == []
    )


def site_dirs(hosting: Hosting, platform: str) -> str:
    return os.path.join(registry.load_platform(hosting.store, platform).docroot, "sites")


def test_one_task_at_a_time_per_site(prefect_api, hosting, site):
    name = site["name"]
    platform = hosting.load_site(name).platform
    other = hosting.site(platform)
    assert install(other).is_completed()
    env = {**prefect_api.env, "AEGIR_FAULT": "backup-archive:before:pause=25"}
    slow = subprocess.Popen([AEGIR, "backup", name], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        running(hosting, name, "backup-site", slow)
        # --no-wait: refused at once, saying who holds the site
        started = time.monotonic()
        busy = aegir(prefect_api.env, "--no-wait", "verify", name)
        assert busy.returncode == 5 and "is busy with backup-site" in busy.stderr, busy.stderr
        assert time.monotonic() - started < 10
        # another site is not held up
        assert aegir(prefect_api.env, "verify", other).returncode == 0
        assert slow.poll() is None
        # waiting: the second task starts when the first is done, and its log says why it waited
        waited = aegir(prefect_api.env, "verify", name)
        assert waited.returncode == 0, waited.stderr
        assert slow.wait(timeout=60) == 0
        wait_for_log(prefect_api.url, run_id(waited.stderr), "busy with backup-site")
        assert "waiting: " in flow_run_logs(prefect_api.url, run_id(waited.stderr))
    finally:
        if slow.poll() is None:
            slow.kill()
    assert lock_slots(prefect_api.url, name) == 0
    # the backup's dump held one of the db server's slots (db_task_limit, default 2), released since
    db_limit = api.get(f"{prefect_api.url}/v2/concurrency_limits/db-{slugify(hosting.server)}").json()
    assert db_limit["limit"] == 2 and db_limit["active_slots"] == 0


def test_resume_refuses_unknown_runs_and_live_ones(prefect_api, hosting, site):
    bad = aegir(prefect_api.env, "resume", "not-a-uuid")
    assert bad.returncode == 2 and "flow_run_id" in bad.stderr
    missing = aegir(prefect_api.env, "resume", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 3
    name = site["name"]
    env = {**prefect_api.env, "AEGIR_FAULT": "validate-restore:after:pause=10"}
    slow = subprocess.Popen(
        [AEGIR, "restore", name, site["backup"]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        running(hosting, name, "restore-site", slow)
        live = aegir(prefect_api.env, "resume", hosting.load_site(name).operation["flow_run"])
        assert live.returncode == 1 and "is still running" in live.stderr
        assert slow.wait(timeout=120) == 0
    finally:
        if slow.poll() is None:
            slow.kill()
