"""Rename fix-ups (aegir-backend.md §3.5 "deploy engine"): when a site's uri changes, the paths and links of
the old uri stored in its content must follow — ``sites/<old>/files`` → ``sites/<new>/files`` and
``//<old>/`` → ``//<new>/`` — in the text columns Drupal keeps content in, and (Drupal 7) ``system.filename``
of site-local modules. Pure: the caller lists the columns and runs the statements."""

from __future__ import annotations

import re
from collections.abc import Iterable

from aegir.drupal import phpserial

TEXT_TYPES = frozenset({"text", "mediumtext", "longtext", "tinytext", "varchar"})

# Drupal 7: field storage and custom blocks; Drupal 8+: field tables of content entities and block content
_D7_TABLES = re.compile(r"^(field_data_|field_revision_)\w+$|^block_custom$")
_D8_TABLES = re.compile(
    r"^(node|node_revision|block_content|block_content_revision|taxonomy_term|comment|paragraph|paragraphs_item)__\w+$"
)
_COLUMNS = re.compile(r"^(\w+_value|\w+_summary|body)$")


def replacements(old_uri: str, new_uri: str) -> list[tuple[str, str]]:
    return [(f"sites/{old_uri}/", f"sites/{new_uri}/"), (f"//{old_uri}/", f"//{new_uri}/")]


def content_columns(columns: Iterable[tuple[str, str, str]], major: int) -> list[tuple[str, str]]:
    """(table, column) pairs to fix, from (table, column, data_type) rows of information_schema."""
    tables = _D7_TABLES if major == 7 else _D8_TABLES
    return sorted(
        (t, c) for t, c, kind in columns if tables.match(t) and _COLUMNS.match(c) and kind.lower() in TEXT_TYPES
    )


def quote(identifier: str) -> str:
    if not re.fullmatch(r"\w+", identifier):
        raise ValueError(f"unexpected identifier {identifier!r}")
    return f"`{identifier}`"


def statements(
    columns: Iterable[tuple[str, str]], old_uri: str, new_uri: str, major: int
) -> list[tuple[str, tuple[str, ...]]]:
    """UPDATE statements (with their parameters) rewriting the old uri's paths in every given column, plus
    ``system.filename`` on Drupal 7."""
    pairs = replacements(old_uri, new_uri)
    result: list[tuple[str, tuple[str, ...]]] = []
    for table, column in columns:
        expr = quote(column)
        params: list[str] = []
        for old, new in pairs:
            expr = f"REPLACE({expr}, %s, %s)"
            params += [old, new]
        like = " OR ".join(f"{quote(column)} LIKE %s" for _ in pairs)
        params += [f"%{old}%" for old, _ in pairs]
        result.append((f"UPDATE {quote(table)} SET {quote(column)} = {expr} WHERE {like}", tuple(params)))
    if major == 7:
        old, new = pairs[0]
        result.append(
            (
                "UPDATE `system` SET `filename` = REPLACE(`filename`, %s, %s) WHERE `filename` LIKE %s",
                (old, new, f"{old}%"),
            )
        )
    return result


def renamed_site_name(name: str, old_uri: str, new_uri: str, major: int) -> str | None:
    """The site name after a rename, as Aegir's deploy engine does it: Drupal 7 replaces the old uri inside
    the name, Drupal 8+ only a name that is exactly the old uri. None when it stays."""
    if major == 7:
        return name.replace(old_uri, new_uri) if old_uri in name else None
    return new_uri if name == old_uri else None


def site_name_fix(stored: bytes | str, old_uri: str, new_uri: str, major: int) -> str | None:
    """The new serialized value for the site name's row (D7 ``variable.value`` = a serialized string, D8+
    ``config.data`` of ``system.site`` = a serialized array), or None when nothing changes."""
    value = phpserial.loads(stored)
    if major == 7:
        new = renamed_site_name(str(value), old_uri, new_uri, major)
        return None if new is None else phpserial.dumps(new)
    new = renamed_site_name(str(value.get("name", "")), old_uri, new_uri, major)
    return None if new is None else phpserial.dumps({**value, "name": new})
