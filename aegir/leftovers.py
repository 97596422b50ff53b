"""Leftovers of interrupted work in a backup directory: partial archives (``.<name>.partial``), archive work
dirs (``.<name>.tmp``) and deploy dumps (``.deploy-*.sql``). A live backup or deploy touches its files all the
time, so only those untouched for a while are stale."""

from __future__ import annotations

import os
import shutil
import time


def _is_leftover(name: str) -> bool:
    return name.startswith(".") and (
        name.endswith((".partial", ".tmp")) or (name.startswith(".deploy-") and name.endswith(".sql"))
    )


def stale_leftovers(directory: str, min_age_seconds: float, now: float | None = None) -> list[str]:
    """Leftovers directly in ``directory`` last modified at least ``min_age_seconds`` ago (sorted)."""
    now = time.time() if now is None else now
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        if _is_leftover(name) and now - os.lstat(path).st_mtime >= min_age_seconds:
            found.append(path)
    return sorted(found)


def remove_leftover(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
