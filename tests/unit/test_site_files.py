"""A site's files on its platform: directory modes, settings + credentials, salt kept, sites.php aliases."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

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
    site.set_permissions(t, str(path), None)
    assert mode(path) == 0o755 and mode(path / "files") == 0o2770 and mode(path / "private" / "temp") == 0o2770
    assert mode(path / "modules") == 0o2775
    (path / "files").chmod(0o777)
    site.set_permissions(t, str(path), None)
    assert mode(path / "files") == 0o2770


def _web_group() -> str:
    import grp

    for name in ("www-data", "nogroup", "daemon"):
        try:
            grp.getgrnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("no group to hand files to")


def _group(p: Path) -> str:
    import grp

    return grp.getgrgid(p.lstat().st_gid).gr_name


@pytest.mark.skipif(os.geteuid() != 0, reason="chgrp to another group needs root")
def test_set_permissions_gives_drupals_trees_and_read_only_files_to_the_web_group(tmp_path):
    t = LocalTransport("localhost")
    group = _web_group()
    path = tmp_path / "example.com"
    site.set_permissions(t, str(path), group)
    site.ensure_salt(t, str(path), group)
    write(t, path, web_group=group)
    made = {p: (mode(p), _group(p)) for p in [path, *path.rglob("*")]}
    # drift: what an extraction as root with --no-same-owner, or an admin's cp, leaves
    (path / "files" / "styles" / "thumb").mkdir()
    upload = path / "files" / "styles" / "thumb" / "a.png"
    upload.write_bytes(b"png")
    for p in [*(path / "files").rglob("*"), *(path / "private").rglob("*"), path / "local.settings.php"]:
        os.chown(p, -1, 0)
    upload.chmod(0o600)
    (path / "files" / "styles" / "thumb").chmod(0o700)
    (path / site.SALT_FILE).chmod(0o400)
    (path / "local.settings.php").chmod(0o644)
    (path / "files").chmod(0o755)

    site.set_permissions(t, str(path), group)
    assert {p: (mode(p), _group(p)) for p in made} == made
    assert mode(upload) == 0o660 and _group(upload) == group  # group-readable and -writable, as Drupal's own
    assert mode(upload.parent) == 0o2770 and _group(upload.parent) == group


@pytest.mark.skipif(os.geteuid() != 0, reason="chgrp to another group needs root")
def test_set_permissions_never_follows_a_symlink_a_tenant_planted(tmp_path):
    t = LocalTransport("localhost")
    group = _web_group()
    path = tmp_path / "example.com"
    site.set_permissions(t, str(path), group)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("root's")
    os.chown(outside, -1, 0)
    os.chown(outside / "secret", -1, 0)
    outside.chmod(0o700)
    (outside / "secret").chmod(0o600)
    # the web server can replace a listed dir inside files/, and put links anywhere in its trees
    (path / "files" / "styles").rmdir()
    (path / "files" / "styles").symlink_to(outside)
    (path / "files" / "secret").symlink_to(outside / "secret")
    (path / site.SALT_FILE).symlink_to(outside / "secret")

    site.set_permissions(t, str(path), group)
    assert (mode(outside), _group(outside)) == (0o700, "root")
    assert (mode(outside / "secret"), _group(outside / "secret")) == (0o600, "root")
    assert (outside / "secret").read_text() == "root's"


def test_settings_credentials_and_their_round_trip(tmp_path):
    t = LocalTransport("localhost")
    path = tmp_path / "example.com"
    site.set_permissions(t, str(path), None)
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
    site.set_permissions(t, str(path), None)
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
