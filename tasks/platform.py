"""Sub-tasks of verify-platform. Each takes the platform's name and returns plain facts (never secrets)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from aegir import registry
from aegir.contexts import PlatformContext, ServerContext, SiteContext
from aegir.drupal.build import build_platform, push_excludes
from aegir.drupal.scan import scan_platform
from aegir.errors import AegirError, InputError
from aegir.services.http import http_service_for
from aegir.transport.factory import connected
from aegir.transport.local import LocalTransport

from .common import TRANSIENT_RETRIES, record, store


def platform_and_server(name: str) -> tuple[PlatformContext, ServerContext]:
    s = store()
    platform = registry.load_platform(s, name)
    return platform, registry.load_server(s, platform.web_server)


@task(name="load-platform")
def load_platform(name: str) -> str:
    """Resolve the platform and its web server (which must offer an http service)."""
    platform, server = platform_and_server(name)
    if server.http_service_type == "null":
        raise AegirError(f"{platform.name}: its web_server {server.name} has no http service")
    return platform.name


@task(name="build-platform", **TRANSIENT_RETRIES)
def build_root(name: str) -> str:
    """Nothing to do when root exists; else build it from the makefile (drush make) or git_url (git clone) —
    on the web server, or on the master for a remote web server (push-platform then copies it there)."""
    platform, server = platform_and_server(name)
    with connected(server) if server.is_local else contextlib.nullcontext(LocalTransport("localhost")) as transport:
        how = build_platform(
            transport,
            root=platform.root,
            makefile=platform.makefile,
            git_url=platform.git_url,
            git_ref=platform.git_ref,
            drush=[platform.drush or server.drush_path],
        )
    get_run_logger().info("platform root %s: %s", platform.root, how)
    return how


@task(name="push-platform", **TRANSIENT_RETRIES)
def push_platform(name: str) -> str:
    """A remote web server gets the master's copy of the code at the same path (a tar stream), every site
    dir and sites.php left out: the web server's own sites stay as they are. Nothing to do for a local one."""
    platform, server = platform_and_server(name)
    if server.is_local:
        return "local"
    master = LocalTransport("localhost")
    excludes = push_excludes(master, platform.root)
    with connected(server) as transport:
        transport.push_tree(platform.root, platform.root, excludes)
    get_run_logger().info("platform %s pushed to %s:%s", platform.name, server.name, platform.root)
    return "pushed"


@task(name="scan-platform", **TRANSIENT_RETRIES)
def scan(name: str) -> dict[str, Any]:
    """Docroot, Drupal version, modules/themes/profiles (versions, schema versions), sites, sites/ writable."""
    platform, server = platform_and_server(name)
    with connected(server) as transport:
        result = scan_platform(transport, platform.root)
    if not result.sites_writable:
        raise AegirError(
            f"{result.docroot}/sites is not writable by {server.ssh_user if not server.is_local else 'us'}"
        )
    get_run_logger().info(
        "Drupal %s at %s: %d packages, profiles %s, %d sites",
        result.core_version,
        result.docroot,
        len(result.packages),
        ", ".join(p.name for p in result.profiles),
        len(result.sites),
    )
    return {
        "docroot": result.docroot,
        "drupal_version": result.core_version,
        "packages": result.package_dicts(),
        "profiles": result.profile_dicts(),
        "sites": list(result.sites),
    }


@task(name="platform-web-config", **TRANSIENT_RETRIES)
def web_config(name: str, docroot: str) -> bool:
    """The web server's platform conf (Apache: <Directory docroot>), config-tested, then one reload."""
    platform, server = platform_and_server(name)
    http = http_service_for(server)
    with connected(server) as transport:
        changed = http.write_platform_conf(transport, platform.name, docroot)
        if changed:
            http.reload(transport)
    return changed


@task(name="record-platform")
def record_platform(name: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Store what verify found on the platform block and show the package table as an artifact."""
    platform, _ = platform_and_server(name)
    fields = {k: facts[k] for k in ("docroot", "drupal_version", "packages", "profiles")}
    saved = record(platform, **fields, verified=datetime.now(UTC))
    create_table_artifact(
        key=f"platform-{platform.slug}",
        table=[
            {k: p.get(k) for k in ("name", "type", "version", "schema_version", "scope")}
            for p in sorted(facts["packages"], key=lambda p: (p["type"], p["name"]))
        ],
        description=f"{platform.name}: Drupal {facts['drupal_version']} at {facts['docroot']}, "
        f"profiles: {', '.join(p['name'] + ' (' + ', '.join(p.get('languages', [])) + ')' for p in facts['profiles'])}",
    )
    return {"name": saved.name, "drupal_version": facts["drupal_version"], "docroot": facts["docroot"]}


@task(name="platform-sites")
def platform_sites(name: str, target: str) -> list[str]:
    """The installed or disabled sites of a platform, in name order — checked before any moves: the target
    exists, is another platform, is verified and not locked."""
    s = store()
    platform, to = registry.load_platform(s, name), registry.load_platform(s, target)
    if to.name == platform.name:
        raise InputError("target", f"the sites are already on {platform.name}")
    if to.verified is None:
        raise InputError("target", f"{to.name} has not been verified: run aegir verify {to.name}")
    if to.status == "locked":
        raise InputError("target", f"{to.name} is locked: no sites can be moved onto it")
    sites = [
        c.name
        for c in s.list("site")
        if isinstance(c, SiteContext) and c.platform == platform.name and c.status in ("installed", "disabled")
    ]
    return sorted(sites)
