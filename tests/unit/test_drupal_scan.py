"""Platform scan (aegir-backend.md §4.1) over real trees in tmp_path, through LocalTransport."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from aegir.drupal import scan as scan_mod
from aegir.drupal.scan import (
    NotDrupalError,
    core_version,
    find_docroot,
    parse_info,
    parse_info_yml,
    scan_platform,
    schema_version_of,
)
from aegir.errors import AegirError, InputError
from aegir.transport.base import CommandResult
from aegir.transport.local import LocalTransport

T = LocalTransport("localhost")


def write(base: Path, rel: str, text: str = "") -> Path:
    p = base / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def d7_module(base: Path, rel_dir: str, name: str, info: str, install: str | None = None) -> None:
    write(base, f"{rel_dir}/{name}.info", info)
    write(base, f"{rel_dir}/{name}.module", "<?php\n")
    if install is not None:
        write(base, f"{rel_dir}/{name}.install", install)


def make_d7(root: Path) -> Path:
    write(root, "index.php", "<?php\n")
    write(
        root, "includes/bootstrap.inc", "<?php\n/**\n * The current system version.\n */\ndefine('VERSION', '7.80');\n"
    )
    d7_module(
        root,
        "modules/system",
        "system",
        'name = System\ndescription = "Handles general site configuration."\nversion = VERSION\ncore = 7.x\n',
        "<?php\nfunction system_update_7000() {}\nfunction system_update_7081( ) {\n}\n"
        "// function system_update_9999() {}\n/*\n function system_update_9998() {}\n */\n"
        "function other_update_9997() {}\nfunction system_update_7080() {}\n",
    )
    d7_module(root, "modules/node", "node", "name = Node\nversion = VERSION\n", "<?php\n")
    d7_module(root, "modules/simpletest/sub", "hidden_test", "name = Hidden\nhidden = TRUE\nversion = VERSION\n")
    write(root, "modules/simpletest/tests/foo_test.info", "name = foo\n")  # pruned dir
    write(root, "modules/simpletest/tests/foo_test.module", "<?php\n")
    write(root, "themes/bartik/bartik.info", "name = Bartik\nengine = phptemplate\nversion = VERSION\n")
    write(root, "themes/engines/phptemplate/phptemplate.engine", "<?php\n")
    d7_module(
        root,
        "sites/all/modules/contrib/views",
        "views",
        'name = Views\ndependencies[] = ctools\n\n; Information added by drupal.org\nversion = "7.x-3.29"\n',
        "<?php\nfunction views_update_7301() {}\nfunction &views_update_7302() {}\n",
    )
    d7_module(root, "sites/all/modules/contrib/ctools", "ctools", 'version = "7.x-1.0-beta2"\n')
    write(root, "sites/all/themes/zen/zen.info", 'name = Zen\nengine = phptemplate\nversion = "7.x-5.6"\n')
    write(root, "sites/all/modules/contrib/views/node_modules/x/x.info", "name = x\n")
    write(root, "sites/all/modules/contrib/views/node_modules/x/x.module", "")
    # profiles
    write(root, "profiles/standard/standard.info", "name = Standard\nversion = VERSION\n")
    write(root, "profiles/standard/translations/de.po", "")
    write(root, "profiles/standard/translations/standard-7.80.pt-br.po", "")
    write(root, "profiles/standard/fr.po", "")
    write(root, "profiles/minimal/minimal.info", "name = Minimal\nversion = VERSION\n")
    write(root, "profiles/testing/testing.info", "name = Testing\nhidden = TRUE\n")
    d7_module(root, "profiles/standard/modules/custom", "std_extra", 'version = "7.x-1.x-dev"\n', "<?php\n")
    write(root, "profiles/standard/themes/std_theme/std_theme.info", "name = T\n")
    # sites
    write(root, "sites/default/settings.php", "<?php\n")
    write(root, "sites/example.com/settings.php", "<?php\n")
    write(root, "sites/example.com/files/big/mod.module", "")
    write(root, "sites/nosettings.org/files/x", "")
    os.symlink("example.com", root / "sites/alias.example.com")
    return root


def make_d10(root: Path) -> Path:
    web = root / "web"
    write(root, "composer.json", "{}")
    write(root, "vendor/drupal/foo/foo.info.yml", "name: Foo\ntype: module\n")
    write(web, "index.php", "<?php\n")
    write(
        web,
        "core/lib/Drupal.php",
        "<?php\nnamespace Drupal;\nclass Drupal {\n  const VERSION = '10.2.3';\n"
        "  const CORE_MINIMUM_SCHEMA_VERSION = 8000;\n}\n",
    )
    write(web, "core/modules/node/node.info.yml", "name: Node\ntype: module\npackage: Core\nversion: VERSION\n")
    write(web, "core/modules/node/node.install", "<?php\nfunction node_update_10101() {}\n")
    write(web, "core/modules/node/node.module", "<?php\n")
    write(web, "core/modules/ban/ban.info.yml", "name: Ban\ntype: module\nversion: VERSION\n")  # no .module file
    write(web, "core/modules/node/tests/modules/node_test/node_test.info.yml", "name: t\ntype: module\n")
    write(web, "core/modules/hiddenmod/hiddenmod.info.yml", "name: H\ntype: module\nhidden: true\n")
    write(web, "core/themes/olivero/olivero.info.yml", "name: Olivero\ntype: theme\nbase theme: false\n")
    write(web, "core/themes/engines/twig/twig.info.yml", "name: Twig\ntype: theme_engine\nversion: VERSION\n")
    write(web, "core/themes/engines/twig/twig.engine", "<?php\n")
    write(web, "core/profiles/standard/standard.info.yml", "name: Standard\ntype: profile\nversion: VERSION\n")
    write(web, "core/profiles/demo_umami/demo_umami.info.yml", "name: Umami\ntype: profile\nversion: VERSION\n")
    write(
        web,
        "core/profiles/demo_umami/modules/demo_umami_content/demo_umami_content.info.yml",
        "name: Umami content\ntype: module\nversion: VERSION\n",
    )
    write(web, "core/profiles/testing/testing.info.yml", "name: Testing\ntype: profile\nhidden: true\n")
    write(
        web,
        "modules/contrib/token/token.info.yml",
        "name: Token\ntype: module\ncore_version_requirement: ^9 || ^10\n\n"
        "# Information added by Drupal.org packaging script on 2024-01-01\nversion: '8.x-1.13'\n"
        "project: 'token'\ndatestamp: 1700000000\n",
    )
    write(web, "modules/contrib/token/token.install", "<?php\nfunction token_update_8001() {}\n")
    write(web, "modules/contrib/pathauto/pathauto.info.yml", "name: Pathauto\ntype: module\nversion: 1.12.0\n")
    write(web, "modules/custom/broken/broken.info.yml", "name: [unterminated\ntype: module\n")
    write(web, "themes/contrib/gin/gin.info.yml", "name: Gin\ntype: theme\nversion: '8.x-3.0-rc9'\n")
    write(web, "profiles/contrib/social/social.info.yml", "name: Social\ntype: profile\nversion: '12.0.0'\n")
    write(web, "profiles/contrib/social/translations/nl.po", "")
    write(web, "profiles/contrib/social/modules/social_core/social_core.info.yml", "name: SC\ntype: module\n")
    write(web, "sites/default/settings.php", "<?php\n")
    write(web, "sites/d10.example.com/settings.php", "<?php\n")
    return root


# -- the scan --------------------------------------------------------------------------------------------------


def by_key(scan):
    return {(p.type, p.name): p for p in scan.packages}


def test_d7_plain_layout(tmp_path):
    root = make_d7(tmp_path / "d7")
    scan = scan_platform(T, str(root))
    assert scan.root == str(root) and scan.docroot == str(root)
    assert (scan.major, scan.core_version) == (7, "7.80")
    pk = by_key(scan)
    system = pk[("module", "system")]
    assert (system.version, system.schema_version, system.scope) == ("7.80", 7081, "base")
    assert system.path == "modules/system/system.module"
    assert system.title == "System" and system.description == "Handles general site configuration."
    assert pk[("module", "node")].schema_version == 0
    views = pk[("module", "views")]
    assert (views.version, views.schema_version, views.scope) == ("7.x-3.29", 7302, "sites-all")
    assert pk[("module", "ctools")].version == "7.x-1.0-beta2"
    assert pk[("module", "hidden_test")].hidden is True  # hidden modules are scanned (sites may run them)
    assert pk[("module", "system")].hidden is False and pk[("module", "system")].last_removed is None
    assert ("module", "foo_test") not in pk and ("module", "x") not in pk and ("module", "mod") not in pk
    assert pk[("theme", "bartik")].scope == "base" and pk[("theme", "bartik")].path == "themes/bartik/bartik.info"
    assert pk[("theme", "zen")].scope == "sites-all" and pk[("theme", "zen")].version == "7.x-5.6"
    assert pk[("engine", "phptemplate")].version == "7.80"
    assert pk[("module", "std_extra")].scope == "profile:standard"
    assert pk[("module", "std_extra")].version == "7.x-1.x-dev"
    assert pk[("theme", "std_theme")].scope == "profile:standard"
    profiles = {p.name: p for p in scan.profiles}
    assert set(profiles) == {"standard", "minimal"}
    assert profiles["standard"].languages == ["en", "de", "fr", "pt-br"]
    assert profiles["standard"].old_short_name == "default"
    assert profiles["standard"].version == "7.80"
    assert profiles["minimal"].languages == ["en"] and profiles["minimal"].old_short_name is None
    assert scan.sites == ["example.com"]
    assert scan.sites_writable is True
    dicts = scan.package_dicts()
    assert {"name", "type", "version", "schema_version", "scope", "path"} <= set(dicts[0])
    assert scan.profile_dicts()[0]["name"] == "minimal"


def test_d10_composer_layout(tmp_path):
    root = make_d10(tmp_path / "d10")
    scan = scan_platform(T, str(root))
    assert scan.docroot == str(root / "web")
    assert (scan.major, scan.core_version) == (10, "10.2.3")
    pk = by_key(scan)
    node = pk[("module", "node")]
    assert (node.version, node.schema_version, node.scope) == ("10.2.3", 10101, "base")
    assert node.path == "core/modules/node/node.info.yml"
    assert pk[("module", "ban")].schema_version == 8000  # no .install: CORE_MINIMUM_SCHEMA_VERSION
    assert ("module", "node_test") not in pk and ("module", "foo") not in pk
    assert pk[("module", "hiddenmod")].hidden is True
    assert ("module", "broken") not in pk and any("broken.info.yml" in w for w in scan.warnings)
    token = pk[("module", "token")]
    assert (token.version, token.schema_version, token.scope) == ("8.x-1.13", 8001, "base")
    assert pk[("module", "pathauto")].version == "1.12.0"
    assert pk[("theme", "gin")].version == "8.x-3.0-rc9"
    assert pk[("theme", "olivero")].version == "10.2.3"  # no version line in a core checkout: core's
    assert pk[("engine", "twig")].version == "10.2.3"
    assert pk[("module", "demo_umami_content")].scope == "profile:demo_umami"
    assert pk[("module", "social_core")].scope == "profile:social"
    profiles = {p.name: p for p in scan.profiles}
    assert set(profiles) == {"standard", "demo_umami", "social"}
    assert profiles["social"].languages == ["en", "nl"] and profiles["social"].version == "12.0.0"
    assert profiles["standard"].old_short_name is None
    assert scan.sites == ["d10.example.com"]


def test_d10_schema_floor_is_last_removed_and_post_updates_are_known(tmp_path):
    """Drupal 10 removed the updates of 8 and 9: block keeps only block_update_last_removed() (8003), which is
    what a fresh install records; path_alias is hidden and required, enabled on every site."""
    root = make_d10(tmp_path / "d10")
    web = root / "web"
    write(web, "core/modules/block/block.info.yml", "name: Block\ntype: module\nversion: VERSION\n")
    write(
        web,
        "core/modules/block/block.install",
        "<?php\n\n/**\n * Implements hook_update_last_removed().\n */\nfunction block_update_last_removed() {\n"
        "  return 8003;\n}\n// function block_update_9999() {}\n",
    )
    write(
        web,
        "core/modules/block/block.post_update.php",
        "<?php\n\nfunction block_removed_post_updates() {\n  return [\n"
        "    'block_post_update_disabled_region_update' => '10.0.0',\n"
        "    \"block_post_update_fix_negate_in_conditions\" => '10.0.0',\n  ];\n}\n\n"
        "/**\n * Ensures that all block weights are integers.\n */\n"
        "function block_post_update_make_weight_integer(&$sandbox = NULL) {\n  $x = ['a' => 1];\n}\n"
        "/*\nfunction block_post_update_commented_out() {}\n*/\nfunction other_post_update_x() {}\n",
    )
    write(
        web,
        "core/modules/path_alias/path_alias.info.yml",
        "name: 'Path alias'\ntype: module\npackage: Core\nversion: VERSION\nrequired: true\nhidden: true\n",
    )
    write(
        web,
        "core/modules/path_alias/path_alias.post_update.php",
        "<?php\nfunction path_alias_post_update_update_path_alias_revision_indexes(): void {\n}\n",
    )
    pk = by_key(scan_platform(T, str(root)))
    block = pk[("module", "block")]
    assert (block.schema_version, block.last_removed) == (8003, 8003)
    assert block.post_updates == ["block_post_update_make_weight_integer"]
    assert block.removed_post_updates == [
        "block_post_update_disabled_region_update",
        "block_post_update_fix_negate_in_conditions",
    ]
    alias = pk[("module", "path_alias")]
    assert alias.hidden is True and alias.schema_version == 8000
    assert alias.post_updates == ["path_alias_post_update_update_path_alias_revision_indexes"]
    node = pk[("module", "node")]
    assert (node.schema_version, node.last_removed, node.post_updates) == (10101, None, [])


@pytest.mark.parametrize(("kind", "block_posts"), [("d10", 1), ("d10-newer", 2), ("d11", 2), ("d11-newer", 3)])
def test_the_sample_drupal_10_and_11_platforms(tmp_path, kind, block_posts):
    """The scan of the sample platforms says what their site-install records (make_platforms' spec)."""
    from tests.fixtures.drupal import make_platforms

    spec = make_platforms.spec(kind)
    scan = scan_platform(T, str(make_platforms.build(kind, tmp_path / kind)))
    assert (scan.major, scan.core_version) == (spec.major, spec.core_version)
    pk = by_key(scan)
    for module in spec.modules:
        if "/tests/" in spec.module_dir(module):
            continue  # Drupal's discovery skips tests directories
        found = pk[("module", module.name)]
        assert found.schema_version == module.installed_schema(spec.major), module.name
        assert found.last_removed == module.last_removed, module.name
        assert found.post_updates == module.post_update_functions(), module.name
        assert found.removed_post_updates == sorted(f for f, _ in module.removed_post_updates), module.name
    assert pk[("module", "block")].schema_version == 8003 and len(pk[("module", "block")].post_updates) == block_posts
    assert pk[("module", "path_alias")].hidden


def test_core_checkout_theme_without_version_gets_none(tmp_path):
    root = make_d10(tmp_path / "d10")
    write(root / "web", "themes/custom/mine/mine.info.yml", "name: Mine\ntype: theme\n")
    assert by_key(scan_platform(T, str(root)))[("theme", "mine")].version is None


def test_docroot_variants_and_core_version(tmp_path):
    d7 = make_d7(tmp_path / "a")
    assert find_docroot(T, str(d7)) == str(d7)
    assert core_version(T, str(d7)) == (7, "7.80")
    d10 = make_d10(tmp_path / "b")
    assert find_docroot(T, str(d10)) == str(d10 / "web")
    assert core_version(T, str(d10 / "web")) == (10, "10.2.3")
    other = tmp_path / "c"
    write(other, "docroot/index.php")
    write(other, "docroot/core/lib/Drupal.php", "<?php class Drupal { const VERSION = '11.0.0-rc1'; }")
    scan = scan_platform(T, str(other))
    assert scan.docroot == str(other / "docroot") and scan.major == 11 and scan.core_version == "11.0.0-rc1"
    assert scan.packages == [] and scan.sites == [] and scan.sites_writable is False


@pytest.mark.parametrize(
    "setup",
    ["missing", "empty", "index_only", "file"],
)
def test_not_drupal(tmp_path, setup):
    root = tmp_path / "root"
    if setup == "empty":
        root.mkdir()
    elif setup == "index_only":
        write(root, "index.php", "<?php\n")
        write(root, "includes/other.inc")
    elif setup == "file":
        root.write_text("x")
    with pytest.raises(NotDrupalError) as exc:
        scan_platform(T, str(root))
    assert str(root) in str(exc.value) and isinstance(exc.value, AegirError)
    if setup in ("empty", "index_only"):
        assert "index.php" in str(exc.value) and "core/lib/Drupal.php" in str(exc.value)
    else:
        assert "does not exist" in str(exc.value)
    with pytest.raises(NotDrupalError):
        find_docroot(T, str(root))


def test_relative_root_is_refused():
    with pytest.raises(InputError):
        scan_platform(T, "relative/path")


def test_unreadable_core_version(tmp_path):
    write(tmp_path, "index.php")
    write(tmp_path, "includes/bootstrap.inc", "<?php // no version here\n")
    with pytest.raises(NotDrupalError, match="core version"):
        scan_platform(T, str(tmp_path))


def test_sites_not_writable(tmp_path):
    root = make_d7(tmp_path / "d7")
    os.chmod(root / "sites", 0o555)
    try:
        if os.access(root / "sites", os.W_OK):
            # running as root, for whom `test -w` is always true: check that no marker means not writable
            class NoMarker(LocalTransport):
                def run(self, argv, **kw):
                    result = super().run(argv, **kw)
                    result.stdout = result.stdout.replace(b"\0@writable\0", b"\0", 1)
                    return result

            assert scan_platform(T, str(root)).sites_writable is True
            assert scan_platform(NoMarker("localhost"), str(root)).sites_writable is False
        else:
            assert scan_platform(T, str(root)).sites_writable is False
    finally:
        os.chmod(root / "sites", 0o755)


def test_large_files_and_odd_names(tmp_path):
    root = make_d7(tmp_path / "d7")
    # over 1 MiB: its content is not shipped, so the module has no info and is skipped
    write(root, "sites/all/modules/huge/huge.info", "name = Huge\n" + ";" * (1 << 20) + "\n")
    write(root, "sites/all/modules/huge/huge.module")
    d7_module(root, "sites/all/modules/a b\nc", "spaced", 'version = "7.x-2.0"\n')
    d7_module(root, "sites/all/modules/" + "d" * 120, "deep", 'version = "7.x-1.0"\n')
    pk = by_key(scan_platform(T, str(root)))
    assert ("module", "huge") not in pk
    assert pk[("module", "spaced")].path == "sites/all/modules/a b\nc/spaced.module"
    assert pk[("module", "deep")].version == "7.x-1.0"


def test_symlinked_module_dir_is_followed(tmp_path):
    root = make_d7(tmp_path / "d7")
    shared = tmp_path / "shared"
    d7_module(shared, "linked", "linked", 'version = "7.x-1.1"\n', "<?php\nfunction linked_update_7100() {}\n")
    os.symlink(shared / "linked", root / "sites/all/modules/linked")
    p = by_key(scan_platform(T, str(root)))[("module", "linked")]
    assert (p.version, p.schema_version) == ("7.x-1.1", 7100)


def test_one_command_with_root_as_argument(tmp_path):
    root = make_d7(tmp_path / "it's; $(echo pwned)")
    calls = []

    class Spy(LocalTransport):
        def run(self, argv, **kw):
            calls.append(list(argv))
            return super().run(argv, **kw)

        def read_file(self, path):  # pragma: no cover - must not be used
            raise AssertionError("scan must not read files one by one")

    scan = scan_platform(Spy("localhost"), str(root))
    assert scan.core_version == "7.80" and len(calls) == 1
    argv = calls[0]
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", str(root)] and str(root) not in argv[2]


def test_failed_command_is_a_scan_error(tmp_path):
    class Broken(LocalTransport):
        def run(self, argv, **kw):
            return CommandResult(list(argv), 2, b"garbage", b"tar: something broke")

    with pytest.raises(scan_mod.ScanError, match="something broke"):
        scan_platform(Broken("localhost"), str(tmp_path))


def test_scan_time_of_a_300_file_platform(tmp_path):
    root = make_d7(tmp_path / "d7")
    for i in range(70):
        d7_module(
            root,
            f"sites/all/modules/contrib/m{i}",
            f"m{i}",
            f'name = M{i}\ndependencies[] = views\nversion = "7.x-1.{i}"\n',
            f"<?php\nfunction m{i}_update_7{i:03d}() {{}}\n",
        )
        write(root, f"sites/all/modules/contrib/m{i}/m{i}.inc", "<?php\n")
    count = sum(len(files) for _, _, files in os.walk(root))
    assert count >= 300
    scan_platform(T, str(root))  # warm-up
    best = min(_timed(lambda: scan_platform(T, str(root))) for _ in range(5))
    assert best < 0.150, f"scan of {count} files took {best * 1000:.0f} ms"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- parsers ---------------------------------------------------------------------------------------------------


def test_schema_version_of():
    php = (
        "<?php\nfunction foo_update_7001() {}\n  function foo_update_7010 ($sandbox) {}\n"
        "function foobar_update_7999() {}\n"
    )
    assert schema_version_of(php, "foo", 7) == 7010
    assert schema_version_of("<?php\n", "foo", 7) == 0
    assert schema_version_of("<?php\n", "foo", 8) == 8000
    assert schema_version_of("<?php\n", "foo", 10) == 8000
    assert schema_version_of("<?php\nfunction foo_update_9201() {}\n", "foo", 10) == 9201
    assert schema_version_of("<?php\n", "foo", 10, floor=0) == 0
    assert schema_version_of("<?php\n# function foo_update_7999() {}\n", "foo", 7) == 0
    # Drupal 8+: hook_update_last_removed() is a floor too (ModuleInstaller records max(8000, N, last removed))
    removed = "<?php\nfunction foo_update_last_removed() {\n  return 8003;\n}\n"
    assert schema_version_of(removed, "foo", 10) == 8003
    assert schema_version_of(removed + "function foo_update_10100() {}\n", "foo", 10) == 10100
    typed = "<?php\nfunction foo_update_last_removed(): int {\n  // the 10.x updates are gone\n  return 10201;\n}\n"
    assert schema_version_of(typed + "function foo_update_11100(): void {\n}\n", "foo", 11) == 11100
    assert schema_version_of(typed, "foo", 11) == 10201
    assert (
        schema_version_of("<?php\n/*\nfunction foo_update_last_removed() {\n  return 9000;\n}\n*/\n", "foo", 10) == 8000
    )
    assert schema_version_of(removed, "foo", 7) == 0  # Drupal 7's install ignores it (SCHEMA_INSTALLED)


def test_parse_info_drupal7_format():
    info = parse_info(
        "; $Id$\n"
        'name = "Views \\"UI\\""\n'
        "description = Plain value with = sign ; and semicolon   \n"
        "core = 7.x\n"
        "dependencies[] = views\n"
        "dependencies[] = ctools\n"
        "stylesheets[all][] = a.css\n"
        "stylesheets[print][] = p.css\n"
        "regions[header] = 'Header'\n"
        "settings[toggle][0] = x\n"
        "hidden = TRUE\n"
        "required = FALSE\n"
        "version = VERSION\n"
        "php = 5.2.4\n"
        "empty =\n"
    )
    assert info["name"] == 'Views "UI"'
    assert info["description"] == "Plain value with = sign ; and semicolon"
    assert info["dependencies"] == ["views", "ctools"]
    assert info["stylesheets"] == {"all": ["a.css"], "print": ["p.css"]}
    assert info["regions"] == {"header": "Header"}
    assert info["settings"] == {"toggle": ["x"]}
    assert info["hidden"] is True and info["required"] is False
    assert info["version"] == "VERSION" and info["php"] == "5.2.4" and info["empty"] == ""


YAML_SAMPLES = [
    "name: 'Views UI'\ntype: module\ndescription: \"Admin \\u00e9 interface\"  # c\n"
    "core_version_requirement: ^9 || ^10\nconfigure: entity.view.collection\n"
    "dependencies:\n  - drupal:views\n  - 'foo'\nlifecycle_link: 'https://www.drupal.org/x#y'\n",
    "name: Olivero\ntype: theme\nbase theme: false\nregions:\n  header: Header\n  content: Content # x\n"
    "libraries:\n- olivero/global-styling\nlibraries-override:\n  system/base:\n    css:\n      component:\n"
    "        /core/themes/system/css/components/align.module.css: false\n",
    "name: Standard\ntype: profile\ninstall:\n  - node\n  - history\nthemes: [olivero, claro]\n"
    "distribution:\n  name: Drupal\n  install:\n    theme: claro\n    finish_url: ?welcome=1\n",
    "name: X\nitems:\n  - name: a\n    id: 1\n  - name: b\ndatestamp: 1700000000\nhidden: true\nempty: {}\n"
    "flow: {a: 1, b: [x, 'y z']}\nlong: >\n  folded\n  text\n\n  para\nlit: |-\n  line1\n  line2\nnothing:\n",
    "---\n# comment\nname: 'It''s'\ntype: module\npackage: Other  # trailing\n",
]


@pytest.mark.parametrize("text", YAML_SAMPLES)
def test_parse_info_yml_matches_pyyaml(text):
    yaml = pytest.importorskip("yaml")  # present with prefect; used only to cross-check
    assert parse_info_yml(text) == yaml.safe_load(text)


def test_byte_order_mark_and_crlf():
    assert parse_info_yml("\ufeffname: X\r\ntype: module\r\n") == {"name": "X", "type": "module"}
    assert parse_info("\ufeffname = X\r\nversion = 1\r\n") == {"name": "X", "version": "1"}


def test_parse_info_yml_keeps_versions_as_text():
    assert parse_info_yml("version: 1.0\ncore: 8.x\n") == {"version": "1.0", "core": "8.x"}


@pytest.mark.parametrize("bad", ["name: [a, b\n", "a: 1\n  b: 2\n", "- a\nb: 1\n", "name: 'open\n", "just text\n"])
def test_parse_info_yml_refuses_what_it_cannot_read(bad):
    with pytest.raises(ValueError):
        parse_info_yml(bad)
