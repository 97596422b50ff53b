"""verify-platform on sample Drupal 7 and 10 codebases: scan, build from git or a makefile, refusals."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from aegir import registry
from tests.fixtures.drupal import make_platforms
from tests.integration.helpers import aegir
from tests.integration.sites import Hosting, make_hosting
from tests.support import api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(
        BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_plat"
    )


def verify(name: str):
    from flows.verify_platform import verify_platform

    return verify_platform(platform=name, return_state=True)


def packages(hosting: Hosting, name: str) -> dict[str, dict]:
    return {p["name"]: p for p in registry.load_platform(hosting.store, name).packages}


def test_verify_d7_from_the_cli(prefect_api, hosting):
    name = hosting.platform("d7")
    result = aegir(prefect_api.env, "verify", name)
    assert result.returncode == 0, result.stderr
    assert "Drupal 7.80" in result.stdout
    platform = registry.load_platform(hosting.store, name)
    assert platform.drupal_version == "7.80" and platform.docroot == platform.root and platform.verified
    pkgs = packages(hosting, name)
    assert pkgs["system"]["schema_version"] == 7084 and pkgs["system"]["version"] == "7.80"
    assert pkgs["views"]["version"] == "7.x-3.29" and pkgs["views"]["scope"] == "sites-all"
    profiles = {p["name"]: p for p in platform.profiles}
    assert sorted(profiles["standard"]["languages"]) == ["de", "en", "fr"]
    assert profiles["minimal"]["languages"] == ["en"]
    # the package table artifact
    r = api.post(
        f"{prefect_api.url}/artifacts/filter", json={"artifacts": {"key": {"any_": [f"platform-{platform.slug}"]}}}
    )
    assert r.status_code == 200 and r.json() and "views" in str(r.json()[0]["data"])


def test_verify_d10_composer_layout(hosting):
    name = hosting.platform("d10")
    assert verify(name).is_completed()
    platform = registry.load_platform(hosting.store, name)
    assert platform.docroot == platform.root + "/web" and platform.drupal_version == "10.2.3"
    assert packages(hosting, name)["system"]["schema_version"] >= 10000


def test_newer_and_older_variants_differ_as_migrate_needs(hosting):
    base, newer, older = (hosting.verified_platform(k) for k in ("d7", "d7-newer", "d7-older"))
    assert packages(hosting, newer)["system"]["schema_version"] > packages(hosting, base)["system"]["schema_version"]
    assert packages(hosting, older)["views"]["schema_version"] < packages(hosting, base)["views"]["schema_version"]
    assert "views" not in packages(hosting, hosting.verified_platform("d7-missing"))


def test_builds_root_from_a_git_repository(hosting, tmp_path):
    source = make_platforms.build("d7", tmp_path / "src")
    git = ["git", "-c", "user.email=t@example.test", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(source)], check=True)
    subprocess.run([*git, "-C", str(source), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(source), "commit", "-qm", "platform"], check=True)
    subprocess.run([*git, "-C", str(source), "tag", "v1"], check=True)
    root = hosting.platforms_dir / "from-git"
    name = hosting.platform("d7", root=str(root), git_url=f"file://{source}", git_ref="v1")
    state = verify(name)
    assert state.is_completed(), state.message
    assert (root / "includes" / "bootstrap.inc").exists()
    assert registry.load_platform(hosting.store, name).drupal_version == "7.80"


def test_builds_root_from_a_makefile(hosting, tmp_path):
    source = make_platforms.build("d7", tmp_path / "src")
    makefile = make_platforms.write_makefile(tmp_path / "platform.make", source)
    root = hosting.platforms_dir / "from-make"
    name = hosting.platform("d7", root=str(root), makefile=str(makefile))
    state = verify(name)
    assert state.is_completed(), state.message
    assert registry.load_platform(hosting.store, name).drupal_version == "7.80"


def test_missing_root_without_a_way_to_build_it(hosting):
    name = hosting.platform("d7", root=str(hosting.platforms_dir / "nothing-here"))
    state = verify(name)
    assert state.is_failed()
    assert "root" in state.message and "makefile" in state.message and "git_url" in state.message


def test_a_root_that_is_not_drupal(hosting, tmp_path):
    (tmp_path / "index.php").write_text("<?php echo 'hello';")
    name = hosting.platform("d7", root=str(tmp_path))
    state = verify(name)
    assert state.is_failed() and str(tmp_path) in state.message
    assert registry.load_platform(hosting.store, name).verified is None
