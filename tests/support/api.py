"""The tests' own calls to a Prefect API (filters, artifacts, logs), authenticated as the CLI is: the
credential of whichever test server the URL belongs to (the session harness, or a PostgreSQL-backed server)."""

from __future__ import annotations

from typing import Any

import httpx

CREDENTIALS: dict[str, str] = {}  # API URL -> "user:password", filled in by the fixtures that start servers


def register(api_url: str, auth: str) -> None:
    CREDENTIALS[api_url.rstrip("/")] = auth


def auth_for(url: str) -> tuple[str, str] | None:
    for api_url, auth in CREDENTIALS.items():
        if url.startswith(api_url):
            user, _, password = auth.partition(":")
            return user, password
    return None


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, auth=auth_for(url), **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, auth=auth_for(url), **kwargs)


def patch(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.patch(url, auth=auth_for(url), **kwargs)


def delete(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.delete(url, auth=auth_for(url), **kwargs)
