"""backup-site, restore-site, backup-delete and delete-site on sample Drupal 7 and 10 sites, for real:
MariaDB, nginx + php-fpm, archives on disk, a real Prefect API."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegir import registry
from tests.fixtures.drupal import make_platforms
from tests.integration.helpers import aegir
from tests.integration.sites import (
    Hosting,
    make_hosting,
    post_updates_run,
    query_site,
    replace_code,
    schemas,
    site_database_exists,
    updatedb_status,
)
from tests.integration.test_install_site import install
from tests.support import api, mariadb

pytestmark = pytest.mark.integration

CONTENT = {7: "node", 10: "node_field_data"}


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_bk")


def titles(hosting: Hosting, name: str, major: int) -> list[str]:
    db = hosting.load_site(name).db_name
    return [r[0] for r in query_site(db, f"SELECT title FROM {CONTENT[major]} ORDER BY nid")]


def retitle(hosting: Hosting, name: str, major: int, title: str) -> None:
    db = hosting.load_site(name).db_name
    with mariadb.connect(db, autocommit=True) as conn:
        conn.cursor().execute(f"UPDATE {CONTENT[major]} SET title = %s", (title,))


def run(flow_ref: str, **params):
    import importlib

    module, attr = flow_ref.split(":")
    return getattr(importlib.import_module(module), attr)(**params, return_state=True)


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("kind", "major"), [("d7", 7), ("d10", 10)])
def test_round_trip_backup_change_restore_delete_restore(prefect_api, hosting, kind, major):
    platform = hosting.verified_platform(kind)
    name = hosting.site(platform)
    uri = name[1:]
    assert install(name).is_completed()
    original = titles(hosting, name, major)
    assert original

    # backup (CLI), listed newest first
    made = aegir(prefect_api.env, "backup", name, "--description=before the change")
    assert made.returncode == 0, made.stderr
    entry = hosting.load_site(name).backups[0]
    assert entry["reason"] == "before the change" and not entry["pinned"]
    assert mode(entry["file"]) == 0o600 and mode(os.path.dirname(entry["file"])) == 0o700
    listed = json.loads(aegir(prefect_api.env, "backups", name, "--json").stdout)
    assert [b["id"] for b in listed] == [entry["id"]]

    # change content, restore: content as at backup time, served, old database gone, safety backup pinned
    retitle(hosting, name, major, "Changed after the backup")
    old_db = hosting.load_site(name).db_name
    restored = aegir(prefect_api.env, "restore", name, entry["id"])
    assert restored.returncode == 0, restored.stderr
    site = hosting.load_site(name)
    assert titles(hosting, name, major) == original
    assert site.db_name != old_db and not site_database_exists(old_db) and site.status == "installed"
    hosting.web.wait_for(uri, status=200, text=uri)
    safety = site.backups[0]
    assert safety["pinned"] and safety["reason"] == "Generated before being restored to a previous version"
    docroot = Path(registry.load_platform(hosting.store, platform).docroot)
    assert not [p for p in os.listdir(docroot / "sites") if p.startswith(f".{uri}")]

    # delete: refused while enabled; disabled then deleted, backups kept; restore brings it back
    refused = aegir(prefect_api.env, "delete", name)
    assert refused.returncode == 2 and "disable it first" in refused.stderr
    assert aegir(prefect_api.env, "disable", name).returncode == 0
    db_before_delete = hosting.load_site(name).db_name
    deleted = aegir(prefect_api.env, "delete", name)
    assert deleted.returncode == 0, deleted.stderr
    site = hosting.load_site(name)
    assert site.status == "deleted" and site.db_name is None and not site_database_exists(db_before_delete)
    assert not (docroot / "sites" / uri).exists()
    hosting.web.wait_for(uri, status=404)
    assert site.backups[0]["reason"] == "Pre-delete backup" and site.backups[0]["pinned"]

    back = aegir(prefect_api.env, "restore", name)
    assert back.returncode == 0, back.stderr
    assert hosting.load_site(name).status == "installed"
    assert titles(hosting, name, major) == original
    hosting.web.wait_for(uri, status=200, text=uri)


def test_restore_refuses_bad_archives_and_ids_and_changes_nothing(hosting, tmp_path):
    platform = hosting.verified_platform("d7")
    name, other = hosting.site(platform), hosting.site(platform)
    for n in (name, other):
        assert install(n).is_completed()
        assert run("flows.backup_site:backup_site", site=n).is_completed()
    before = hosting.load_site(name)

    missing = run("flows.restore_site:restore_site", site=name, backup="nope")
    assert missing.is_failed() and "has no backup 'nope'" in missing.message

    # another site's archive slipped into this site's record
    foreign = hosting.load_site(other).backups[0]
    # (backups are task-managed: written through the store, as a task would)
    hosting.store.put(before.model_copy(update={"backups": [{**foreign, "created": "2999-01-01T00:00:00+00:00"}]}))
    wrong = run("flows.restore_site:restore_site", site=name)
    assert wrong.is_failed() and f"is a backup of '{other[1:]}'" in wrong.message
    hosting.store.put(before)

    # a tampered archive and a truncated one
    path = Path(before.backups[0]["file"])
    data = path.read_bytes()
    path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    tampered = run("flows.restore_site:restore_site", site=name)
    assert tampered.is_failed() and "checksum" in tampered.message
    path.write_bytes(data[: len(data) // 2])
    truncated = run("flows.restore_site:restore_site", site=name)
    assert truncated.is_failed()
    path.write_bytes(data)

    after = hosting.load_site(name)
    assert after.db_name == before.db_name and after.backups == before.backups and after.status == "installed"
    hosting.web.wait_for(name[1:], status=200, text=name[1:])


def test_backup_delete_keeps_pinned_backups_unless_forced(prefect_api, hosting):
    platform = hosting.verified_platform("d7")
    name = hosting.site(platform)
    not_yet = aegir(prefect_api.env, "backup", name)
    assert not_yet.returncode == 2 and "aegir install" in not_yet.stderr
    assert hosting.load_site(name).backups == []
    assert install(name).is_completed()
    assert run("flows.backup_site:backup_site", site=name).is_completed()
    site = hosting.load_site(name)
    pinned = {**site.backups[0], "pinned": True}
    hosting.store.put(site.model_copy(update={"backups": [pinned]}))

    refused = aegir(prefect_api.env, "backup-delete", name, pinned["id"])
    assert refused.returncode == 2 and "pinned" in refused.stderr and os.path.exists(pinned["file"])
    unknown = aegir(prefect_api.env, "backup-delete", name, "no-such-id")
    assert unknown.returncode == 2 and os.path.exists(pinned["file"])
    forced = aegir(prefect_api.env, "backup-delete", name, pinned["id"], "--force")
    assert forced.returncode == 0, forced.stderr
    assert not os.path.exists(pinned["file"]) and hosting.load_site(name).backups == []


def test_zstd_backups_restore_too(hosting):
    platform = hosting.verified_platform("d7")
    name = hosting.site(platform)
    assert install(name).is_completed()
    state = run("flows.backup_site:backup_site", site=name, compression="zstd")
    assert state.is_completed(), state.message
    assert state.result()["file"].endswith(".tar.zst")
    assert run("flows.restore_site:restore_site", site=name).is_completed()
    hosting.web.wait_for(name[1:], status=200, text=name[1:])


def test_a_failed_restore_of_a_deleted_site_leaves_it_deleted(hosting):
    from tests.support import mariadb

    platform = hosting.verified_platform("d7")
    name = hosting.site(platform)
    uri = name[1:]
    assert install(name).is_completed()
    assert run("flows.disable_enable:disable_site", site=name).is_completed()
    assert run("flows.delete_site:delete_site", site=name).is_completed()
    before = hosting.load_site(name)
    docroot = Path(registry.load_platform(hosting.store, platform).docroot)
    front = docroot / "index.php"
    original = front.read_bytes()
    front.write_text("<?php echo 'not the site';")  # the restored site will not answer with its name
    try:
        state = run("flows.restore_site:restore_site", site=name)
    finally:
        front.write_bytes(original)
    assert state.is_failed() and "rolled back" in state.message
    after = hosting.load_site(name)
    assert after.status == "deleted" and after.db_name is None and after.db_password is None
    assert after.backups == before.backups
    assert not (docroot / "sites" / uri).exists()
    assert not [p for p in os.listdir(docroot / "sites") if p.startswith(f".{uri}")]
    sites_php = docroot / "sites" / "sites.php"
    assert not sites_php.exists() or uri not in sites_php.read_text()
    assert not Path(hosting.web.aegir_root, "config", hosting.server[1:], "nginx", "vhost.d", uri).exists()
    assert mariadb.users_like(uri.replace(".", "")[:13]) == []
    hosting.web.wait_for(uri, status=404)


def assert_at_the_code_of(hosting: Hosting, name: str, kind: str) -> None:
    """Every enabled module's schema is what the code of ``kind`` has (nothing pending, updatedb ran)."""
    spec = make_platforms.spec(kind)
    db = hosting.load_site(name).db_name
    expected = spec.schema_versions()
    found = {m: v for m, v in schemas(db, spec.major).items() if m in expected}
    assert found == {m: expected[m] for m in found}, found
    if spec.major >= 8:
        enabled = {p["name"] for p in hosting.load_site(name).packages if p["status"] == "enabled"}
        wanted = {f for m in spec.modules if m.name in enabled for f in m.post_update_functions()}
        assert wanted <= post_updates_run(db), wanted - post_updates_run(db)
    status = updatedb_status(hosting, name)
    assert "No database updates required" in status, status
    recorded = {p["name"]: p["schema_version"] for p in hosting.load_site(name).packages if p["status"] == "enabled"}
    assert recorded["system"] == expected["system"]


@pytest.mark.parametrize(("kind", "newer"), [("d7", "d7-newer"), ("d10", "d10-newer")])
def test_restoring_the_pre_migrate_backup_onto_newer_code_runs_updatedb(prefect_api, hosting, kind, newer):
    """Issue 15, finding 4: a site migrated to newer code, then restored to its pre-migrate backup, must not
    serve an old-schema database under the new code: the restore runs updatedb (as Aegir's deploy does)."""
    major = make_platforms.spec(kind).major
    old, new = hosting.verified_platform(kind), hosting.verified_platform(newer)
    name = hosting.site(old)
    assert install(name).is_completed()
    retitle(hosting, name, major, "Before the upgrade")
    migrated = aegir(prefect_api.env, "migrate", name, new)
    assert migrated.returncode == 0, migrated.stderr
    pre = next(b for b in hosting.load_site(name).backups if b["reason"] == "Pre-migration backup")
    held = {p["name"]: p["schema_version"] for p in json.loads(Path(pre["file"] + ".json").read_text())["packages"]}
    assert held["system"] == make_platforms.spec(kind).schema_versions()["system"]  # the manifest says which
    retitle(hosting, name, major, "After the upgrade")

    restored = aegir(prefect_api.env, "restore", name, pre["id"])
    assert restored.returncode == 0, restored.stderr
    assert titles(hosting, name, major) == ["Before the upgrade"]
    assert_at_the_code_of(hosting, name, newer)
    hosting.web.wait_for(name[1:], status=200, text=name[1:])


def test_a_backup_ahead_of_the_code_is_refused_before_anything_changes(prefect_api, hosting):
    """A backup taken on 7.105 cannot go onto the same platform rolled back to 7.80 code: Drupal cannot
    downgrade a schema. Refused with the comparison, before the maintenance mode or the safety backup."""
    platform = hosting.verified_platform("d7-newer")
    name = hosting.site(platform)
    assert install(name).is_completed()
    made = aegir(prefect_api.env, "backup", name)
    assert made.returncode == 0, made.stderr
    replace_code(registry.load_platform(hosting.store, platform).root, "d7")  # the platform's code rolled back
    assert aegir(prefect_api.env, "verify", platform).returncode == 0
    before = hosting.load_site(name)
    prefix = before.db_name[:10]
    dbs = {d for d in mariadb.databases() if d.startswith(prefix)}

    refused = aegir(prefect_api.env, "restore", name, before.backups[0]["id"])
    assert refused.returncode == 2, refused.stderr
    assert "newer code" in refused.stderr and "refused, nothing changed" in refused.stderr
    assert "system: schema downgrade: site has schema 7088, target provides 7084" in refused.stderr
    after = hosting.load_site(name)
    assert (after.db_name, after.backups, after.status, after.operation) == (
        before.db_name,
        before.backups,  # no safety backup was taken
        "installed",
        None,
    )
    assert {d for d in mariadb.databases() if d.startswith(prefix)} == dbs
    assert query_site(after.db_name, "SELECT value FROM variable WHERE name = 'maintenance_mode'")[0][0] == b"i:0;"
    hosting.web.wait_for(name[1:], status=200, text=name[1:])
    # the comparison is the compare-<site> table artifact
    body = {"artifacts": {"key": {"any_": [f"compare-{after.slug}"]}}}
    rows = api.post(f"{prefect_api.url}/artifacts/filter", json=body, timeout=10).json()[-1]["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    system = next(r for r in rows if r["name"] == "system")
    assert (system["status"], system["current_schema"], system["target_schema"]) == ("error", 7088, 7084)


def test_a_failed_updatedb_rolls_the_restore_back(prefect_api, hosting):
    """The restored database is behind the code, and one of its updates fails: the restore is rolled back —
    the live site as it was, on its own database, online."""
    platform = hosting.verified_platform("d7")
    name = hosting.site(platform)
    assert install(name).is_completed()
    retitle(hosting, name, 7, "Backed up")
    assert run("flows.backup_site:backup_site", site=name).is_completed()
    retitle(hosting, name, 7, "Live")
    replace_code(registry.load_platform(hosting.store, platform).root, "d7-updatefail")  # 7.105, 7086 throws
    assert aegir(prefect_api.env, "verify", platform).returncode == 0
    before = hosting.load_site(name)

    failed = aegir(prefect_api.env, "restore", name, before.backups[0]["id"])
    assert failed.returncode == 1, failed.stderr
    assert "updatedb" in failed.stderr.lower() and "rolled back:" in failed.stderr
    after = hosting.load_site(name)
    assert (after.db_name, after.status, after.operation) == (before.db_name, "installed", None)
    assert titles(hosting, name, 7) == ["Live"]
    assert query_site(after.db_name, "SELECT value FROM variable WHERE name = 'maintenance_mode'")[0][0] == b"i:0;"
    hosting.web.wait_for(name[1:], status=200, text=name[1:])
