"""Context models: names and slugs, Aegir naming guidelines, every field check, derived paths (no services)."""

from __future__ import annotations

import pytest

from aegir.contexts import (
    HOSTNAME_RULE,
    MASTER,
    PlatformContext,
    ServerContext,
    SiteContext,
    build,
    normalise_name,
    platform_name_for,
    server_name_for,
    settable_properties,
    slugify,
)
from aegir.errors import InputError
from tests.unit.fakes import raises_input

HOST_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def server(**kw):
    return build(ServerContext, {"name": "@server_master", **kw})


def platform(**kw):
    return build(PlatformContext, {"name": "@platform_d10", "root": "/var/aegir/platforms/d10", **kw})


def site(**kw):
    return build(SiteContext, {"name": "@example.com", "platform": "@platform_d10", **kw})


# ------------------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("example.com", "@example.com"),
        ("@example.com", "@example.com"),
        ("  @server_master ", "@server_master"),
        ("@platform_d7", "@platform_d7"),
        ("@a", "@a"),
        ("@Server-1.x_y", "@server-1.x_y"),
    ],
)
def test_normalise_name(given, expected):
    assert normalise_name(given) == expected


@pytest.mark.parametrize("bad", ["", "@", "@a b", "@-a", "@.a", "@a/b", "@a;b", "@a'b", "@" + "a" * 254, "@ä.com"])
def test_invalid_names_are_refused(bad):
    raises_input(lambda: normalise_name(bad), "name", "not a valid context name", "letters, digits")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("@example.com", "example-com"),
        ("example.com", "example-com"),
        ("@server_master", "server-master"),
        ("@platform_D7", "platform-d7"),
        ("@ex-ample.org", "ex-ample-org"),
        ("@ex.ample-org", "ex-ample-org"),
        ("@a..b__c", "a-b-c"),
    ],
)
def test_slugify(name, slug):
    assert slugify(name) == slug


def test_slugify_refuses_invalid_names():
    raises_input(lambda: slugify("@bad name"), "name")


def test_context_slug_property():
    assert server().slug == "server-master"
    assert site().slug == "example-com"


def test_server_name_guideline():
    assert server_name_for("localhost") == "@server_localhost"
    assert server_name_for("web1.example.com") == "@server_web1examplecom"
    assert server_name_for("db-1.example.com") == "@server_db1examplecom"
    assert normalise_name(server_name_for("web1.example.com")) == "@server_web1examplecom"


def test_platform_name_guideline():
    assert platform_name_for("d7") == "@platform_d7"
    assert platform_name_for("Drupal 10.2") == "@platform_Drupal102"
    assert platform_name_for("open_atrium") == "@platform_open_atrium"


def test_master_constant():
    assert MASTER == "@server_master"
    assert platform().web_server == MASTER
    assert site().db_server == MASTER


def test_model_name_is_normalised():
    assert build(ServerContext, {"name": "server_x"}).name == "@server_x"
    raises_input(lambda: build(ServerContext, {"name": "bad name"}), "name")


# ------------------------------------------------------------------------------------------------------
# hostnames
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "a.com;rm -rf /",
        "a.com rm",
        "a b",
        "a.com/x",
        "/",
        "'a.com'",
        '"a.com"',
        "a..com",
        "..",
        "-a.com",
        "a-.com",
        "a_b.com",
        "",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4),  # 255 characters
        "ä.com",
    ],
)
def test_remote_host_rejects_bad_hostnames(bad):
    raises_input(lambda: server(remote_host=bad), "remote_host", "hostname", "at most 253 characters")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("localhost", "localhost"),
        ("example.com", "example.com"),
        ("web-1.Example.COM", "web-1.example.com"),
        ("WWW.EXAMPLE.COM.", "www.example.com"),
        ("127.0.0.1", "127.0.0.1"),
        ("10.0.0.254", "10.0.0.254"),
        (" db.example.org ", "db.example.org"),
        (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]), ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])),
    ],
)
def test_remote_host_accepts_and_lowercases(given, expected):
    assert server(remote_host=given).remote_host == expected


def test_hostname_rule_text():
    e = raises_input(lambda: server(remote_host="x;y"), "remote_host")
    assert HOSTNAME_RULE in e.message and "'x;y'" in e.message


def test_db_host():
    assert server().db_host is None
    assert server(db_host="DB.example.com").db_host == "db.example.com"
    raises_input(lambda: server(db_host="db host"), "db_host", "hostname")


# ------------------------------------------------------------------------------------------------------
# paths
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("relative/path", "a relative path"),
        ("var/aegir", "a relative path"),
        ("", "a relative path"),
        ("/var/aegir/../etc", "no '..'"),
        ("/..", "no '..'"),
        ("/var/my aegir", "spaces or quotes"),
        ("/var/'aegir'", "spaces or quotes"),
        ('/var/"aegir"', "spaces or quotes"),
        ("/var/aegir;rm", "absolute path"),
        ("/var/$HOME", "absolute path"),
    ],
)
def test_paths_rejected(bad, fragment):
    raises_input(lambda: server(aegir_root=bad), "aegir_root", "absolute path", fragment)
    raises_input(lambda: platform(root=bad), "root", "absolute path", fragment)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/var/aegir", "/var/aegir"),
        ("/var/aegir/", "/var/aegir"),
        ("//var//aegir//", "/var/aegir"),
        ("/var/./aegir", "/var/aegir"),
        ("/", "/"),
        ("/srv/a-b_c.d/@x+y", "/srv/a-b_c.d/@x+y"),
        ("/var/aegir/...", "/var/aegir/..."),
    ],
)
def test_paths_normalised(given, expected):
    assert server(aegir_root=given).aegir_root == expected
    assert platform(root=given).root == expected


def test_aegir_root_default_follows_environment(monkeypatch):
    monkeypatch.delenv("AEGIR_ROOT", raising=False)
    assert server().aegir_root == "/var/aegir"
    monkeypatch.setenv("AEGIR_ROOT", "/srv/aegir")
    assert server().aegir_root == "/srv/aegir"


def test_drush_path():
    assert server().drush_path == "drush"
    assert server(drush_path="/usr/local//bin/drush").drush_path == "/usr/local/bin/drush"
    raises_input(lambda: server(drush_path="bin/drush"), "drush_path", "absolute path")
    raises_input(lambda: server(drush_path="drush8"), "drush_path", "absolute path")


def test_platform_optional_paths():
    p = platform(makefile="/srv/make//d10.make", drush="/var/aegir/platforms/d10/vendor/bin/drush/")
    assert p.makefile == "/srv/make/d10.make"
    assert p.drush == "/var/aegir/platforms/d10/vendor/bin/drush"
    raises_input(lambda: platform(makefile="d10.make"), "makefile", "absolute path")
    raises_input(lambda: platform(drush="/x/../drush"), "drush", "no '..'")


def test_platform_root_is_required():
    raises_input(lambda: build(PlatformContext, {"name": "@platform_x"}), "root", "is required")


# ------------------------------------------------------------------------------------------------------
# ports, service types, transport
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["http_port", "db_port", "ssh_port"])
@pytest.mark.parametrize("bad", [0, 65536, -1, "0", "65536"])
def test_ports_out_of_range(field, bad):
    raises_input(lambda: server(**{field: bad}), field, "port number from 1 to 65535")


@pytest.mark.parametrize("field", ["http_port", "db_port", "ssh_port"])
def test_ports_in_range(field):
    assert getattr(server(**{field: 1}), field) == 1
    assert getattr(server(**{field: "65535"}), field) == 65535


def test_port_not_a_number():
    raises_input(lambda: server(http_port="eighty"), "http_port", "integer")


def test_port_defaults():
    s = server()
    assert (s.http_port, s.db_port, s.ssh_port) == (80, 3306, 22)


def test_http_service_type_known_set():
    e = raises_input(lambda: server(http_service_type="lighttpd"), "http_service_type", "must be one of")
    for allowed in ("nginx", "apache", "null"):
        assert allowed in e.message
    assert server(http_service_type="apache").http_service_type == "apache"
    assert server().http_service_type == "null"


def test_db_service_type_known_set():
    e = raises_input(lambda: server(db_service_type="postgres"), "db_service_type", "must be one of")
    assert "mysql" in e.message and "null" in e.message


def test_transport_known_set():
    e = raises_input(lambda: server(transport="telnet"), "transport", "must be one of")
    assert all(t in e.message for t in ("auto", "local", "ssh"))


# ------------------------------------------------------------------------------------------------------
# db service credentials
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["db_password", "db_user"])
def test_db_credentials_need_a_db_service(field):
    raises_input(lambda: server(**{field: "x"}), field, "no db service", "--db_service_type=mysql")


def test_mysql_needs_db_user():
    raises_input(lambda: server(db_service_type="mysql"), "db_user", "admin user", "--db_user=")


def test_mysql_server_with_credentials():
    s = server(db_service_type="mysql", db_user="root", db_password="s3cret")
    assert s.db_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)


@pytest.mark.parametrize("bad", ["root;", "ro ot", "x" * 81, ""])
def test_db_user_name(bad):
    raises_input(lambda: server(db_service_type="mysql", db_user=bad), "db_user", "user name")


def test_ssh_user():
    assert server(ssh_user="deploy.user-1").ssh_user == "deploy.user-1"
    raises_input(lambda: server(ssh_user="a b"), "ssh_user", "user name")


# ------------------------------------------------------------------------------------------------------
# commands, groups, sockets, keys, e-mail, url
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["http_restart_cmd", "http_config_test_cmd"])
@pytest.mark.parametrize(
    "bad",
    [
        "systemctl reload nginx | cat",
        "nginx -t ; rm -rf /",
        "nginx -t && reboot",
        "nginx -t || true",
        "nginx -t > /tmp/x",
        "nginx -t < /dev/null",
        "nginx -t &",
    ],
)
def test_commands_with_shell_operators_rejected(field, bad):
    raises_input(lambda: server(**{field: bad}), field, "one command with its arguments")


@pytest.mark.parametrize("bad", ["systemctl reload nginx; rm -rf /", "nginx -t|cat", "nginx -t&&reboot"])
def test_commands_with_glued_shell_operators_rejected(bad):
    raises_input(lambda: server(http_restart_cmd=bad), "http_restart_cmd", "one command with its arguments")


def test_command_unbalanced_quote_and_empty():
    raises_input(lambda: server(http_restart_cmd="sudo 'nginx"), "http_restart_cmd", "command line")
    raises_input(lambda: server(http_config_test_cmd="   "), "http_config_test_cmd", "must not be empty")


def test_commands_accepted():
    s = server(http_restart_cmd=" sudo systemctl reload nginx ", http_config_test_cmd="sudo nginx -t -c '/etc/n x'")
    assert s.http_restart_cmd == "sudo systemctl reload nginx"
    assert s.http_config_test_cmd == "sudo nginx -t -c '/etc/n x'"


def test_web_group():
    assert server(web_group="www-data").web_group == "www-data"
    raises_input(lambda: server(web_group="WWW"), "web_group", "Unix group name")
    raises_input(lambda: server(web_group="www data"), "web_group", "Unix group name")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/run/php/php8.2-fpm.sock", "/run/php/php8.2-fpm.sock"),
        ("/run//php/fpm.sock", "/run/php/fpm.sock"),
        ("127.0.0.1:9000", "127.0.0.1:9000"),
        ("php-fpm.internal:9000", "php-fpm.internal:9000"),
        (None, None),
    ],
)
def test_php_fpm_socket_accepted(given, expected):
    assert server(php_fpm_socket=given).php_fpm_socket == expected


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("9000", "socket path"),
        ("localhost:", "socket path"),
        ("localhost:0", "socket path"),
        ("localhost:65536", "socket path"),
        ("localhost:http", "socket path"),
        ("bad host:9000", "hostname"),
        (":9000", "hostname"),
        ("/run/php/../fpm.sock", "absolute path"),
        ("run/php.sock", "socket path"),
    ],
)
def test_php_fpm_socket_rejected(bad, fragment):
    raises_input(lambda: server(php_fpm_socket=bad), "php_fpm_socket", fragment)


def test_ssh_host_key():
    assert server(ssh_host_key=f"ssh-ed25519 {HOST_KEY}").ssh_host_key == f"ssh-ed25519 {HOST_KEY}"
    # a line as printed by ssh-keyscan/known_hosts comment: extra fields are dropped
    assert server(ssh_host_key=f"  ssh-rsa   {HOST_KEY}==  root@host ").ssh_host_key == f"ssh-rsa {HOST_KEY}=="
    assert server(ssh_host_key=f"ecdsa-sha2-nistp256 {HOST_KEY}").ssh_host_key.startswith("ecdsa-sha2-nistp256 ")


@pytest.mark.parametrize(
    "bad", ["", HOST_KEY, f"ssh-dss {HOST_KEY}", "ssh-ed25519 not*base64", f"localhost ssh-ed25519 {HOST_KEY}"]
)
def test_ssh_host_key_rejected(bad):
    e = raises_input(lambda: server(ssh_host_key=bad), "ssh_host_key", "TYPE BASE64", "ssh-keyscan")
    assert "ssh-ed25519" in e.message and "ssh-rsa" in e.message


def test_admin_email():
    assert server(admin_email="admin@example.com").admin_email == "admin@example.com"
    for bad in ("admin", "admin@", "a b@example.com", "admin@exa mple.com"):
        raises_input(lambda bad=bad: server(admin_email=bad), "admin_email", "e-mail address")


def test_web_disable_url():
    assert server(web_disable_url="https://example.com/disabled").web_disable_url == "https://example.com/disabled"
    assert server(web_disable_url="http://example.com:8080").web_disable_url == "http://example.com:8080"
    for bad in ("ftp://example.com", "example.com", "https://example.com/a b", "https://x.com/?q=<script>"):
        raises_input(lambda bad=bad: server(web_disable_url=bad), "web_disable_url", "http(s) URL")


def test_secret_given_as_empty_string_is_kept_as_secret():
    s = server(db_service_type="mysql", db_user="root", db_password="")
    assert s.db_password is not None and s.db_password.get_secret_value() == ""


# ------------------------------------------------------------------------------------------------------
# derived
# ------------------------------------------------------------------------------------------------------
def test_derived_paths():
    s = server(aegir_root="/srv/aegir/")
    assert s.config_path == "/srv/aegir/config/server_master"
    assert s.include_path == "/srv/aegir/config/includes"
    assert s.backup_path == "/srv/aegir/backups"
    assert s.clients_path == "/srv/aegir/clients"
    other = build(ServerContext, {"name": "@server_web1examplecom", "aegir_root": "/var/aegir"})
    assert other.config_path == "/var/aegir/config/server_web1examplecom"


@pytest.mark.parametrize(
    ("kw", "local"),
    [
        ({}, True),
        ({"remote_host": "localhost"}, True),
        ({"remote_host": "127.0.0.1"}, True),
        ({"remote_host": "web1.example.com"}, False),
        ({"remote_host": "127.0.0.2"}, False),
        ({"remote_host": "localhost", "transport": "ssh"}, False),
        ({"remote_host": "127.0.0.1", "transport": "ssh"}, False),
        ({"remote_host": "web1.example.com", "transport": "local"}, True),
        ({"remote_host": "web1.example.com", "transport": "auto"}, False),
    ],
)
def test_is_local(kw, local):
    assert server(**kw).is_local is local


@pytest.mark.parametrize(
    ("kw", "address"),
    [
        ({}, "127.0.0.1"),
        ({"remote_host": "localhost"}, "127.0.0.1"),
        ({"remote_host": "db.example.com"}, "db.example.com"),
        ({"remote_host": "127.0.0.1"}, "127.0.0.1"),
        ({"remote_host": "web.example.com", "db_host": "db.internal"}, "db.internal"),
        ({"db_host": "localhost"}, "localhost"),
    ],
)
def test_db_address(kw, address):
    assert server(**kw).db_address == address


# ------------------------------------------------------------------------------------------------------
# platform
# ------------------------------------------------------------------------------------------------------
def test_platform_defaults():
    p = platform()
    assert (p.web_server, p.status, p.git_url, p.packages, p.profiles) == ("@server_master", "enabled", None, [], [])


def test_platform_web_server_reference_is_a_name():
    assert platform(web_server="server_web1").web_server == "@server_web1"
    raises_input(lambda: platform(web_server="server web1"), "name", "not a valid context name")


def test_platform_status():
    assert platform(status="locked").status == "locked"
    e = raises_input(lambda: platform(status="disabled"), "status", "must be one of")
    assert "enabled" in e.message and "locked" in e.message


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/drupal/recommended-project.git",
        "http://git.example.com/d10",
        "ssh://git@git.example.com:2222/d10.git",
        "git@github.com:org/d10.git",
        "file:///srv/git/d10.git",
        "/srv/git/d10.git",
    ],
)
def test_git_url_accepted(url):
    assert platform(git_url=url).git_url == url


@pytest.mark.parametrize(
    "bad", ["ftp://example.com/d10.git", "https://x.com/a b", "https://x.com/a;rm -rf /", "--upload-pack=x", "d10.git"]
)
def test_git_url_rejected(bad):
    raises_input(lambda: platform(git_url=bad), "git_url", "git URL", "https://")


@pytest.mark.parametrize("ref", ["main", "10.2.x", "release/1.0", "v1.2.3", "7.x-1.0"])
def test_git_ref_accepted(ref):
    assert platform(git_ref=ref).git_ref == ref


@pytest.mark.parametrize("bad", ["-x", "--upload-pack=evil", "a b", "a;b", "a..b~1^"])
def test_git_ref_rejected(bad):
    raises_input(lambda: platform(git_ref=bad), "git_ref", "branch or tag name")


# ------------------------------------------------------------------------------------------------------
# site
# ------------------------------------------------------------------------------------------------------
def test_site_uri_defaults_from_name():
    s = site()
    assert (s.name, s.uri) == ("@example.com", "example.com")
    assert build(SiteContext, {"name": "www.example.org", "platform": "@p"}).uri == "www.example.org"


def test_site_name_is_lowercased():
    s = build(SiteContext, {"name": "@Example.COM", "platform": "@p"})
    assert (s.name, s.uri, s.slug) == ("@example.com", "example.com", "example-com")


def test_site_uri_must_match_name():
    raises_input(lambda: site(uri="other.com"), "uri", "named after its uri", "@other.com", "aegir rename")
    assert site(uri="EXAMPLE.com").uri == "example.com"


@pytest.mark.parametrize("bad", ["a.com;rm -rf /", "a.com/x", "a b.com", "a..com", "'a.com'"])
def test_site_uri_must_be_a_hostname(bad):
    raises_input(lambda: site(uri=bad), "uri", "hostname")


def test_site_name_that_is_not_a_hostname():
    raises_input(lambda: build(SiteContext, {"name": "@example_site", "platform": "@p"}), "uri", "hostname")
    raises_input(lambda: build(SiteContext, {"name": "@a.com;rm", "platform": "@p"}), "name")


def test_site_platform_is_required():
    raises_input(lambda: build(SiteContext, {"name": "@example.com"}), "platform", "is required")


def test_site_aliases_deduplicated_and_lowercased():
    s = site(aliases=["www.example.com", "WWW.Example.com", "b.example.com", "www.example.com."])
    assert s.aliases == ["www.example.com", "b.example.com"]
    raises_input(lambda: site(aliases=["ok.com", "b c"]), "aliases", "hostname")


def test_site_redirection():
    assert site(redirection="WWW.example.com").redirection == "www.example.com"
    raises_input(lambda: site(redirection="https://www.example.com/"), "redirection", "hostname")


@pytest.mark.parametrize("lang", ["en", "de", "pt-br", "zh-hans", "ast"])
def test_site_language_accepted(lang):
    assert site(language=lang).language == lang


@pytest.mark.parametrize("bad", ["EN", "e", "english", "pt_br", "en-", ""])
def test_site_language_rejected(bad):
    raises_input(lambda: site(language=bad), "language", "language code", "pt-br")


def test_site_profile():
    assert site().profile == "standard"
    assert site(profile="my_profile2").profile == "my_profile2"
    for bad in ("Standard", "2col", "my-profile", "a b", ""):
        raises_input(lambda bad=bad: site(profile=bad), "profile", "profile machine name")


def test_site_client_email():
    assert site(client_email="owner@example.com").client_email == "owner@example.com"
    raises_input(lambda: site(client_email="owner"), "client_email", "e-mail address")


def test_site_status_and_db_identifiers():
    assert site().status == "new"
    e = raises_input(lambda: site(status="gone"), "status", "must be one of")
    assert "deleted" in e.message
    assert site(db_name="examplecom_1", db_user="examplecom").db_name == "examplecom_1"
    raises_input(lambda: site(db_name="a-b"), "db_name", "database identifier")
    raises_input(lambda: site(db_user="x" * 65), "db_user", "database identifier")


def test_site_references_are_names():
    s = site(platform="platform_d10", db_server="server_db")
    assert (s.platform, s.db_server) == ("@platform_d10", "@server_db")
    raises_input(lambda: site(platform="bad name"), "name", "not a valid context name")


def test_settable_properties_exclude_managed():
    assert "db_password" not in settable_properties(SiteContext)
    assert "status" not in settable_properties(SiteContext)
    assert "verified" not in settable_properties(ServerContext)
    assert "db_password" in settable_properties(ServerContext)
    assert "name" not in settable_properties(PlatformContext)


def test_build_turns_validation_errors_into_input_errors():
    with pytest.raises(InputError) as e:
        build(ServerContext, {"name": "@s", "http_port": 0})
    assert str(e.value).startswith("http_port: ")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("given", "stored"), [("7 days", "7d"), ("6h", "6h"), ("OFF", "off"), ("", None)])
def test_a_sites_backup_interval_is_stored_short(given, stored):
    assert site(backup_interval=given).backup_interval == stored


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [("backup_interval", "7x", "is not a duration"), ("backup_interval", "90m", "minutes"),
     ("backup_max_count", 0, "greater than or equal to 1"), ("backup_max_bytes", -5, "greater than or equal to 1")],
)  # fmt: skip
def test_bad_backup_settings_of_a_site_are_refused_naming_the_field(field, value, says):
    raises_input(lambda: site(**{field: value}), field, says)
