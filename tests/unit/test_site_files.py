"""A site's files on its platform: directory modes, settings + credentials, salt kept, sites.php aliases."""

from __future__ import annotations

import stat
from pathlib import Path

from aegir.drupal import site
from aegir.services.vhost import DbParams
from aegir.transport.local import LocalTransport

DB = DbParams(type="mysql", name="examplecom", user="examplecom", password="p'w\"; {x} %$", host="127.0.0.1", port=3306)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def write(t: LocalTransport, path: Path, **overrides) -> None:
    args = dict(major=7, uri="example.com", profile="standard", aliases=[], include_path="/var/aegir/config/includes",
                db=DB, web_group=None)  # fmt: skip
    args.update(overrides)
    site.write_settings(t, str(path), **args)


def test_directories_get_aegirs_modes_and_are_fixed_again(tmp_path):
    t = LocalTransport("localhost")
    path = tmp_path / "sites" / "example.com"
    site.create_directories(t, str(path), None)
    assert mode(path) == 0o755 and mode(path / "files") == 0o2770 and mode(path / "private" / "temp") == 0o2770
    assert mode(path / "modules") == 0o2775
    (path / "files").chmod(0o777)
    site.create_directories(t, str(path), None)
    assert mode(path / "files") == 0o2770


def test_settings_credentials_and_their_round_trip(tmp_path):
    t = LocalTransport("localhost")
    path = tmp_path / "example.com"
    site.create_directories(t, str(path), None)
    write(t, path)
    assert mode(path / "settings.php") == 0o440 and mode(path / "aegir.credentials.php") == 0o400
    assert DB.password not in (path / "settings.php").read_text()
    assert site.read_credentials(t, str(path)) == DB
    assert site.read_credentials(t, str(tmp_path)) is None
    local = path / "local.settings.php"
    local.chmod(0o640)
    local.write_text("<?php $conf['x'] = 1;\n")
    write(t, path)
    assert "$conf['x']" in local.read_text()  # never overwritten


def test_salt_is_made_once(tmp_path):
    t = LocalTransport("localhost")
    path = tmp_path / "example.com"
    site.create_directories(t, str(path), None)
    assert site.ensure_salt(t, str(path), None) is True
    salt = (path / site.SALT_FILE).read_text()
    assert len(salt.strip()) >= 60
    assert site.ensure_salt(t, str(path), None) is False and (path / site.SALT_FILE).read_text() == salt


def test_sites_php_maps_every_site_and_its_aliases_and_keeps_other_sites(tmp_path):
    """Drupal 8+ looks for sites/<uri> only through sites/sites.php: every site is mapped, aliases or not."""
    t = LocalTransport("localhost")
    (tmp_path / "sites").mkdir()
    sites_php = tmp_path / "sites" / "sites.php"
    assert site.unmap_sites_php(t, str(tmp_path), "a.com") is False and not sites_php.exists()
    assert site.update_sites_php(t, str(tmp_path), "a.com", []) is True
    assert sites_php.read_text() == "<?php\n$sites['a.com'] = 'a.com';\n"
    assert site.update_sites_php(t, str(tmp_path), "a.com", []) is False  # unchanged: not rewritten
    site.update_sites_php(t, str(tmp_path), "a.com", ["www.a.com", "a.org"])
    site.update_sites_php(t, str(tmp_path), "b.com", ["www.b.com"])
    site.update_sites_php(t, str(tmp_path), "a.com", ["a.org"])
    assert sites_php.read_text() == (
        "<?php\n$sites['b.com'] = 'b.com';\n$sites['www.b.com'] = 'b.com';\n"
        "$sites['a.com'] = 'a.com';\n$sites['a.org'] = 'a.com';\n"
    )
    assert site.unmap_sites_php(t, str(tmp_path), "a.com") is True
    assert sites_php.read_text() == "<?php\n$sites['b.com'] = 'b.com';\n$sites['www.b.com'] = 'b.com';\n"
    assert site.unmap_sites_php(t, str(tmp_path), "b.com") is True
    assert sites_php.read_text() == "<?php\n"  # kept: on Drupal 8+ its presence turns the dir lookup on
    # a hand-written sites.php keeps its other lines
    sites_php.write_text("<?php\n// local overrides\n$sites['x.test'] = 'x.test';\n")
    site.update_sites_php(t, str(tmp_path), "a.com", [])
    assert (
        sites_php.read_text() == "<?php\n// local overrides\n$sites['x.test'] = 'x.test';\n$sites['a.com'] = 'a.com';\n"
    )


def test_set_aside_path_is_hidden_from_drupals_host_lookup():
    assert site.set_aside_path("/p/sites/example.com", "20261122") == "/p/sites/.example.com.previous-20261122"
