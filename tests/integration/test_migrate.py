"""migrate-site and rename on real sample platforms (drush stand-in, MariaDB, nginx + php-fpm, Prefect API):
an upgrade that runs updates, a refused schema downgrade, a rename, a failed updatedb that rolls back."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegir import registry
from aegir.drupal.settings import CREDENTIALS_FILE
from tests.fixtures.drupal import make_platforms as mp
from tests.integration.helpers import aegir, unique
from tests.integration.sites import (
    Hosting,
    enable_d7_module,
    make_hosting,
    post_updates_run,
    query_site,
    replace_code,
    schemas,
    site_database_exists,
    updatedb_status,
)
from tests.integration.test_backup_restore import retitle, titles
from tests.integration.test_install_site import install
from tests.support import api, mariadb
from tests.support.mariadb import databases

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_mig")


def schema(db: str, module: str) -> int:
    return int(query_site(db, f"SELECT schema_version FROM system WHERE name = '{module}'")[0][0])


def sites_dir(hosting: Hosting, platform: str) -> Path:
    return Path(registry.load_platform(hosting.store, platform).docroot, "sites")


def leftovers(hosting: Hosting, platform: str, uri: str) -> list[str]:
    return sorted(p for p in os.listdir(sites_dir(hosting, platform)) if uri in p)


def installed(hosting: Hosting, kinds: tuple[str, str], content: str) -> tuple[str, str, str]:
    """Two verified platforms of these kinds and a site installed on the first, its content set."""
    source, target = (hosting.verified_platform(k) for k in kinds)
    name = hosting.site(source)
    assert install(name).is_completed()
    retitle(hosting, name, 7, content)
    return source, target, name


def stale_cache(db: str) -> None:
    """A cache entry the migrated site must not keep (code and paths changed under it)."""
    conn = mariadb.connect(db, autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO cache (cid, data) VALUES ('stale', 'from before the migrate')")


def test_upgrade_older_to_newer_runs_updates_and_removes_the_old_site(prefect_api, hosting):
    older, newer, name = installed(hosting, ("d7-older", "d7-newer"), "Content before the upgrade")
    uri = name[1:]
    before = hosting.load_site(name)
    stale_cache(before.db_name)
    system_before = schema(before.db_name, "system")

    planned = aegir(prefect_api.env, "migrate", name, newer, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "Pre-flight:" in planned.stdout and "upgrade" in planned.stdout
    assert hosting.load_site(name).platform == older  # the dry run changed nothing

    done = aegir(prefect_api.env, "migrate", name, newer)
    assert done.returncode == 0, done.stderr
    # the run's progress artifact followed its steps to the end
    run_id = re.search(r"Flow run migrate-site \S+ \S+ \(([0-9a-f-]{36})\)", done.stderr).group(1)
    body = {"artifacts": {"flow_run_id": {"any_": [run_id]}, "type": {"any_": ["progress"]}}}
    progress = api.post(f"{prefect_api.url}/artifacts/filter", json=body, timeout=10).json()
    assert [float(a["data"]) for a in progress] == [100.0] and "finished (" in progress[0]["description"]
    after = hosting.load_site(name)
    assert after.platform == newer and after.status == "installed" and after.operation is None
    assert schema(after.db_name, "system") > system_before  # updatedb ran with the newer code
    assert titles(hosting, name, 7) == ["Content before the upgrade"]
    assert query_site(after.db_name, "SELECT cid FROM cache") == []  # cleared (by updatedb)
    hosting.web.wait_for(uri, status=200, text=uri)
    # the old site is gone: dir, database and user; the new one has its own
    assert after.db_name != before.db_name and not site_database_exists(before.db_name)
    assert leftovers(hosting, older, uri) == [] and leftovers(hosting, newer, uri) == [uri]
    backup = after.backups[0]
    assert backup["reason"] == "Pre-migration backup" and backup["pinned"]


def test_schema_downgrade_is_refused_by_the_preflight_and_nothing_changes(prefect_api, hosting, db_admin):
    d7, older = hosting.verified_platform("d7"), hosting.verified_platform("d7-older")
    name = hosting.site(d7)
    assert install(name).is_completed()
    enable_d7_module(hosting.load_site(name).db_name, "views", 7301)
    before, dbs = hosting.load_site(name), databases()
    refused = aegir(prefect_api.env, "migrate", name, older)
    assert refused.returncode == 2, refused.stderr
    assert "pre-flight refuses" in refused.stderr and "views" in refused.stderr and "schema downgrade" in refused.stderr
    bad_uri = aegir(prefect_api.env, "rename", name, "not a domain!")
    assert bad_uri.returncode == 2 and "new_uri: " in bad_uri.stderr, bad_uri.stderr
    after = hosting.load_site(name)
    assert (after.platform, after.db_name, after.backups) == (before.platform, before.db_name, before.backups)
    assert databases() == dbs and leftovers(hosting, older, name[1:]) == []
    hosting.web.wait_for(name[1:], status=200, text=name[1:])


def test_rename_moves_content_paths_and_stops_serving_the_old_name(prefect_api, hosting):
    d7 = hosting.verified_platform("d7")
    name = hosting.site(d7)
    old_uri = name[1:]
    new_uri = "renamed-" + old_uri
    hosting.sites.append("@" + new_uri)
    assert install(name).is_completed()
    old_db = hosting.load_site(name).db_name
    stale_cache(old_db)

    done = aegir(prefect_api.env, "rename", name, new_uri)
    assert done.returncode == 0, done.stderr
    assert hosting.store.find(name) is None  # the context moved to its new name, with its backups
    site = hosting.load_site("@" + new_uri)
    assert site.uri == new_uri and site.platform == d7 and site.backups[0]["reason"] == "Pre-migration backup"
    body = query_site(site.db_name, "SELECT body_value FROM field_data_body")[0][0]
    assert f"sites/{new_uri}/files" in body and f"sites/{old_uri}/" not in body
    assert query_site(site.db_name, "SELECT cid FROM cache") == []  # no updates ran: cleared by a cache clear
    hosting.web.wait_for(new_uri, status=200, text=f"| {new_uri}</title>")  # the site name followed
    hosting.web.wait_for(old_uri, status=404)
    assert not site_database_exists(old_db)
    assert leftovers(hosting, d7, old_uri) == [new_uri]  # only the new dir ("renamed-<old>") holds the old name
    sites_php = (
        (sites_dir(hosting, d7) / "sites.php").read_text() if (sites_dir(hosting, d7) / "sites.php").exists() else ""
    )
    assert f"'{old_uri}'" not in sites_php


def test_failed_updatedb_rolls_everything_back(prefect_api, hosting):
    d7, failing, name = installed(hosting, ("d7", "d7-updatefail"), "Kept through a failed migrate")
    uri = name[1:]
    before, dbs = hosting.load_site(name), databases()

    failed = aegir(prefect_api.env, "migrate", name, failing)
    assert failed.returncode == 1
    assert "updatedb" in failed.stderr.lower() and "rolled back:" in failed.stderr
    after = hosting.load_site(name)
    assert (after.platform, after.db_name, after.status) == (before.platform, before.db_name, "installed")
    assert after.operation is None
    assert databases() == dbs  # the target database is gone again
    assert leftovers(hosting, failing, uri) == []
    assert titles(hosting, name, 7) == ["Kept through a failed migrate"]
    hosting.web.wait_for(uri, status=200, text=uri)
    # the backup is kept, no longer pinned
    assert after.backups[0]["reason"] == "Pre-migration backup" and not after.backups[0]["pinned"]


def clone_source(hosting: Hosting, prefix: str) -> tuple[str, str, str]:
    """An installed site on a fresh d7 platform, and the domain its clone will get (cleaned up at the end)."""
    d7 = hosting.verified_platform("d7")
    source = hosting.site(d7)
    clone_uri = prefix + source[1:]
    hosting.sites.append("@" + clone_uri)
    assert install(source).is_completed()
    return d7, source, clone_uri


def test_clone_gives_two_independent_sites_and_deleting_the_clone_spares_the_source(prefect_api, hosting):
    d7, source, clone_uri = clone_source(hosting, "clone-")
    retitle(hosting, source, 7, "Source content")
    before = hosting.load_site(source)

    taken = aegir(prefect_api.env, "clone", source, source[1:])
    assert taken.returncode == 2 and "new_uri" in taken.stderr

    done = aegir(prefect_api.env, "clone", source, clone_uri)
    assert done.returncode == 0, done.stderr
    clone = hosting.load_site("@" + clone_uri)
    assert clone.db_name not in (None, before.db_name) and clone.db_user != before.db_user
    assert clone.aliases == [] and clone.backups == [] and clone.status == "installed"
    body = query_site(clone.db_name, "SELECT body_value FROM field_data_body")[0][0]
    assert f"sites/{clone_uri}/files" in body
    hosting.web.wait_for(clone_uri, status=200, text=f"| {clone_uri}</title>")
    hosting.web.wait_for(source[1:], status=200, text=f"| {source[1:]}</title>")
    after = hosting.load_site(source)
    assert (after.db_name, after.platform, after.operation) == (before.db_name, before.platform, None)

    # independent: the clone's content changes, the source's does not
    retitle(hosting, "@" + clone_uri, 7, "Clone content")
    assert titles(hosting, source, 7) == ["Source content"]
    # deleting the clone can never touch the source's database
    assert aegir(prefect_api.env, "disable", "@" + clone_uri).returncode == 0
    deleted = aegir(prefect_api.env, "delete", "@" + clone_uri)
    assert deleted.returncode == 0, deleted.stderr
    assert not site_database_exists(clone.db_name) and site_database_exists(before.db_name)
    assert titles(hosting, source, 7) == ["Source content"]
    hosting.web.wait_for(source[1:], status=200, text=source[1:])


@pytest.mark.parametrize("where", ["newer platform", "own platform, code upgraded in place"])
def test_clone_onto_newer_code_runs_updatedb(prefect_api, hosting, where):
    """Issue 15, finding 4: a clone whose database is behind the code it lands on gets updatedb — on another
    platform, and on its own platform once that platform's code was upgraded in place; the source is left as
    it was."""
    d7, source, clone_uri = clone_source(hosting, "behind-")
    source_before = schemas(hosting.load_site(source).db_name, 7)
    if where == "newer platform":
        target = hosting.verified_platform("d7-newer")
        done = aegir(prefect_api.env, "clone", source, clone_uri, target)
    else:
        replace_code(registry.load_platform(hosting.store, d7).root, "d7-newer")
        assert aegir(prefect_api.env, "verify", d7).returncode == 0
        done = aegir(prefect_api.env, "clone", source, clone_uri)
    assert done.returncode == 0, done.stderr
    clone = hosting.load_site("@" + clone_uri)
    expected = mp.spec("d7-newer").schema_versions()
    found = schemas(clone.db_name, 7)
    assert (found["system"], found["user"]) == (expected["system"], expected["user"]) == (7088, 7020)
    assert "announcements_feed" in found  # system_update_7087 enabled it
    assert "No database updates required" in updatedb_status(hosting, "@" + clone_uri)
    assert schemas(hosting.load_site(source).db_name, 7) == source_before  # the source is not touched
    hosting.web.wait_for(clone_uri, status=200, text=f"| {clone_uri}</title>")


def test_drupal_10_minor_upgrade_migrates_and_runs_updates_and_post_updates(prefect_api, hosting):
    """Issue 15, finding 5: 10.2 → 10.3 passes the pre-flight (block's schema is its last removed update, 8003,
    on both; path_alias is found) and updatedb runs the new hook_update_N and post-updates."""
    d10, newer = hosting.verified_platform("d10"), hosting.verified_platform("d10-newer")
    name = hosting.site(d10)
    assert install(name).is_completed()
    done = aegir(prefect_api.env, "migrate", name, newer)
    assert done.returncode == 0, done.stderr
    site = hosting.load_site(name)
    assert site.platform == newer
    found = schemas(site.db_name, 10)
    assert (found["system"], found["block"], found["path_alias"]) == (10301, 8003, 8000)
    ran = post_updates_run(site.db_name)
    assert {
        "block_post_update_set_menu_block_depth_to_null_if_zero",
        "node_post_update_set_node_type_description_and_help_to_null",
    } <= ran
    assert "No database updates required" in updatedb_status(hosting, name)
    hosting.web.wait_for(name[1:], status=200, text=name[1:])


def test_failed_clone_rolls_back_and_leaves_no_trace(prefect_api, hosting):
    d7, source, clone_uri = clone_source(hosting, "failed-")
    dbs = databases()
    env = {**prefect_api.env, "AEGIR_FAULT": "probe-target:before:raise"}
    failed = aegir(env, "clone", source, clone_uri)
    assert failed.returncode == 1 and "rolled back:" in failed.stderr, failed.stderr
    assert hosting.store.find("@" + clone_uri) is None
    assert databases() == dbs and leftovers(hosting, d7, clone_uri) == []
    hosting.web.wait_for(clone_uri, status=404)
    assert hosting.load_site(source).operation is None
    hosting.web.wait_for(source[1:], status=200, text=source[1:])


def test_migrate_with_a_database_move_records_the_new_db_server(prefect_api, hosting, db_admin):
    d7, twin, name = installed(hosting, ("d7", "d7-same"), "Moved with its database")
    other_db = unique("@server_db")
    registry.save(hosting.store, other_db, "server", {**db_admin, "http_service_type": "null"})
    before = hosting.load_site(name)
    done = aegir(prefect_api.env, "migrate", name, twin, f"--db_server={other_db}")
    assert done.returncode == 0, done.stderr
    after = hosting.load_site(name)
    assert (after.platform, after.db_server) == (twin, other_db) and after.db_name != before.db_name
    assert not site_database_exists(before.db_name) and site_database_exists(after.db_name)
    assert titles(hosting, name, 7) == ["Moved with its database"]
    hosting.web.wait_for(name[1:], status=200, text=name[1:])


def credentials_db(hosting: Hosting, platform: str, uri: str) -> str:
    text = (sites_dir(hosting, platform) / uri / CREDENTIALS_FILE).read_text()
    return re.search(r"\['db_name'\]\s*=\s*'([^']*)'", text).group(1)


@pytest.mark.parametrize("fault", [None, "switch-database:after:raise", "target-vhost:after:raise"])
def test_moving_only_the_database_switches_credentials_and_drops_the_old_one_last(
    prefect_api, hosting, db_admin, fault
):
    d7 = hosting.verified_platform("d7")
    name = hosting.site(d7)
    assert install(name).is_completed()
    retitle(hosting, name, 7, "Only the database moves")
    other_db = unique("@server_db")
    registry.save(hosting.store, other_db, "server", {**db_admin, "http_service_type": "null"})
    before, dbs = hosting.load_site(name), databases()
    env = {**prefect_api.env, **({"AEGIR_FAULT": fault} if fault else {})}
    done = aegir(env, "migrate", name, d7, f"--db_server={other_db}")
    after = hosting.load_site(name)
    if fault:  # rolled back: the old database, credentials and record, nothing new left
        assert done.returncode == 1 and "rolled back:" in done.stderr, done.stderr
        assert (after.db_server, after.db_name) == (before.db_server, before.db_name)
        assert databases() == dbs and credentials_db(hosting, d7, name[1:]) == before.db_name
    else:
        assert done.returncode == 0, done.stderr
        assert after.db_server == other_db and after.db_name != before.db_name and after.platform == d7
        assert not site_database_exists(before.db_name) and site_database_exists(after.db_name)
        assert credentials_db(hosting, d7, name[1:]) == after.db_name
    assert titles(hosting, name, 7) == ["Only the database moves"]
    assert after.operation is None and leftovers(hosting, d7, name[1:]) == [name[1:]]  # no hidden files
    hosting.web.wait_for(name[1:], status=200, text=name[1:])


def test_a_drupal10_site_is_mapped_in_sites_php_through_its_life(prefect_api, hosting):
    """Drupal 8+ finds sites/<uri> only through sites/sites.php (DrupalKernel::findSitePath): install maps the
    site before drush site:install, verify puts a lost mapping back, migrate maps it on the target and drops it
    from the source, rename and clone map their new domain, delete drops it; every step ends with the site
    answering through the web server."""
    from tests.integration.test_install_site import sites_php_map

    first, second = hosting.verified_platform("d10"), hosting.verified_platform("d10")
    docroot = {p: sites_dir(hosting, p).parent for p in (first, second)}
    name = hosting.site(first)
    uri = name[1:]
    state = install(name)
    assert state.is_completed(), state.message
    assert sites_php_map(docroot[first]) == {uri: uri}

    (docroot[first] / "sites" / "sites.php").unlink()  # drift: the site is no longer found
    hosting.web.wait_for(uri, status=500)
    assert aegir(prefect_api.env, "verify", name).returncode == 0
    assert sites_php_map(docroot[first]) == {uri: uri}
    hosting.web.wait_for(uri, status=200, text=uri)

    done = aegir(prefect_api.env, "migrate", name, second)
    assert done.returncode == 0, done.stderr
    assert sites_php_map(docroot[second]) == {uri: uri} and sites_php_map(docroot[first]) == {}

    new_uri = "renamed-" + uri
    hosting.sites.append("@" + new_uri)
    done = aegir(prefect_api.env, "rename", name, new_uri)
    assert done.returncode == 0, done.stderr
    assert sites_php_map(docroot[second]) == {new_uri: new_uri}
    hosting.web.wait_for(new_uri, status=200, text=new_uri)
    assert aegir(prefect_api.env, "backup", "@" + new_uri).returncode == 0
    done = aegir(prefect_api.env, "restore", "@" + new_uri)
    assert done.returncode == 0, done.stderr
    assert sites_php_map(docroot[second]) == {new_uri: new_uri}

    clone_uri = "clone-" + uri
    hosting.sites.append("@" + clone_uri)
    done = aegir(prefect_api.env, "clone", "@" + new_uri, clone_uri, first)
    assert done.returncode == 0, done.stderr
    assert sites_php_map(docroot[first]) == {clone_uri: clone_uri}
    hosting.web.wait_for(clone_uri, status=200, text=clone_uri)

    assert aegir(prefect_api.env, "disable", "@" + clone_uri).returncode == 0
    done = aegir(prefect_api.env, "delete", "@" + clone_uri)
    assert done.returncode == 0, done.stderr
    assert sites_php_map(docroot[first]) == {} and sites_php_map(docroot[second]) == {new_uri: new_uri}
    hosting.web.wait_for(new_uri, status=200, text=new_uri)
