"""Site vhosts (and the apache platform conf) against real private nginx / apache / php-fpm instances.

A tiny docroot whose index.php includes a real rendered settings.php: the database credentials must reach
PHP through the vhost (the CLI credentials file next to it is root-only, so the php-fpm workers, www-data,
cannot fall back on it), be urldecoded exactly, and be gone from ``$_SERVER`` afterwards.
"""

from __future__ import annotations

import dataclasses
import grp
import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from aegir.drupal.settings import CREDENTIALS_FILE, render_credentials, render_settings
from aegir.services.http import HttpConfigError, http_service_for
from aegir.services.vhost import DISABLED_MESSAGE, DbParams, SiteVhost
from aegir.transport import LocalTransport

pytestmark = pytest.mark.integration

PASSWORD = "p'\"; {}$\\ a b+%2B&?#"
DB = DbParams(type="mysql", name="vhost_test_db", user="vhost_u", password=PASSWORD, host="db.invalid", port=3307)
MARK = "front-controller"
STABLE = 10
BROKEN = {"nginx": "server {\n    listen *:1;\n    no_such_directive on;\n}\n", "apache": "<VirtualHost *:1>\n"}

INDEX_PHP = r"""<?php
if (isset($_GET['big_headers'])) {
  // As Drupal's login answer: many cookies and one long header, over 8 KiB in all (each line under 8 KiB).
  for ($i = 0; $i < 40; $i++) {
    header("Set-Cookie: big$i=" . str_repeat('a', 150) . '; path=/', FALSE);
  }
  header('Content-Security-Policy: ' . str_repeat('x', 3000));
}
$raw = array();
foreach (array('db_name', 'db_passwd', 'REDIRECT_db_name') as $k) {
  $raw[$k] = isset($_SERVER[$k]) ? $_SERVER[$k] : NULL;
}
$databases = array();
$settings = array();
include __DIR__ . '/sites/%(uri)s/settings.php';
$left = array();
foreach ($_SERVER as $k => $v) {
  if (strpos($k, 'db_') !== FALSE) {
    $left[] = $k;
  }
}
header('Content-Type: application/json');
echo json_encode(array(
  'mark' => '%(mark)s',
  'raw' => $raw,
  'db' => isset($databases['default']['default']) ? $databases['default']['default'] : NULL,
  'left' => $left,
  'request_uri' => $_SERVER['REQUEST_URI'],
  'main_site' => isset($_SERVER['MAIN_SITE_NAME']) ? $_SERVER['MAIN_SITE_NAME'] : NULL,
  'http_proxy' => isset($_SERVER['HTTP_PROXY']) ? $_SERVER['HTTP_PROXY'] : NULL,
  'credentials_readable' => is_readable(__DIR__ . '/sites/%(uri)s/%(credentials)s'),
));
"""


@pytest.fixture(scope="module", params=["nginx", "apache"])
def env(request):
    """A verified server, a docroot with one site, and the service; everything removed afterwards."""
    web = request.getfixturevalue(f"{request.param}_server")
    fields = web.server_fields()
    server = SimpleNamespace(
        name="@server_master",
        config_path=os.path.join(fields["aegir_root"], "config", "server_master"),
        **fields,
    )
    transport = LocalTransport()
    service = http_service_for(server)
    service.verify_server(transport)

    uri = f"site-{web.kind}.example"
    docroot = Path(tempfile.mkdtemp(prefix="aegir-test-vhost-"))
    site = docroot / "sites" / uri
    files = {
        "index.php": INDEX_PHP % {"uri": uri, "mark": MARK, "credentials": CREDENTIALS_FILE},
        "other.php": '<?php echo "EXECUTED";',
        "composer.json": "{}",
        "static.txt": "static file",
        f"sites/{uri}/files/x.php": '<?php echo "EXECUTED";',
        f"sites/{uri}/files/hello.txt": "hello file",
        f"sites/{uri}/private/secret.txt": "secret",
    }
    for rel, content in files.items():
        path = docroot / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o644)
    for d in (docroot, docroot / "sites", site, site / "files", site / "private"):
        d.chmod(0o755)
    www = grp.getgrnam(fields["web_group"]).gr_gid
    settings = site / "settings.php"
    settings.write_text(
        render_settings(10, uri=uri, profile="minimal", aliases=[f"www.{uri}"], include_path=str(docroot / "none"))
    )
    os.chown(settings, 0, www)
    settings.chmod(0o440)
    creds = site / CREDENTIALS_FILE  # root only: the web path must not be able to use it
    creds.write_text(render_credentials(DbParams("mysql", "wrong", "wrong", "wrong", "wrong", 1)))
    creds.chmod(0o400)

    vhost = SiteVhost(
        uri=uri,
        docroot=str(docroot),
        site_dir=f"sites/{uri}",
        http_port=web.port,
        aliases=(f"www.{uri}", f"old.{uri}"),
        db=DB,
        php_fpm_socket=web.php_fpm_socket,
    )
    ns = SimpleNamespace(web=web, kind=web.kind, service=service, transport=transport, vhost=vhost, uri=uri)
    ns.platform = "@platform_vhost_test"
    try:
        yield ns
    finally:
        service.remove_vhost(transport, uri)
        service.remove_platform_conf(transport, ns.platform)
        service.reload(transport)
        shutil.rmtree(docroot, ignore_errors=True)


_CLIENT = httpx.Client(
    trust_env=False, timeout=5.0, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
)
"""One client (creating one per request is slow), no keep-alive: every request is a new connection, as a
worker that still runs the previous configuration would see it."""


def get(env, host: str, path: str = "/", **headers: str) -> httpx.Response:
    return _CLIENT.get(env.web.url + path, headers={"Host": host, **headers})


def settled(env, host: str, path: str = "/", *, status: int, text: str | None = None, timeout: float = 10.0):
    """Wait until ``host`` answers ``status`` (and ``text``) :data:`STABLE` times in a row.

    A reload is asynchronous: for a moment an old worker may still accept connections and answer with the
    previous configuration, even after a new worker has answered with the new one."""
    deadline = time.monotonic() + timeout
    while not env.web.reload_done() and time.monotonic() < deadline:
        time.sleep(0.02)
    streak, last = 0, None
    while streak < STABLE:
        try:
            last = get(env, host, path)
            ok = last.status_code == status and (text is None or text in last.text) and env.web.reload_done()
        except httpx.HTTPError as e:
            last, ok = e, False
        streak = streak + 1 if ok else 0
        if streak < STABLE:
            if time.monotonic() >= deadline:
                seen = f"{last.status_code} {last.text[:300]!r}" if isinstance(last, httpx.Response) else last
                raise AssertionError(
                    f"{env.kind}: GET {path} Host: {host} never steadily answered status={status} text={text!r}; "
                    f"last: {seen}\n{env.web.process.diagnostics()}"
                )
            if not ok:
                time.sleep(0.05)
    return last


def apply(env, vhost: SiteVhost, host: str, path: str = "/", **wait) -> httpx.Response:
    """Write the platform conf (apache) and the vhost, reload, and wait until ``host`` steadily answers."""
    env.service.write_platform_conf(env.transport, env.platform, vhost.docroot)
    env.service.write_vhost(env.transport, vhost)
    env.service.reload(env.transport)
    return settled(env, host, path, **wait)


def front(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text[:500]
    data = json.loads(resp.text)
    assert data["mark"] == MARK
    return data


def not_executed(resp: httpx.Response) -> None:
    assert resp.status_code in (403, 404), (resp.status_code, resp.text[:300])
    assert "EXECUTED" not in resp.text and "<?php" not in resp.text


def test_enabled_vhost_cloaks_credentials_and_protects_files(env):
    resp = apply(env, env.vhost, env.uri, status=200, text=MARK)
    path = env.service.vhost_path(env.uri)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert PASSWORD not in Path(path).read_text()

    data = front(resp)
    assert data["db"] == {
        "driver": "mysql",
        "database": "vhost_test_db",
        "username": "vhost_u",
        "password": PASSWORD,
        "host": "db.invalid",
        "port": "3307",
        "prefix": "",
        "charset": "utf8mb4",
        "collation": "utf8mb4_general_ci",
    }
    assert data["raw"]["db_name"] == "vhost_test_db"  # what the web server handed PHP, before settings.php
    assert data["left"] == []  # settings.php unset every db_* (and REDIRECT_db_*)
    assert data["credentials_readable"] is False
    assert data["main_site"] == env.uri

    # Clean URLs reach the front controller with the original request URI, and still get the credentials.
    data = front(get(env, env.uri, "/some/clean/url?x=1&y=%20"))
    assert data["request_uri"] == "/some/clean/url?x=1&y=%20"
    assert data["db"]["password"] == PASSWORD and data["left"] == []
    assert front(get(env, env.uri, "/index.php"))["db"]["database"] == "vhost_test_db"
    # httpoxy
    assert front(get(env, env.uri, "/", Proxy="http://evil.invalid:1"))["http_proxy"] in (None, "")

    # Static files, the /files/ short URL.
    assert get(env, env.uri, "/static.txt").text == "static file"
    files_url = get(env, env.uri, "/files/hello.txt")
    assert (files_url.status_code, files_url.text) == (200, "hello file")
    assert get(env, env.uri, f"/sites/{env.uri}/files/hello.txt").text == "hello file"

    # No PHP but the front controller; nothing under files/ runs; private files and Drupal files denied.
    for p in (f"/sites/{env.uri}/files/x.php", "/files/x.php", "/other.php", f"/sites/{env.uri}/settings.php"):
        not_executed(get(env, env.uri, p))
    for p in ("/other.php/x", f"/sites/{env.uri}/settings.php/x", "/files/x.php/y"):  # not via a path info
        resp = get(env, env.uri, p)
        assert "EXECUTED" not in resp.text and (resp.status_code in (403, 404) or MARK in resp.text), p
    assert front(get(env, env.uri, "/index.php/user/login"))["request_uri"] == "/index.php/user/login"
    private = get(env, env.uri, f"/sites/{env.uri}/private/secret.txt")
    assert private.status_code == 403 and "secret" not in private.text
    assert get(env, env.uri, "/composer.json").status_code in (403, 404)

    # Aliases are served by the same site.
    for alias in env.vhost.aliases:
        assert front(settled(env, alias, "/node/1", status=200, text=MARK))["db"]["database"] == "vhost_test_db"


def test_a_drupal_host_takes_large_headers_cookies_and_uploads(env):
    """Issue 15, finding 6: what a Drupal host needs of the web server (the server conf, compared with Aegir's):
    a PHP answer with over 8 KiB of headers (nginx's default FastCGI buffer is 4 KiB: 502), a Cookie header of
    16 KiB (nginx's and Apache's defaults take 8 KiB a line: 400), a 2 MiB upload (nginx's default body limit
    is 1 MiB: 413)."""
    apply(env, env.vhost, env.uri, status=200, text=MARK)
    big = get(env, env.uri, "/?big_headers=1")
    assert big.status_code == 200, (big.status_code, big.text[:200])
    assert sum(len(k) + len(v) + 4 for k, v in big.headers.multi_items()) > 8192
    cookie = "; ".join(f"c{i}={'v' * 200}" for i in range(80))
    assert len(cookie) > 16000
    with_cookies = get(env, env.uri, "/", Cookie=cookie)
    assert with_cookies.status_code == 200, (with_cookies.status_code, with_cookies.text[:200])
    upload = _CLIENT.post(env.web.url + "/", headers={"Host": env.uri}, content=b"x" * (2 * 1024 * 1024))
    assert upload.status_code == 200, (upload.status_code, upload.text[:200])


def test_redirection_to_an_alias(env):
    www = f"www.{env.uri}"
    vhost = dataclasses.replace(env.vhost, redirection=www)
    apply(env, vhost, env.uri, "/a/b?q=1", status=301)
    for host in (env.uri, f"old.{env.uri}"):
        resp = settled(env, host, "/a/b?q=1", status=301)
        assert resp.headers["location"] == f"http://{www}/a/b?q=1"
    assert front(settled(env, www, "/a/b", status=200, text=MARK))["db"]["password"] == PASSWORD


def test_disabled_variants(env):
    disabled = dataclasses.replace(env.vhost, enabled=False)
    resp = apply(env, disabled, env.uri, "/some/page", status=503)
    assert DISABLED_MESSAGE in resp.text
    for host in env.vhost.aliases:
        assert DISABLED_MESSAGE in settled(env, host, "/index.php", status=503).text
    assert "db_" not in Path(env.service.vhost_path(env.uri)).read_text()

    away = dataclasses.replace(disabled, web_disable_url="http://aegir.invalid/disabled/")
    resp = apply(env, away, env.uri, "/some/page?x=1", status=302)
    assert resp.headers["location"] == f"http://aegir.invalid/disabled/{env.uri}"

    apply(env, env.vhost, env.uri, status=200, text=MARK)  # enabled again


def test_broken_vhost_keeps_the_previous_one(env):
    apply(env, env.vhost, env.uri, status=200, text=MARK)
    path = env.service.vhost_path(env.uri)
    good = Path(path).read_bytes()
    with pytest.raises(HttpConfigError, match="previous version was restored"):
        env.service.write_config(env.transport, path, BROKEN[env.kind])
    assert Path(path).read_bytes() == good
    env.service.reload(env.transport)
    front(settled(env, env.uri, status=200, text=MARK))


def test_remove_vhost_falls_back_to_the_catch_all(env):
    apply(env, env.vhost, env.uri, status=200, text=MARK)
    assert env.service.remove_vhost(env.transport, env.uri) is True
    assert not os.path.exists(env.service.vhost_path(env.uri))
    assert env.service.remove_vhost(env.transport, env.uri) is False
    env.service.reload(env.transport)
    resp = settled(env, env.uri, status=404)
    assert MARK not in resp.text


def test_platform_conf(env):
    path = env.service.platform_conf_path(env.platform)
    if env.kind == "nginx":
        assert env.service.write_platform_conf(env.transport, env.platform, env.vhost.docroot) is False
        assert not os.path.exists(path)
        return
    apply(env, env.vhost, env.uri, status=200, text=MARK)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert env.service.remove_platform_conf(env.transport, env.platform) is True
    env.service.reload(env.transport)
    settled(env, env.uri, "/static.txt", status=403)  # without it apache grants nothing in the docroot
    apply(env, env.vhost, env.uri, "/static.txt", status=200, text="static file")
