"""Sub-tasks of verify-server. Each takes the server's name (never a secret) and returns plain facts."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from prefect import get_run_logger, task

from aegir import registry, servers
from aegir.contexts import ServerContext
from aegir.errors import AegirError
from aegir.http_probe import describe, probe_address
from aegir.services.db import MysqlService
from aegir.services.http import http_service_for
from aegir.transport.factory import transport_for

from .common import TRANSIENT_RETRIES, record, store


def _server(name: str) -> ServerContext:
    return registry.load_server(store(), name)


@task(name="load-server")
def load_server(name: str) -> str:
    """Resolve and validate the server context; returns its canonical name."""
    return _server(name).name


@task(name="prepare-dirs", **TRANSIENT_RETRIES)
def prepare_dirs(name: str) -> dict[str, Any]:
    server = _server(name)
    transport = transport_for(server)
    try:
        created = servers.prepare_dirs(server, transport)
        facts: dict[str, Any] = {}
        if server.http_service_type != "null":
            if server.web_group is None:
                facts["web_group"] = servers.detect_web_group(transport)
            elif not servers.group_exists(transport, server.web_group):
                raise ValueError(f"web_group {server.web_group!r} does not exist on {server.remote_host}")
            if server.php_fpm_socket is None:  # nginx: fastcgi_pass; apache: proxy_fcgi
                facts["php_fpm_socket"] = servers.detect_php_fpm_socket(transport)
    finally:
        transport.close()
    get_run_logger().info("directories ready on %s: %s", server.remote_host, ", ".join(created))
    return facts


@task(name="verify-db-service", **TRANSIENT_RETRIES)
def verify_db_service(name: str) -> dict[str, Any]:
    server = _server(name)
    if server.db_service_type == "null":
        get_run_logger().info("db service: null, skipped")
        return {}
    facts = MysqlService(server).verify()
    get_run_logger().info(
        "db service: %s, can create databases and grant users (seen as %s)",
        facts["db_version"],
        facts["db_seen_as"],
    )
    return {"db_version": facts["db_version"]}


@task(name="verify-http-service", **TRANSIENT_RETRIES)
def verify_http_service(name: str, detected: dict[str, Any]) -> dict[str, Any]:
    server = _server(name)
    if server.http_service_type == "null":
        get_run_logger().info("http service: null, skipped")
        return {}
    server = server.model_copy(update={k: v for k, v in detected.items() if k in ("web_group", "php_fpm_socket")})
    transport = transport_for(server)
    try:
        facts = http_service_for(server).verify_server(transport)
    finally:
        transport.close()
    get_run_logger().info("http service: %s", facts)
    version = facts.get("http_version") or facts.get("version")
    return {"http_version": str(version)} if version else {}


CATCH_ALL_TIMEOUT = 10.0


@task(name="probe-catch-all")
def probe_catch_all(name: str) -> int | None:
    """A name no site has gets 404 from the server's catch-all, not the OS default site's page: a deleted or
    renamed site's old name must stop answering 200 (a reload is asynchronous: waits up to 10 s)."""
    server = _server(name)
    if server.http_service_type == "null":
        return None
    host = f"aegir-probe-{secrets.token_hex(4)}.invalid"
    url = f"http://{probe_address(server)}:{server.http_port}/"
    deadline = time.monotonic() + CATCH_ALL_TIMEOUT
    with httpx.Client(trust_env=False, timeout=10.0, follow_redirects=False) as client:
        while True:
            try:
                response = client.get(url, headers={"Host": host})
                if response.status_code == 404:
                    get_run_logger().info("a name no site has gets 404 from %s (%s)", name, url)
                    return 404
                seen = describe(response, text_chars=0)
            except httpx.HTTPError as e:
                seen = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                raise AegirError(
                    f"a name no site has gets {seen} from port {server.http_port} of {name}, not Aegir's 404: "
                    "another site is the port's default server (Debian: rm /etc/nginx/sites-enabled/default; "
                    "a2dissite 000-default)"
                )
            time.sleep(0.25)


@task(name="record-verified")
def record_verified(name: str, facts: dict[str, Any]) -> dict[str, Any]:
    facts = {**facts, "verified": datetime.now(UTC)}
    ctx = record(_server(name), **facts)
    return registry.public_view(ctx)
