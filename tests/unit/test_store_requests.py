"""How the context store keeps a context in two documents, and how many requests it sends (an httpx mock
transport standing in for the Prefect API): configuration and state apart; a write after a read is one PATCH
per document it changes; a document made anew since is found again; several contexts in one read; every read
validated, an invalid context named with its field."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from pydantic import SecretStr

import blocks.store as store_module
from aegir import registry
from aegir.contexts import PlatformContext, ServerContext, SiteContext, build
from aegir.errors import AegirError, InputError, NotFoundError
from aegir.records import InvalidContext
from blocks.store import BlockStore
from blocks.types import CONFIG_TYPES, STATE_TYPES

SITE = {"name": "@a.example.com", "uri": "a.example.com", "platform": "@platform_d7", "db_server": "@server_master"}
SITE_STATE = {"status": "installed", "platform": "@platform_d7", "db_server": "@server_master", "db_name": "aexample"}
PLATFORM = {"name": "@platform_d7", "root": "/var/aegir/platforms/d7", "web_server": "@server_master"}
SERVER = {"name": "@server_master", "http_service_type": "nginx", "db_service_type": "mysql", "db_user": "aegir_root"}


class FakeApi:
    """Block documents by id; records every request as "METHOD path" (with the names a filter asked for)."""

    def __init__(self) -> None:
        self.docs: dict[str, dict] = {}
        self.seen: list[str] = []
        self.artifacts: list[dict] = []

    def add(self, doc_id: str, slug: str, name: str, data: dict, anonymous: bool = False) -> None:
        self.docs[doc_id] = {
            "id": doc_id, "name": name, "block_type": {"slug": slug}, "data": dict(data), "is_anonymous": anonymous
        }  # fmt: skip

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api")
        if path == "/block_documents/filter":
            body = json.loads(request.content)
            names = body["block_documents"].get("name", {}).get("any_")
            slugs = body["block_types"]["slug"]["any_"]
            self.seen.append(f"filter {','.join(names or ['*'])}")
            found = [d for d in self.docs.values() if d["block_type"]["slug"] in slugs]
            return httpx.Response(200, json=[d for d in found if names is None or d["name"] in names])
        self.seen.append(f"{request.method} {path}")
        if path == "/artifacts/":
            self.artifacts.append(json.loads(request.content))
            return httpx.Response(201, json={"id": str(uuid.uuid4())})
        if request.method == "POST" and path == "/block_documents/":
            body = json.loads(request.content)
            doc_id = f"new-{len(self.docs)}"
            slug = next(
                c.get_block_type_slug()
                for c in (*CONFIG_TYPES.values(), *STATE_TYPES.values())
                if str(c._block_type_id) == body["block_type_id"]
            )
            self.add(doc_id, slug, body["name"], body["data"], body["is_anonymous"])
            return httpx.Response(201, json={"id": doc_id})
        doc_id = path.rsplit("/", 1)[-1]
        if request.method == "PATCH" and doc_id in self.docs:
            body = json.loads(request.content)
            old = self.docs[doc_id]["data"] if body["merge_existing_data"] else {}
            self.docs[doc_id]["data"] = {**old, **body["data"]}
            return httpx.Response(204)
        if request.method == "DELETE" and self.docs.pop(doc_id, None):
            return httpx.Response(204)
        return httpx.Response(404, json={"detail": "not found"})

    def data(self, slug: str, name: str) -> dict:
        return next(d["data"] for d in self.docs.values() if (d["block_type"]["slug"], d["name"]) == (slug, name))


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    api = FakeApi()
    registered = set()
    for cls in (*CONFIG_TYPES.values(), *STATE_TYPES.values()):  # their types and schemas as if registered
        registered.add(("http://api.invalid/api", cls))
        monkeypatch.setattr(cls, "_block_schema_id", uuid.uuid4())
        monkeypatch.setattr(cls, "_block_type_id", uuid.uuid4())
    monkeypatch.setattr(store_module, "_REGISTERED", registered)
    api.add("doc-1", "aegir-site", "a-example-com", SITE)
    api.add("state-1", "aegir-site-state", "a-example-com", SITE_STATE, anonymous=True)
    api.add("doc-p", "aegir-platform", "platform-d7", PLATFORM)
    api.add("doc-s", "aegir-server", "server-master", SERVER)
    return api


def store_on(api: FakeApi) -> BlockStore:
    store = BlockStore("http://api.invalid/api", "admin:pw")
    store._http = httpx.Client(
        base_url=store.api_url, transport=httpx.MockTransport(api.handler), auth=store._http.auth
    )
    return store


def test_a_context_is_its_configuration_and_its_state_and_each_write_goes_where_it_belongs(api):
    store = store_on(api)
    site = store.find("@a.example.com")
    assert (site.status, site.db_name, site.platform) == ("installed", "aexample", "@platform_d7")
    api.seen.clear()
    store.update(site.model_copy(update={"status": "disabled"}), ["status"])
    assert api.seen == ["PATCH /block_documents/state-1", "POST /artifacts/"]  # the state page follows
    assert api.data("aegir-site-state", "a-example-com")["status"] == "disabled"
    assert "status" not in api.data("aegir-site", "a-example-com")
    api.seen.clear()
    store.update(site.model_copy(update={"profile": "minimal"}), ["profile"])
    assert api.seen == ["PATCH /block_documents/doc-1"]
    # the journal of a running task is state too, and no state page is published for it
    api.seen.clear()
    assert store.update_data("site", "@a.example.com", {"operation": {"flow": "backup-site"}})
    assert api.seen == ["PATCH /block_documents/state-1"]
    with pytest.raises(ValueError, match="state only"):
        store.update_data("site", "@a.example.com", {"profile": "x"})


def test_a_secret_of_the_state_is_only_in_the_state_document(api):
    store = store_on(api)
    site = store.find("@a.example.com").model_copy(update={"db_password": SecretStr("s3cret-pw")})
    store.put(site)
    assert api.data("aegir-site-state", "a-example-com")["db_password"] == "s3cret-pw"
    assert "s3cret-pw" not in json.dumps(api.data("aegir-site", "a-example-com"))
    assert all("s3cret-pw" not in a["data"] for a in api.artifacts)
    assert STATE_TYPES["site"].model_json_schema()["secret_fields"] == ["db_password"]  # masked by the API
    assert "db_password" not in CONFIG_TYPES["site"].model_fields  # the UI's form has no such field


def test_a_new_context_makes_both_documents_the_state_anonymous(api):
    store = store_on(api)
    store.put(build(SiteContext, {**SITE, "name": "@b.example.com", "uri": "b.example.com"}))
    made = {d["block_type"]["slug"]: d for d in api.docs.values() if d["name"] == "b-example-com"}
    assert set(made) == {"aegir-site", "aegir-site-state"}
    assert (made["aegir-site"]["is_anonymous"], made["aegir-site-state"]["is_anonymous"]) == (False, True)
    assert made["aegir-site-state"]["data"]["status"] == "new" and made["aegir-site-state"]["data"]["platform"] is None


def test_a_save_by_a_person_never_writes_over_the_state(api):
    store = store_on(api)
    site = store.find("@a.example.com")
    api.docs["state-1"]["data"]["backups"] = [{"id": "made-meanwhile"}]  # a task recorded a backup since
    store.put(site.model_copy(update={"client_email": "new@example.com"}), state=False)
    assert api.data("aegir-site-state", "a-example-com")["backups"] == [{"id": "made-meanwhile"}]
    assert api.data("aegir-site", "a-example-com")["client_email"] == "new@example.com"


def test_a_context_stored_before_the_split_reads_as_before_and_moves_its_state_on_the_first_write(api):
    legacy = {**SITE, "name": "@old.example.com", "uri": "old.example.com", **SITE_STATE, "db_password": "pw"}
    api.add("doc-old", "aegir-site", "old-example-com", legacy)
    store = store_on(api)
    site = store.find("@old.example.com")
    assert (site.status, site.db_password.get_secret_value()) == ("installed", "pw")
    store.update(site.model_copy(update={"status": "disabled"}), ["status"])
    assert api.data("aegir-site-state", "old-example-com")["status"] == "disabled"
    assert api.data("aegir-site-state", "old-example-com")["db_password"] == "pw"
    assert not {"status", "db_password", "db_name"} & set(api.data("aegir-site", "old-example-com"))
    assert store.find("@old.example.com").status == "disabled"


def test_upgrade_splits_every_context_stored_before_the_split_once(api):
    legacy = {**SITE, "name": "@old.example.com", "uri": "old.example.com", **SITE_STATE, "packages": [{"name": "x"}]}
    api.add("doc-old", "aegir-site", "old-example-com", legacy)
    store = store_on(api)
    assert sorted(store.upgrade()) == ["@old.example.com", "@platform_d7", "@server_master"]
    assert api.data("aegir-site-state", "old-example-com")["packages"] == [{"name": "x"}]
    assert "packages" not in api.data("aegir-site", "old-example-com")
    assert store.upgrade() == []
    assert store.find("@old.example.com").packages == [{"name": "x"}]


@pytest.mark.parametrize(
    ("edit", "field", "fragment"),
    [
        ({"uri": "Bad Uri"}, "uri", "must be a hostname"),
        ({"db_name": "mysql"}, "db_name", "task-managed state"),
        ({"status": "deleted"}, "status", "task-managed state"),
        ({"operation": {"flow": "x"}}, "operation", "task-managed state"),
        ({"platform": "@platform_nope"}, "platform", "moves only with a task"),
    ],
)
def test_an_edit_of_the_block_that_breaks_the_context_names_it_and_changes_no_state(api, edit, field, fragment):
    api.docs["doc-1"]["data"].update(edit)  # as the UI's edit form (or a PATCH) saves it
    store = store_on(api)
    with pytest.raises(InputError) as error:
        store.find("@a.example.com")
    assert error.value.field == field and "@a.example.com" in str(error.value) and fragment in str(error.value)
    valid, invalid = store.scan("site")
    assert valid == [] and [(i.name, i.field) for i in invalid] == [("@a.example.com", field)]
    assert api.data("aegir-site-state", "a-example-com") == SITE_STATE
    # fixable with aegir save (the stray state dropped, the field set back), and then valid again
    fix = {field: SITE[field]} if field in SITE else {}
    registry.save(store, "@a.example.com", None, fix)
    assert store.find("@a.example.com").status == "installed"
    assert api.data("aegir-site-state", "a-example-com") == SITE_STATE


def test_an_invalid_context_can_be_deleted_and_its_claims_still_count(api):
    api.docs["doc-1"]["data"]["uri"] = "Bad Uri"
    store = store_on(api)
    with pytest.raises(InputError, match="still used by @a.example.com"):
        registry.delete(store, "@platform_d7")
    removed = registry.delete(store, "@a.example.com")
    assert isinstance(removed, InvalidContext)
    assert not [d for d in api.docs.values() if d["name"] == "a-example-com"]


def test_a_document_made_anew_since_the_read_is_found_again(api):
    store = store_on(api)
    site = store.find("@a.example.com")
    api.docs["doc-2"] = {**api.docs.pop("doc-1"), "id": "doc-2"}  # deleted and saved again by another process
    store.update(site.model_copy(update={"profile": "minimal"}), ["profile"])
    assert api.seen == [
        "filter a-example-com",
        "PATCH /block_documents/doc-1",  # 404: gone
        "filter a-example-com",
        "PATCH /block_documents/doc-2",
    ]
    assert api.docs["doc-2"]["data"]["profile"] == "minimal"
    api.seen.clear()
    store.update(site, ["profile"])
    assert api.seen == ["PATCH /block_documents/doc-2"]


def test_a_refused_write_names_the_context_and_the_reason_but_never_its_secrets(api):
    """Prefect answers a refused write with 422 and the request body echoed: the site's password with it."""
    store = store_on(api)
    site = store.find("@a.example.com").model_copy(update={"db_password": SecretStr("s3cret-pw")})

    def refuse(request: httpx.Request) -> httpx.Response:
        body = {"exception_message": "Invalid request received.", "request_body": json.loads(request.content)}
        return httpx.Response(422, json={**body, "exception_detail": [{"input": body["request_body"]}]})

    store._http = httpx.Client(base_url=store.api_url, transport=httpx.MockTransport(refuse))
    with pytest.raises(AegirError) as refused:
        store.put(site)
    assert str(refused.value) == "Prefect API error 422 saving @a.example.com: Invalid request received."
    with pytest.raises(AegirError) as refused:
        store.put(build(SiteContext, {**SITE, "name": "@new.example.com", "uri": "new.example.com"}))
    assert "s3cret-pw" not in str(refused.value) and "@new.example.com" in str(refused.value)


def test_every_request_carries_the_credential(api):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return api.handler(request)

    store = BlockStore("http://api.invalid/api", "admin:pw")
    store._http = httpx.Client(base_url=store.api_url, transport=httpx.MockTransport(handler), auth=store._http.auth)
    store.find("@a.example.com")
    assert seen == ["Basic YWRtaW46cHc="]  # base64("admin:pw"), Prefect's basic auth


def test_a_removed_context_is_not_patched_by_its_old_id(api):
    store = store_on(api)
    site = store.find("@a.example.com")
    store.remove(site)
    assert store._ids == {("aegir-platform", "platform-d7"): "doc-p"} or not any(
        k[1] == "a-example-com" for k in store._ids
    )
    assert not [d for d in api.docs.values() if d["name"] == "a-example-com"]


def test_several_contexts_are_one_read_and_each_keeps_its_checks(api):
    store = store_on(api)
    platform, server = registry.load_each(store, ("@platform_d7", PlatformContext), ("@server_master", ServerContext))
    assert (platform.name, server.name, api.seen) == ("@platform_d7", "@server_master", [
        "filter platform-d7,server-master"
    ])  # fmt: skip
    with pytest.raises(NotFoundError, match="@nowhere: no such context"):
        registry.load_each(store, ("@platform_d7", PlatformContext), ("@nowhere", ServerContext))
    with pytest.raises(Exception, match="@platform_d7 is a platform, not a server"):
        registry.load_each(store, ("@platform_d7", ServerContext))
