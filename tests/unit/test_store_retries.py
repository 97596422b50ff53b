"""The context store's HTTP behaviour against a busy or flaky Prefect API (an httpx mock transport)."""

from __future__ import annotations

import httpx
import pytest

import blocks.store as store_module
from blocks.store import BlockStore, StoreUnavailable


def flaky_store(monkeypatch, failures: int) -> tuple[BlockStore, list[str]]:
    """A store whose API drops the first ``failures`` requests without answering."""
    monkeypatch.setattr(store_module, "RETRY_DELAYS", (0.0, 0.0, 0.0))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if len(seen) <= failures:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(200, json=[])

    store = BlockStore("http://api.invalid/api")
    store._http = httpx.Client(base_url=store.api_url, transport=httpx.MockTransport(handler))
    return store, seen


def test_a_dropped_read_is_sent_again(monkeypatch):
    store, seen = flaky_store(monkeypatch, failures=2)
    assert store.list("site") == []
    assert seen == ["POST /api/block_documents/filter"] * 3


def test_a_dropped_create_is_not_repeated_and_one_that_keeps_failing_says_so(monkeypatch):
    store, seen = flaky_store(monkeypatch, failures=1)
    with pytest.raises(StoreUnavailable, match="dropped the request"):
        store._request("POST", "/block_documents/", {"name": "x"})
    assert seen == ["POST /api/block_documents/"]
    store, seen = flaky_store(monkeypatch, failures=10)
    with pytest.raises(StoreUnavailable, match="dropped the request"):
        store.list("site")
    assert len(seen) == 4  # the first try and three retries
