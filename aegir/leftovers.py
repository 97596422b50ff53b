"""Leftovers of interrupted work in a backup directory: partial archives (``.<name>.partial``), archive work
dirs (``.<name>.tmp``) and deploy dumps (``.deploy-*.sql``). A live backup or deploy touches its files all the
time, so only those untouched for a while are stale. Also a site's complete archives that no backup record
names (a task stopped between making an archive and recording it)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from aegir.archive import EXTENSIONS


def _is_leftover(name: str) -> bool:
    return name.startswith(".") and (
        name.endswith((".partial", ".tmp")) or (name.startswith(".deploy-") and name.endswith(".sql"))
    )


def _entries(directory: str, keep: Callable[[str, str], bool]) -> list[str]:
    """The paths directly in ``directory`` whose name and absolute path ``keep`` accepts (sorted)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    paths = ((name, os.path.abspath(os.path.join(directory, name))) for name in names)
    return sorted(path for name, path in paths if keep(name, path))


def stale_leftovers(directory: str, min_age_seconds: float, now: float | None = None) -> list[str]:
    """Leftovers directly in ``directory`` last modified at least ``min_age_seconds`` ago (sorted)."""
    now = time.time() if now is None else now
    return _entries(
        directory, lambda name, path: _is_leftover(name) and now - os.lstat(path).st_mtime >= min_age_seconds
    )


def unrecorded_archives(directory: str, uri: str, since: datetime, recorded: Iterable[str]) -> list[str]:
    """The archives of site ``uri`` directly in ``directory`` (``<uri>-<YYYYmmdd.HHMMSS>.tar.*``, UTC) made at
    or after ``since`` (to the second) whose path is not in ``recorded`` (sorted)."""
    pattern = re.compile(re.escape(uri) + r"-(\d{8}\.\d{6})(" + "|".join(map(re.escape, EXTENSIONS.values())) + ")$")
    floor = since.astimezone(UTC).replace(microsecond=0, tzinfo=None)
    known = {os.path.abspath(p) for p in recorded}

    def made_since_and_unrecorded(name: str, path: str) -> bool:
        match = pattern.match(name)
        return bool(match) and datetime.strptime(match.group(1), "%Y%m%d.%H%M%S") >= floor and path not in known

    return _entries(directory, made_since_and_unrecorded)


def remove_leftover(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
