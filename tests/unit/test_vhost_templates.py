"""Site vhosts and the apache platform conf: rendering, validation, credential cloaking (no services)."""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from aegir.errors import InputError
from aegir.services.http import ApacheService, NginxService, NullHttpService, http_service_for
from aegir.services.vhost import DISABLED_MESSAGE, DbParams, SiteVhost, urlencode
from aegir.transport import CommandResult

NASTY = "p'\"; {}$\\ a b%2B+&#\n}"


def server(kind="nginx", **kw):
    fields = {
        "name": "@server_master",
        "aegir_root": "/var/aegir",
        "config_path": "/var/aegir/config/server_master",
        "http_service_type": kind,
        "http_port": 80,
        "http_restart_cmd": None,
        "http_config_test_cmd": None,
    }
    fields.update(kw)
    return SimpleNamespace(**fields)


def svc(kind):
    return http_service_for(server(kind))


def db(password=NASTY, **kw):
    fields = {"type": "mysql", "name": "example_db", "user": "example_u", "password": password, "host": "db.local"}
    fields.update(kw)
    return DbParams(port=fields.pop("port", 3306), **fields)


def site(**kw):
    fields = {
        "uri": "example.com",
        "docroot": "/var/aegir/platforms/d10/web",
        "site_dir": "sites/example.com",
        "http_port": 8080,
        "db": db(),
        "php_fpm_socket": "/run/php/php8.2-fpm.sock",
    }
    fields.update(kw)
    return SiteVhost(**fields)


class FakeTransport:
    host = "fake"

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.commands: list[list[str]] = []

    def exists(self, path):
        return path in self.files

    def read_file(self, path):
        return self.files[path]

    def write_file(self, path, data, mode=0o644, group=None):
        self.files[path] = data.encode() if isinstance(data, str) else data
        self.modes[path] = mode

    def remove_file(self, path):
        self.files.pop(path, None)

    def run(self, argv, *, check=True, timeout=None, **kw):
        self.commands.append(list(argv))
        return CommandResult(list(argv), 0, b"", b"")


def nginx_blocks(text: str) -> list[str]:
    """Top-level ``server { … }`` blocks of a rendered nginx vhost."""
    return re.findall(r"^server \{\n.*?^\}$", text, re.M | re.S)


def directive(text: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+(.+?);?$", text, re.M)


# -- DbParams -------------------------------------------------------------------------------------------------
def test_db_params_repr_never_shows_the_password():
    params = db(password="s3cret-Pa55")
    for shown in (repr(params), str(params), f"{params}", repr([params]), repr(site(db=params))):
        assert "s3cret-Pa55" not in shown
    assert "********" in repr(params) and "example_db" in repr(params)


def test_db_params_env_is_urlencoded_in_aegir_order():
    env = db().env()
    assert list(env) == ["db_type", "db_name", "db_user", "db_passwd", "db_host", "db_port"]
    assert unquote(env["db_passwd"]) == NASTY
    assert re.fullmatch(r"[A-Za-z0-9_.~%-]+", env["db_passwd"])
    assert env["db_port"] == "3306"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"type": "my sql"}, "db_type"),
        ({"name": ""}, "db_name"),
        ({"port": 0}, "db_port"),
        ({"port": "3306"}, "db_port"),
        ({"password": None}, "db_passwd"),
    ],
)
def test_db_params_refused(kw, field):
    with pytest.raises(InputError) as info:
        db(**kw)
    assert info.value.field == field


# -- SiteVhost validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"uri": "example.com;"}, "uri"),
        ({"uri": "example.com }"}, "uri"),
        ({"uri": 'ex"ample.com'}, "uri"),
        ({"uri": "Example.com"}, "uri"),
        ({"uri": "example.com\nserver_name evil"}, "uri"),
        ({"aliases": ("www.example.com", "evil.com; include /etc/passwd")}, "aliases"),
        ({"aliases": "www.example.com"}, "aliases"),
        ({"redirection": "x.com{"}, "redirection"),
        ({"docroot": "/var/www/d10; deny all"}, "docroot"),
        ({"docroot": "/var/www/d10 web"}, "docroot"),
        ({"docroot": "/var/www/../etc"}, "docroot"),
        ({"docroot": "relative/web"}, "docroot"),
        ({"docroot": '/var/www/"d10'}, "docroot"),
        ({"site_dir": "sites/example.com; x"}, "site_dir"),
        ({"site_dir": "/sites/example.com"}, "site_dir"),
        ({"site_dir": "sites/.."}, "site_dir"),
        ({"http_port": 0}, "http_port"),
        ({"http_port": "80"}, "http_port"),
        ({"php_fpm_socket": "/run/php/fpm.sock; evil"}, "php_fpm_socket"),
        ({"php_fpm_socket": "localhost"}, "php_fpm_socket"),
        ({"php_fpm_socket": "local host:9000"}, "php_fpm_socket"),
        ({"web_disable_url": "http://x.com/a b"}, "web_disable_url"),
        ({"web_disable_url": "http://x.com/$host"}, "web_disable_url"),
        ({"web_disable_url": "http://x.com/;return 200"}, "web_disable_url"),
        ({"web_disable_url": "javascript:alert(1)"}, "web_disable_url"),
    ],
)
def test_site_vhost_refuses_values_that_could_break_out(kw, field):
    with pytest.raises(InputError) as info:
        site(**kw)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_site_vhost_normalises():
    s = site(
        docroot="/var/www/d10/",
        aliases=["www.example.com", "example.com", "www.example.com"],
        web_disable_url="https://aegir.example/disabled/",
    )
    assert s.docroot == "/var/www/d10"
    assert s.aliases == ("www.example.com",)  # the uri and duplicates dropped, a list becomes a tuple
    assert s.web_disable_url == "https://aegir.example/disabled"
    assert site(php_fpm_socket="127.0.0.1:9000").php_fpm_socket == "127.0.0.1:9000"


def test_redirection_semantics():
    aliases = ("www.example.com", "old.example.com")
    plain = site(aliases=aliases)
    assert plain.served_names() == ("example.com", *aliases) and plain.redirected_names() == ()
    to_alias = site(aliases=aliases, redirection="www.example.com")
    assert to_alias.served_names() == ("www.example.com",)
    assert to_alias.redirected_names() == ("example.com", "old.example.com")
    to_uri = site(aliases=aliases, redirection="example.com")
    assert to_uri.served_names() == ("example.com",) and to_uri.redirected_names() == aliases
    elsewhere = site(aliases=aliases, redirection="other.org")
    assert elsewhere.served_names() == ("example.com",) and elsewhere.redirected_names() == aliases


# -- nginx ----------------------------------------------------------------------------------------------------
def test_nginx_enabled_vhost():
    text = svc("nginx").render_vhost(site(aliases=("www.example.com",)))
    (block,) = nginx_blocks(text)
    assert directive(block, "listen") == ["*:8080"]
    assert directive(block, "server_name") == ["example.com www.example.com"]
    assert directive(block, "root") == ["/var/aegir/platforms/d10/web"]
    assert directive(block, "fastcgi_pass") == ["unix:/run/php/php8.2-fpm.sock"]
    assert "include fastcgi_params" not in block  # every param is written out: no reliance on the prefix
    params = dict(re.findall(r"^\s*fastcgi_param\s+(\S+)\s+(.+?);$", block, re.M))
    assert params["SCRIPT_FILENAME"] == "$document_root$fastcgi_script_name"
    assert params["HTTP_PROXY"] == '""'
    assert params["MAIN_SITE_NAME"] == "example.com"
    assert params["db_type"] == '"mysql"' and params["db_name"] == '"example_db"'
    assert params["db_passwd"] == f'"{urlencode(NASTY)}"'
    assert unquote(params["db_passwd"].strip('"')) == NASTY
    assert params["db_port"] == '"3306"'
    # Only the front controller runs PHP; private denied; /files/ short URL; clean URLs to index.php.
    assert "location = /index.php {" in block
    assert re.search(r"location ~\* \\\.\(php\[0-9\]\?\|phar\|pht\|phtml\)\$ \{\s*return 404;", block)
    assert re.search(r"location ~ \^/sites/\[\^/\]\+/private/ \{\s*return 403;", block)
    assert "rewrite ^/files/(.*)$ /sites/example.com/files/$1 last;" in block
    assert "try_files $uri @drupal;" in block and "rewrite ^ /index.php last;" in block
    # The password appears only urlencoded; no raw quote/brace/dollar from it reaches the file.
    assert NASTY not in text and "a b%2B" not in text
    assert text.count("{") == text.count("}")


def test_nginx_fastcgi_host_port_and_default():
    assert "fastcgi_pass   127.0.0.1:9001;" in svc("nginx").render_vhost(site(php_fpm_socket="127.0.0.1:9001"))
    assert "fastcgi_pass   127.0.0.1:9000;" in svc("nginx").render_vhost(site(php_fpm_socket=None))


def test_placeholders_when_no_database():
    for kind in ("nginx", "apache"):
        text = svc(kind).render_vhost(site(db=None))
        found = dict(re.findall(r'(?:fastcgi_param|SetEnv)\s+(db_\w+)\s+"([^"]*)"', text))
        assert found == {
            "db_type": "mysqli",
            "db_name": "none",
            "db_user": "none",
            "db_passwd": "none",
            "db_host": "localhost",
            "db_port": "3306",
        }, kind


def test_nginx_redirection_block():
    text = svc("nginx").render_vhost(
        site(aliases=("www.example.com", "old.example.com"), redirection="www.example.com")
    )
    redirect, main = nginx_blocks(text)
    assert directive(redirect, "server_name") == ["example.com old.example.com"]
    assert directive(redirect, "return") == ["301 $scheme://www.example.com$request_uri"]
    assert "fastcgi_param" not in redirect
    assert directive(main, "server_name") == ["www.example.com"]
    assert directive(main, "listen") == directive(redirect, "listen") == ["*:8080"]


def test_nginx_no_redirect_block_when_nothing_redirects():
    text = svc("nginx").render_vhost(site(redirection="example.com"))
    (main,) = nginx_blocks(text)
    assert directive(main, "server_name") == ["example.com"]


def test_nginx_disabled_variants():
    s = site(aliases=("www.example.com",), enabled=False)
    text = svc("nginx").render_vhost(s)
    (block,) = nginx_blocks(text)
    assert directive(block, "server_name") == ["example.com www.example.com"]
    assert f'return 503 "{DISABLED_MESSAGE}\\n"' in block and "default_type text/plain;" in block
    assert "fastcgi" not in block and "db_" not in block  # no credentials in a disabled vhost
    assert "location ^~ /.well-known/acme-challenge/" in block

    text = svc("nginx").render_vhost(dataclasses.replace(s, web_disable_url="https://aegir.example/off/"))
    (block,) = nginx_blocks(text)
    assert directive(block, "return") == ["302 https://aegir.example/off/example.com"]
    assert "503" not in block


# -- apache ---------------------------------------------------------------------------------------------------
def test_apache_enabled_vhost():
    text = svc("apache").render_vhost(site(aliases=("www.example.com", "old.example.com")))
    assert text.count("<VirtualHost *:8080>") == 1 and text.count("</VirtualHost>") == 1
    assert directive(text, "ServerName") == ["example.com"]
    assert directive(text, "ServerAlias") == ["www.example.com", "old.example.com"]
    assert directive(text, "DocumentRoot") == ["/var/aegir/platforms/d10/web"]
    env = dict(re.findall(r'^\s*SetEnv (\S+) "([^"]*)"$', text, re.M))
    assert unquote(env["db_passwd"]) == NASTY and env["db_name"] == "example_db" and env["db_type"] == "mysql"
    assert 'SetHandler "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost"' in text
    assert "RewriteRule ^/files/(.*)$ /sites/example.com/files/$1 [PT,L]" in text
    assert '<Directory ~ "/sites/[^/]+/private">\n        Require all denied' in text
    assert '<Directory ~ "/sites/[^/]+/files">' in text and "SetHandler none" in text
    assert r"RewriteCond %{REQUEST_URI} !^/index\.php(/|$)" in text
    assert r"RewriteRule \.(php[0-9]?|phar|pht|phtml)(/|$) - [NC,R=404,L]" in text
    assert "%{HTTP_HOST}" not in text  # no redirection
    assert NASTY not in text


def test_apache_php_handler_variants():
    assert 'SetHandler "proxy:fcgi://127.0.0.1:9000"' in svc("apache").render_vhost(
        site(php_fpm_socket="127.0.0.1:9000")
    )
    assert 'SetHandler "proxy' not in svc("apache").render_vhost(site(php_fpm_socket=None))


def test_apache_redirection():
    text = svc("apache").render_vhost(
        site(aliases=("www.example.com", "old.example.com"), redirection="www.example.com")
    )
    assert r"RewriteCond %{HTTP_HOST} !^(www\.example\.com)(:[0-9]+)?$ [NC]" in text
    assert "RewriteRule ^/*(.*)$ %{REQUEST_SCHEME}://www.example.com/$1 [R=301,L]" in text
    # every name still belongs to the vhost (the rewrite sends the others on)
    assert directive(text, "ServerAlias") == ["www.example.com", "old.example.com"]


def test_apache_disabled_variants():
    s = site(aliases=("www.example.com",), enabled=False)
    text = svc("apache").render_vhost(s)
    assert directive(text, "ServerName") == ["example.com"] and directive(text, "ServerAlias") == ["www.example.com"]
    assert "RewriteRule ^ - [R=503,L]" in text
    assert f'ErrorDocument 503 "{DISABLED_MESSAGE}"' in text
    assert "SetEnv" not in text and "db_" not in text
    assert r"RewriteCond %{REQUEST_URI} !^/\.well-known/acme-challenge/" in text
    text = svc("apache").render_vhost(dataclasses.replace(s, web_disable_url="http://aegir.example"))
    assert "RewriteRule ^ http://aegir.example/example.com? [R=302,L]" in text
    assert "503" not in text


def test_apache_platform_conf():
    apache = svc("apache")
    assert (
        apache.platform_conf_path("@platform_d10")
        == "/var/aegir/config/server_master/apache/platform.d/platform_d10.conf"
    )
    text = apache.render_platform_conf("@platform_d10", "/var/aegir/platforms/d10/web/")
    assert "<Directory /var/aegir/platforms/d10/web>" in text
    for line in (
        "Require all granted",
        "AllowOverride none",
        "Options -Indexes +FollowSymLinks",
        "RewriteEngine on",
        "RewriteCond %{REQUEST_FILENAME} !-f",
        "RewriteCond %{REQUEST_FILENAME} !-d",
        "RewriteRule ^ index.php [L]",
    ):
        assert f"\n    {line}\n" in text, line
    for bad in ("/var/www; x", "/var/www/d10>", "/var/www/a b"):
        with pytest.raises(InputError, match="docroot"):
            apache.render_platform_conf("@platform_d10", bad)
    for bad in ("@../x", "@a/b", "@"):
        with pytest.raises(InputError, match="platform"):
            apache.platform_conf_path(bad)


# -- service methods ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["nginx", "apache"])
def test_write_and_remove_vhost(kind):
    service, t = svc(kind), FakeTransport()
    s = site()
    path = f"/var/aegir/config/server_master/{kind}/vhost.d/example.com"
    assert service.write_vhost(t, s) is True
    assert t.files[path].decode() == service.render_vhost(s)
    assert t.modes[path] == 0o600
    assert t.commands  # the config test ran
    assert service.write_vhost(t, s) is False  # unchanged
    assert service.remove_vhost(t, "example.com") is True and path not in t.files
    assert service.remove_vhost(t, "example.com") is False


def test_platform_conf_only_on_apache():
    t = FakeTransport()
    nginx = NginxService(server("nginx"))
    assert nginx.render_platform_conf("@platform_d10", "/var/www") == ""
    assert nginx.write_platform_conf(t, "@platform_d10", "/var/www") is False
    assert nginx.remove_platform_conf(t, "@platform_d10") is False
    assert t.files == {} and t.commands == []
    apache = ApacheService(server("apache"))
    assert apache.write_platform_conf(t, "@platform_d10", "/var/www") is True
    path = apache.platform_conf_path("platform_d10")
    assert t.modes[path] == 0o600
    assert apache.write_platform_conf(t, "@platform_d10", "/var/www") is False
    assert apache.remove_platform_conf(t, "@platform_d10") is True and t.files == {}


def test_null_service_does_nothing():
    t = FakeTransport()
    null = NullHttpService(server("null"))
    assert null.render_vhost(site()) == ""
    assert null.write_vhost(t, site()) is False
    assert null.remove_vhost(t, "example.com") is False
    assert null.write_platform_conf(t, "@p", "/var/www") is False
    assert null.remove_platform_conf(t, "@p") is False
    assert t.files == {} and t.commands == []
