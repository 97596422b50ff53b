"""Fault injection for migrate-site and clone-site: a failure at every step boundary (an exception), a web
server config test that fails, a database server that refuses connections. Afterwards the site serves 200
with the same content and database checksum as before; no database, user, dir or vhost is left behind; the
site's lock is free."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegir import registry
from tests.integration.helpers import unique
from tests.integration.sites import Hosting, make_hosting, query_site
from tests.integration.test_backup_restore import retitle
from tests.integration.test_backup_restore import run as run_flow
from tests.integration.test_crash_resume import lock_slots
from tests.integration.test_install_site import install
from tests.support.mariadb import databases, users_like

pytestmark = pytest.mark.integration

CONTENT_TABLES = "node, node_revision, field_data_body, users"


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_mf")


@pytest.fixture(scope="module")
def site(hosting) -> dict[str, str]:
    d7, twin = hosting.verified_platform("d7"), hosting.verified_platform("d7-same")
    name = hosting.site(d7)
    assert install(name).is_completed()
    retitle(hosting, name, 7, "Content that must survive")
    return {"name": name, "platform": d7, "twin": twin}


def snapshot(hosting: Hosting, site: dict[str, str]) -> dict:
    record = hosting.load_site(site["name"])
    return {
        "platform": record.platform,
        "db_name": record.db_name,
        "checksum": query_site(record.db_name, f"CHECKSUM TABLE {CONTENT_TABLES}"),
        "databases": databases(),
        "users": users_like(record.db_user[:8]),
    }


def sites_entries(hosting: Hosting, platform: str, uri: str) -> list[str]:
    return [p for p in os.listdir(Path(registry.load_platform(hosting.store, platform).docroot, "sites")) if uri in p]


def assert_as_before(
    prefect_api, hosting: Hosting, site: dict[str, str], before: dict, clone_uri: str | None = None
) -> None:
    after = snapshot(hosting, site)
    assert after == before
    record = hosting.load_site(site["name"])
    assert record.operation is None and record.status == "installed"
    uri = site["name"][1:]
    assert sites_entries(hosting, site["twin"], uri) == []
    if clone_uri:
        assert sites_entries(hosting, site["platform"], clone_uri) == []
    hosting.web.wait_for(uri, status=200, text=uri)
    assert lock_slots(prefect_api.url, site["name"]) == 0


MIGRATE_STEPS = [
    "validate-migrate",
    "maintenance-mode#1",
    "backup-archive",
    "record-backup",
    "plan-target",
    "prepare-target",
    "deploy-target",
    "updatedb",
    "target-cache-clear",
    "target-vhost",
    "target-maintenance",
    "probe-target",
]


@pytest.mark.parametrize("fault", [f"{s}:after:raise" for s in MIGRATE_STEPS])
def test_migrate_failing_at_each_step_rolls_back(prefect_api, hosting, site, fault, monkeypatch):
    before = snapshot(hosting, site)
    monkeypatch.setenv("AEGIR_FAULT", fault)
    state = run_flow("flows.migrate_site:migrate_site", site=site["name"], platform=site["twin"])
    assert state.is_failed() and "injected fault" in state.message
    if not fault.startswith(("validate-migrate", "plan-target")):  # nothing to undo yet
        assert "rolled back:" in state.message
    assert_as_before(prefect_api, hosting, site, before)


CLONE_STEPS = ["backup-archive", "plan-target", "deploy-target", "rename-fixups", "target-vhost", "probe-target"]


@pytest.mark.parametrize("fault", [f"{s}:after:raise" for s in CLONE_STEPS])
def test_clone_failing_at_each_step_leaves_no_trace(prefect_api, hosting, site, fault, monkeypatch):
    before = snapshot(hosting, site)
    clone_uri = unique("clone") + ".example.test"
    hosting.sites.append("@" + clone_uri)
    monkeypatch.setenv("AEGIR_FAULT", fault)
    state = run_flow("flows.clone_site:clone_site", site=site["name"], new_uri=clone_uri)
    assert state.is_failed() and "injected fault" in state.message
    if not fault.startswith("backup-archive"):  # nothing to undo yet: the error as it is
        assert "rolled back:" in state.message
    assert hosting.store.find("@" + clone_uri) is None
    assert_as_before(prefect_api, hosting, site, before, clone_uri)
    hosting.web.wait_for(clone_uri, status=404)


def test_failing_web_server_config_test_rolls_the_migrate_back(prefect_api, hosting, site):
    before = snapshot(hosting, site)
    broken = Path(hosting.web.aegir_root, "config", hosting.server[1:], "nginx", "pre.d", "broken.conf")
    broken.write_text("this is not nginx syntax;\n")
    try:
        state = run_flow("flows.migrate_site:migrate_site", site=site["name"], platform=site["twin"])
    finally:
        broken.unlink()
    assert state.is_failed() and "config test failed" in state.message and "rolled back:" in state.message
    assert_as_before(prefect_api, hosting, site, before)


def test_database_server_refusing_connections_is_refused_up_front(prefect_api, hosting, site, db_admin):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = unique("@server_down")
    registry.save(hosting.store, down, "server", {**db_admin, "db_port": closed, "http_service_type": "null"})
    before = snapshot(hosting, site)
    state = run_flow("flows.migrate_site:migrate_site", site=site["name"], platform=site["twin"], db_server=down)
    assert state.is_failed() and str(closed) in state.message
    assert_as_before(prefect_api, hosting, site, before)


def test_migrate_failing_past_its_point_of_no_return_is_finished_by_the_next_task(prefect_api, hosting, site):
    """(Last in this module: the site ends on the twin platform.) The new location answered; the cleanup
    failed: the journal keeps the finishing step, and the next task on the site completes the migrate."""
    before = snapshot(hosting, site)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AEGIR_FAULT", "finish-migrate:before:raise")
        state = run_flow("flows.migrate_site:migrate_site", site=site["name"], platform=site["twin"])
    assert state.is_failed() and "point of no return" in state.message
    assert hosting.load_site(site["name"]).operation["forward"]
    assert run_flow("flows.verify_site:verify_site", site=site["name"]).is_completed()
    record = hosting.load_site(site["name"])
    assert record.platform == site["twin"] and record.operation is None and record.db_name != before["db_name"]
    assert before["db_name"] not in databases()
    assert sites_entries(hosting, site["platform"], site["name"][1:]) == []
    hosting.web.wait_for(site["name"][1:], status=200, text=site["name"][1:])
    assert lock_slots(prefect_api.url, site["name"]) == 0
