"""The http service against real private nginx / apache / php-fpm instances (tests/support/webservers.py)."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from aegir.services.http import SUBDIRS, HttpConfigError, HttpReloadError, http_service_for
from aegir.transport import LocalTransport

pytestmark = pytest.mark.integration

FIXTURE_MARK = "fixture: no Aegir server conf"


@pytest.fixture(params=["nginx", "apache"])
def web(request):
    return request.getfixturevalue(f"{request.param}_server")


def server_for(web, name: str = "@server_master", **overrides) -> SimpleNamespace:
    fields = web.server_fields()
    fields.update(overrides)
    bare = name.lstrip("@")
    return SimpleNamespace(
        name=name,
        slug=bare.replace("_", "-"),
        remote_host="localhost",
        config_path=os.path.join(fields["aegir_root"], "config", bare),
        **fields,
    )


@pytest.fixture
def transport():
    return LocalTransport()


@pytest.fixture
def service(web, transport):
    svc = http_service_for(server_for(web))
    svc.verify_server(transport)
    return svc


def mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def make_docroot(web, name: str, files: dict[str, str]) -> str:
    root = Path(web.aegir_root) / "www" / name
    root.mkdir(parents=True, exist_ok=True)
    for p in (root.parent, root):
        p.chmod(0o755)
    for fname, content in files.items():
        (root / fname).write_text(content)
        (root / fname).chmod(0o644)
    return str(root)


def vhost(web, host: str, docroot: str) -> str:
    """A tiny vhost answering 200 "ok" (nginx) / serving docroot's index.html (apache)."""
    if web.kind == "nginx":
        return (
            f"server {{\n    listen *:{web.port};\n    server_name {host};\n"
            f'    location / {{\n        return 200 "ok";\n    }}\n}}\n'
        )
    return (
        f"<VirtualHost *:{web.port}>\n    ServerName {host}\n    DocumentRoot {docroot}\n"
        f"    <Directory {docroot}>\n        Require all granted\n    </Directory>\n</VirtualHost>\n"
    )


BROKEN = {"nginx": "server {\n    listen *:1;\n    no_such_directive on;\n}\n", "apache": "<VirtualHost *:1>\n"}


def test_verify_server_creates_layout_links_and_reloads(web, transport):
    svc = http_service_for(server_for(web))
    if not transport.exists(svc.service_link_path):  # first verify in this session: the fixture answers
        assert FIXTURE_MARK in web.request("unknown.example").text

    facts = svc.verify_server(transport)

    assert facts["http"] == web.kind
    assert facts["version"].startswith("nginx/" if web.kind == "nginx" else "Apache/2.")
    assert mode(svc.app_path) == 0o711
    for sub in SUBDIRS:
        assert mode(os.path.join(svc.app_path, sub)) == 0o700, sub
    assert Path(svc.server_conf_path).read_text() == svc.render_server_conf(**svc._server_conf_variables(transport))
    assert mode(svc.server_conf_path) == 0o600
    assert os.readlink(svc.service_link_path) == svc.server_conf_path
    assert svc.service_link_path == os.path.join(web.aegir_root, "config", f"{web.kind}.conf")
    assert subprocess.run(shlex.split(web.config_test_cmd), capture_output=True).returncode == 0

    resp = web.wait_for("unknown.example", status=404)
    assert FIXTURE_MARK not in resp.text
    if web.kind == "apache":  # the catch-all answers 404 even for files, except acme challenges
        assert web.request("unknown.example", "/index.html").status_code == 404
        acme = web.request("unknown.example", "/.well-known/acme-challenge/fixture-token")
        assert (acme.status_code, acme.text) == (200, "acme-ok")

    again = svc.verify_server(transport)  # idempotent
    assert again["server_conf_changed"] is False and again["service_link_changed"] is False
    assert mode(svc.app_path) == 0o711
    web.wait_for("unknown.example", status=404)


def test_vhost_served_and_broken_config_rolled_back(web, service, transport):
    host = f"t-{web.kind}.example"
    path = service.vhost_path(host)
    docroot = make_docroot(web, host, {"index.html": "ok"})
    try:
        assert service.write_config(transport, path, vhost(web, host, docroot)) is True
        assert mode(path) == 0o600
        service.reload(transport)
        assert web.wait_for(host, status=200).text.strip() == "ok"
        good = Path(path).read_bytes()

        # A broken replacement: refused, previous content back, server still reloads and serves.
        with pytest.raises(HttpConfigError) as info:
            service.write_config(transport, path, BROKEN[web.kind])
        msg = str(info.value)
        assert path in msg and "previous version was restored" in msg
        assert ("no_such_directive" if web.kind == "nginx" else "VirtualHost") in msg  # the test's stderr
        assert Path(path).read_bytes() == good
        service.reload(transport)
        assert web.wait_for(host, status=200).text.strip() == "ok"

        # A broken new file: removed.
        new = service.vhost_path(f"broken-{web.kind}.example")
        with pytest.raises(HttpConfigError, match="new file was removed"):
            service.write_config(transport, new, BROKEN[web.kind])
        assert not os.path.lexists(new)
        assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".")]  # no temp files left
        service.reload(transport)
        web.wait_for(host, status=200, text="ok")
    finally:
        service.remove_config(transport, path)
        service.reload(transport)
    web.wait_for(host, status=404)


def test_reload_failure_is_an_error(web, transport):
    svc = http_service_for(server_for(web, http_restart_cmd="/bin/false --reload"))
    with pytest.raises(HttpReloadError, match="reloading"):
        svc.reload(transport)


def test_php_served_through_php_fpm(web, service, transport):
    host = f"php-{web.kind}.example"
    docroot = make_docroot(web, host, {"index.php": '<?php echo "php-ok";'})
    sock = web.php_fpm_socket
    if web.kind == "nginx":
        conf = f"""\
server {{
    listen *:{web.port};
    server_name {host};
    root {docroot};
    index index.php;
    location ~ \\.php$ {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass unix:{sock};
    }}
}}
"""
    else:
        conf = f"""\
<VirtualHost *:{web.port}>
    ServerName {host}
    DocumentRoot {docroot}
    <Directory {docroot}>
        Require all granted
    </Directory>
    <FilesMatch "\\.php$">
        SetHandler "proxy:unix:{sock}|fcgi://localhost"
    </FilesMatch>
</VirtualHost>
"""
    path = service.vhost_path(host)
    try:
        service.write_config(transport, path, conf)
        service.reload(transport)
        assert web.wait_for(host, "/index.php", status=200).text == "php-ok"
        assert web.wait_for(host, "/", status=200).text == "php-ok"
    finally:
        service.remove_config(transport, path)
        service.reload(transport)
