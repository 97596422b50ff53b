"""A site's packages read from its own database (aegir-backend.md §4.2 "system map"): which modules and
themes are enabled and their installed schema versions; versions come from the platform's scan. Drupal 8+
packages also list the post-update functions that have run for them (``key_value`` collection
``post_update``, ``existing_updates``: every ``<name>_post_update_NAME`` run, or registered when the
extension was installed)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aegir.drupal import phpserial


def _versions(platform_packages: Iterable[dict[str, Any]]) -> dict[tuple[str, str], str | None]:
    return {(p["type"], p["name"]): p.get("version") for p in platform_packages}


def site_packages(rows_query: Any, major: int, platform_packages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows_query(sql, *args) -> list[tuple]`` runs SQL in the site's database (admin connection)."""
    versions = _versions(platform_packages)
    packages: list[dict[str, Any]] = []
    if major == 7:
        rows = rows_query(
            "SELECT name, type, status, schema_version, filename FROM system WHERE type IN (%s, %s)", "module", "theme"
        )
        for name, kind, status, schema, filename in rows:
            if str(filename).endswith(".profile"):
                continue
            packages.append(
                {
                    "name": str(name),
                    "type": str(kind),
                    "status": "enabled" if int(status) == 1 else "disabled",
                    "schema_version": max(int(schema), 0),
                    "version": versions.get((str(kind), str(name))),
                    "site_local": str(filename).startswith("sites/") and not str(filename).startswith("sites/all/"),
                }
            )
    else:
        ext_rows = rows_query("SELECT data FROM config WHERE collection = %s AND name = %s", "", "core.extension")
        extension = phpserial.loads(ext_rows[0][0]) if ext_rows else {}
        schema_rows = rows_query("SELECT name, value FROM key_value WHERE collection = %s", "system.schema")
        schema = {str(n): int(phpserial.loads(v)) for n, v in schema_rows}
        post_rows = rows_query(
            "SELECT value FROM key_value WHERE collection = %s AND name = %s", "post_update", "existing_updates"
        )
        existing = phpserial.loads(post_rows[0][0]) if post_rows else []
        ran = [str(f) for f in (existing.values() if isinstance(existing, dict) else existing or [])]
        for kind, key in (("module", "module"), ("theme", "theme")):
            for name in extension.get(key, {}) or {}:
                prefix = f"{name}_post_update_"
                packages.append(
                    {
                        "name": str(name),
                        "type": kind,
                        "status": "enabled",
                        "schema_version": schema.get(str(name), 0) if kind == "module" else 0,
                        "version": versions.get((kind, str(name))),
                        "site_local": False,
                        "post_updates": sorted({f for f in ran if f.startswith(prefix)}),
                    }
                )
    return sorted(packages, key=lambda p: (p["type"], p["name"]))
