"""Issue #7 across real hosts (network namespaces, each with a private view of the shared path; see
tests/support/hosts.py): a platform on a remote web server (code pushed from the master), a site on it with
its database on a remote db server, served by the remote nginx; its backup on the master."""

from __future__ import annotations

import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aegir import registry
from tests.fixtures.drupal import make_platforms
from tests.integration.helpers import AEGIR, unique
from tests.integration.sites import DRUSH
from tests.support.hosts import HostNetwork, NetnsHost, start_sshd, stop_sshd, wait_for_http

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.support.hosts"]


@dataclass
class Remote:
    store: object
    network: HostNetwork
    web: str
    db: str
    web_host: NetnsHost
    db_host: NetnsHost


def run(flow_ref: str, **params):
    import importlib

    module, attr = flow_ref.split(":")
    state = getattr(importlib.import_module(module), attr)(**params, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


@pytest.fixture(scope="module")
def remote(prefect_api, host_network, web1_host, db1_host) -> Iterator[Remote]:
    from blocks.store import BlockStore

    store = BlockStore(prefect_api.url, prefect_api.auth)
    # the master itself (archives live on its backup_path), then a remote web server and a remote db server
    master = {"aegir_root": host_network.aegir_root, "http_service_type": "null", "db_service_type": "null"}
    registry.save(store, "@server_master", "server", master)
    web, db = unique("@server_web1_"), unique("@server_db1_")
    registry.save(store, web, "server", {**web1_host.server_fields(), "drush_path": DRUSH})
    registry.save(store, db, "server", db1_host.server_fields())
    for name in (web, db):
        run("flows.verify_server:verify_server", server=name)
    yield Remote(store, host_network, web, db, web1_host, db1_host)


def remote_platform(remote: Remote, kind: str) -> str:
    """A sample platform built on the master under the shared path, for the remote web server."""
    name = unique(f"@platform_{kind.replace('-', '')}_")
    root = make_platforms.build(kind, Path(remote.network.shared, "platforms", name[1:]))
    registry.save(remote.store, name, "platform", {"root": str(root), "web_server": remote.web})
    return name


def test_a_site_on_a_remote_web_server_with_a_remote_database(remote):
    platform = remote_platform(remote, "d7")
    platform_root = registry.load_platform(remote.store, platform).root
    assert not remote.web_host.master_path(platform_root).exists()  # nothing on web1 yet
    run("flows.verify_platform:verify_platform", platform=platform)
    pushed = remote.web_host.master_path(platform_root)
    assert (pushed / "index.php").is_file()  # the code was pushed to the same path on web1

    uri = unique("r") + ".example.test"
    name = "@" + uri
    registry.save(remote.store, name, "site", {"platform": platform, "db_server": remote.db})
    run("flows.install_site:install_site", site=name)
    site = registry.load_site(remote.store, name)
    # served by web1's nginx, from web1's copy; the database on db1
    wait_for_http(remote.web_host, uri, status=200, text=uri)
    assert (pushed / "sites" / uri / "settings.php").is_file()
    assert not Path(platform_root, "sites", uri).exists()  # nothing of the site on the master
    with remote.db_host.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (site.db_name,))
        assert cur.fetchall()

    # a backup: on the master, holding the remote site dir and the remote database
    entry = run("flows.backup_site:backup_site", site=name)
    assert Path(entry["file"]).is_file() and entry["file"].startswith(remote.network.aegir_root)
    with tarfile.open(entry["file"]) as archive:
        names = archive.getnames()
    assert "./settings.php" in names or "settings.php" in names
    assert any(n.endswith("database.sql") for n in names)

    # restore it (into a new database on db1 and a new dir on web1), then a one-time login link from web1
    run("flows.restore_site:restore_site", site=name, backup=entry["id"])
    restored = registry.load_site(remote.store, name)
    assert restored.db_name != site.db_name and restored.db_name in databases_on(remote.db_host)
    assert site.db_name not in databases_on(remote.db_host)
    wait_for_http(remote.web_host, uri, status=200, text=uri)
    link = run("flows.login_reset:login_reset", site=name)
    assert f"http://{uri}" in link and "/user/reset/" in link


def test_a_web_server_whose_host_key_changed_is_refused(remote, web1_host, web2_host):
    """web1's address, but web2's host key pinned: verify-server refuses to talk to it."""
    impostor = unique("@server_impostor_")
    fields = {**web1_host.server_fields(), "ssh_host_key": web2_host.host_public_key, "drush_path": DRUSH}
    registry.save(remote.store, impostor, "server", fields)
    from flows.verify_server import verify_server

    state = verify_server(server=impostor, return_state=True)
    assert state.is_failed() and "CHANGED" in state.message and web1_host.address in state.message, state.message


@pytest.fixture(scope="module")
def second(remote, host_network, web2_host) -> tuple[str, str]:
    """A second web server (web2) and a second db server (db2), verified."""
    db2_host = host_network.db_host("db2")
    web2, db2 = unique("@server_web2_"), unique("@server_db2_")
    registry.save(remote.store, web2, "server", {**web2_host.server_fields(), "drush_path": DRUSH})
    registry.save(remote.store, db2, "server", db2_host.server_fields())
    for name in (web2, db2):
        run("flows.verify_server:verify_server", server=name)
    return web2, db2


def databases_on(host: NetnsHost) -> set[str]:
    with host.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return {r[0] for r in cur.fetchall()}


def test_migrate_between_web_servers_and_db_servers_then_clone_and_delete(remote, second, web2_host, host_network):
    web2, db2 = second
    db2_host = host_network.db_host("db2")
    on_web1 = remote_platform(remote, "d7")
    run("flows.verify_platform:verify_platform", platform=on_web1)
    uri = unique("m") + ".example.test"
    name = "@" + uri
    registry.save(remote.store, name, "site", {"platform": on_web1, "db_server": remote.db})
    run("flows.install_site:install_site", site=name)
    before = registry.load_site(remote.store, name)

    # a platform of the same code on web2; the site moves there with its database moving to db2
    on_web2 = unique("@platform_d7web2_")
    root = make_platforms.build("d7", Path(remote.network.shared, "platforms", on_web2[1:]))
    registry.save(remote.store, on_web2, "platform", {"root": str(root), "web_server": web2})
    run("flows.verify_platform:verify_platform", platform=on_web2)
    run("flows.migrate_site:migrate_site", site=name, platform=on_web2, db_server=db2)
    after = registry.load_site(remote.store, name)
    assert (after.platform, after.db_server) == (on_web2, db2)
    wait_for_http(web2_host, uri, status=200, text=uri)  # served by web2, from its database on db2
    assert after.db_name in databases_on(db2_host) and before.db_name not in databases_on(remote.db_host)
    old_dir = registry.load_platform(remote.store, on_web1).root + f"/sites/{uri}"
    assert not remote.web_host.master_path(old_dir).exists()  # the old site dir went from web1
    wait_for_http(remote.web_host, uri, status=404)  # and web1 no longer serves it

    # a clone back on web1 with its database on db1; deleting it later spares the source
    clone_uri = "clone-" + uri
    run("flows.clone_site:clone_site", site=name, new_uri=clone_uri, platform=on_web1, db_server=remote.db)
    wait_for_http(remote.web_host, clone_uri, status=200, text=clone_uri)
    clone = registry.load_site(remote.store, "@" + clone_uri)
    assert clone.db_name in databases_on(remote.db_host)
    run("flows.disable_enable:disable_site", site="@" + clone_uri)
    run("flows.delete_site:delete_site", site="@" + clone_uri)
    assert clone.db_name not in databases_on(remote.db_host) and after.db_name in databases_on(db2_host)
    wait_for_http(web2_host, uri, status=200, text=uri)


def test_a_web_server_lost_mid_migrate_rolls_back_and_the_next_task_finishes_the_rollback(
    prefect_api, remote, second, web2_host
):
    """web2's sshd dies while the migrate to it runs: the task fails naming web2, the site stays on web1
    (served, maintenance off); what could not be undone on web2 stays in the site's journal until web2 is back,
    then the next task on the site removes it before doing its own work."""
    web2, _ = second
    on_web1 = remote_platform(remote, "d7")
    run("flows.verify_platform:verify_platform", platform=on_web1)
    on_web2 = unique("@platform_d7web2_")
    root = make_platforms.build("d7", Path(remote.network.shared, "platforms", on_web2[1:]))
    registry.save(remote.store, on_web2, "platform", {"root": str(root), "web_server": web2})
    run("flows.verify_platform:verify_platform", platform=on_web2)
    uri = unique("f") + ".example.test"
    name = "@" + uri
    registry.save(remote.store, name, "site", {"platform": on_web1, "db_server": remote.db})
    run("flows.install_site:install_site", site=name)

    env = {**prefect_api.env, "AEGIR_FAULT": "deploy-target:before:pause=3"}
    migrating = subprocess.Popen([AEGIR, "migrate", name, on_web2], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # maintenance on is next: web2's target is made, stop web2 now
            journal = registry.load_site(remote.store, name).operation or {}
            if any(u["label"] == "maintenance mode off" for u in journal.get("undo", [])):
                break
            time.sleep(0.1)
        stop_sshd(web2_host)
        _, stderr = migrating.communicate(timeout=180)
    finally:
        if migrating.poll() is None:
            migrating.kill()
    try:
        assert migrating.returncode == 1, stderr
        assert web2_host.address in stderr and "ROLLBACK PENDING" in stderr, stderr
        site = registry.load_site(remote.store, name)
        assert site.platform == on_web1 and site.operation["phase"] == "rollback pending"
        wait_for_http(remote.web_host, uri, status=200, text=uri)  # on web1 as before, maintenance off
        target_dir = web2_host.master_path(f"{root}/sites/{uri}")
        assert target_dir.exists()  # web2 was unreachable: its part is still there
    finally:
        start_sshd(web2_host)
    # the next task on the site first finishes the rollback on web2
    run("flows.verify_site:verify_site", site=name)
    site = registry.load_site(remote.store, name)
    assert site.operation is None and site.platform == on_web1 and not target_dir.exists()
    wait_for_http(remote.web_host, uri, status=200, text=uri)


def test_a_db_server_only_the_master_can_reach_is_refused_for_a_remote_web_server(remote, db_admin):
    platform = remote_platform(remote, "d7")
    run("flows.verify_platform:verify_platform", platform=platform)
    local_db = unique("@server_localdb_")
    registry.save(remote.store, local_db, "server", {**db_admin, "http_service_type": "null"})
    uri = unique("l") + ".example.test"
    registry.save(remote.store, "@" + uri, "site", {"platform": platform, "db_server": local_db})
    from flows.install_site import install_site

    state = install_site(site="@" + uri, return_state=True)
    assert state.is_failed() and "db_server: " in state.message and "db_host" in state.message, state.message
    root = registry.load_platform(remote.store, platform).root
    assert not remote.web_host.master_path(f"{root}/sites/{uri}").exists()  # nothing was made
