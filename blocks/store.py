"""ContextStore on the Prefect API: reads over REST (httpx), writes through the Block types.

Reads never import Prefect, so ``aegir show``/``list`` stay fast. The API URL comes from
``PREFECT_API_URL`` or the active Prefect profile, exactly where ``prefect`` itself looks.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from aegir.contexts import MODELS, ContextBase, build, slugify
from aegir.errors import AegirError, StoreUnavailable

TYPE_SLUGS = {"server": "aegir-server", "platform": "aegir-platform", "site": "aegir-site"}
_BY_SLUG = {v: k for k, v in TYPE_SLUGS.items()}
START_HINT = "start the local one with `aegir server start`, or set PREFECT_API_URL"


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def _profile_setting(name: str) -> str | None:
    """A setting from the environment, else from the active profile in $PREFECT_HOME/profiles.toml, exactly
    where ``prefect`` itself looks."""
    if os.environ.get(name):
        return os.environ[name]
    path = prefect_home() / "profiles.toml"
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    value = profiles.get("profiles", {}).get(active, {}).get(name)
    return str(value) if value else None


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment, else from the active profile."""
    url = _profile_setting("PREFECT_API_URL")
    return url.rstrip("/") if url else None


def configured_auth() -> str | None:
    """The API credential (``user:password``, Prefect's PREFECT_API_AUTH_STRING) from the environment, else
    from the active profile (0600, written by ``aegir server start``)."""
    return _profile_setting("PREFECT_API_AUTH_STRING")


def basic_auth(auth: str | None) -> tuple[str, str] | None:
    """``user:password`` as httpx's basic auth (Prefect's server compares the decoded ``user:password``)."""
    if not auth:
        return None
    user, _, password = auth.partition(":")
    return user, password


RETRY_STATUSES = (429, 502, 503)
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
_REGISTERED: set[tuple[str, type]] = set()  # (API, block class) whose type and schema this process registered


def _as_block(context: ContextBase) -> Any:
    from blocks.types import as_block  # Prefect: imported only to write

    return as_block(context)


_DATA_KEYS: dict[type, set[str]] = {}  # block class -> the fields its documents hold


def _document_data(block: Any) -> dict[str, Any]:
    """The data Prefect's ``Block._to_block_document(include_secrets=True)`` makes of a context block — plain
    fields as JSON, secrets revealed — without its cost: it builds the block's whole JSON schema again for
    every field it serialises (0.3–0.8 s of CPU per save of a site block, most of a backup-site run's CPU).
    Our blocks are flat, their secrets ``SecretStr`` fields named by the context's ``secrets``."""
    cls = type(block)
    if cls not in _DATA_KEYS:
        _DATA_KEYS[cls] = set(cls.model_json_schema(by_alias=False)["properties"])
    data = block.model_dump(mode="json", by_alias=True, include=_DATA_KEYS[cls])  # secrets masked here
    for field in cls.secrets:
        value = getattr(block, field)
        data[field] = None if value is None else value.get_secret_value()
    return data


def _block_update(block: Any, cls: Any) -> dict[str, Any]:
    """The PATCH body Prefect's own ``Block.save(overwrite=True)`` sends (secrets included)."""
    from prefect.client.schemas.actions import BlockDocumentUpdate

    update = BlockDocumentUpdate(
        block_schema_id=cls._block_schema_id, data=_document_data(block), merge_existing_data=False
    )
    return update.model_dump(
        mode="json", exclude_unset=True, include={"data", "merge_existing_data", "block_schema_id"}
    )


class BlockStore:
    """Contexts as block documents of types aegir-server / aegir-platform / aegir-site."""

    def __init__(self, api_url: str, auth: str | None = None, timeout: float = 15.0) -> None:
        """``auth``: the API credential (``user:password``); by default the configured one."""
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.api_url, timeout=timeout, auth=basic_auth(auth or configured_auth())
        )
        # (type slug, block name) -> block document id, learnt from every read: a write is then one PATCH
        self._ids: dict[tuple[str, str], str] = {}

    @classmethod
    def from_environment(cls) -> BlockStore:
        url = configured_api_url()
        if url is None:
            raise StoreUnavailable(f"no Prefect API is configured: {START_HINT}")
        return cls(url)

    @classmethod
    def from_prefect(cls) -> BlockStore:
        """Inside a flow run: the API the running Prefect client uses."""
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL

        url = PREFECT_API_URL.value()
        if not url:
            raise StoreUnavailable(f"no Prefect API is configured: {START_HINT}")
        auth = PREFECT_API_AUTH_STRING.value()
        return cls(url, getattr(auth, "get_secret_value", lambda: auth)())

    # -- REST ------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One API call; "busy" answers (429/502/503: a SQLite-backed server under load) are retried with
        backoff, as Prefect's own client does, and so are dropped connections of idempotent requests."""
        # a request the server dropped mid-way (a busy server closing a kept-alive connection) is sent again
        # when repeating it is harmless: reads, filters, updates; never a create
        idempotent = method != "POST" or path.endswith("/filter")
        for delay in (*RETRY_DELAYS, None):
            try:
                response = self._http.request(method, path, json=body)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
                if not idempotent or delay is None:
                    raise StoreUnavailable(f"the Prefect API at {self.api_url} dropped the request ({e})") from None
                time.sleep(delay)
                continue
            except httpx.HTTPError as e:
                raise StoreUnavailable(
                    f"the Prefect API at {self.api_url} is not reachable ({e}): {START_HINT}"
                ) from None
            if response.status_code not in RETRY_STATUSES or delay is None:
                return response
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._request("POST", path, body)
        if response.status_code >= 400:
            raise AegirError(f"Prefect API error {response.status_code} on {path}: {response.text[:300]}")
        return response.json()

    def _documents(self, names: list[str] | None, types: list[str]) -> list[dict[str, Any]]:
        body: dict[str, Any] = {
            "block_types": {"slug": {"any_": [TYPE_SLUGS[t] for t in types]}},
            "block_documents": {"is_anonymous": {"eq_": False}},
            "include_secrets": True,
            "limit": 200,
            "offset": 0,
        }
        if names is not None:
            body["block_documents"]["name"] = {"any_": names}
        docs: list[dict[str, Any]] = []
        while True:
            page = self._post("/block_documents/filter", body)
            docs.extend(page)
            if len(page) < body["limit"]:
                break
            body["offset"] += body["limit"]
        for doc in docs:
            self._ids[(doc["block_type"]["slug"], doc["name"])] = doc["id"]
        return docs

    @staticmethod
    def _to_context(doc: dict[str, Any]) -> ContextBase:
        ctype = _BY_SLUG[doc["block_type"]["slug"]]
        return build(MODELS[ctype], doc["data"])

    # -- ContextStore -----------------------------------------------------------------------------------
    def find(self, name: str) -> ContextBase | None:
        docs = self._documents([slugify(name)], list(TYPE_SLUGS))
        return self._to_context(docs[0]) if docs else None

    def find_many(self, names: list[str]) -> dict[str, ContextBase]:
        """The contexts of these names that exist (any type), by slug, in one request."""
        docs = self._documents(sorted({slugify(n) for n in names}), list(TYPE_SLUGS))
        return {doc["name"]: self._to_context(doc) for doc in docs}

    def list(self, context_type: str | None = None) -> list[ContextBase]:
        types = [context_type] if context_type else list(TYPE_SLUGS)
        return [self._to_context(d) for d in self._documents(None, types)]

    def put(self, context: ContextBase) -> None:
        """Create the block document, or replace its data in ONE request once its type and schema are known
        to be registered (``Block.save`` re-registers them and probes first: ~8 requests, 0.4 s) and its id
        is known from an earlier read."""
        block = _as_block(context)
        cls = type(block)
        if (self.api_url, cls) not in _REGISTERED:
            cls.register_type_and_schema()
            _REGISTERED.add((self.api_url, cls))
        if not self._patch(context.context_type, context.slug, context.name, _block_update(block, cls)):
            try:
                block.save(context.slug, overwrite=True)
            except httpx.HTTPStatusError as e:  # Prefect's text of it quotes the answer: the secrets sent
                self._check_saved(e.response, context.name)
                raise

    def update(self, context: ContextBase, fields: Iterable[str]) -> bool:
        """Write only these fields of the context; the others stay as stored (written meanwhile by another
        task or `aegir save`, they are kept). False when no such document exists."""
        data = _document_data(_as_block(context))
        return self.update_data(context.context_type, context.name, {f: data[f] for f in fields})

    def update_data(self, context_type: str, name: str, data: dict[str, Any]) -> bool:
        """Merge JSON ``data`` into the stored document's data (the server merges: one request once the
        document's id is known); False when no such document exists."""
        body = {"data": data, "merge_existing_data": True}
        return self._patch(context_type, slugify(name), name, body)

    def _patch(self, context_type: str, slug: str, name: str, body: dict[str, Any]) -> bool:
        """PATCH the document, by its id known from an earlier read or looked up now (a document deleted and
        made again since answers 404: looked up anew); False when there is none."""
        key = (TYPE_SLUGS[context_type], slug)
        known = self._ids.get(key)
        if known:
            response = self._request("PATCH", f"/block_documents/{known}", body)
            if response.status_code != 404:
                self._check_saved(response, name)
                return True
            self._ids.pop(key, None)
        if not self._documents([slug], [context_type]):
            return False
        self._check_saved(self._request("PATCH", f"/block_documents/{self._ids[key]}", body), name)
        return True

    @staticmethod
    def _check_saved(response: httpx.Response, name: str) -> None:
        """A refused write fails naming the context and the server's reason, never the answer's text: a 422
        echoes the request body (``request_body``), and a write's body holds the context's secrets."""
        if response.status_code >= 400:
            try:
                reason = response.json().get("exception_message") or response.json().get("detail")
            except (ValueError, AttributeError):
                reason = None
            reason = reason if isinstance(reason, str) else response.reason_phrase
            raise AegirError(f"Prefect API error {response.status_code} saving {name}: {reason[:300]}")

    def remove(self, context: ContextBase) -> None:
        for doc in self._documents([context.slug], [context.context_type]):
            self._ids.pop((doc["block_type"]["slug"], doc["name"]), None)
            response = self._request("DELETE", f"/block_documents/{doc['id']}")
            if response.status_code not in (200, 204, 404):
                raise AegirError(f"Prefect API error {response.status_code} deleting {context.name}")

    def ping(self) -> bool:
        try:
            return self._http.get("/health", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._http.close()
