"""The migrate pre-flight (`aegir compare @site @platform`) on real sample platforms and a real site database:
fresh scans of both platforms, the site's schema versions from MariaDB, a table artifact; changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.helpers import aegir
from tests.integration.sites import Hosting, enable_d7_module, make_hosting
from tests.integration.test_install_site import install
from tests.support import api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_cmp")


@pytest.fixture(scope="module")
def d7_site(hosting) -> str:
    name = hosting.site(hosting.verified_platform("d7"))
    assert install(name).is_completed()
    enable_d7_module(hosting.load_site(name).db_name, "views", 7301)
    return name


def compare(prefect_api, site: str, platform: str, *args: str):
    return aegir(prefect_api.env, "compare", site, platform, *args)


def by_name(result: dict) -> dict[str, dict]:
    return {c["name"]: c for c in result["changes"]}


def test_newer_platform_shows_upgrades_and_pending_updates(prefect_api, hosting, d7_site):
    newer = hosting.verified_platform("d7-newer")
    before = hosting.load_site(d7_site)
    done = compare(prefect_api, d7_site, newer, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["target_profile"] == "standard" and result["counts"]["error"] == 0
    system = by_name(result)["system"]
    assert system["status"] == "upgrade" and system["target_schema"] > system["current_schema"]
    assert "updates pending" in system["reason"]
    # the table artifact of the flow run
    artifacts = api.post(
        f"{prefect_api.url}/artifacts/filter", json={"artifacts": {"key": {"any_": [f"compare-{before.slug}"]}}}
    ).json()
    table = artifacts[-1]["data"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert any(row["name"] == "system" for row in rows)
    # nothing changed
    after = hosting.load_site(d7_site)
    assert (after.platform, after.db_name, after.packages) == (before.platform, before.db_name, before.packages)


def test_schema_downgrade_is_an_error_and_the_table_says_why(prefect_api, hosting, d7_site):
    older = hosting.verified_platform("d7-older")
    done = compare(prefect_api, d7_site, older, "--changed")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["STATUS", "TYPE", "NAME"]
    views = next(line for line in lines if " views " in f" {line} ")
    assert views.startswith("error") and "schema downgrade" in views
    assert "1 error" in lines[-1]


def test_missing_module_is_a_warning(prefect_api, hosting, d7_site):
    missing = hosting.verified_platform("d7-missing")
    done = compare(prefect_api, d7_site, missing, "--json")
    assert done.returncode == 0, done.stderr
    views = by_name(json.loads(done.stdout))["views"]
    assert views["status"] == "warning" and views["target_schema"] is None


def test_bad_targets_are_refused_with_the_field_named(prefect_api, hosting, d7_site):
    same = compare(prefect_api, d7_site, hosting.load_site(d7_site).platform)
    assert same.returncode == 2 and "platform: " in same.stderr and "already on" in same.stderr
    d10 = compare(prefect_api, d7_site, hosting.verified_platform("d10"))
    assert d10.returncode == 2 and "Drupal 10" in d10.stderr
    unknown = compare(prefect_api, d7_site, "@platform_nope")
    assert unknown.returncode == 3 and "platform_nope" in unknown.stderr


@pytest.mark.parametrize(("kind", "newer"), [("d10", "d10-newer"), ("d11", "d11-newer")])
def test_drupal_10_and_11_minor_upgrades_pass_the_preflight(prefect_api, hosting, kind, newer):
    """Issue 15, finding 5: real Drupal 10 keeps only hook_update_last_removed() in block.install (8003, what a
    fresh install records), and path_alias is hidden, required and enabled on every site. 10.2 → 10.3 (and
    11.0 → 11.1) is an upgrade — no schema downgrade, nothing missing — with its updates and post-updates
    pending."""
    current, target = hosting.verified_platform(kind), hosting.verified_platform(newer)
    name = hosting.site(current)
    assert install(name).is_completed()
    done = compare(prefect_api, name, target, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["counts"]["error"] == 0 and result["counts"]["warning"] == 0, done.stdout
    rows = by_name(result)
    assert rows["block"]["current_schema"] == rows["block"]["target_schema"] == 8003
    assert rows["block"]["status"] == "upgrade" and rows["block"]["post_updates_pending"]
    assert rows["path_alias"]["status"] == "upgrade" and "missing" not in rows["path_alias"]["reason"]
    assert rows["system"]["status"] == "upgrade" and "updates pending" in rows["system"]["reason"]
    assert result["updates_pending"]
