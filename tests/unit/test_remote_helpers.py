"""The pieces of remote hosting that need no hosts: the grant-host probe's answer (Aegir's grant_host) and
what a platform push leaves out."""

from __future__ import annotations

import pytest

from aegir.drupal.build import push_excludes
from aegir.services.db import DbError, parse_seen_host
from aegir.transport.local import LocalTransport


@pytest.mark.parametrize(
    ("output", "host"),
    [
        ("ERROR 1045 (28000): Access denied for user 'intntnllyInvalid'@'10.0.0.7' (using password: NO)", "10.0.0.7"),
        ("ERROR 1130 (HY000): Host 'web1.example.com' is not allowed to connect to this MariaDB", "web1.example.com"),
    ],
)  # fmt: skip
def test_the_refused_probe_names_the_host_the_db_server_sees(output, host):
    assert parse_seen_host(output, 1, "@server_db", "web1") == host


def test_a_probe_that_cannot_connect_or_is_let_in_is_an_error_naming_both_ends():
    with pytest.raises(DbError, match=r"@server_db cannot be reached from web1: ERROR 2003 .*Can't connect"):
        parse_seen_host(
            "ERROR 2003 (HY000): Can't connect to MySQL server on '10.0.0.9' (113)", 1, "@server_db", "web1"
        )
    with pytest.raises(DbError, match="anonymous logins are allowed"):
        parse_seen_host("VERSION()\n10.11.6-MariaDB\n", 0, "@server_db", "web1")


def test_a_push_leaves_out_every_site_dir_but_all_and_default_and_sites_php(tmp_path):
    root = tmp_path / "platform"
    (root / "web" / "core" / "lib").mkdir(parents=True)
    (root / "web" / "index.php").write_text("<?php\n")
    (root / "web" / "core" / "lib" / "Drupal.php").write_text("<?php const VERSION = '10.3.0';\n")
    for d in ("all", "default", "example.com", ".example.com.restore-20260101"):
        (root / "web" / "sites" / d).mkdir(parents=True)
    (root / "web" / "sites" / "sites.php").write_text("<?php\n")
    (root / "web" / "sites" / "example.sites.php").write_text("<?php\n")
    excludes = push_excludes(LocalTransport("localhost"), str(root))
    assert sorted(excludes) == sorted(
        ["./web/sites/sites.php", "./web/sites/example.com", "./web/sites/.example.com.restore-20260101"]
    )
