"""How many requests the context store sends (an httpx mock transport standing in for the Prefect API): a
write after a read is one PATCH; a document made anew since is found again; several contexts in one read."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from prefect.exceptions import PrefectHTTPStatusError
from pydantic import SecretStr

import blocks.store as store_module
from aegir import registry
from aegir.contexts import PlatformContext, ServerContext, SiteContext, build
from aegir.errors import AegirError, NotFoundError
from blocks.store import BlockStore
from blocks.types import as_block

SITE = {"name": "@a.example.com", "platform": "@platform_d7", "db_server": "@server_master"}
PLATFORM = {"name": "@platform_d7", "root": "/var/aegir/platforms/d7", "web_server": "@server_master"}
SERVER = {"name": "@server_master"}


class FakeApi:
    """Block documents by id; records every request as "METHOD path" (with the names a filter asked for)."""

    def __init__(self) -> None:
        self.docs: dict[str, dict] = {}
        self.seen: list[str] = []

    def add(self, doc_id: str, slug: str, name: str, data: dict) -> None:
        self.docs[doc_id] = {"id": doc_id, "name": name, "block_type": {"slug": slug}, "data": data}

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
        doc_id = path.rsplit("/", 1)[-1]
        if request.method == "PATCH" and doc_id in self.docs:
            self.docs[doc_id]["data"] = json.loads(request.content)["data"]
            return httpx.Response(204)
        return httpx.Response(404, json={"detail": "not found"})


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    api = FakeApi()
    site_block = type(as_block(build(SiteContext, SITE)))  # its type and schema as if registered already
    monkeypatch.setattr(store_module, "_REGISTERED", {("http://api.invalid/api", site_block)})
    monkeypatch.setattr(site_block, "_block_schema_id", uuid.uuid4())
    monkeypatch.setattr(site_block, "_block_type_id", uuid.uuid4())
    api.add("doc-1", "aegir-site", "a-example-com", SITE)
    api.add("doc-p", "aegir-platform", "platform-d7", PLATFORM)
    api.add("doc-s", "aegir-server", "server-master", SERVER)
    return api


def store_on(api: FakeApi) -> BlockStore:
    store = BlockStore("http://api.invalid/api")
    store._http = httpx.Client(base_url=store.api_url, transport=httpx.MockTransport(api.handler))
    return store


def test_a_write_after_a_read_is_one_patch_of_the_document_read(api):
    store = store_on(api)
    site = store.find("@a.example.com")
    store.put(site.model_copy(update={"status": "installed"}))
    assert api.seen == ["filter a-example-com", "PATCH /block_documents/doc-1"]
    assert api.docs["doc-1"]["data"]["status"] == "installed"


def test_a_document_made_anew_since_the_read_is_found_again(api):
    store = store_on(api)
    site = store.find("@a.example.com")
    api.docs["doc-2"] = {**api.docs.pop("doc-1"), "id": "doc-2"}  # deleted and saved again by another process
    store.put(site.model_copy(update={"status": "installed"}))
    assert api.seen == [
        "filter a-example-com",
        "PATCH /block_documents/doc-1",  # 404: gone
        "filter a-example-com",
        "PATCH /block_documents/doc-2",
    ]
    assert api.docs["doc-2"]["data"]["status"] == "installed"
    api.seen.clear()
    store.put(site)
    assert api.seen == ["PATCH /block_documents/doc-2"]


def test_a_refused_write_names_the_context_and_the_reason_but_never_its_secrets(api, monkeypatch):
    """Prefect answers a refused write with 422 and the request body echoed: the site's password with it."""
    store = store_on(api)
    site = store.find("@a.example.com").model_copy(update={"db_password": SecretStr("s3cret-pw")})

    def refuse(request: httpx.Request) -> httpx.Response:
        body = {"exception_message": "Invalid request received.", "request_body": json.loads(request.content)}
        return httpx.Response(422, json={**body, "exception_detail": [{"input": body["request_body"]}]})

    store._http = httpx.Client(base_url=store.api_url, transport=httpx.MockTransport(refuse))
    with pytest.raises(AegirError) as refused:
        store.put(site)
    assert "s3cret-pw" in json.dumps(store_module._document_data(as_block(site)))  # it was in the body sent
    assert str(refused.value) == "Prefect API error 422 saving @a.example.com: Invalid request received."

    # a new context is created by Prefect's own Block.save, whose error text quotes the answer
    answer = httpx.Response(
        422,
        json={"exception_message": "Invalid request.", "request_body": "s3cret-pw"},
        request=httpx.Request("POST", "http://api.invalid/api/block_documents/"),
    )
    error = httpx.HTTPStatusError("422", request=answer.request, response=answer)
    saved = PrefectHTTPStatusError.from_httpx_error(error)
    assert "s3cret-pw" in str(saved)

    def save(*args, **kwargs):
        raise saved

    monkeypatch.setattr(type(as_block(site)), "save", save)
    store._http = httpx.Client(base_url=store.api_url, transport=httpx.MockTransport(api.handler))
    with pytest.raises(AegirError) as refused:
        store.put(build(SiteContext, {**SITE, "name": "@new.example.com", "db_password": "s3cret-pw"}))
    assert str(refused.value) == "Prefect API error 422 saving @new.example.com: Invalid request."


def test_a_removed_context_is_not_patched_by_its_old_id(api):
    store = store_on(api)
    site = store.find("@a.example.com")
    store.remove(site)
    assert store._ids == {}


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


@pytest.mark.parametrize(
    "ctx",
    [
        build(SiteContext, {**SITE, "db_password": "s3cret", "status": "installed", "backups": [{"id": "b1"}]}),
        build(ServerContext, {**SERVER, "ssh_private_key": "KEY", "db_port": 3307}),
        build(PlatformContext, PLATFORM),
    ],
    ids=["site", "server", "platform"],
)
def test_a_saved_document_holds_what_prefects_own_save_would(ctx):
    """The store writes a block's data itself (Prefect's way costs ~0.5 s of CPU a save): the same data,
    secrets revealed as Prefect's include_secrets save stores them."""
    block = as_block(ctx)
    prefects = block._to_block_document(
        name=ctx.slug, block_schema_id=uuid.uuid4(), block_type_id=uuid.uuid4(), include_secrets=True
    ).data
    assert store_module._document_data(block) == prefects
    for field in ctx.secrets:
        secret = getattr(ctx, field)
        assert prefects[field] == (secret.get_secret_value() if secret else None)
