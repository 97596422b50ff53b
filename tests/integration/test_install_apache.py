"""A site served by apache + php-fpm (proxy_fcgi): the platform conf, the vhost with SetEnv credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aegir import registry
from tests.integration.sites import Hosting, make_hosting
from tests.integration.test_install_site import follow_login, install

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosting(prefect_api, apache_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(
        BlockStore(prefect_api.url, prefect_api.auth), apache_server, db_admin, prefix="@server_apache"
    )


def test_install_d7_on_apache(hosting):
    platform = hosting.verified_platform("d7")
    conf = Path(hosting.web.aegir_root, "config", hosting.server[1:], "apache", "platform.d", platform[1:] + ".conf")
    docroot = registry.load_platform(hosting.store, platform).docroot
    assert f"<Directory {docroot}>" in conf.read_text()

    name = hosting.site(platform, aliases="www." + platform[1:].replace("_", "") + ".example.test")
    state = install(name)
    assert state.is_completed(), state.message
    uri = name[1:]
    hosting.web.wait_for(uri, status=200, text=uri)
    assert follow_login(hosting.web, uri, state.result()["login_link"]).status_code == 200
    # an alias without redirection serves the same site (sites.php maps it)
    alias = hosting.load_site(name).aliases[0]
    hosting.web.wait_for(alias, status=200, text=uri)


def test_install_d10_on_apache(hosting):
    platform = hosting.verified_platform("d10")
    name = hosting.site(platform)
    state = install(name)
    assert state.is_completed(), state.message
    hosting.web.wait_for(name[1:], status=200, text=name[1:])
