"""Asking a web server, as a visitor does: where to reach a server's http service from here, and what an
answer was, in words fit for an error message (status, title, the start of the page's text)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import httpx

from aegir.contexts import ServerContext
from aegir.transport.base import redact

_TITLE = re.compile(r"<title>([^<]*)</title>", re.IGNORECASE)
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)


def probe_address(server: ServerContext) -> str:
    return "127.0.0.1" if server.remote_host == "localhost" else server.remote_host


def describe(response: httpx.Response, hidden: Sequence[str] = (), text_chars: int = 300) -> str:
    """What a failed probe got, for its error: the status, the page's title and the start of its text (so a
    Drupal error message shows), without any of ``hidden`` (a site's database password, should the page
    show it); at most ``text_chars`` of the text."""
    seen = f"HTTP {response.status_code}"
    title = _TITLE.search(response.text)
    if title:
        seen += f" {html.unescape(title.group(1)).strip()!r}"
    text = " ".join(html.unescape(_TAGS.sub(" ", response.text)).split())
    if text and text_chars:
        seen += f": {text[:text_chars]}"
    return redact(seen, hidden)
