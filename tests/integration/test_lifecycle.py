"""A site's whole life on both stand-in generations (Drupal 7 + drush 8, Drupal 10 + drush 13), from the CLI as
an admin runs it: install, backup, clone, restore, migrate onto newer code, restore the pre-migrate backup onto
that code, rename, disable, delete. After every task the site is checked as a visitor and its admin see it:
an uncached, fully bootstrapped page with its title (not the page cache's copy of ``/``), a fresh one-time
login link that logs in, and every file of the site dir with the owner, group and mode install gives it
(issue 15, finding 3: restore and clone left root:root files, a 500 on Drupal 10, dead login links on 7)."""

from __future__ import annotations

import grp
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegir import registry
from aegir.drupal.settings import CREDENTIALS_FILE, SALT_FILE
from aegir.drupal.site import SITE_DIRECTORIES, WEB_TREES
from tests.fixtures.drupal import make_platforms
from tests.integration.helpers import aegir
from tests.integration.sites import Hosting, make_hosting, site_database_exists, updatedb_status
from tests.integration.test_backup_restore import retitle, titles
from tests.integration.test_install_site import follow_login

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    store = BlockStore(prefect_api.url, prefect_api.auth)
    yield from make_hosting(store, nginx_server, db_admin, prefix="@server_life")


def web_gid() -> int:
    return grp.getgrnam("www-data").gr_gid


def assert_files_as_installed(site_dir: Path) -> None:
    """The site dir's files as install leaves them: the directories with Aegir's modes, settings.php and the
    salt readable by the web group only, drush's credentials by us only, everything in Drupal's file trees
    the web group's and group-writable (directories setgid)."""
    gid = web_gid()
    for rel, want, web in SITE_DIRECTORIES:
        path = site_dir / rel
        assert stat.S_IMODE(path.stat().st_mode) == want, (rel, oct(path.stat().st_mode))
        assert not web or path.stat().st_gid == gid, rel
    for rel, want in (("settings.php", 0o440), (SALT_FILE, 0o440)):
        st = (site_dir / rel).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (want, gid), (rel, oct(st.st_mode), st.st_gid)
    assert stat.S_IMODE((site_dir / CREDENTIALS_FILE).stat().st_mode) == 0o400
    for tree in WEB_TREES:
        for root, dirs, files in os.walk(site_dir / tree):
            for entry in dirs + files:
                st = os.lstat(os.path.join(root, entry))
                assert st.st_gid == gid, os.path.join(root, entry)
                need = 0o2070 if stat.S_ISDIR(st.st_mode) else 0o060
                assert st.st_mode & need == need, (os.path.join(root, entry), oct(st.st_mode))


def assert_works(env: dict[str, str], hosting: Hosting, name: str) -> None:
    """The checks every task ends with, from outside: the front page and an uncached login page (a query
    string the page cache has never seen) with their titles, a login through a fresh link, the files."""
    uri = name[1:]
    site = hosting.load_site(name)
    assert site.status == "installed" and site_database_exists(site.db_name)
    hosting.web.wait_for(uri, status=200, text=f"| {uri}</title>")
    page = hosting.web.request(uri, f"/user/login?visitor={uuid.uuid4().hex}")
    assert page.status_code == 200 and f"| {uri}</title>" in page.text, (page.status_code, page.text[:300])
    assert page.headers.get("x-drupal-cache") != "HIT"
    made = aegir(env, "login-reset", name)
    assert made.returncode == 0, made.stderr
    link = re.search(r"https?://\S+/user/reset/\S+", made.stdout).group(0)
    account = follow_login(hosting.web, uri, link)
    assert account.status_code == 200 and f"admin | {uri}" in account.text, (account.status_code, account.text[:300])
    docroot = registry.load_platform(hosting.store, site.platform).docroot
    assert_files_as_installed(Path(docroot, "sites", uri))


def ok(env: dict[str, str], *args: str) -> str:
    result = aegir(env, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


@pytest.mark.parametrize(("kind", "newer"), [("d7", "d7-newer"), ("d10", "d10-newer")])
def test_a_sites_whole_life_keeps_it_working(prefect_api, hosting, kind, newer):
    env = prefect_api.env
    major = make_platforms.spec(kind).major
    old, new = hosting.verified_platform(kind), hosting.verified_platform(newer)
    name = hosting.site(old)
    uri = name[1:]

    # install; a file the site uploads, as the web server would make it (its own group, its own modes)
    ok(env, "install", name)
    assert_works(env, hosting, name)
    upload = Path(registry.load_platform(hosting.store, old).docroot, "sites", uri, "files", "upload.txt")
    upload.write_text("a tenant's upload\n")
    upload.chmod(0o600)
    ok(env, "verify", name)  # verify repairs the drift
    assert_works(env, hosting, name)

    # backup, change, clone (the clone is a site of its own, and works), restore the backup
    retitle(hosting, name, major, "As backed up")
    ok(env, "backup", name, "--description=lifecycle")
    backup = hosting.load_site(name).backups[0]["id"]
    clone = "@clone-" + uri
    hosting.sites.append(clone)
    ok(env, "clone", name, clone[1:])
    assert_works(env, hosting, clone)
    retitle(hosting, name, major, "Changed")
    ok(env, "restore", name, backup)
    assert titles(hosting, name, major) == ["As backed up"]
    assert_works(env, hosting, name)

    # migrate onto newer code (updates run), then the pre-migrate backup restored onto that code: updatedb
    ok(env, "migrate", name, new)
    assert hosting.load_site(name).platform == new
    assert_works(env, hosting, name)
    pre = next(b for b in hosting.load_site(name).backups if b["reason"] == "Pre-migration backup")
    retitle(hosting, name, major, "After the upgrade")
    ok(env, "restore", name, pre["id"])
    assert titles(hosting, name, major) == ["As backed up"]
    assert "No database updates required" in updatedb_status(hosting, name)
    assert_works(env, hosting, name)

    # rename: the new name works, the old one is not served
    renamed = "@renamed-" + uri
    hosting.sites.append(renamed)
    ok(env, "rename", name, renamed[1:])
    assert_works(env, hosting, renamed)
    hosting.web.wait_for(uri, status=404)

    # disable, delete: nothing served, nothing left; the clone is untouched throughout
    for site in (renamed, clone):
        ok(env, "disable", site)
        ok(env, "delete", site)
        gone = hosting.load_site(site)
        assert gone.status == "deleted" and gone.db_name is None
        hosting.web.wait_for(site[1:], status=404)
    for platform in (old, new):
        sites = Path(registry.load_platform(hosting.store, platform).docroot, "sites")
        assert not [p for p in os.listdir(sites) if uri in p]
