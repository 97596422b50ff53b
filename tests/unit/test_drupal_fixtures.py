"""The generated Drupal platforms (tests/fixtures/drupal/make_platforms.py): shape, versions, updates."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.drupal import make_platforms as mp

_UPDATE_RE = re.compile(r"^function\s+(\w+?)_update_(\d+)\s*\(", re.MULTILINE)


def _max_update(install: Path, module: str) -> int | None:
    if not install.is_file():
        return None
    numbers = [int(n) for m, n in _UPDATE_RE.findall(install.read_text()) if m == module]
    return max(numbers, default=None)


def _info_value(info: Path, key: str) -> str | None:
    found = None
    for line in info.read_text().splitlines():
        m = re.match(rf"^{re.escape(key)}\s*[=:]\s*(.*)$", line)
        if m:
            found = m.group(1).strip().strip("'\"")
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("platforms")
    return {kind: mp.build(kind, base / kind) for kind in mp.KINDS}


def test_kinds_are_the_documented_ones() -> None:
    assert set(mp.KINDS) == {
        "d7",
        "d7-same",
        "d7-newer",
        "d7-older",
        "d7-missing",
        "d7-broken",
        "d7-updatefail",
        "d10",
        "d10-newer",
        "d10-broken",
        "d11",
        "d11-newer",
    }
    with pytest.raises(ValueError, match="unknown platform kind"):
        mp.spec("d6")


@pytest.mark.parametrize("kind", mp.KINDS)
def test_each_kind_builds_small_fast_and_readable(kind: str, tmp_path: Path) -> None:
    started = time.monotonic()
    root = mp.build(kind, tmp_path / "deep" / "parents" / kind)
    elapsed = time.monotonic() - started
    assert root == (tmp_path / "deep" / "parents" / kind).absolute()
    assert elapsed < 0.3
    files = [p for p in root.rglob("*") if p.is_file()]
    assert 40 < len(files) < 400
    assert sum(p.stat().st_size for p in files) < 2 * 1024 * 1024
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir() or path.name == "drush":
            assert mode == 0o755, path
        else:
            assert mode == 0o644, path
    docroot = mp.docroot(root)
    assert (docroot / "index.php").is_file()
    assert (docroot / "sites" / "default" / "default.settings.php").is_file()
    assert (docroot / "sites" / "example.sites.php").is_file()
    assert not (docroot / "sites" / "sites.php").exists()  # as a fresh Drupal (composer project or tarball)
    assert not (docroot / "sites" / "default" / "settings.php").exists()
    htaccess = (docroot / ".htaccess").read_text()
    for rule in (
        "RewriteEngine on",
        "RewriteCond %{REQUEST_FILENAME} !-f",
        "RewriteCond %{REQUEST_FILENAME} !-d",
        "RewriteRule ^ index.php [L]",
    ):
        assert rule in htaccess


def test_build_refuses_a_non_empty_destination_and_accepts_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        mp.build("d7", tmp_path / "full")
    (tmp_path / "empty").mkdir()
    assert (mp.build("d7", tmp_path / "empty") / "index.php").is_file()


def test_d7_layout(built: dict[str, Path]) -> None:
    root = built["d7"]
    assert mp.docroot(root) == root
    assert "define('VERSION', '7.80');" in (root / "includes" / "bootstrap.inc").read_text()
    assert (root / "includes" / "standin.inc").is_file()
    info = (root / "modules" / "system" / "system.info").read_text()
    for line in ("name = System", "package = Core", "version = VERSION", "core = 7.x"):
        assert line in info
    assert "dependencies[] = field" in (root / "modules/field/modules/text/text.info").read_text()
    assert "hidden = TRUE" in (root / "modules/simpletest/tests/system_test.info").read_text()
    assert _max_update(root / "modules/system/system.install", "system") == 7084
    assert "function system_update_7084() {" in (root / "modules/system/system.install").read_text()
    assert _max_update(root / "modules/user/user.install", "user") == 7019
    assert _max_update(root / "modules/node/node.install", "node") == 7016
    assert not (root / "modules/path/path.install").exists()  # a module without updates
    for theme in ("bartik", "seven"):
        assert (root / "themes" / theme / f"{theme}.info").is_file()
    assert (root / "themes/engines/phptemplate/phptemplate.engine").is_file()
    standard = root / "profiles" / "standard"
    assert "dependencies[] = block" in (standard / "standard.info").read_text()
    assert "function standard_install() {" in (standard / "standard.install").read_text()
    assert (standard / "standard.profile").is_file()
    for code in ("de", "fr"):
        po = (standard / "translations" / f"{code}.po").read_text()
        assert 'msgid ""' in po and "Content-Type: text/plain; charset=utf-8" in po
    assert not (root / "profiles" / "minimal" / "translations").exists()
    views = root / "sites/all/modules/contrib/views"
    assert _info_value(views / "views.info", "version") == "7.x-3.29"
    assert _info_value(views / "views.info", "project") == "views"
    assert _max_update(views / "views.install", "views") == 7301
    assert _info_value(root / "sites/all/modules/contrib/ctools/ctools.info", "version") == "7.x-1.19"
    assert (root / "sites" / "all").is_dir()


def test_d7_variants(built: dict[str, Path]) -> None:
    d7, same, newer, older = built["d7"], built["d7-same"], built["d7-newer"], built["d7-older"]
    views = "sites/all/modules/contrib/views"

    same_files = sorted(p.relative_to(same) for p in same.rglob("*") if p.is_file())
    assert same_files == sorted(p.relative_to(d7) for p in d7.rglob("*") if p.is_file())
    assert (same / "modules/system/system.install").read_text() == (d7 / "modules/system/system.install").read_text()

    assert "define('VERSION', '7.105');" in (newer / "includes/bootstrap.inc").read_text()
    system = (newer / "modules/system/system.install").read_text()
    assert _max_update(newer / "modules/system/system.install", "system") == 7088
    assert " * Remove FLoC-blocking variable.\n */\nfunction system_update_7085()" in system
    assert "Enable the Announcements module; see 7.100 Release Notes for opt-out details." in system
    assert _max_update(newer / "modules/user/user.install", "user") == 7020
    assert "Add changed field to users table." in (newer / "modules/user/user.install").read_text()
    assert _info_value(newer / views / "views.info", "version") == "7.x-3.30"
    assert _max_update(newer / views / "views.install", "views") == 7302

    assert "define('VERSION', '7.80');" in (older / "includes/bootstrap.inc").read_text()
    assert _info_value(older / views / "views.info", "version") == "7.x-3.20"
    older_max = _max_update(older / views / "views.install", "views")
    assert older_max is not None and older_max < _max_update(d7 / views / "views.install", "views")

    missing = built["d7-missing"]
    assert not (missing / views).exists()
    assert (missing / "sites/all/modules/contrib/ctools/ctools.info").is_file()

    broken = built["d7-broken"] / "profiles" / "broken"
    assert "throw new Exception('broken profile: install failed half-way');" in (broken / "broken.install").read_text()
    assert (built["d7-broken"] / "profiles/standard/standard.info").is_file()

    failing = (built["d7-updatefail"] / "modules/system/system.install").read_text()
    body = failing.split("function system_update_7086() {", 1)[1].split("\n}\n", 1)[0]
    assert "throw new DrupalUpdateException('Update 7086 failed: sessions table locked');" in body
    assert _max_update(built["d7-updatefail"] / "modules/system/system.install", "system") == 7088


def test_d10_layout(built: dict[str, Path]) -> None:
    root = built["d10"]
    web = root / "web"
    assert mp.docroot(root) == web
    drupal = (web / "core/lib/Drupal.php").read_text()
    assert re.search(r"class Drupal \{.*const VERSION = '10\.2\.3';", drupal, re.DOTALL)
    assert (web / "core/includes/standin.inc").is_file()
    info = (web / "core/modules/node/node.info.yml").read_text()
    for line in ("type: module", "package: 'Core'", "version: VERSION", "core_version_requirement: ^10"):
        assert line in info
    assert "dependencies:\n  - drupal:text" in info
    assert _max_update(web / "core/modules/system/system.install", "system") == 10201
    assert _max_update(web / "core/modules/user/user.install", "user") == 10000
    # Drupal 10 removed block's old updates: only block_update_last_removed() is left (8003, as real Drupal 10)
    block = (web / "core/modules/block/block.install").read_text()
    assert "function block_update_last_removed() {\n  return 8003;\n}" in block
    assert _max_update(web / "core/modules/block/block.install", "block") is None
    assert mp.spec("d10").module("block").installed_schema(10) == 8003
    posts = (web / "core/modules/block/block.post_update.php").read_text()
    assert "function block_post_update_make_weight_integer(&$sandbox = NULL) {" in posts
    assert "function block_removed_post_updates() {" in posts and "=> '10.0.0'," in posts
    # path_alias: required and hidden, as in real Drupal 10
    path_alias = (web / "core/modules/path_alias/path_alias.info.yml").read_text()
    assert "required: true" in path_alias and "hidden: true" in path_alias
    for theme in ("olivero", "claro"):
        assert "type: theme" in (web / f"core/themes/{theme}/{theme}.info.yml").read_text()
    standard = (web / "core/profiles/standard/standard.info.yml").read_text()
    assert "type: profile" in standard and "install:\n  - node" in standard
    assert (web / "core/profiles/minimal/minimal.info.yml").is_file()
    assert (web / "core/profiles/standard/translations/de.po").is_file()
    ctools = web / "modules/contrib/ctools/ctools.info.yml"
    assert "version: '4.0.4'" in ctools.read_text() and "project: 'ctools'" in ctools.read_text()
    assert _max_update(web / "modules/contrib/ctools/ctools.install", "ctools") == 9002
    assert (web / "modules/contrib/views_bulk_operations/views_bulk_operations.info.yml").is_file()
    for rel in ("sites/default/default.settings.php", "sites/example.sites.php", ".htaccess"):
        assert (web / rel).is_file()
    assert (root / "composer.json").is_file() and (root / "composer.lock").is_file()
    wrapper = root / "vendor/bin/drush"
    assert wrapper.stat().st_mode & stat.S_IXUSR
    assert str(mp.DRUSH) in wrapper.read_text()


def test_d10_newer(built: dict[str, Path]) -> None:
    web = built["d10-newer"] / "web"
    assert "const VERSION = '10.3.1';" in (web / "core/lib/Drupal.php").read_text()
    assert _max_update(web / "core/modules/system/system.install", "system") == 10301
    assert "version: '4.1.0'" in (web / "modules/contrib/ctools/ctools.info.yml").read_text()
    assert _max_update(web / "modules/contrib/ctools/ctools.install", "ctools") == 9003


def test_d10_newer_adds_updates_and_post_updates(built: dict[str, Path]) -> None:
    old, new = mp.spec("d10"), mp.spec("d10-newer")
    assert new.module("block").installed_schema(10) == old.module("block").installed_schema(10) == 8003
    added = set(new.module("block").post_update_functions()) - set(old.module("block").post_update_functions())
    assert added == {"block_post_update_set_menu_block_depth_to_null_if_zero"}
    web = built["d10-newer"] / "web"
    text = (web / "core/modules/node/node.post_update.php").read_text()
    assert "function node_post_update_set_node_type_description_and_help_to_null(" in text


def test_d11_layout(built: dict[str, Path]) -> None:
    web = built["d11"] / "web"
    assert "const VERSION = '11.0.5';" in (web / "core/lib/Drupal.php").read_text()
    assert "core_version_requirement: ^11" in (web / "core/modules/node/node.info.yml").read_text()
    system = (web / "core/modules/system/system.install").read_text()
    assert "function system_update_last_removed(): int {\n  return 10201;\n}" in system
    assert "function system_update_10300(): void {" in system and "system_update_10201" not in system
    assert not (web / "core/modules/user/user.install").read_text().count("function user_update_1")
    assert mp.spec("d11").schema_versions()["user"] == 10000  # last removed, no hook_update_N left
    path_alias = (web / "core/modules/path_alias/path_alias.post_update.php").read_text()
    assert "'path_alias_post_update_drop_path_alias_status_index' => '11.0.0'," in path_alias
    assert "function path_alias_post_update_drop_path_alias_status_index" not in path_alias
    assert (web / "core/modules/block/block.module").is_file()
    # 11.1: core hooks in src/Hook/ classes, no .module files
    newer = built["d11-newer"] / "web" / "core/modules/block"
    assert (
        not (newer / "block.module").exists() and "#[Hook('help')]" in (newer / "src/Hook/BlockHooks.php").read_text()
    )
    assert _max_update(newer / "../system/system.install", "system") == 11100


@pytest.mark.parametrize("kind", mp.KINDS)
def test_spec_matches_the_files(kind: str, built: dict[str, Path]) -> None:
    spec = mp.spec(kind)
    docroot = mp.docroot(built[kind])
    for module in spec.modules:
        directory = docroot / spec.module_dir(module)
        assert _max_update(directory / f"{module.name}.install", module.name) == module.max_update, module.name
        info = directory / (f"{module.name}.info" if spec.major == 7 else f"{module.name}.info.yml")
        assert info.is_file()
        if module.contrib:
            assert _info_value(info, "version") == module.version
    assert spec.schema_versions()["system"] == spec.module("system").max_update


def test_write_makefile(tmp_path: Path) -> None:
    source = mp.build("d7", tmp_path / "src")
    makefile = mp.write_makefile(tmp_path / "sub" / "platform.make", source)
    text = makefile.read_text()
    for line in (
        "core = 7.x",
        "api = 2",
        "projects[drupal][type] = core",
        "projects[drupal][download][type] = copy",
        f"projects[drupal][download][url] = {source}",
    ):
        assert line in text.splitlines()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mp.main(["d7-missing", str(tmp_path / "cli")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli")
    assert mp.main(["d7", str(tmp_path / "cli")]) == 1


@pytest.mark.skipif(shutil.which("php") is None, reason="php is not installed")
def test_stand_in_php_parses(built: dict[str, Path]) -> None:
    files = [mp.DRUSH, *sorted((mp.HERE / "php").glob("*.php"))]
    files += [built["d7-updatefail"] / "modules/system/system.install", built["d10"] / "web/index.php"]
    for path in files:
        result = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
