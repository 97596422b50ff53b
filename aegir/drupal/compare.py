"""Migrate pre-flight (``aegir compare @site @platform``): a site's enabled packages against a target
platform's scan, as Aegir's deploy schema check (aegir-backend.md §3.5), made stricter.

Pure: plain dicts in (the site's packages from ``sitedb.site_packages``, the target's
``PlatformScan.package_dicts()`` and ``profile_dicts()``), a ``Comparison`` out. Per enabled package:

* site-local (in the site's own directory): moves with the site → ``no change``;
* missing on the target → ``warning``;
* target schema > 0 and the site's schema above it → ``error`` (Drupal cannot go back: refuses the migrate);
* the site's schema below the target's ``hook_update_last_removed()`` → ``error`` (Drupal 8+ refuses to
  update it: "too old to update, update to an intermediate version first");
* target version lower than the current one → ``warning``;
* target version higher, target schema above the site's, or (Drupal 8+) post-update functions on the target
  the site has not run (updates pending) → ``upgrade``;
* otherwise ``no change``.

The target's schema for a module is what a fresh install of it records (``scan``: for Drupal 8+ at least its
``hook_update_last_removed()``), so a site and its own platform always agree. ``Comparison.updates_pending``
says whether ``drush updatedb`` has anything to do on the target.

Versions are compared only when both are known (``None``, ``""`` and ``Unknown`` are not: "unknown"
against a release says nothing about up or down); schemas always are.

When a name is on the target more than once (core and a contrib copy, or several profiles), the copy that
Drupal loads for the site counts: ``sites/all`` over the site's profile over core, and a Drupal 8+ top-level
``modules``/``themes`` copy over ``sites/all``. Copies inside another profile's directory are not visible to
the site.

The site's install profile is looked up by name on the target, failing that by ``old_short_name`` (the
Drupal 6 → 7 ``default`` → ``standard`` rename); not found is an ``error``. On Drupal 8+ the profile is also
in the site's module list: that entry is compared as the profile row, not as a (missing) module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aegir.drupal.versions import compare_versions

Status = Literal["error", "warning", "upgrade", "no change"]

STATUSES: tuple[Status, ...] = ("error", "warning", "upgrade", "no change")
_RANK = {s: i for i, s in enumerate(STATUSES)}
_PLURALS = {"error": "errors", "warning": "warnings", "upgrade": "upgrades", "no change": "no change"}

SITE_LOCAL_REASON = "site-local (moves with the site)"
MISSING_REASON = "missing on the target platform"


@dataclass(frozen=True)
class PackageChange:
    name: str
    type: str
    status: Status
    current_version: str | None
    target_version: str | None
    current_schema: int
    target_schema: int | None  # None when missing on the target
    reason: str
    post_updates_pending: tuple[str, ...] = ()  # Drupal 8+: post-update functions the site has not run


@dataclass(frozen=True)
class Comparison:
    profile: str  # the site's profile
    target_profile: str | None  # resolved on the target, None if not found
    changes: tuple[PackageChange, ...]  # errors, warnings, upgrades, no change; then type, name

    @property
    def errors(self) -> tuple[PackageChange, ...]:
        return tuple(c for c in self.changes if c.status == "error")

    @property
    def warnings(self) -> tuple[PackageChange, ...]:
        return tuple(c for c in self.changes if c.status == "warning")

    @property
    def ok(self) -> bool:
        """No errors (an unresolved profile is an error row): the migrate may go ahead."""
        return not self.errors

    @property
    def updates_pending(self) -> bool:
        """Whether ``drush updatedb`` on the target has work: a module whose target schema is above the site's,
        or post-update functions not run yet."""
        return any(
            c.post_updates_pending
            or (c.type == "module" and c.target_schema is not None and c.target_schema > c.current_schema)
            for c in self.changes
            if c.status != "error"
        )

    def counts(self) -> dict[str, int]:
        """Status → number of rows, all four statuses present (in severity order)."""
        out = dict.fromkeys(STATUSES, 0)
        for c in self.changes:
            out[c.status] += 1
        return out

    def rows(self) -> list[dict[str, Any]]:
        """JSON-able dicts, one per row, keys in field order (``--json`` and table artifacts)."""
        return [{**asdict(c), "post_updates_pending": list(c.post_updates_pending)} for c in self.changes]

    def summary(self) -> str:
        """``1 error, 2 warnings, 3 upgrades, 40 no change``."""
        return ", ".join(f"{n} {status if n == 1 else _PLURALS[status]}" for status, n in self.counts().items())


# -- comparison ---------------------------------------------------------------------------------------------


def _known(version: str | None) -> bool:
    """Whether a version says anything (``None``, ``""`` and ``Unknown`` compare equal to nothing)."""
    return compare_versions(version, None) != 0


def _cmp(current: str | None, target: str | None) -> int:
    """compare_versions(target, current), 0 when either is unknown."""
    if not (_known(current) and _known(target)):
        return 0
    return compare_versions(target, current)


def _precedence(pkg: Mapping[str, Any], profile: str | None) -> int | None:
    """How strongly Drupal prefers this copy for a site on ``profile``; None if the site cannot see it."""
    scope = str(pkg.get("scope") or "base")
    if scope == "sites-all":
        return 2
    if scope.startswith("profile:"):
        return 1 if profile is not None and scope == f"profile:{profile}" else None
    path = str(pkg.get("path") or "")
    if not path.startswith("core/") and path.endswith(".info.yml"):
        return 3  # Drupal 8+ top-level modules/ or themes/ (ExtensionDiscovery's ORIGIN_ROOT)
    return 0  # core: Drupal 6/7 modules/ and themes/, Drupal 8+ core/


def _target_index(
    target_packages: Iterable[Mapping[str, Any]], profile: str | None
) -> tuple[dict[tuple[str, str], Mapping[str, Any]], dict[tuple[str, str], list[str]]]:
    """(type, name) → the copy the site would load; (type, name) → other profiles that hold an invisible copy."""
    best: dict[tuple[str, str], tuple[int, Mapping[str, Any]]] = {}
    hidden: dict[tuple[str, str], list[str]] = {}
    for pkg in target_packages:
        key = (str(pkg["type"]), str(pkg["name"]))
        rank = _precedence(pkg, profile)
        if rank is None:
            hidden.setdefault(key, []).append(str(pkg.get("scope", ""))[len("profile:") :])
        elif key not in best or rank > best[key][0]:
            best[key] = (rank, pkg)
    return {k: v for k, (_, v) in best.items()}, hidden


def _version_change(current: str | None, target: str | None) -> str:
    return f"version {current} → {target}"


def _compare_package(site: Mapping[str, Any], target: Mapping[str, Any] | None, hidden: list[str]) -> PackageChange:
    name, kind = str(site["name"]), str(site["type"])
    current_version = site.get("version")
    current_schema = int(site.get("schema_version") or 0)

    def change(
        status: Status,
        reason: str,
        target_version: str | None = None,
        target_schema: int | None = None,
        post: tuple[str, ...] = (),
    ) -> PackageChange:
        return PackageChange(
            name, kind, status, current_version, target_version, current_schema, target_schema, reason, post
        )

    if site.get("site_local"):
        return change("no change", SITE_LOCAL_REASON, current_version, current_schema)
    if target is None:
        reason = MISSING_REASON
        if hidden:
            where = ", ".join(sorted(set(hidden)))
            reason += f" (only inside the directory of profile {where})"
        return change("warning", reason)
    target_version = target.get("version")
    target_schema = int(target.get("schema_version") or 0)
    if target_schema > 0 and current_schema > target_schema:
        reason = f"schema downgrade: site has schema {current_schema}, target provides {target_schema}"
        return change("error", reason, target_version, target_schema)
    last_removed = int(target.get("last_removed") or 0)
    if kind == "module" and 0 < current_schema < last_removed:
        reason = (
            f"too old to update: site has schema {current_schema}, the target removed the updates up to "
            f"{last_removed} (update to an intermediate version first)"
        )
        return change("error", reason, target_version, target_schema)
    # post-updates are compared only when the site's record lists the ones it ran (Drupal 8+)
    ran = site.get("post_updates")
    post = tuple(sorted(set(target.get("post_updates") or ()) - set(ran))) if isinstance(ran, list) else ()
    direction = _cmp(current_version, target_version)
    if direction < 0:
        reason = f"version lower on the target: {current_version} → {target_version}"
        return change("warning", reason, target_version, target_schema, post)
    reasons = []
    if direction > 0:
        reasons.append(_version_change(current_version, target_version))
    if target_schema > current_schema:
        reasons.append(f"updates pending: schema {current_schema} → {target_schema}")
    if post:
        reasons.append(f"post-updates pending: {', '.join(post)}")
    if reasons:
        return change("upgrade", "; ".join(reasons), target_version, target_schema, post)
    return change("no change", "", target_version, target_schema)


def resolve_profile(site_profile: str, target_profiles: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The target's profile for a site on ``site_profile``: same name, else the one renamed from it."""
    profiles = sorted(target_profiles, key=lambda p: str(p["name"]))
    if not site_profile:
        return None
    for p in profiles:
        if p["name"] == site_profile:
            return p
    for p in profiles:
        if p.get("old_short_name") == site_profile:
            return p
    return None


def _compare_profile(
    site_profile: str,
    target: Mapping[str, Any] | None,
    current_version: str | None,
    current_schema: int,
) -> PackageChange:
    if target is None:
        reason = (
            f"profile {site_profile} is not on the target platform"
            if site_profile
            else "the site's install profile is not known"
        )
        return PackageChange(site_profile, "profile", "error", current_version, None, current_schema, None, reason)
    target_name = str(target["name"])
    target_version = target.get("version")
    reasons = []
    if target_name != site_profile:
        reasons.append(f"renamed: {site_profile} → {target_name} on the target platform")
    direction = _cmp(current_version, target_version)
    status: Status = "no change"
    if direction < 0:
        status = "warning"
        reasons.append(f"version lower on the target: {current_version} → {target_version}")
    elif direction > 0:
        status = "upgrade"
        reasons.append(_version_change(current_version, target_version))
    # the scan records no schema for profiles: 0, as for a target package without one (never a downgrade)
    return PackageChange(
        site_profile, "profile", status, current_version, target_version, current_schema, 0, "; ".join(reasons)
    )


def _sort_key(c: PackageChange) -> tuple[int, str, str]:
    return (_RANK[c.status], c.type, c.name)


def compare_site(
    site_packages: Iterable[Mapping[str, Any]],
    target_packages: Iterable[Mapping[str, Any]],
    site_profile: str,
    target_profiles: Iterable[Mapping[str, Any]],
    *,
    site_profile_version: str | None = None,
) -> Comparison:
    """Compare the site's enabled packages (and its install profile) with what the target platform provides.

    ``site_profile_version``: the profile's version on the site's current platform, when the caller knows
    it (the site's package list does not carry it); without it the profile's version is not compared.
    """
    target_profile = resolve_profile(site_profile, target_profiles)
    target_profile_name = str(target_profile["name"]) if target_profile is not None else None
    index, hidden = _target_index(target_packages, target_profile_name)

    changes: list[PackageChange] = []
    profile_version, profile_schema = site_profile_version, 0
    for site in site_packages:
        if site.get("status") != "enabled":
            continue
        kind, name = str(site["type"]), str(site["name"])
        if kind == "module" and site_profile and name == site_profile:
            # Drupal 8+ lists the install profile among the enabled modules: it is the profile row
            profile_schema = int(site.get("schema_version") or 0)
            profile_version = profile_version or site.get("version")
            continue
        key = (kind, name)
        changes.append(_compare_package(site, index.get(key), hidden.get(key, [])))
    changes.append(_compare_profile(site_profile, target_profile, profile_version, profile_schema))
    return Comparison(site_profile, target_profile_name, tuple(sorted(changes, key=_sort_key)))


# -- table --------------------------------------------------------------------------------------------------

_HEADERS = ("STATUS", "TYPE", "NAME", "VERSION", "SCHEMA", "REASON")


def _arrow(current: object, target: object) -> str:
    cur = "-" if current is None or current == "" else str(current)
    tgt = "-" if target is None or target == "" else str(target)
    return cur if cur == tgt else f"{cur} → {tgt}"


def format_table(comparison: Comparison, *, changed_only: bool = False) -> str:
    """An aligned plain-text table: status, type, name, version and schema (``current → target``, one value
    when unchanged, ``-`` for none), reason. ``changed_only`` leaves out the ``no change`` rows."""
    rows = [
        (
            c.status,
            c.type,
            c.name,
            _arrow(c.current_version, c.target_version),
            _arrow(c.current_schema, c.target_schema),
            c.reason,
        )
        for c in comparison.changes
        if not (changed_only and c.status == "no change")
    ]
    widths = [max(len(r[i]) for r in [_HEADERS, *rows]) for i in range(len(_HEADERS))]
    rule = tuple("-" * w for w in widths)
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [_HEADERS, rule, *rows]
    ]
    return "\n".join(lines)
