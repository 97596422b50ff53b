"""ContextStore on the Prefect API: reads and writes over REST (httpx); Prefect only to register the types.

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

from aegir.contexts import ContextBase, slugify
from aegir.errors import AegirError, StoreUnavailable
from aegir.records import InvalidContext, merge, split, split_fields, state_fields, state_markdown

TYPE_SLUGS = {"server": "aegir-server", "platform": "aegir-platform", "site": "aegir-site"}
STATE_SLUGS = {t: f"{slug}-state" for t, slug in TYPE_SLUGS.items()}
_BY_SLUG = {v: k for k, v in TYPE_SLUGS.items()}
_BY_STATE_SLUG = {v: k for k, v in STATE_SLUGS.items()}
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
# what the state page (artifact) people read does not show: the journal of a running task
_UNSHOWN_STATE = {"operation"}


def _block_class(context_type: str, state: bool) -> Any:
    from blocks.types import CONFIG_TYPES, STATE_TYPES  # Prefect: imported only to write

    return (STATE_TYPES if state else CONFIG_TYPES)[context_type]


class BlockStore:
    """Contexts as two block documents each (aegir/records.py): the configuration, of type aegir-server /
    aegir-platform / aegir-site, named by the context's slug and edited in the UI; and the state, of type
    aegir-…-state, an anonymous document of the same name that the UI neither lists nor offers to edit.

    Every read validates: a context whose documents do not make a valid context is an ``InvalidContext``
    (``scan``), or raises naming it and its field (``find``, ``find_many``)."""

    def __init__(self, api_url: str, auth: str | None = None, timeout: float = 15.0) -> None:
        """``auth``: the API credential (``user:password``); by default the configured one."""
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout, auth=basic_auth(auth or configured_auth()))
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
        """Inside a flow run: the API (and credential) the running Prefect client uses."""
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
        """The configuration and state documents of these names (all when None) and context types."""
        body: dict[str, Any] = {
            "block_types": {"slug": {"any_": [s for t in types for s in (TYPE_SLUGS[t], STATE_SLUGS[t])]}},
            "block_documents": {"is_anonymous": None},  # Prefect's default leaves anonymous ones (the states) out
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

    def _records(self, names: list[str] | None, types: list[str]) -> list[ContextBase | InvalidContext]:
        """Each context's two documents put together and validated (a state without its configuration, left
        by an interrupted delete, is no context)."""
        config: dict[tuple[str, str], dict[str, Any]] = {}
        state: dict[tuple[str, str], dict[str, Any]] = {}
        for doc in self._documents(names, types):
            slug = doc["block_type"]["slug"]
            if slug in _BY_SLUG:
                config[(_BY_SLUG[slug], doc["name"])] = doc["data"]
            elif slug in _BY_STATE_SLUG:
                state[(_BY_STATE_SLUG[slug], doc["name"])] = doc["data"]
        return [merge(ctype, data, state.get((ctype, slug))) for (ctype, slug), data in config.items()]

    @staticmethod
    def _valid(record: ContextBase | InvalidContext) -> ContextBase:
        if isinstance(record, InvalidContext):
            raise record.error()
        return record

    # -- ContextStore -----------------------------------------------------------------------------------
    def find(self, name: str) -> ContextBase | None:
        records = self._records([slugify(name)], list(TYPE_SLUGS))
        return self._valid(records[0]) if records else None

    def find_many(self, names: list[str]) -> dict[str, ContextBase]:
        """The contexts of these names that exist (any type), by slug, in one request."""
        records = self._records(sorted({slugify(n) for n in names}), list(TYPE_SLUGS))
        return {r.slug: self._valid(r) for r in records}

    def list(self, context_type: str | None = None) -> list[ContextBase]:
        """The valid contexts (``scan`` also says which are not)."""
        return self.scan(context_type)[0]

    def scan(self, context_type: str | None = None) -> tuple[list[ContextBase], list[InvalidContext]]:
        types = [context_type] if context_type else list(TYPE_SLUGS)
        records = self._records(None, types)
        return (
            [r for r in records if not isinstance(r, InvalidContext)],
            [r for r in records if isinstance(r, InvalidContext)],
        )

    def put(self, context: ContextBase, state: bool = True) -> None:
        """Write the context whole: its configuration, and its state (unless ``state`` is False and it has one
        already: a person's ``aegir save`` never writes over what tasks record)."""
        config_data, state_data = split(context)
        self._write(context, False, config_data, merge_data=False)
        if state or self._id(context.context_type, context.slug, True) is None:
            self._write(context, True, state_data, merge_data=False)
            self._publish(context)

    def update(self, context: ContextBase, fields: Iterable[str]) -> bool:
        """Write only these fields of the context, each to the document(s) it belongs to; the others stay as
        stored (written meanwhile by another task or `aegir save`, they are kept). False when the context has
        no record."""
        fields = list(fields)
        config_data, state_data = split_fields(context, fields)
        if self._id(context.context_type, context.slug, False) is None:
            return False
        if config_data:
            self._write(context, False, config_data, merge_data=True)
        if state_data:
            self._write_state(context, state_data)
            if set(state_data) - _UNSHOWN_STATE:
                self._publish(context)
        return True

    def update_data(self, context_type: str, name: str, data: dict[str, Any]) -> bool:
        """Merge JSON ``data`` (state fields) into the stored state (the server merges: one request once the
        document's id is known); False when no such context exists."""
        unknown = set(data) - set(state_fields(context_type))
        if unknown:
            raise ValueError(f"update_data writes state only; {sorted(unknown)} are not state of a {context_type}")
        slug = slugify(name)
        if self._id(context_type, slug, False) is None:
            return False
        if self._id(context_type, slug, True) is None:  # stored before state had its own document
            current = self.find(name)
            if current is None:
                return False
            self._write_state(current, data)
            return True
        self._write(None, True, data, merge_data=True, context_type=context_type, name=name)
        return True

    def upgrade(self) -> list[str]:
        """Contexts stored before configuration and state were split get their state document, and their
        block loses the state (so the UI's form offers configuration only); the names moved. Idempotent."""
        moved = []
        for ctx in self.list():
            if self._id(ctx.context_type, ctx.slug, True) is None:
                self._write_state(ctx, {})
                moved.append(ctx.name)
        return moved

    def _write_state(self, context: ContextBase, data: dict[str, Any]) -> None:
        """Merge state fields; a context stored before the split gets its state document now (all its state),
        and its configuration document loses the state it used to hold."""
        if self._id(context.context_type, context.slug, True) is not None:
            self._write(context, True, data, merge_data=True)
            return
        config_data, state_data = split(context)
        self._write(context, True, {**state_data, **data}, merge_data=False)
        self._write(context, False, config_data, merge_data=False)

    def _id(self, context_type: str, slug: str, state: bool) -> str | None:
        """The document's id, known from an earlier read or looked up now (None: there is none)."""
        key = ((STATE_SLUGS if state else TYPE_SLUGS)[context_type], slug)
        if key not in self._ids:
            self._documents([slug], [context_type])
        return self._ids.get(key)

    def _registered(self, context_type: str, state: bool) -> Any:
        cls = _block_class(context_type, state)
        if (self.api_url, cls) not in _REGISTERED:
            cls.register_type_and_schema()
            _REGISTERED.add((self.api_url, cls))
        return cls

    def _write(
        self,
        context: ContextBase | None,
        state: bool,
        data: dict[str, Any],
        *,
        merge_data: bool,
        context_type: str | None = None,
        name: str | None = None,
    ) -> None:
        """PATCH one document by its id (a document deleted and made again since answers 404: looked up anew),
        or create it: the configuration as a named block, the state anonymous."""
        ctype = context.context_type if context is not None else str(context_type)
        name = context.name if context is not None else str(name)
        slug = slugify(name)
        key = ((STATE_SLUGS if state else TYPE_SLUGS)[ctype], slug)
        body: dict[str, Any] = {"data": data, "merge_existing_data": merge_data}
        if not merge_data:  # the whole document: in the current schema (an older one held state in the block)
            body["block_schema_id"] = str(self._registered(ctype, state)._block_schema_id)
        for attempt in range(2):
            known = self._ids.get(key) if attempt == 0 else self._id(ctype, slug, state)
            if known is None:
                break
            response = self._request("PATCH", f"/block_documents/{known}", body)
            if response.status_code != 404:
                self._check_saved(response, name)
                return
            self._ids.pop(key, None)
        cls = self._registered(ctype, state)
        create = {
            "name": slug,
            "data": data,
            "block_schema_id": str(cls._block_schema_id),
            "block_type_id": str(cls._block_type_id),
            "is_anonymous": state,
        }
        response = self._request("POST", "/block_documents/", create)
        self._check_saved(response, name)
        self._ids[key] = response.json()["id"]

    def _publish(self, context: ContextBase) -> None:
        """The state as people read it in the UI: the ``state-<name>`` markdown artifact (latest = current)."""
        artifact = {
            "key": f"state-{context.slug}",
            "type": "markdown",
            "data": state_markdown(context),
            "description": f"State of {context.name} (written by Aegir's tasks)",
        }
        response = self._request("POST", "/artifacts/", artifact)
        if response.status_code >= 400:
            raise AegirError(f"Prefect API error {response.status_code} publishing the state of {context.name}")

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

    def remove(self, context: ContextBase | InvalidContext) -> None:
        """Delete the context's documents (configuration last: a state left alone is no context)."""
        docs = self._documents([context.slug], [context.context_type])
        for doc in sorted(docs, key=lambda d: d["block_type"]["slug"] in _BY_SLUG):
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
