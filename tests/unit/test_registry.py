"""The rules behind ``aegir save/show/list/--delete``: partial updates, resets, references, deletes, masking."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from aegir import registry
from aegir.contexts import PlatformContext, ServerContext, SiteContext, build
from aegir.errors import InputError, NotFoundError
from tests.unit.fakes import MemoryStore, raises_input

DB_PASSWORD = "Sup3r-s3cret-DB-pw"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAkey\n-----END OPENSSH PRIVATE KEY-----\n"
SITE_DB_PASSWORD = "s1te-db-pw-XYZ"


def master(**kw):
    return build(
        ServerContext,
        {
            "name": "@server_master",
            "aegir_root": "/var/aegir",
            "http_service_type": "nginx",
            "db_service_type": "mysql",
            "db_user": "root",
            "db_password": DB_PASSWORD,
            **kw,
        },
    )


@pytest.fixture
def store() -> MemoryStore:
    """@server_master (nginx + mysql), @server_bare (no services), @platform_d10 on master, @example.com."""
    return MemoryStore(
        master(),
        build(ServerContext, {"name": "@server_bare", "remote_host": "bare.example.com"}),
        build(PlatformContext, {"name": "@platform_d10", "root": "/var/aegir/platforms/d10"}),
        build(SiteContext, {"name": "@example.com", "platform": "@platform_d10"}),
    )


def refused(store: MemoryStore, fn, field: str, *fragments: str) -> InputError:
    """``fn`` raises an InputError naming ``field`` and the store is untouched."""
    before = store.snapshot()
    e = raises_input(fn, field, *fragments)
    assert store.writes == [], f"a refused operation wrote {store.writes}"
    assert store.snapshot() == before
    return e


# ------------------------------------------------------------------------------------------------------
# create / update
# ------------------------------------------------------------------------------------------------------
def test_create_server():
    store = MemoryStore()
    ctx = registry.save(store, "server_web1", "server", {"remote_host": "Web1.Example.com", "http_port": "8080"})
    assert ctx.name == "@server_web1"
    assert store.writes == [("put", "@server_web1")]
    stored = store.find("@server_web1")
    assert isinstance(stored, ServerContext)
    assert (stored.remote_host, stored.http_port, stored.http_service_type) == ("web1.example.com", 8080, "null")


def test_create_site_with_references(store):
    ctx = registry.save(store, "@www.example.org", "site", {"platform": "@platform_d10", "aliases": "example.org"})
    assert isinstance(ctx, SiteContext)
    assert (ctx.uri, ctx.platform, ctx.db_server, ctx.aliases) == (
        "www.example.org",
        "@platform_d10",
        "@server_master",
        ["example.org"],
    )
    assert store.writes == [("put", "@www.example.org")]


def test_update_changes_only_the_given_properties(store):
    stamp = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    store.add(master(verified=stamp, http_version="nginx/1.22.1", php_fpm_socket="/run/php/fpm.sock"))
    before = store.find("@server_master").model_dump()

    ctx = registry.save(store, "@server_master", None, {"http_port": "8080"})

    after = store.find("@server_master")
    assert after.http_port == 8080 and ctx.http_port == 8080
    dump = after.model_dump()
    assert {k: v for k, v in dump.items() if k != "http_port"} == {k: v for k, v in before.items() if k != "http_port"}
    assert after.db_password.get_secret_value() == DB_PASSWORD  # secrets survive an update
    assert after.verified == stamp and after.http_version == "nginx/1.22.1"  # managed fields survive too
    assert store.writes == [("put", "@server_master")]


def test_update_with_same_context_type_given(store):
    registry.save(store, "@platform_d10", "platform", {"status": "locked"})
    assert store.find("@platform_d10").status == "locked"


def test_update_with_no_properties_rewrites_unchanged(store):
    before = store.snapshot()
    registry.save(store, "@example.com", None, {})
    assert store.snapshot() == before


@pytest.mark.parametrize(
    ("field", "value", "default"),
    [
        ("http_port", "8080", 80),
        ("remote_host", "web.example.com", "localhost"),
        ("aegir_root", "/srv/aegir", "/var/aegir"),
        ("admin_email", "admin@example.com", None),
        ("http_restart_cmd", "sudo systemctl reload nginx", None),
        ("db_grant_all_hosts", "yes", False),
        ("transport", "ssh", "auto"),
    ],
)
def test_null_resets_to_default(monkeypatch, field, value, default):
    monkeypatch.delenv("AEGIR_ROOT", raising=False)
    store = MemoryStore()
    registry.save(store, "@server_x", "server", {field: value})
    assert getattr(store.find("@server_x"), field) != default
    registry.save(store, "@server_x", None, {field: "null"})
    assert getattr(store.find("@server_x"), field) == default


def test_null_resets_site_fields(store):
    registry.save(store, "@example.com", None, {"aliases": "www.example.com", "profile": "minimal"})
    registry.save(store, "@example.com", None, {"aliases": "null", "profile": "null", "uri": "null"})
    site = store.find("@example.com")
    assert (site.aliases, site.profile, site.uri) == ([], "standard", "example.com")


def test_null_on_a_required_property_is_refused(store):
    refused(store, lambda: registry.save(store, "@platform_d10", None, {"root": "null"}), "root", "is required")


def test_null_db_credentials_with_the_service(store):
    registry.save(store, "@server_db2", "server", {"db_service_type": "mysql", "db_user": "root", "db_password": "x"})
    registry.save(store, "@server_db2", None, {"db_service_type": "null", "db_user": "null", "db_password": "null"})
    s = store.find("@server_db2")
    assert (s.db_service_type, s.db_user, s.db_password) == ("null", None, None)


def test_list_coercion(store):
    registry.save(store, "@example.com", None, {"aliases": " www.example.com, a.example.com,,WWW.example.com , "})
    assert store.find("@example.com").aliases == ["www.example.com", "a.example.com"]
    registry.save(store, "@example.com", None, {"aliases": ["b.example.com"]})
    assert store.find("@example.com").aliases == ["b.example.com"]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("yes", True),
        ("true", True),
        ("1", True),
        ("ON", True),
        ("no", False),
        ("False", False),
        ("0", False),
        ("off", False),
        (True, True),
        (False, False),
    ],
)
def test_bool_coercion(store, raw, value):
    registry.save(store, "@server_master", None, {"db_grant_all_hosts": raw})
    assert store.find("@server_master").db_grant_all_hosts is value


def test_bool_coercion_refuses_other_words(store):
    refused(
        store,
        lambda: registry.save(store, "@server_master", None, {"db_grant_all_hosts": "maybe"}),
        "db_grant_all_hosts",
        "true or false",
        "'maybe'",
    )


def test_int_properties_accept_strings_and_ints(store):
    registry.save(store, "@server_master", None, {"db_port": "3307", "ssh_port": 2222})
    s = store.find("@server_master")
    assert (s.db_port, s.ssh_port) == (3307, 2222)


# ------------------------------------------------------------------------------------------------------
# refused saves
# ------------------------------------------------------------------------------------------------------
def test_unknown_property_names_it_and_lists_known(store):
    e = refused(
        store, lambda: registry.save(store, "@server_master", None, {"http_prot": "80"}), "http_prot", "unknown"
    )
    assert "known:" in e.message
    for known in ("http_port", "remote_host", "db_password", "aegir_root"):
        assert known in e.message
    e = refused(store, lambda: registry.save(store, "@platform_d10", None, {"uri": "x.com"}), "uri", "platform")
    assert "root" in e.message and "web_server" in e.message and "http_port" not in e.message


def test_name_is_not_a_property(store):
    refused(store, lambda: registry.save(store, "@server_master", None, {"name": "@other"}), "name", "unknown")


def test_unknown_property_on_a_new_context_writes_nothing():
    store = MemoryStore()
    refused(store, lambda: registry.save(store, "@server_x", "server", {"bogus": "1"}), "bogus", "unknown")
    assert store.data == {}


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("@example.com", "db_password"),
        ("@example.com", "db_user"),
        ("@example.com", "db_name"),
        ("@example.com", "status"),
        ("@example.com", "backups"),
        ("@example.com", "verified"),
        ("@server_master", "verified"),
        ("@server_master", "http_version"),
        ("@server_master", "db_version"),
        ("@platform_d10", "drupal_version"),
        ("@platform_d10", "docroot"),
    ],
)
def test_managed_fields_refused(store, name, field):
    refused(store, lambda: registry.save(store, name, None, {field: "x"}), field, "managed")


def test_managed_fields_allowed_for_tasks(store):
    registry.save(
        store, "@example.com", None, {"status": "installed", "db_password": SITE_DB_PASSWORD}, allow_managed=True
    )
    site = store.find("@example.com")
    assert site.status == "installed" and site.db_password.get_secret_value() == SITE_DB_PASSWORD


def test_new_context_needs_a_type():
    store = MemoryStore()
    refused(
        store,
        lambda: registry.save(store, "@server_x", None, {}),
        "context_type",
        "--context_type=server|platform|site",
    )


def test_unknown_context_type():
    store = MemoryStore()
    e = refused(store, lambda: registry.save(store, "@x", "client", {}), "context_type", "must be one of")
    assert "server, platform, site" in e.message


def test_changing_type_refused(store):
    refused(
        store,
        lambda: registry.save(store, "@server_master", "site", {"platform": "@platform_d10"}),
        "context_type",
        "is a server",
        "cannot become a site",
    )


def test_invalid_name_refused(store):
    refused(store, lambda: registry.save(store, "@a.com;rm -rf /", "site", {}), "name", "not a valid context name")


def test_slug_clash_refused():
    store = MemoryStore()
    registry.save(store, "@ex-ample.org", "server", {})
    store.writes.clear()
    e = refused(
        store,
        lambda: registry.save(store, "@ex.ample-org", "server", {}),
        "name",
        "share the block name",
        "ex-ample-org",
    )
    assert "@ex-ample.org" in e.message
    # also across types, and for an update without a type
    refused(store, lambda: registry.save(store, "@ex.ample-org", "platform", {"root": "/x"}), "name", "block name")
    refused(store, lambda: registry.save(store, "@ex.ample-org", None, {"http_port": "81"}), "name", "block name")


@pytest.mark.parametrize(
    ("props", "field", "fragment"),
    [
        ({"http_port": "0"}, "http_port", "1 to 65535"),
        ({"http_port": "65536"}, "http_port", "1 to 65535"),
        ({"http_service_type": "lighttpd"}, "http_service_type", "'nginx', 'apache' or 'null'"),
        ({"aegir_root": "relative/path"}, "aegir_root", "absolute path"),
        ({"remote_host": "a.com;rm -rf /"}, "remote_host", "hostname"),
        ({"db_user": "root;"}, "db_user", "user name"),
        ({"db_user": "null"}, "db_user", "admin user"),
        ({"db_service_type": "null"}, "db_password", "no db service"),
    ],
)
def test_invalid_values_refused(store, props, field, fragment):
    refused(store, lambda: registry.save(store, "@server_master", None, props), field, fragment)


def test_password_on_a_server_without_db_service_refused(store):
    refused(
        store,
        lambda: registry.save(store, "@server_bare", None, {"db_password": DB_PASSWORD}),
        "db_password",
        "no db service",
        "--db_service_type=mysql",
    )
    refused(store, lambda: registry.save(store, "@server_new", "server", {"db_password": "x"}), "db_password")


def test_site_uri_injection_refused(store):
    refused(
        store,
        lambda: registry.save(store, "@example.com", None, {"uri": "a.com;rm -rf /"}),
        "uri",
        "hostname",
        "at most 253 characters",
    )


def test_platform_relative_root_refused():
    store = MemoryStore(master())
    refused(
        store,
        lambda: registry.save(store, "@platform_x", "platform", {"root": "relative/path"}),
        "root",
        "absolute path",
        "relative path",
    )


def test_an_invalid_value_refuses_the_whole_save(store):
    refused(
        store, lambda: registry.save(store, "@server_master", None, {"http_port": "8080", "db_port": "0"}), "db_port"
    )
    assert store.find("@server_master").http_port == 80


# ------------------------------------------------------------------------------------------------------
# references
# ------------------------------------------------------------------------------------------------------
def test_platform_web_server_must_exist(store):
    refused(
        store,
        lambda: registry.save(store, "@platform_x", "platform", {"root": "/x", "web_server": "@server_nope"}),
        "web_server",
        "@server_nope does not exist",
        "aegir save @server_nope",
    )


def test_platform_web_server_must_be_a_server(store):
    refused(
        store,
        lambda: registry.save(store, "@platform_x", "platform", {"root": "/x", "web_server": "@platform_d10"}),
        "web_server",
        "is a platform, not a server",
    )
    refused(
        store,
        lambda: registry.save(store, "@platform_x", "platform", {"root": "/x", "web_server": "@example.com"}),
        "web_server",
        "is a site, not a server",
    )


def test_platform_web_server_needs_http_service(store):
    refused(
        store,
        lambda: registry.save(store, "@platform_x", "platform", {"root": "/x", "web_server": "@server_bare"}),
        "web_server",
        "@server_bare has no http service",
        "http_service_type=null",
    )


def test_platform_default_web_server_must_exist():
    store = MemoryStore()
    refused(
        store, lambda: registry.save(store, "@platform_x", "platform", {"root": "/x"}), "web_server", "@server_master"
    )


def test_reference_by_a_slug_twin_is_not_the_referenced_context(store):
    """@server.master has the slug of @server_master but is not it."""
    refused(
        store,
        lambda: registry.save(store, "@platform_x", "platform", {"root": "/x", "web_server": "@server.master"}),
        "web_server",
        "does not exist",
    )


def test_site_platform_must_exist(store):
    refused(
        store,
        lambda: registry.save(store, "@new.example.com", "site", {"platform": "@platform_nope"}),
        "platform",
        "@platform_nope does not exist",
    )


def test_site_platform_must_be_a_platform(store):
    refused(
        store,
        lambda: registry.save(store, "@new.example.com", "site", {"platform": "@server_master"}),
        "platform",
        "is a server, not a platform",
    )


def test_site_db_server_checks(store):
    refused(
        store,
        lambda: registry.save(
            store, "@new.example.com", "site", {"platform": "@platform_d10", "db_server": "@server_bare"}
        ),
        "db_server",
        "@server_bare has no db service",
        "db_service_type=null",
    )
    refused(
        store,
        lambda: registry.save(
            store, "@new.example.com", "site", {"platform": "@platform_d10", "db_server": "@server_x"}
        ),
        "db_server",
        "does not exist",
    )
    refused(
        store,
        lambda: registry.save(
            store, "@new.example.com", "site", {"platform": "@platform_d10", "db_server": "@platform_d10"}
        ),
        "db_server",
        "is a platform, not a server",
    )


def test_moving_a_site_to_a_missing_platform_refused(store):
    refused(store, lambda: registry.save(store, "@example.com", None, {"platform": "@platform_gone"}), "platform")


@pytest.mark.parametrize(
    ("props", "field", "user"),
    [
        ({"http_service_type": "null"}, "http_service_type", "@platform_d10"),
        ({"db_service_type": "null", "db_user": "null", "db_password": "null"}, "db_service_type", "@example.com"),
    ],
)
def test_update_that_breaks_users_refused(store, props, field, user):
    """Turning off a service that a platform or site relies on must be refused like deleting the server."""
    e = refused(store, lambda: registry.save(store, "@server_master", None, props), field)
    assert user in e.message


# ------------------------------------------------------------------------------------------------------
# delete
# ------------------------------------------------------------------------------------------------------
def test_delete_server_used_by_platform_refused(store):
    e = refused(store, lambda: registry.delete(store, "@server_master"), "delete", "still used by")
    assert "@platform_d10" in e.message and "@example.com" in e.message  # web server and db server


def test_delete_lists_all_users_sorted(store):
    store.add(build(PlatformContext, {"name": "@platform_a", "root": "/a"}))
    e = refused(store, lambda: registry.delete(store, "@server_master"), "delete")
    assert "used by @example.com, @platform_a, @platform_d10;" in e.message


def test_delete_platform_used_by_site_refused(store):
    e = refused(store, lambda: registry.delete(store, "@platform_d10"), "delete", "@example.com")
    assert "@platform_d10 is still used by @example.com" in e.message


def test_deleted_site_does_not_block(store):
    store.add(build(SiteContext, {"name": "@example.com", "platform": "@platform_d10", "status": "deleted"}))
    assert registry.users_of(store, store.find("@platform_d10")) == []
    removed = registry.delete(store, "@platform_d10")
    assert removed.name == "@platform_d10"
    assert store.find("@platform_d10") is None
    assert store.writes == [("remove", "@platform_d10")]


@pytest.mark.parametrize("status", ["new", "installed", "disabled", "failed"])
def test_other_site_statuses_block(store, status):
    store.add(build(SiteContext, {"name": "@example.com", "platform": "@platform_d10", "status": status}))
    refused(store, lambda: registry.delete(store, "@platform_d10"), "delete", "@example.com")


def test_delete_unused(store):
    removed = registry.delete(store, "server_bare")
    assert isinstance(removed, ServerContext)
    assert store.writes == [("remove", "@server_bare")]
    assert store.find("@server_bare") is None
    registry.delete(store, "@example.com")
    registry.delete(store, "@platform_d10")
    registry.delete(store, "@server_master")
    assert store.data == {}


def test_delete_unknown(store):
    before = store.snapshot()
    with pytest.raises(NotFoundError, match="@nope: no such context"):
        registry.delete(store, "@nope")
    assert store.writes == [] and store.snapshot() == before


def test_delete_slug_twin_is_unknown(store):
    with pytest.raises(NotFoundError):
        registry.delete(store, "@server.master")
    assert store.writes == []


# ------------------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------------------
def test_load(store):
    assert registry.load(store, "server_master").name == "@server_master"
    assert isinstance(registry.load_server(store, "@server_master"), ServerContext)
    assert isinstance(registry.load_platform(store, "@platform_d10"), PlatformContext)
    assert isinstance(registry.load_site(store, "@example.com"), SiteContext)


def test_load_unknown(store):
    with pytest.raises(NotFoundError) as e:
        registry.load(store, "@nope.example.com")
    assert "@nope.example.com" in str(e.value) and "aegir list" in str(e.value)
    assert e.value.exit_code == 3
    with pytest.raises(NotFoundError):
        registry.load(store, "@server.master")  # same slug as @server_master, another name


def test_load_wrong_type(store):
    raises_input(lambda: registry.load_server(store, "@platform_d10"), "name", "is a platform, not a server")
    raises_input(lambda: registry.load_site(store, "@server_master"), "name", "is a server, not a site")
    raises_input(lambda: registry.load_platform(store, "@example.com"), "name", "is a site, not a platform")


def test_load_invalid_name(store):
    raises_input(lambda: registry.load(store, "@bad name"), "name", "not a valid context name")


def test_site_name_case_is_ignored_after_save(store):
    registry.save(store, "@Example.org", "site", {"platform": "@platform_d10"})
    assert store.find("@example.org").name == "@example.org"
    assert registry.load(store, "@Example.org").name == "@example.org"
    registry.save(store, "@Example.org", None, {"profile": "minimal"})
    assert store.find("@example.org").profile == "minimal"


# ------------------------------------------------------------------------------------------------------
# public view, listing
# ------------------------------------------------------------------------------------------------------
def test_public_view_masks_server_secrets(store):
    registry.save(store, "@server_master", None, {"ssh_private_key": SSH_KEY})
    view = registry.public_view(store.find("@server_master"))
    assert view["db_password"] == "********"
    assert view["ssh_private_key"] == "********"
    dumped = json.dumps(view)
    for secret in (DB_PASSWORD, SSH_KEY, "b3BlbnNzaC1rZXktdjEAAAAAkey", "BEGIN OPENSSH"):
        assert secret not in dumped
    assert view["name"] == "@server_master" and view["context_type"] == "server"
    assert view["config_path"] == "/var/aegir/config/server_master"
    assert view["backup_path"] == "/var/aegir/backups"
    assert view["db_user"] == "root" and view["http_port"] == 80


def test_public_view_unset_secrets_are_none(store):
    view = registry.public_view(store.find("@server_bare"))
    assert view["db_password"] is None and view["ssh_private_key"] is None
    site_view = registry.public_view(store.find("@example.com"))
    assert site_view["db_password"] is None


def test_public_view_masks_site_db_password(store):
    registry.save(
        store, "@example.com", None, {"db_password": SITE_DB_PASSWORD, "db_user": "examplecom"}, allow_managed=True
    )
    view = registry.public_view(store.find("@example.com"))
    assert view["db_password"] == "********" and view["db_user"] == "examplecom"
    assert SITE_DB_PASSWORD not in json.dumps(view)


def test_public_view_is_json_ready(store):
    store.add(master(verified=datetime(2024, 5, 1, 12, 0, tzinfo=UTC)))
    view = registry.public_view(store.find("@server_master"))
    assert view["verified"] == "2024-05-01T12:00:00+00:00"
    json.dumps(view)
    for name in ("@platform_d10", "@example.com"):
        json.dumps(registry.public_view(store.find(name)))


def test_public_view_has_every_property_but_nothing_secret_revealed(store):
    ctx = store.find("@server_master")
    view = registry.public_view(ctx)
    assert set(ServerContext.model_fields) <= set(view)


def test_by_type(store):
    ordered = registry.by_type(store.list(), None)
    assert [c.name for c in ordered] == ["@platform_d10", "@server_bare", "@server_master", "@example.com"]
    assert [c.name for c in registry.by_type(store.list(), "server")] == ["@server_bare", "@server_master"]
    assert registry.by_type(store.list("site"), "site")[0].name == "@example.com"


def test_users_of(store):
    assert registry.users_of(store, store.find("@server_master")) == ["@example.com", "@platform_d10"]
    assert registry.users_of(store, store.find("@server_bare")) == []
    assert registry.users_of(store, store.find("@example.com")) == []
