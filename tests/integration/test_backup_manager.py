"""The backup manager for real (MariaDB, nginx + php-fpm, archives on disk, a real Prefect API): backup-all
(due sites, oldest first, a failed site not stopping the others, the window), purge-backups (retention over a
synthetic history of years with files on disk, pinned backups, caps, leftovers) and migrate-platform (a
canary, then the rest, halting on failures)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aegir import registry
from aegir.backup_policy import BackupWindow
from tests.integration.helpers import aegir, flow_run_logs, unique
from tests.integration.sites import Hosting, enable_d7_module, make_hosting
from tests.integration.test_install_site import install
from tests.support import api, mariadb

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_bm")


def latest_table(api_url: str, key: str) -> list[dict]:
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    data = api.post(f"{api_url}/artifacts/filter", json=body, timeout=10).json()[0]["data"]
    return json.loads(data) if isinstance(data, str) else data


def under_way(api_url: str, flow_run_name: str) -> dict[str, int]:
    """Site -> how many site tasks were under way once it started, from the fan-out's log lines in the newest
    flow run of that name. (Not the subflows' start times: on this SQLite-backed test server concurrent writes
    get 503 "database is locked" and Prefect's client retries after 2 s, 4 s…, so subflows started together
    may run one after another; see the README, "Runs at once need PostgreSQL".)"""
    body = {"flow_runs": {"name": {"any_": [flow_run_name]}}, "sort": "START_TIME_DESC", "limit": 1}
    parent = api.post(f"{api_url}/flow_runs/filter", json=body, timeout=10).raise_for_status().json()[0]
    found = re.findall(r"^\S+ (@\S+) started: (\d+) under way", flow_run_logs(api_url, parent["id"]), re.M)
    return {site: int(n) for site, n in found}


def named_site(hosting: Hosting, platform: str, first: str) -> str:
    """A site whose name sorts by ``first`` (a, b, c…): the order backup-all and migrate-platform go in."""
    name = f"@{first}{unique('')}.example.test"
    registry.save(hosting.store, name, "site", {"platform": platform, "db_server": hosting.server})
    hosting.sites.append(name)
    return name


def fake_backup(created: datetime, directory: Path, pinned: bool = False, size: int = 1000) -> dict:
    """A backup record with a file on disk (retention removes both)."""
    bid = f"fake-{created:%Y%m%dT%H%M%SZ}"
    path = directory / f"{bid}.tar.gz"
    path.write_bytes(b"x" * size)
    when = created.isoformat(timespec="seconds")
    return {"id": bid, "file": str(path), "server": "@server_master", "size": size, "sha256": "0" * 64,
            "created": when, "reason": "Automated backup", "pinned": pinned}  # fmt: skip


def set_backups(hosting: Hosting, name: str, backups: list[dict]) -> None:
    site = hosting.load_site(name)
    hosting.store.put(type(site).model_validate({**site.model_dump(), "backups": backups}))


@pytest.fixture
def notified(prefect_api, smtp_sink) -> Iterator[str]:
    """Failure notifications on, to a fresh address, through the mail sink; off again afterwards."""
    to = unique("ops-") + "@example.test"
    configured = aegir(prefect_api.env, "mail-server", "--host=127.0.0.1", f"--port={smtp_sink.port}")
    assert configured.returncode == 0, configured.stderr
    bad = aegir(prefect_api.env, "notify", "--to=not an address")
    assert bad.returncode == 2 and "to: " in bad.stderr, bad.stderr
    assert aegir(prefect_api.env, "notify", f"--to={to}").returncode == 0
    try:
        yield to
    finally:
        assert aegir(prefect_api.env, "notify", "--off").returncode == 0


def mails_to(smtp_sink, to: str) -> list:
    return [m for m in smtp_sink.messages if to in str(m["To"])]


def test_backup_all_backs_up_due_sites_oldest_first_and_a_failure_does_not_stop_the_others(
    prefect_api, hosting, tmp_path, smtp_sink, notified
):
    platform = hosting.verified_platform("d7")
    now = datetime.now(UTC)
    stale, never, broken, fresh, off = (named_site(hosting, platform, c) for c in "abcde")
    for name in (stale, never, broken, fresh, off):
        assert install(name).is_completed()
    set_backups(hosting, stale, [fake_backup(now - timedelta(days=3), tmp_path)])
    set_backups(hosting, fresh, [fake_backup(now - timedelta(hours=1), tmp_path)])
    registry.save(hosting.store, off, "site", {"backup_interval": "off"})
    with mariadb.root_connection() as conn:  # its dump fails
        conn.cursor().execute(f"DROP DATABASE `{hosting.load_site(broken).db_name}`")

    # dry run: the due sites, never-backed-up first (by name), then the oldest backup; nothing changes
    planned = aegir(prefect_api.env, "backup-all", "--dry-run", "--ignore-window", f"--platform={platform}")
    assert planned.returncode == 0, planned.stderr
    assert [line.split()[0] for line in planned.stdout.splitlines()[:-1]] == [never, broken, stale]
    assert len(hosting.load_site(never).backups) == 0

    # outside the window: nothing (a window crossing midnight, placed away from now)
    away = (now + timedelta(hours=6)).strftime("%H:%M"), (now + timedelta(hours=-6)).strftime("%H:%M")
    from flows.backup_all import backup_all

    closed = BackupWindow(start=away[0], end=away[1])
    assert not closed.contains(now) and backup_all(window=closed, platform=platform) == []
    assert len(hosting.load_site(never).backups) == 0

    # a bad width is refused naming it, before anything runs
    bad = aegir(prefect_api.env, "backup-all", "--ignore-window", f"--platform={platform}", "--parallel=0")
    assert bad.returncode == 2 and "--parallel" in bad.stderr, bad.stderr
    assert len(hosting.load_site(never).backups) == 0

    # the real run, the three site backups started at once: the broken site fails, the others are backed
    # up; exit code 1 naming it
    done = aegir(prefect_api.env, "backup-all", "--ignore-window", f"--platform={platform}", "--parallel=3")
    assert done.returncode == 1 and broken in done.stderr, (done.stdout, done.stderr)
    assert under_way(prefect_api.url, "backup-all") == {never: 1, broken: 2, stale: 3}
    for name in (never, stale):
        newest = hosting.load_site(name).backups[0]
        assert newest["reason"] == "Automated backup" and Path(newest["file"]).is_file()
    assert len(hosting.load_site(fresh).backups) == 1 and hosting.load_site(off).backups == []
    assert hosting.load_site(broken).backups == []
    rows = {r["site"]: r for r in latest_table(prefect_api.url, "backup-all")}
    assert set(rows) == {never, broken, stale}
    # one notice, for backup-all (not one more for the broken site's own backup-site run), naming the site
    notice = smtp_sink.wait_for(notified)
    assert str(notice["Subject"]).startswith("[aegir] backup-all failed")
    assert broken in notice.get_content() and "aegir resume" in notice.get_content()
    time.sleep(1)
    assert len(mails_to(smtp_sink, notified)) == 1
    assert rows[broken]["result"] == "failed" and rows[broken]["error"]
    assert rows[never]["result"] == "ok" and rows[never]["size"] > 0 and rows[never]["seconds"] > 0

    # now nothing is due but the broken site
    again = aegir(prefect_api.env, "backup-all", "--dry-run", "--ignore-window", f"--platform={platform}")
    assert [line.split()[0] for line in again.stdout.splitlines()[:-1]] == [broken]
    assert len(mails_to(smtp_sink, notified)) == 1  # a run that did not fail sends nothing


def history(now: datetime, directory: Path) -> list[dict]:
    """Two years of backups, one a day at 12:00 UTC; two pinned safety backups among them."""
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon > now:
        noon -= timedelta(days=1)
    pinned = {100, 600}
    return [fake_backup(noon - timedelta(days=d), directory, pinned=d in pinned) for d in range(730)]


def test_purge_backups_thins_two_years_of_daily_backups_keeping_pinned_ones(prefect_api, hosting, tmp_path):
    platform = hosting.platform("d7")
    name = hosting.site(platform)
    now = datetime.now(UTC)
    backups = history(now, tmp_path)
    set_backups(hosting, name, backups)

    # dry run: a list with reasons, nothing removed
    dry = aegir(prefect_api.env, "purge-backups", name, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed = [line.split()[1] for line in dry.stdout.splitlines()[:-1]]
    assert len(hosting.load_site(name).backups) == 730 and all(Path(b["file"]).exists() for b in backups)

    done = aegir(prefect_api.env, "purge-backups", name)
    assert done.returncode == 0, done.stderr
    kept = hosting.load_site(name).backups
    kept_ids = {b["id"] for b in kept}
    removed = [b for b in backups if b["id"] not in kept_ids]
    assert sorted(listed) == sorted(b["id"] for b in removed)  # exactly what the dry run said
    assert all(not Path(b["file"]).exists() for b in removed) and all(Path(b["file"]).exists() for b in kept)
    # pinned ones stay (one is almost two years old); nothing else older than 12 months (360 days)
    assert {b["id"] for b in kept if b["pinned"]} == {backups[100]["id"], backups[600]["id"]}
    assert all(now - datetime.fromisoformat(b["created"]) < timedelta(days=361) for b in kept if not b["pinned"])
    # the last 7 days are all kept (one a day); then weekly to 5 weeks, then monthly: ~1 + 7 + 4 + 11 in all
    recent = {b["id"] for b in backups[:7]}
    assert recent <= kept_ids
    unpinned = [b for b in kept if not b["pinned"]]
    assert 19 <= len(unpinned) <= 26, len(unpinned)
    between_5w_and_12mo = [b for b in unpinned if 35 < (now - datetime.fromisoformat(b["created"])).days < 360]
    assert 10 <= len(between_5w_and_12mo) <= 12
    reasons = [line for line in dry.stdout.splitlines() if "older than 12mo" in line or "older than 1y" in line]
    assert reasons, dry.stdout[-2000:]

    # a cap on the count: the newest 5 unpinned stay, with the pinned ones
    capped = aegir(prefect_api.env, "purge-backups", name, "--max-count=5")
    assert capped.returncode == 0, capped.stderr
    left = hosting.load_site(name).backups
    assert [b["id"] for b in left if not b["pinned"]] == [b["id"] for b in backups[:5]]
    assert sum(b["pinned"] for b in left) == 2
    # the site's own cap wins over the run's (and purge over every site still keeps the pinned ones)
    registry.save(hosting.store, name, "site", {"backup_max_count": "3"})
    assert aegir(prefect_api.env, "purge-backups", name, "--max-count=4").returncode == 0
    left = hosting.load_site(name).backups
    assert [b["id"] for b in left if not b["pinned"]] == [b["id"] for b in backups[:3]]
    bad = aegir(prefect_api.env, "save", name, "--backup_max_count=0")
    assert bad.returncode == 2 and "backup_max_count" in bad.stderr, bad.stderr


def test_purge_backups_refuses_bad_rules_and_removes_stale_leftovers(prefect_api, hosting, tmp_path):
    bad = aegir(prefect_api.env, "purge-backups", "--rule=7x:1w", "--dry-run")
    assert bad.returncode == 2 and "rules" in bad.stderr and "7x" in bad.stderr, bad.stderr
    server = registry.load_server(hosting.store, hosting.server)
    os.makedirs(server.backup_path, exist_ok=True)
    old, new = Path(server.backup_path, ".x-old.tar.gz.partial"), Path(server.backup_path, ".x-new.tar.gz.partial")
    for path in (old, new):
        path.write_bytes(b"partial")
    day_ago = time.time() - 2 * 86400
    os.utime(old, (day_ago, day_ago))
    name = hosting.site(hosting.platform("d7"))
    done = aegir(prefect_api.env, "purge-backups", name)
    assert done.returncode == 0, done.stderr
    assert not old.exists() and new.exists()
    new.unlink()


def test_migrate_platform_goes_canary_first_and_halts_on_failures(prefect_api, hosting):
    older, newer = hosting.verified_platform("d7-older"), hosting.verified_platform("d7-newer")
    first, bad, last = (named_site(hosting, older, c) for c in "abc")
    for name in (first, bad, last):
        assert install(name).is_completed()
    enable_d7_module(hosting.load_site(bad).db_name, "views", 30000)  # the pre-flight refuses it

    # one at a time, no failure tolerated: the canary moves, the bad one fails, the last is not started
    done = aegir(prefect_api.env, "migrate-platform", older, newer, "--canary=1", "--parallel=1")
    assert done.returncode == 1 and bad in done.stderr, (done.stdout, done.stderr)
    assert [hosting.load_site(n).platform for n in (first, bad, last)] == [newer, older, older]
    rows = {r["site"]: r["result"] for r in latest_table(prefect_api.url, "migrate-platform")}
    assert rows == {first: "ok", bad: "failed", last: "not started"}
    hosting.web.wait_for(bad[1:], status=200, text=bad[1:])  # rolled back where it was, still served

    # tolerating one failure: the rest go
    again = aegir(prefect_api.env, "migrate-platform", older, newer, "--canary=0", "--max-failures=1")
    assert again.returncode == 1
    assert [hosting.load_site(n).platform for n in (bad, last)] == [older, newer]
    hosting.web.wait_for(last[1:], status=200, text=last[1:])

    # a target that is the platform itself: refused, naming the field
    same = aegir(prefect_api.env, "migrate-platform", older, older)
    assert same.returncode == 2 and "target" in same.stderr, same.stderr
