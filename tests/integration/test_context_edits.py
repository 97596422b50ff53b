"""Contexts stay valid whoever writes them (issue 14, part 3 and 4), on a real Prefect API with real sites.

A context is two documents (aegir/records.py): the configuration block the UI's edit form shows, and the
task-written state, anonymous, which the UI neither lists nor offers to edit. Each edit below is made the way
the UI's form saves a block (``PATCH /api/block_documents/ID`` with the whole form's data and
``merge_existing_data: false``), or as a hand-made PATCH with a field the form does not have. After each one:
the site is named invalid with its field (``aegir list`` exits 0 and marks it; a task on it refuses, exit 2);
backup-all backs up every other site and reports this one; its state is unchanged; and the CLI fixes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aegir.contexts import slugify
from tests.integration.helpers import aegir
from tests.integration.sites import Hosting, make_hosting
from tests.integration.test_install_site import install
from tests.support import api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_ed")


@pytest.fixture(scope="module")
def sites(hosting) -> tuple[str, str, str]:
    """A platform with two installed sites: the one edited, and the other whose backups must go on."""
    platform = hosting.verified_platform("d7")
    edited, other = hosting.site(platform), hosting.site(platform)
    for name in (edited, other):
        assert install(name).is_completed()
    return platform, edited, other


def documents(url: str, name: str) -> dict[str, dict[str, Any]]:
    """The context's documents by block type slug (the state's anonymous one included)."""
    body = {"block_documents": {"name": {"any_": [slugify(name)]}, "is_anonymous": None}, "include_secrets": True}
    found = api.post(f"{url}/block_documents/filter", json=body, timeout=10).raise_for_status().json()
    return {d["block_type"]["slug"]: d for d in found}


def ui_edit(url: str, name: str, **changes: Any) -> None:
    """What the UI's edit form sends: every field of the form, the changed ones changed, no merge."""
    doc = documents(url, name)["aegir-site"]
    body = {"data": {**doc["data"], **changes}, "merge_existing_data": False}
    api.patch(f"{url}/block_documents/{doc['id']}", json=body, timeout=10).raise_for_status()


def backups(hosting: Hosting, name: str) -> int:
    return len(hosting.load_site(name).backups)


def forget_backups(hosting: Hosting, name: str) -> None:
    site = hosting.load_site(name)
    hosting.store.update(site.model_copy(update={"backups": []}), ["backups"])


EDITS = [
    ({"uri": "Bad Uri"}, "uri", "must be a hostname", ["--uri={uri}"]),
    ({"uri": "elsewhere.example.test"}, "uri", "aegir rename", ["--uri={uri}"]),
    ({"platform": "@platform_nope"}, "platform", "moves only with a task", ["--platform={platform}"]),
    ({"db_name": "mysql", "db_user": "root"}, "db_name", "task-managed state", []),
    ({"status": "deleted"}, "status", "task-managed state", []),
    ({"operation": {"flow": "x", "phase": "running", "undo": []}}, "operation", "task-managed state", []),
]


@pytest.mark.parametrize(("edit", "field", "rule", "fix"), EDITS, ids=[e[1] for e in EDITS])
def test_an_edit_in_the_ui_is_named_stops_no_other_site_and_changes_no_state(
    prefect_api, hosting, sites, edit, field, rule, fix
):
    platform, name, other = sites
    env, url = prefect_api.env, prefect_api.url
    state_before = documents(url, name)["aegir-site-state"]["data"]
    ui_edit(url, name, **edit)

    # named, with its field and the rule, wherever it is read
    listed = aegir(env, "list", "--type=site")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith(name + " "))
    assert "INVALID" in line and f"{field}:" in line and rule in line
    refused = aegir(env, "backup", name)
    assert refused.returncode == 2 and name in refused.stderr and field in refused.stderr, refused.stderr
    shown = aegir(env, "show", name)
    assert shown.returncode == 2 and name in shown.stderr and rule in shown.stderr

    # the fleet goes on: the other site is backed up, this one reported (the run fails, naming it)
    forget_backups(hosting, other)  # so it is due again
    fleet = aegir(env, "backup-all", "--ignore-window", "--interval=1h", f"--platform={platform}")
    assert fleet.returncode == 1, fleet.stdout + fleet.stderr
    assert backups(hosting, other) == 1
    assert "1 of 2 sites backed up" in fleet.stderr and f"skipped: {name} is invalid: {field}:" in fleet.stderr
    dry = aegir(env, "purge-backups", "--dry-run")
    assert dry.returncode == 0 and f"{name}  skipped:" in dry.stdout, dry.stdout + dry.stderr

    # the state is as the tasks left it
    assert documents(url, name)["aegir-site-state"]["data"] == state_before

    # and the CLI fixes it: the field set back, or the block rewritten without the state written into it
    args = [a.format(uri=name[1:], platform=platform) for a in fix]
    fixed = aegir(env, "save", name, *args)
    assert fixed.returncode == 0, fixed.stderr
    after = hosting.load_site(name)
    assert (after.status, after.platform, after.db_name) == ("installed", platform, state_before["db_name"])
    assert documents(url, name)["aegir-site-state"]["data"] == state_before
    assert "INVALID" not in aegir(env, "list", "--type=site").stdout


@pytest.mark.parametrize(
    ("prop", "task"),
    [("platform", "aegir migrate"), ("db_server", "--db_server="), ("uri", "aegir rename")],
)
def test_save_refuses_to_move_an_installed_site_and_names_the_task(prefect_api, hosting, sites, prop, task):
    """Issue 16, finding 1: a save that moved only the record orphaned the site (a Drupal 10 site could be
    re-saved onto a Drupal 7 platform). Refused, exit 2, the field and the task named, nothing changed."""
    platform, name, _ = sites
    elsewhere = {"platform": hosting.platform("d10"), "db_server": hosting.server, "uri": "moved-" + name[1:]}
    if prop == "db_server":  # another server with a db service: the site's own db server is hosting.server
        from aegir import registry

        other = "@server_moved_" + name[1:9]
        registry.save(hosting.store, other, "server", {"db_service_type": "mysql", "db_user": "root"})
        elsewhere["db_server"] = other
    before = documents(prefect_api.url, name)
    refused = aegir(prefect_api.env, "save", name, f"--{prop}={elsewhere[prop]}")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert prop in refused.stderr and task in refused.stderr, refused.stderr
    after = documents(prefect_api.url, name)
    assert {k: d["data"] for k, d in after.items()} == {k: d["data"] for k, d in before.items()}
    assert hosting.load_site(name).platform == platform


def test_an_invalid_context_can_be_deleted(prefect_api, hosting, sites):
    platform = sites[0]
    name = hosting.site(platform)
    ui_edit(prefect_api.url, name, uri="Bad Uri")
    deleted = aegir(prefect_api.env, "save", name, "--delete")
    assert deleted.returncode == 0, deleted.stderr
    assert documents(prefect_api.url, name) == {}


def test_the_ui_offers_only_configuration_and_shows_the_state_as_tables(prefect_api, hosting, sites):
    _, name, _ = sites
    url = prefect_api.url
    docs = documents(url, name)
    assert docs["aegir-site-state"]["is_anonymous"] and not docs["aegir-site"]["is_anonymous"]
    # the edit form is the configuration's schema: no task-managed field in it
    schema = api.get(f"{url}/block_schemas/{docs['aegir-site']['block_schema_id']}", timeout=10).json()["fields"]
    managed = {"status", "verified", "db_name", "db_user", "db_password", "packages", "backups", "operation"}
    assert not managed & set(schema["properties"])
    # the UI's block list (its default filter leaves anonymous documents out) shows no state document
    listed = api.post(f"{url}/block_documents/filter", json={"limit": 200}, timeout=10).json()
    assert not [d for d in listed if d["block_type"]["slug"].endswith("-state")]
    # the secret of the state is masked for whoever reads without include_secrets
    masked = api.get(f"{url}/block_documents/{docs['aegir-site-state']['id']}", timeout=10).json()["data"]
    assert masked["db_password"] != docs["aegir-site-state"]["data"]["db_password"]
    # what the state holds, readable: the state artifact's markdown with packages and backups as tables
    assert aegir(prefect_api.env, "backup", name).returncode == 0
    body = {"artifacts": {"key": {"any_": [f"state-{slugify(name)}"]}}, "sort": "CREATED_DESC", "limit": 1}
    page = api.post(f"{url}/artifacts/filter", json=body, timeout=10).json()[0]
    assert page["type"] == "markdown"
    assert "**status**: installed" in page["data"] and "## Backups (" in page["data"]
    assert "| id | created | size | pinned | reason |" in page["data"] and "| name | type | version |" in page["data"]
    assert docs["aegir-site-state"]["data"]["db_password"] not in page["data"]
