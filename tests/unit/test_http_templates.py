"""Server conf templates, command lines and the write-test-restore logic of the http service (no services)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import jinja2
import pytest

from aegir.services.http import (
    ApacheService,
    HttpConfigError,
    NginxService,
    NullHttpService,
    http_service_for,
)
from aegir.templating import render
from aegir.transport import CommandResult, TransportError

ORDER = ["pre.d", "vhost.d", "platform.d", "post.d"]


def server(**kw):
    fields = {
        "name": "@server_master",
        "slug": "server-master",
        "remote_host": "localhost",
        "aegir_root": "/var/aegir",
        "config_path": "/var/aegir/config/server_master",
        "http_service_type": "nginx",
        "http_port": 80,
        "http_restart_cmd": None,
        "http_config_test_cmd": None,
        "web_group": "www-data",
        "php_fpm_socket": None,
    }
    fields.update(kw)
    return SimpleNamespace(**fields)


class FakeTransport:
    """Files in a dict; the config test fails while any file contains 'BROKEN'."""

    host = "fake"

    def __init__(self, files=None, existing=()):
        self.files: dict[str, bytes] = dict(files or {})
        self.existing = set(existing)
        self.commands: list[list[str]] = []

    def exists(self, path):
        return path in self.files or path in self.existing

    def read_file(self, path):
        return self.files[path]

    def write_file(self, path, data, mode=0o644, group=None):
        self.files[path] = data.encode() if isinstance(data, str) else data

    def remove_file(self, path):
        self.files.pop(path, None)

    def run(self, argv, *, check=True, timeout=None, **kw):
        self.commands.append(list(argv))
        broken = [p for p, d in self.files.items() if b"BROKEN" in d]
        if broken:
            err = f'nginx: [emerg] unknown directive "BROKEN" in {broken[0]}:1\n'.encode()
            return CommandResult(list(argv), 1, b"", err)
        return CommandResult(list(argv), 0, b"", b"syntax is ok\n")


def include_order(text: str, keyword: str) -> list[str]:
    return re.findall(rf"^{keyword} \S+/nginx/([a-z.]+)/\*;?$|^{keyword} \S+/apache/([a-z.]+)/\*$", text, re.M)


# -- templates -------------------------------------------------------------------------------------------------
def test_nginx_server_conf_includes_in_order_with_catch_all_on_port():
    text = NginxService(server(http_port=8081)).render_server_conf()
    dirs = [a or b for a, b in include_order(text, "include")]
    assert dirs == ORDER
    app = "/var/aegir/config/server_master/nginx"
    for d in ORDER:
        assert f"include {app}/{d}/*;" in text
    # the catch-all owns the port's default (issue 16, finding 2: Debian's default site answered 200)
    assert re.search(r"listen\s+\*:8081 default_server;", text)
    assert re.search(r"server_name\s+_;", text)
    assert "return 404;" in text
    assert text.index("server_name") < text.index("include")  # the catch-all comes first
    assert "{{" not in text and "{%" not in text


def test_apache_server_conf_includes_in_order_with_catch_all_on_port():
    svc = ApacheService(server(http_service_type="apache", http_port=8082))
    text = svc.render_server_conf()
    dirs = [a or b for a, b in include_order(text, "IncludeOptional")]
    assert dirs == ORDER
    assert "<VirtualHost *:8082>" in text
    assert "ServerName default" in text
    assert "R=404" in text
    assert r"!^/\.well-known/acme-challenge/" in text
    assert not re.search(r"^\s*Listen\b", text, re.M)  # the OS apache owns Listen
    assert "LoadModule" not in text and "a2enmod rewrite" in text
    assert text.index("<VirtualHost") < text.index("IncludeOptional")


def test_apache_server_conf_listen_and_guarded_modules():
    svc = ApacheService(server(http_service_type="apache", http_port=8082))
    text = svc.render_server_conf(listen=True, modules_dir="/usr/lib/apache2/modules")
    assert re.search(r"^Listen 8082$", text, re.M)
    assert "<IfModule !rewrite_module>\n    LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so" in text
    assert "<IfModule !env_module>\n    LoadModule env_module /usr/lib/apache2/modules/mod_env.so" in text


def test_apache_modules_dir_detected_on_target():
    svc = ApacheService(server(http_service_type="apache"))
    found = FakeTransport(existing={"/usr/lib64/httpd/modules/mod_rewrite.so", "/usr/lib64/httpd/modules/mod_env.so"})
    assert svc._server_conf_variables(found) == {"modules_dir": "/usr/lib64/httpd/modules"}
    assert svc._server_conf_variables(FakeTransport()) == {"modules_dir": None}


def test_templates_are_strict():
    with pytest.raises(jinja2.UndefinedError):
        render("nginx/server.conf.j2", http_port=80)


# -- service selection, paths, commands -------------------------------------------------------------------------
def test_service_for_type_and_paths():
    assert isinstance(http_service_for(server()), NginxService)
    assert isinstance(http_service_for(server(http_service_type="apache")), ApacheService)
    assert isinstance(http_service_for(server(http_service_type="null")), NullHttpService)
    with pytest.raises(ValueError, match="http_service_type"):
        http_service_for(server(http_service_type="lighttpd"))
    n = http_service_for(server())
    assert n.app == "nginx"
    assert n.app_path == "/var/aegir/config/server_master/nginx"
    assert n.server_conf_path == "/var/aegir/config/server_master/nginx.conf"
    assert n.service_link_path == "/var/aegir/config/nginx.conf"
    assert n.vhost_path("example.com") == "/var/aegir/config/server_master/nginx/vhost.d/example.com"
    a = http_service_for(server(http_service_type="apache"))
    assert a.app_path == "/var/aegir/config/server_master/apache"
    assert a.service_link_path == "/var/aegir/config/apache.conf"
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            n.vhost_path(bad)


def test_default_commands():
    n = NginxService(server())
    assert n.config_test_argv() == ["nginx", "-t"]
    assert n.restart_argv(FakeTransport(existing={"/etc/init.d/nginx"})) == ["/etc/init.d/nginx", "reload"]
    assert n.restart_argv(FakeTransport()) == ["nginx", "-s", "reload"]
    assert n.restart_argv() == ["nginx", "-s", "reload"]
    assert n.version_argv() == ["nginx", "-v"]
    a = ApacheService(server(http_service_type="apache"))
    assert a.config_test_argv() == ["apache2ctl", "configtest"]
    assert a.restart_argv(FakeTransport(existing={"/etc/init.d/nginx"})) == ["apache2ctl", "graceful"]
    assert a.version_argv() == ["apache2", "-v"]


def test_custom_commands_are_split_like_a_shell():
    n = NginxService(
        server(
            http_restart_cmd="sudo /usr/sbin/nginx -c '/etc/my nginx/nginx.conf' -s reload",
            http_config_test_cmd='/usr/sbin/nginx -c "/etc/my nginx/nginx.conf" -t',
        )
    )
    assert n.restart_argv(FakeTransport(existing={"/etc/init.d/nginx"})) == [
        "sudo",
        "/usr/sbin/nginx",
        "-c",
        "/etc/my nginx/nginx.conf",
        "-s",
        "reload",
    ]
    assert n.config_test_argv() == ["/usr/sbin/nginx", "-c", "/etc/my nginx/nginx.conf", "-t"]
    assert n.version_argv() == ["/usr/sbin/nginx", "-v"]
    a = ApacheService(server(http_service_type="apache", http_restart_cmd="sudo /usr/sbin/apache2ctl graceful"))
    assert a.restart_argv() == ["sudo", "/usr/sbin/apache2ctl", "graceful"]
    assert a.version_argv() == ["/usr/sbin/apache2ctl", "-v"]
    blank = NginxService(server(http_restart_cmd="  ", http_config_test_cmd=""))
    assert blank.config_test_argv() == ["nginx", "-t"]
    assert blank.restart_argv() == ["nginx", "-s", "reload"]


def test_version_parsing():
    assert NginxService(server())._parse_version("nginx version: nginx/1.22.1\n") == "nginx/1.22.1"
    text = "Server version: Apache/2.4.62 (Debian)\nServer built: 2024\n"
    assert ApacheService(server())._parse_version(text) == "Apache/2.4.62 (Debian)"


# -- write_config / remove_config ---------------------------------------------------------------------------------
VHOST = "/var/aegir/config/server_master/nginx/vhost.d/a.example"


def test_write_config_writes_then_tests():
    t = FakeTransport()
    svc = NginxService(server())
    assert svc.write_config(t, VHOST, "server {}\n") is True
    assert t.files[VHOST] == b"server {}\n"
    assert t.commands == [["nginx", "-t"]]
    assert svc.write_config(t, VHOST, "server {}\n") is False  # unchanged: nothing to test
    assert len(t.commands) == 1


def test_write_config_failure_restores_previous_content():
    t = FakeTransport({VHOST: b"old\n"})
    svc = NginxService(server())
    with pytest.raises(HttpConfigError) as info:
        svc.write_config(t, VHOST, "BROKEN\n")
    assert t.files[VHOST] == b"old\n"
    err = info.value
    assert isinstance(err, TransportError)
    assert VHOST in str(err) and "previous version was restored" in str(err)
    assert 'unknown directive "BROKEN"' in str(err)
    assert err.command == ["nginx", "-t"] and err.exit_code == 1


def test_write_config_failure_removes_new_file():
    t = FakeTransport()
    with pytest.raises(HttpConfigError, match="new file was removed"):
        NginxService(server()).write_config(t, VHOST, "BROKEN\n")
    assert VHOST not in t.files


def test_write_config_failure_names_another_broken_file():
    other = "/var/aegir/config/server_master/nginx/vhost.d/b.example"
    t = FakeTransport({other: b"BROKEN"})
    with pytest.raises(HttpConfigError, match="another file is broken"):
        NginxService(server()).write_config(t, VHOST, "fine\n")
    assert VHOST not in t.files


def test_remove_config_puts_file_back_on_failure():
    svc = NginxService(server())
    t = FakeTransport({VHOST: b"ok\n"})
    assert svc.remove_config(t, VHOST) is True and VHOST not in t.files
    assert svc.remove_config(t, VHOST) is False

    class NeedsFile(FakeTransport):  # the rest of the config includes this file by name
        def run(self, argv, **kw):
            ok = VHOST in self.files
            return CommandResult(list(argv), 0 if ok else 1, b"", b"" if ok else b"open() failed\n")

    t = NeedsFile({VHOST: b"needed\n"})
    with pytest.raises(HttpConfigError, match="file was put back"):
        svc.remove_config(t, VHOST)
    assert t.files[VHOST] == b"needed\n"


def test_null_service_does_nothing():
    t = FakeTransport()
    svc = http_service_for(server(http_service_type="null"))
    assert svc.verify_server(t) == {"http": "null service: skipped"}
    assert svc.write_config(t, VHOST, "BROKEN") is False
    assert svc.remove_config(t, VHOST) is False
    svc.reload(t)
    assert t.files == {} and t.commands == []
    assert svc.restart_argv() == [] and svc.config_test_argv() == []
