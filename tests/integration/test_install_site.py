"""install-site, verify-site and login-reset on sample Drupal 7 and 10 platforms, served for real by nginx
and apache + php-fpm, with the real MariaDB and a real Prefect API; and everything install refuses."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aegir import registry
from tests.integration.helpers import aegir, flow_run, flow_run_logs, task_runs
from tests.integration.sites import Hosting, make_hosting, mode, query_site, site_database_exists
from tests.support import mariadb

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin)


@pytest.fixture(scope="module")
def d7(hosting) -> str:
    return hosting.verified_platform("d7")


@pytest.fixture(scope="module")
def mail_server(prefect_api, smtp_sink):
    result = aegir(
        prefect_api.env, "mail-server", "--host=127.0.0.1", f"--port={smtp_sink.port}", "--from=aegir@ex.test"
    )
    assert result.returncode == 0, result.stderr
    return smtp_sink


def install(name: str, **kwargs):
    from flows.install_site import install_site

    return install_site(site=name, return_state=True, **kwargs)


def header_bytes(response: httpx.Response) -> int:
    """The size of a response's header set as the web server received it from PHP (name: value CRLF)."""
    return sum(len(k) + len(v) + 4 for k, v in response.headers.multi_items())


def follow_login(web, uri: str, link: str) -> httpx.Response:
    """Use a one-time login link as a browser would: the reset URL, then the account page with the cookie.

    The login answer carries more than 8 KiB of headers (the stand-in's, as real Drupal 7's did): more than
    nginx's default FastCGI buffer holds (502 "upstream sent too big header" without Aegir's buffer sizes)."""
    path = re.sub(r"^https?://[^/]+", "", link)
    first = web.request(uri, path)
    assert first.status_code == 302, (first.status_code, first.text[:300])
    assert header_bytes(first) > 8192
    cookie = first.headers["set-cookie"].split(";")[0]
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        return client.get(f"{web.url}/user/1", headers={"Host": uri, "Cookie": cookie})


# -------------------------------------------------------------------------------------------------------
# the main path, as a user runs it
# -------------------------------------------------------------------------------------------------------
def test_install_d7_on_nginx_from_the_cli(prefect_api, hosting, d7, mail_server, db_admin):
    name = hosting.site(d7, client_email="owner@client.test")
    result = aegir(prefect_api.env, "install", name)
    assert result.returncode == 0, result.stderr
    assert "Flow run install-site" in result.stderr
    uri = name[1:]
    link = re.search(r"One-time login link: (\S+)", result.stdout).group(1)
    assert re.match(rf"http://{re.escape(uri)}:{hosting.web.port}/user/reset/1/\d+/[\w-]+/login$", link)

    # served for real with its name
    hosting.web.wait_for(uri, status=200, text=uri)

    # the record
    site = hosting.load_site(name)
    assert site.status == "installed" and site.verified is not None
    assert site.db_name and site_database_exists(site.db_name) and site.db_user == site.db_name
    assert sorted(mariadb.users(site.db_user)) == ["127.0.0.1", "localhost"]
    enabled = {p["name"]: p for p in site.packages if p["status"] == "enabled"}
    assert {"system", "user", "node"} <= set(enabled) and enabled["system"]["version"] == "7.80"
    assert enabled["system"]["schema_version"] > 7000

    # files with Aegir's modes: settings.php readable by the web group only, credentials by us only
    platform = registry.load_platform(hosting.store, d7)
    site_dir = Path(platform.docroot) / "sites" / uri
    assert mode(site_dir / "settings.php") == 0o440 and (site_dir / "settings.php").stat().st_gid == _gid("www-data")
    assert mode(site_dir / "aegir.credentials.php") == 0o400
    assert mode(site_dir / "files") == 0o2770 and mode(site_dir / "private") == 0o2770
    password = site.db_password.get_secret_value()
    assert password not in (site_dir / "settings.php").read_text()

    # the login link works once, with the stand-in's Drupal reset scheme
    account = follow_login(hosting.web, uri, link)
    assert account.status_code == 200 and f"admin | {uri}" in account.text
    assert hosting.web.request(uri, re.sub(r"^https?://[^/]+", "", link)).status_code == 403

    # the welcome mail with the link
    mail = mail_server.wait_for("owner@client.test")
    assert link in mail.get_content() and uri in str(mail["Subject"])

    # no secret in the run's parameters, logs, or the CLI output
    run_id = re.search(r"\(([0-9a-f-]{36})\)", result.stderr).group(1)
    assert flow_run(prefect_api.url, run_id)["state_type"] == "COMPLETED"
    logs = flow_run_logs(prefect_api.url, run_id)
    for secret in (password, db_admin["db_password"]):
        assert secret not in logs and secret not in result.stdout + result.stderr
    assert "User password: ********" in logs or "User password" not in logs
    steps = [t["name"].rsplit("-", 1)[0] for t in task_runs(prefect_api.url, run_id)]
    assert steps == [
        "validate-install",
        "create-database",
        "create-site-files",
        "drush-site-install",
        "write-vhost",
        "probe-site",
        "record-packages",
        "login-link",
        "welcome-mail",
        "finish-install",
    ]


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid


def test_a_login_answer_with_more_than_8k_of_headers_passes_nginx(hosting, d7):
    """Issue 15, finding 6: Drupal's headers on /user/reset/…/login outgrew nginx's default FastCGI buffers
    (one memory page, 4 KiB): 502. The server conf sizes them as Aegir's does (fastcgi_buffer_size 128k)."""
    name = hosting.site(d7)
    state = install(name)
    assert state.is_completed(), state.message
    uri = name[1:]
    path = re.sub(r"^https?://[^/]+", "", state.result()["login_link"])
    answer = hosting.web.request(uri, path)
    assert answer.status_code == 302, (answer.status_code, answer.text[:300], hosting.web.process.diagnostics()[-600:])
    assert header_bytes(answer) > 8192 and len(answer.headers.get_list("set-cookie")) > 40
    cookie = answer.headers["set-cookie"].split(";")[0]
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        account = client.get(f"{hosting.web.url}/user/1", headers={"Host": uri, "Cookie": cookie})
    assert account.status_code == 200 and f"admin | {uri}" in account.text


def test_a_failing_mail_server_does_not_take_the_new_site_down(prefect_api, hosting, d7, mail_server):
    from tests.support.webservers import free_port

    dead = aegir(prefect_api.env, "mail-server", "--host=127.0.0.1", f"--port={free_port()}")
    assert dead.returncode == 0, dead.stderr
    try:
        name = hosting.site(d7, client_email="nobody@client.test")
        state = install(name)
    finally:
        aegir(prefect_api.env, "mail-server", "--host=127.0.0.1", f"--port={mail_server.port}", "--from=aegir@ex.test")
    assert state.is_completed(), state.message
    assert state.result()["welcome_mail"].startswith("not sent:")
    assert hosting.load_site(name).status == "installed"
    hosting.web.wait_for(name[1:], status=200, text=name[1:])


def test_install_d10_composer_platform(hosting):
    platform = hosting.verified_platform("d10")
    name = hosting.site(platform)
    state = install(name)
    assert state.is_completed(), state.message
    uri = name[1:]
    hosting.web.wait_for(uri, status=200, text=uri)
    site = hosting.load_site(name)
    assert registry.load_platform(hosting.store, platform).docroot.endswith("/web")
    enabled = {p["name"] for p in site.packages if p["status"] == "enabled"}
    assert "system" in enabled
    link = state.result()["login_link"]
    assert follow_login(hosting.web, uri, link).status_code == 200


def snapshot(root: Path) -> dict[str, str]:
    """Every path under a platform's root with what it is (a dir, or a file's sha256)."""
    import hashlib

    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
    }


def sites_php_map(docroot: Path) -> dict[str, str]:
    path = docroot / "sites" / "sites.php"
    text = path.read_text() if path.exists() else ""
    return dict(re.findall(r"^\$sites\['([^']+)'\] = '([^']+)';$", text, re.MULTILINE))


@pytest.mark.parametrize("kind", ["d7", "d10"])
def test_tasks_write_nothing_outside_the_sites_dir_and_sites_php(hosting, kind):
    """On a web server whose port is not 80 (drush gets ``-l http://URI:PORT``), install, verify, login-reset,
    disable and enable leave the platform as it was but for sites/<uri> and sites/sites.php, which maps the
    site (Drupal 8+ never looks for sites/<uri> without it); sites/default keeps only what the platform
    shipped (drush's site-install takes its own dir from the uri: drush 8 with a port, drush 12+ always,
    resolve to sites/default unless it is given --sites-subdir)."""
    from flows.disable_enable import disable_site, enable_site
    from flows.login_reset import login_reset
    from flows.verify_site import verify_site

    assert hosting.web.port != 80
    platform = hosting.verified_platform(kind)
    context = registry.load_platform(hosting.store, platform)
    root, docroot = Path(context.root), Path(context.docroot)
    sites = docroot.relative_to(root) / "sites"
    before = snapshot(root)
    name = hosting.site(platform)
    uri = name[1:]

    state = install(name)
    assert state.is_completed(), state.message
    assert follow_login(hosting.web, uri, state.result()["login_link"]).status_code == 200
    for flow in (verify_site, login_reset, disable_site, enable_site):
        done = flow(site=name, return_state=True)
        assert done.is_completed(), done.message
    hosting.web.wait_for(uri, status=200, text=uri)

    after = snapshot(root)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    outside = {p for p in changed if not (p == str(sites / uri) or p.startswith(f"{sites / uri}/"))}
    assert outside == {str(sites / "sites.php")}
    assert sorted(os.listdir(docroot / "sites" / "default")) == sorted(
        p.rsplit("/", 1)[1] for p in before if p.startswith(f"{sites}/default/")
    )
    assert sites_php_map(docroot) == {uri: uri}


def test_a_failed_reinstall_puts_the_drupal10_site_back_in_sites_php(hosting, monkeypatch):
    platform = hosting.verified_platform("d10")
    docroot = Path(registry.load_platform(hosting.store, platform).docroot)
    name = hosting.site(platform)
    uri = name[1:]
    assert install(name).is_completed()
    monkeypatch.setenv("AEGIR_FAULT", "probe-site:before:raise")
    state = install(name, force_reinstall=True)
    monkeypatch.delenv("AEGIR_FAULT")
    assert state.is_failed() and "rolled back:" in state.message and "previous site restored" in state.message
    assert sites_php_map(docroot) == {uri: uri}
    hosting.web.wait_for(uri, status=200, text=uri)
    assert hosting.load_site(name).status == "installed"


def test_a_failing_drush_names_its_command_and_keeps_its_own_message(prefect_api, hosting, db_admin):
    """drush 12+ prints the error, then a long backtrace: the flow's error names the drush command and carries
    the error (its first lines and its last), and the run's log has drush's whole output."""
    platform = hosting.verified_platform("d10-broken")
    name = hosting.site(platform, profile="broken")
    uri = name[1:]
    result = aegir(prefect_api.env, "install", name)
    assert result.returncode == 1
    run_id = re.search(r"\(([0-9a-f-]{36})\)", result.stderr).group(1)
    state = flow_run(prefect_api.url, run_id)["state"]
    message = state["message"]
    assert "drush site:install failed" in message
    assert "RuntimeException: broken profile: install failed half-way in broken_install()" in message
    assert "{main}" in message  # the last line too
    assert re.search(rf"drush \S*-r \S+ -l http://{re.escape(uri)}:{hosting.web.port} site:install broken ", message)
    assert "#12 " not in message  # not the backtrace
    assert "broken profile: install failed half-way" in result.stderr
    logs = flow_run_logs(prefect_api.url, run_id)
    assert "RuntimeException: broken profile" in logs and "#23 " in logs and "{main}" in logs
    for secret in (db_admin["db_password"],):
        assert secret not in logs and secret not in message
    assert "rolled back:" in message and hosting.load_site(name).status == "failed"


def test_verify_site_is_idempotent_and_login_reset_gives_a_new_link(hosting, d7):
    from flows.login_reset import login_reset
    from flows.verify_site import verify_site

    name = hosting.site(d7)
    first = install(name)
    assert first.is_completed(), first.message
    site_dir = Path(registry.load_platform(hosting.store, d7).docroot) / "sites" / name[1:]
    settings = (site_dir / "settings.php").read_bytes()
    salt = (site_dir / "private" / "hash_salt.txt").read_bytes()
    (site_dir / "files").chmod(0o700)  # drifted modes are fixed by verify

    for _ in range(2):
        state = verify_site(site=name, return_state=True)
        assert state.is_completed(), state.message
    assert (site_dir / "settings.php").read_bytes() == settings
    assert (site_dir / "private" / "hash_salt.txt").read_bytes() == salt
    assert mode(site_dir / "files") == 0o2770
    hosting.web.wait_for(name[1:], status=200, text=name[1:])

    link = login_reset(site=name)
    assert link != first.result()["login_link"]
    assert follow_login(hosting.web, name[1:], link).status_code == 200


def test_force_reinstall_replaces_the_site_and_only_then_drops_the_old_database(hosting, d7):
    name = hosting.site(d7)
    assert install(name).is_completed()
    old = hosting.load_site(name).db_name
    refused = install(name)
    assert refused.is_failed() and "already installed" in refused.message
    assert site_database_exists(old)

    state = install(name, force_reinstall=True)
    assert state.is_completed(), state.message
    new = hosting.load_site(name).db_name
    assert new != old and site_database_exists(new) and not site_database_exists(old)
    hosting.web.wait_for(name[1:], status=200, text=name[1:])
    leftovers = [
        p
        for p in os.listdir(Path(registry.load_platform(hosting.store, d7).docroot) / "sites")
        if p.startswith(f".{name[1:]}")
    ]
    assert leftovers == []


# -------------------------------------------------------------------------------------------------------
# failures roll everything back
# -------------------------------------------------------------------------------------------------------
def _assert_nothing_left(hosting: Hosting, platform: str, name: str, before_dbs: set[str]) -> None:
    uri = name[1:]
    site = hosting.load_site(name)
    assert site.status == "failed" and site.db_name is None
    assert mariadb.databases() == before_dbs
    prefix = uri.replace(".", "")[:13]
    assert mariadb.users_like(prefix) == []
    docroot = Path(registry.load_platform(hosting.store, platform).docroot)
    assert not (docroot / "sites" / uri).exists()
    assert not Path(hosting.web.aegir_root, "config", hosting.server[1:], "nginx", "vhost.d", uri).exists()


def test_drush_failing_half_way_rolls_everything_back(hosting):
    platform = hosting.verified_platform("d7-broken")
    name = hosting.site(platform, profile="broken")
    before = mariadb.databases()
    state = install(name)
    assert state.is_failed()
    assert "drush site-install failed" in state.message and "broken profile" in state.message
    assert "rolled back:" in state.message and "database" in state.message
    _assert_nothing_left(hosting, platform, name, before)


def test_failing_nginx_config_test_restores_and_keeps_serving(hosting, d7):
    serving = hosting.site(d7)
    assert install(serving).is_completed()
    broken = Path(hosting.web.aegir_root, "config", hosting.server[1:], "nginx", "pre.d", "broken.conf")
    name = hosting.site(d7)
    before = mariadb.databases()
    broken.write_text("this is not nginx syntax;\n")
    try:
        state = install(name)
    finally:
        broken.unlink()
    assert state.is_failed() and "config test failed" in state.message
    _assert_nothing_left(hosting, d7, name, before)
    hosting.web.wait_for(serving[1:], status=200, text=serving[1:])


# -------------------------------------------------------------------------------------------------------
# bad input: a clear error naming the field, nothing changed
# -------------------------------------------------------------------------------------------------------
def _refused(state, *words: str) -> None:
    assert state.is_failed()
    for w in words:
        assert w in state.message, (w, state.message)


def test_refuses_unverified_and_locked_platforms(hosting):
    unverified = hosting.platform("d7")
    name = hosting.site(unverified)
    before = mariadb.databases()
    _refused(install(name), "platform:", "has not been verified", f"aegir verify {unverified}")
    locked = hosting.verified_platform("d7", status="locked")
    name2 = hosting.site(locked)
    _refused(install(name2), "platform:", "is locked")
    assert mariadb.databases() == before
    assert hosting.load_site(name).status == "new" and hosting.load_site(name2).status == "new"


def test_refuses_profile_and_language_the_platform_lacks(hosting, d7):
    _refused(install(hosting.site(d7, profile="commerce")), "profile:", "standard", "minimal")
    _refused(install(hosting.site(d7, language="xx")), "language:", "de", "fr")
    _refused(install(hosting.site(d7, profile="minimal", language="de")), "language:")


def test_install_in_german_with_a_profile_translation(hosting, d7):
    name = hosting.site(d7, language="de")
    state = install(name)
    assert state.is_completed(), state.message
    rows = query_site(hosting.load_site(name).db_name, "SELECT value FROM variable WHERE name = 'language_default'")
    assert rows and b"de" in bytes(rows[0][0])


def test_cli_bad_input(prefect_api, hosting, d7):
    bad_uri = aegir(prefect_api.env, "save", "@not_a_host!", "--context_type=site", f"--platform={d7}")
    assert bad_uri.returncode == 2 and "name" in bad_uri.stderr
    bad_uri = aegir(prefect_api.env, "save", "@under_score.test", "--context_type=site", f"--platform={d7}")
    assert bad_uri.returncode == 2 and "uri" in bad_uri.stderr
    nodb = registry.save(hosting.store, hosting.server + "_nodb", "server", {"aegir_root": "/tmp/aegir-nodb"})
    no_db = aegir(
        prefect_api.env,
        "save",
        "@nodb.example.test",
        "--context_type=site",
        f"--platform={d7}",
        f"--db_server={nodb.name}",
    )
    assert no_db.returncode == 2 and "db_server" in no_db.stderr
    missing = aegir(prefect_api.env, "install", "@nowhere.example.test")
    assert missing.returncode == 3 and "no such context" in missing.stderr


# -------------------------------------------------------------------------------------------------------
# disable / enable
# -------------------------------------------------------------------------------------------------------
def test_disable_and_enable_from_the_cli(prefect_api, hosting, d7):
    from flows.verify_site import verify_site

    name = hosting.site(d7)
    uri = name[1:]
    assert aegir(prefect_api.env, "disable", name).returncode == 2  # not installed yet: refused
    assert install(name).is_completed()

    disabled = aegir(prefect_api.env, "disable", name)
    assert disabled.returncode == 0, disabled.stderr
    assert hosting.load_site(name).status == "disabled"
    hosting.web.wait_for(uri, status=503, text="This site has been disabled")
    assert verify_site(site=name, return_state=True).is_completed()  # verify keeps it disabled
    hosting.web.wait_for(uri, status=503, text="This site has been disabled")
    assert aegir(prefect_api.env, "disable", name).returncode == 2  # already disabled

    enabled = aegir(prefect_api.env, "enable", name)
    assert enabled.returncode == 0, enabled.stderr
    assert hosting.load_site(name).status == "installed"
    hosting.web.wait_for(uri, status=200, text=uri)


def test_disabled_sites_redirect_to_the_servers_web_disable_url(hosting, d7):
    from flows.disable_enable import disable_site, enable_site

    name = hosting.site(d7)
    assert install(name).is_completed()
    registry.save(hosting.store, hosting.server, None, {"web_disable_url": "http://hosting.example.test/disabled"})
    try:
        assert disable_site(site=name, return_state=True).is_completed()
        answer = hosting.web.wait_for(name[1:], status=302)
        assert answer.headers["location"] == f"http://hosting.example.test/disabled/{name[1:]}"
        assert enable_site(site=name, return_state=True).is_completed()
    finally:
        registry.save(hosting.store, hosting.server, None, {"web_disable_url": "null"})
    hosting.web.wait_for(name[1:], status=200, text=name[1:])
