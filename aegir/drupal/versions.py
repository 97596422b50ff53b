"""Drupal core and contrib version strings compared as versions (aegir-backend.md §4.3).

Aegir packs a version into a float-like ``version_code`` with two digits per part and a one-digit core
major, so ``8.9.20`` and ``8.9.21`` collapse to the same code and ``10.1.0`` reads as ``0.1``. Here a
version becomes a tuple key that compares component by component with real integers:

* core: ``7.80``, ``7.105``, ``10.2.3``, ``11.0.0-rc1``, ``7.x-dev``, ``10.3.x-dev``;
* contrib with a core-compatibility prefix: ``7.x-3.29``, ``7.x-3.0-beta2``, ``6.x-2.x-dev``, ``8.x-1.4``,
  drupal.org's post-release snapshots ``7.x-1.0+5-dev``;
* semantic contrib: ``4.0.4``, ``2.1.0-alpha3``, ``1.x-dev``.

Release types rank ``dev < unstable < alpha < beta < rc < release``. A branch ``x`` (``2.x-dev``) ranks
above every number, as composer reads ``2.x-dev`` (``2.9999999.9999999-dev``): the snapshot of a branch
is newer than its tagged releases and older than the next branch. A ``6.x-``/``7.x-`` prefix ranks first
(a Drupal 6 module is older than any Drupal 7 one); ``8.x-1.4`` is drupal.org's ``1.4.0`` and compares
with the unprefixed semantic versions. ``None``, ``""`` and ``Unknown`` (Aegir's default) sort lowest;
other unparsable strings sort just above them, among themselves by text.
"""

from __future__ import annotations

import re

RELEASE_TYPES = {"dev": 0, "unstable": 1, "alpha": 2, "beta": 3, "rc": 4}
RELEASE = 5
_BRANCH = 9_999_999  # the ``x`` of a branch version, as composer normalises it
_PARTS = 4  # numeric parts compared (1.4 == 1.4.0 == 1.4.0.0)
_MODERN = 8  # the "generation" of Drupal 8+ and unprefixed versions

_VERSION_RE = re.compile(
    r"""
    ^v?
    (?:(?P<compat>\d+)\.x-)?                       # core compatibility: 7.x-
    (?P<nums>(?:\d+|x)(?:\.(?:\d+|x)){0,3})         # 3.29 / 10.2.3 / 2.x
    (?:-?(?P<rtype>dev|unstable|alpha|beta|rc)\.?(?P<rnum>\d*))?   # -beta2 / -rc1 / -dev
    (?:\+(?P<post>\d+)(?:-dev)?)?                  # +5-dev (drupal.org snapshot after a release)
    $""",
    re.VERBOSE | re.IGNORECASE,
)

VersionKey = tuple[int, int, tuple[int, ...], int, int, int, str]


def parse_version(v: str | None) -> VersionKey:
    """A key that sorts versions as versions: ``parse_version(a) < parse_version(b)`` iff a is older."""
    text = (v or "").strip()
    if not text or text.lower() == "unknown":
        return (0, 0, (0,) * _PARTS, 0, 0, 0, "")
    m = _VERSION_RE.match(text)
    if m is None:
        return (1, 0, (0,) * _PARTS, 0, 0, 0, text)
    compat = int(m["compat"]) if m["compat"] else _MODERN
    nums = [(_BRANCH if p.lower() == "x" else int(p)) for p in m["nums"].split(".")]
    nums += [0] * (_PARTS - len(nums))
    rtype = m["rtype"]
    rank = RELEASE_TYPES[rtype.lower()] if rtype else RELEASE
    rnum = int(m["rnum"]) if m["rnum"] else 0
    post = int(m["post"]) if m["post"] else 0
    return (2, min(compat, _MODERN), tuple(nums), rank, rnum, post, "")


def compare_versions(a: str | None, b: str | None) -> int:
    """-1 if ``a`` is older than ``b``, 0 if they are the same version, 1 if ``a`` is newer."""
    ka, kb = parse_version(a), parse_version(b)
    return (ka > kb) - (ka < kb)


def drupal_major(core_version: str) -> int:
    """The major version of a Drupal core version string: ``7.80`` → 7, ``10.2.3`` → 10."""
    m = re.match(r"\s*(\d+)\.", core_version or "")
    if m is None:
        raise ValueError(f"not a Drupal core version: {core_version!r}")
    return int(m.group(1))
