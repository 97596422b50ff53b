"""Backup retention and scheduling policy: pure functions and pydantic models, no I/O.

A site's backups are the dicts of ``SiteContext.backups`` (``id``, ``file``, ``size``, ``created`` as an
ISO-8601 string with a UTC offset, ``reason``, ``pinned``, …). Nothing here deletes or runs anything: the
functions say *which* backups to remove and *which* sites are due; tasks act on the answer.

Retention (Aegir's ``hosting_backup_gc``)
-----------------------------------------
A policy is a list of rules "for backups older than N, keep 1 per M". Each rule is applied on its own to the
site's backups, newest first, exactly as Aegir does it: a backup is *considered* by a rule when
``created < now - older_than``; its bucket is ``floor(epoch_seconds / M)`` (epoch-aligned UTC buckets: daily
buckets start at 00:00 UTC, weekly ones on Thursdays 00:00 UTC since 1970-01-01 was a Thursday, 30-day
"months" every 30 days since the epoch); the newest considered backup of each bucket is the bucket's
*keeper*, every other considered backup in that bucket is removed. The removals of all rules are unioned.

Our changes to Aegir's algorithm:

* ``keep_one_per=None`` ("keep none"): every backup the rule considers is removed (a horizon).
* Pinned backups (``"pinned": True``, the safety backups taken before a migration or a delete) are outside
  retention: never removed, not bucketed, not counted by ``max_count`` (only ``max_bytes`` counts their size).
* Records without a usable ``created`` (missing, not ISO-8601, or without a UTC offset) are never removed.
* ``keep_latest`` (on by default): the newest unpinned backup is never removed, so a site never loses its last
  backup through retention.
* A rule's bucket is never emptied by a *finer* rule (one with a smaller ``older_than``). Aegir's plain union
  does that when periods do not nest: with "older than 7d keep 1 per 1w" and "older than 5w keep 1 per 1mo"
  (30 days), the newest backup of a 30-day bucket is usually not the newest of its week, so the weekly rule
  removes it while the monthly rule removes everything else in that bucket, and the month keeps nothing. So:
  when all of a bucket's backups end up removed and its keeper was removed only by finer rules, the keeper
  stays. When each rule's period divides the next one's (Aegir's own example: 1 per day after 1 day, 1 per
  week after 7 days, 1 per 4 weeks after 4 weeks) this never happens and the answer is Aegir's.

Then ``max_count`` (keep at most that many unpinned backups, the newest) and ``max_bytes`` (remove the oldest
unpinned backups until all of the site's backups, pinned ones included, total at most that size).

Scheduling
----------
``due_sites`` says which sites need a backup (never backed up, or the last backup is at least the site's
interval old), oldest first; ``BackupWindow`` says whether automated backups may run at a given instant.
Unlike Aegir, sites with the same last backup time are all kept (ordered by name) and windows that cross
midnight (22:00–04:00) work.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import InputError

# --------------------------------------------------------------------------------------------------------
# durations
# --------------------------------------------------------------------------------------------------------
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MONTH = timedelta(days=30)
YEAR = timedelta(days=365)

# compact unit → length; format_duration tries them in this order (largest first)
_UNITS: dict[str, timedelta] = {"y": YEAR, "mo": MONTH, "w": WEEK, "d": DAY, "h": HOUR}
_LONG_UNITS: dict[str, str] = {"hour": "h", "day": "d", "week": "w", "month": "mo", "year": "y"}
_DURATION_RE = re.compile(r"^(?P<count>\d{1,9})?\s*(?P<unit>[a-z]+)$")
_MINUTES_RE = re.compile(r"^\d*\s*(m|mins?|minutes?)$", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DURATION_RULE = "use a number and a unit h, d, w, mo, y (e.g. 7d, 5w, 12mo, or 7 days, 1 week)"


def _count_and_unit(text: str) -> tuple[int, str]:
    """``"7 days"`` → ``(7, "d")``; ``ValueError`` saying what is allowed otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration: {DURATION_RULE}")
    m = _DURATION_RE.match(text.strip().lower())
    if m:
        count_text, word = m["count"], m["unit"]
        unit: str | None = None
        if word in _UNITS:
            unit = word if count_text is not None else None  # "d" alone is not a duration, "day" is
        elif word in _LONG_UNITS:
            unit = _LONG_UNITS[word]
        elif word.endswith("s") and word[:-1] in _LONG_UNITS and count_text is not None:
            unit = _LONG_UNITS[word[:-1]]
        if unit is not None:
            count = 1 if count_text is None else int(count_text)
            if count < 1:
                raise ValueError(f"{text!r} is not a duration: the number must be at least 1; {DURATION_RULE}")
            try:
                _UNITS[unit] * count
            except OverflowError:
                raise ValueError(f"{text!r} is too long a duration") from None
            return count, unit
    hint = " (minutes are not supported; months are 'mo')" if _MINUTES_RE.match(text.strip()) else ""
    raise ValueError(f"{text!r} is not a duration: {DURATION_RULE}{hint}")


def parse_duration(text: str) -> timedelta:
    """``"7d"``, ``"5 w"``, ``"12mo"``, ``"1y"``, ``"6h"``, ``"7 days"``, ``"1 week"``, ``"month"`` → timedelta.

    Units: h (hours), d (days), w (weeks), mo (months of 30 days), y (years of 365 days), or their English
    names (singular or plural); the count is a whole number ≥ 1, and may be left out before a long name only
    (``"day"`` = 1 day). Case and spaces around the unit do not matter. Anything else raises ``ValueError``
    saying what is allowed."""
    count, unit = _count_and_unit(text)
    return _UNITS[unit] * count


def compact_duration(text: str) -> str:
    """A duration written the short way, keeping the unit it was given in: ``"7 days"`` → ``"7d"``,
    ``"week"`` → ``"1w"``, ``"12 Months"`` → ``"12mo"`` (``format_duration`` would pick the largest unit)."""
    count, unit = _count_and_unit(text)
    return f"{count}{unit}"


def format_duration(td: timedelta) -> str:
    """The compact form of a duration: the largest of y, mo, w, d, h that divides it exactly
    (``timedelta(days=35)`` → ``"5w"``, ``timedelta(days=360)`` → ``"12mo"``, ``timedelta(days=365)`` → ``"1y"``).
    Raises ``ValueError`` for durations that are not a positive whole number of hours."""
    if td <= timedelta(0) or td % HOUR:
        raise ValueError(f"{td} is not a positive whole number of hours")
    for unit, length in _UNITS.items():
        if not td % length:
            return f"{td // length}{unit}"
    raise AssertionError("unreachable: every whole number of hours is divisible by 1h")  # pragma: no cover


# --------------------------------------------------------------------------------------------------------
# retention rules and policy
# --------------------------------------------------------------------------------------------------------
RULE_FORMS = "'older than 7d keep 1 per 1w', 'older than 1y keep none', '7d:1w' or '1y:none'"
_NONE_WORDS = ("", "none", "keep none", "nothing")
_LONG_RULE_RE = re.compile(
    r"^(?:for\s+(?:backups\s+)?)?older\s+than\s+(?P<old>.+?)\s*,?\s*keep\s+(?P<keep>.+)$", re.IGNORECASE
)
_KEEP_RE = re.compile(r"^(?:(?P<n>\d+|one)\s+(?:backups?\s+)?per\s+(?P<per>.+)|none|nothing)$", re.IGNORECASE)


def _duration_field(field: str, value: Any) -> str:
    """A duration field's value in its compact form; ``InputError`` naming the field otherwise."""
    if isinstance(value, timedelta):
        try:
            return format_duration(value)
        except ValueError as e:
            raise InputError(field, str(e)) from None
    try:
        return compact_duration(value)
    except ValueError as e:
        raise InputError(field, str(e)) from None


class RetentionRule(BaseModel):
    """One line of a retention policy: for backups older than ``older_than``, keep 1 per ``keep_one_per``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    older_than: str = Field(
        description="Applies to backups older than this, e.g. 7d (units: h, d, w, mo = 30 days, y = 365 days)"
    )
    keep_one_per: str | None = Field(
        None,
        description="Keep the newest backup of each period of this length, e.g. 1w; empty or 'none' removes "
        "every backup older than 'older than' (pinned ones excepted)",
    )

    @field_validator("older_than", mode="before")
    @classmethod
    def _older_than(cls, v: Any) -> str:
        return _duration_field("older_than", v)

    @field_validator("keep_one_per", mode="before")
    @classmethod
    def _keep_one_per(cls, v: Any) -> str | None:
        if v is None or (isinstance(v, str) and v.strip().lower() in _NONE_WORDS):
            return None
        return _duration_field("keep_one_per", v)

    @property
    def older_than_delta(self) -> timedelta:
        return parse_duration(self.older_than)

    @property
    def keep_delta(self) -> timedelta | None:
        return None if self.keep_one_per is None else parse_duration(self.keep_one_per)

    def describe(self) -> str:
        """``"older than 7d keep 1 per 1w"`` or ``"older than 1y keep none"`` (``parse_rule`` reads it back)."""
        keep = "keep none" if self.keep_one_per is None else f"keep 1 per {self.keep_one_per}"
        return f"older than {self.older_than} {keep}"


def parse_rule(text: str) -> RetentionRule:
    """``"older than 7 days keep 1 per week"``, ``"older than 1y keep none"``, ``"7d:1w"``, ``"1y:none"`` →
    RetentionRule. Raises ``ValueError`` (an ``InputError`` naming the field for a bad duration)."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a retention rule: use {RULE_FORMS}")
    s = " ".join(text.split())
    if m := _LONG_RULE_RE.match(s):
        old, keep_text = m["old"], m["keep"]
        k = _KEEP_RE.match(keep_text)
        if not k:
            raise ValueError(f"{text!r} is not a retention rule: after 'keep' write '1 per <duration>' or 'none'")
        if k["n"] is not None and k["n"].lower() not in ("1", "one"):
            raise ValueError(f"{text!r}: only 1 backup per period can be kept (write 'keep 1 per {k['per']}')")
        keep: str | None = k["per"]
    elif s.count(":") == 1:
        old, keep = (part.strip() for part in s.split(":"))
    else:
        raise ValueError(f"{text!r} is not a retention rule: use {RULE_FORMS}")
    try:
        return RetentionRule(older_than=old, keep_one_per=keep)
    except ValidationError as e:
        raise InputError.from_validation(e) from None


DEFAULT_RULES: tuple[RetentionRule, ...] = (
    RetentionRule(older_than="1d", keep_one_per="1d"),
    RetentionRule(older_than="7d", keep_one_per="1w"),
    RetentionRule(older_than="5w", keep_one_per="1mo"),
    RetentionRule(older_than="12mo", keep_one_per=None),
)
"""Daily for 7 days, weekly for 5 weeks, monthly for 12 months. Every backup from the last day is kept; past
that, one per (UTC) day until 7 days; one per (epoch-aligned, Thursday-based) week until 5 weeks; one per
30-day month until 12 months (360 days); nothing older, except pinned backups (never removed) and, with
``keep_latest``, the site's newest backup. With one backup a day this keeps 22 to 24 backups."""


class RetentionPolicy(BaseModel):
    """Which backups of a site to remove.

    ``rules`` thin out old backups (see the module docstring for the algorithm); then at most ``max_count``
    unpinned backups are kept (the newest); then the oldest unpinned backups are removed while all of the
    site's backups (pinned ones included) total more than ``max_bytes``. Pinned backups are never removed.
    With ``keep_latest`` (the default) the newest unpinned backup is never removed by any rule, by
    ``max_count`` or by ``max_bytes``, so a site never loses its last backup through retention (even if its
    backups are all older than the last rule's horizon, or alone exceed ``max_bytes``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[RetentionRule] = Field(
        default_factory=lambda: list(DEFAULT_RULES),
        description="Rules 'for backups older than N keep 1 per M' (e.g. '7d:1w', 'older than 1y keep none'); "
        "the default is daily for 7 days, weekly for 5 weeks, monthly for 12 months",
    )
    max_count: int | None = Field(
        None, ge=1, description="Keep at most this many backups (the newest; pinned backups are not counted)"
    )
    max_bytes: int | None = Field(
        None,
        ge=1,
        description="Remove the oldest backups while all of the site's backups (pinned included) total more than "
        "this many bytes; pinned backups are never removed",
    )
    keep_latest: bool = Field(True, description="Never remove the site's newest (unpinned) backup")

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            return [parse_rule(r) if isinstance(r, str) else r for r in v]
        return v

    def describe(self) -> str:
        parts = [r.describe() for r in self.rules] or ["no age rules"]
        if self.max_count is not None:
            parts.append(f"at most {self.max_count} backups")
        if self.max_bytes is not None:
            parts.append(f"at most {format_bytes(self.max_bytes)}")
        if self.keep_latest:
            parts.append("the newest backup always kept")
        return "; ".join(parts)


@dataclass(frozen=True)
class Removal:
    """A backup record to remove and why (one line for the task log)."""

    backup: dict[str, Any]
    reason: str


def format_bytes(n: int) -> str:
    """``5_000_000_000`` → ``"5.0 GB"`` (decimal units: kB, MB, GB, TB, PB)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def backup_created(backup: dict[str, Any]) -> datetime | None:
    """When a backup record was made (aware datetime), or None when ``created`` is missing, not ISO-8601
    or has no UTC offset."""
    value = backup.get("created") if isinstance(backup, dict) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        return None
    return value


def _label(backup: dict[str, Any]) -> str:
    if backup.get("id"):
        return str(backup["id"])
    if backup.get("file"):
        return posixpath.basename(str(backup["file"]))
    return str(backup.get("created"))


def _size(backup: dict[str, Any]) -> int | None:
    size = backup.get("size")
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    return None


def _require_aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")


@dataclass
class _Entry:
    backup: dict[str, Any]
    created: datetime
    key: tuple[datetime, str, str]  # sort key: created, then id and file so that input order never matters


def _bucket_start(bucket: int, keep: timedelta) -> str:
    start = _EPOCH + bucket * keep
    return start.date().isoformat() if not keep % DAY else start.strftime("%Y-%m-%d %H:%M UTC")


def backups_to_remove(backups: list[dict[str, Any]], policy: RetentionPolicy, now: datetime) -> list[Removal]:
    """The backups that ``policy`` removes at ``now`` (timezone-aware), oldest first, each with its reason.

    When several rules remove a backup, the reason is that of the first rule by ``older_than`` (shortest
    first). The order of ``backups`` does not matter."""
    _require_aware(now)
    entries: list[_Entry] = []
    for b in backups:
        created = backup_created(b)
        if created is None or b.get("pinned"):
            continue
        entries.append(_Entry(b, created, (created, str(b.get("id") or ""), str(b.get("file") or ""))))
    entries.sort(key=lambda e: e.key, reverse=True)  # newest first, like Aegir's ORDER BY timestamp DESC

    rules = sorted(policy.rules, key=lambda r: r.older_than_delta)  # stable: same older_than keeps input order
    # per entry (by position in ``entries``): the rules removing it, as (rule index in ``rules``, reason)
    removed_by: dict[int, list[tuple[int, str]]] = {}
    keepers: list[dict[int, int]] = []  # per rule: bucket → position of its keeper
    for ri, rule in enumerate(rules):
        threshold = now - rule.older_than_delta
        keep = rule.keep_delta
        rule_keepers: dict[int, int] = {}
        keepers.append(rule_keepers)
        for pos, e in enumerate(entries):
            if not e.created < threshold:
                continue
            if keep is None:
                removed_by.setdefault(pos, []).append((ri, f"older than {rule.older_than}: none kept"))
                continue
            bucket = (e.created - _EPOCH) // keep
            if bucket not in rule_keepers:
                rule_keepers[bucket] = pos
                continue
            keeper = entries[rule_keepers[bucket]].backup
            reason = (
                f"older than {rule.older_than}: 1 per {rule.keep_one_per} kept "
                f"(bucket of {_bucket_start(bucket, keep)}, kept {_label(keeper)})"
            )
            removed_by.setdefault(pos, []).append((ri, reason))

    if policy.keep_latest and entries:
        removed_by.pop(0, None)

    # a bucket is never emptied by finer rules alone: its keeper stays (coarsest rules first)
    for ri in range(len(rules) - 1, -1, -1):
        keep = rules[ri].keep_delta
        if keep is None or not keepers[ri]:
            continue
        members: dict[int, list[int]] = {}
        for pos, e in enumerate(entries):
            members.setdefault((e.created - _EPOCH) // keep, []).append(pos)
        own = rules[ri].older_than_delta
        for bucket, pos in keepers[ri].items():
            if pos not in removed_by or any(p not in removed_by for p in members[bucket]):
                continue
            if all(rules[rj].older_than_delta < own for rj, _ in removed_by[pos]):
                del removed_by[pos]

    survivors = [pos for pos in range(len(entries)) if pos not in removed_by]  # newest first
    reasons: dict[int, str] = {pos: why[0][1] for pos, why in removed_by.items()}

    if policy.max_count is not None and len(survivors) > policy.max_count:
        for pos in survivors[policy.max_count :]:
            reasons[pos] = f"more than {policy.max_count} backups (max_count)"
        survivors = survivors[: policy.max_count]

    if policy.max_bytes is not None:
        total = sum(_size(b) or 0 for b in backups) - sum(_size(entries[pos].backup) or 0 for pos in reasons)
        protected = 0 if policy.keep_latest and entries else None
        for pos in reversed(survivors):  # oldest first
            if total <= policy.max_bytes:
                break
            size = _size(entries[pos].backup)
            if pos == protected or not size:  # a record of unknown size would free nothing we know of
                continue
            reasons[pos] = f"total {format_bytes(total)} over max_bytes {format_bytes(policy.max_bytes)}"
            total -= size

    return [Removal(entries[pos].backup, reasons[pos]) for pos in sorted(reasons, reverse=True)]


# --------------------------------------------------------------------------------------------------------
# scheduling
# --------------------------------------------------------------------------------------------------------
Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WEEKDAYS: tuple[Weekday, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class BackupWindow(BaseModel):
    """When automated backups may run: on ``days``, from ``start`` to ``end`` (inclusive, to the end of that
    minute), local wall-clock time in ``timezone``.

    A window with ``start`` after ``end`` crosses midnight (22:00–04:00): the night belongs to the day it
    starts on, so ``days=["Fri"]`` covers Friday 22:00 to Saturday 04:00 (through 04:00:59). ``start == end``
    is a one-minute window. Across DST changes the wall clock decides: on a spring-forward day the
    skipped hour does not exist (a window lying wholly in it does not open that day), on a fall-back day the
    repeated hour is inside the window both times."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS), description="Days the window opens on (Mon..Sun)"
    )
    start: str = Field("00:00", description="Local time the window opens, HH:MM (00:00–23:59)")
    end: str = Field(
        "23:59",
        description="Local time the window closes, HH:MM, inclusive; earlier than start means the next morning",
    )
    timezone: str = Field("UTC", description="IANA time zone of start and end, e.g. Europe/Berlin")

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[Weekday]) -> list[Weekday]:
        if not v:
            raise InputError("days", "pick at least one day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
        return [d for d in WEEKDAYS if d in v]

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, v: Any, info: ValidationInfo) -> str:
        m = _TIME_RE.match(v.strip()) if isinstance(v, str) else None
        if not m:
            field = info.field_name or "time"
            raise InputError(field, f"{v!r} is not a time: use HH:MM from 00:00 to 23:59 (e.g. 22:00)")
        return f"{int(m[1]):02d}:{m[2]}"

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except Exception:  # ZoneInfoNotFoundError (a KeyError), ValueError for malformed keys, OSError
            raise InputError(
                "timezone", f"{v!r} is not a time zone: use an IANA name such as UTC or Europe/Berlin"
            ) from None
        return v

    def contains(self, now: datetime) -> bool:
        """Whether the (timezone-aware) instant ``now`` is inside the window."""
        _require_aware(now)
        local = now.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        today = WEEKDAYS[local.weekday()]
        if start <= end:
            return today in self.days and start <= minute <= end
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        return (today in self.days and minute >= start) or (yesterday in self.days and minute <= end)

    def describe(self) -> str:
        """``"Mon–Fri 22:00–04:00 Europe/Berlin"``; ``"every day …"`` for all seven days."""
        return f"{_describe_days(self.days)} {self.start}–{self.end} {self.timezone}"


def _describe_days(days: list[Weekday]) -> str:
    if len(days) == 7:
        return "every day"
    idx = sorted(WEEKDAYS.index(d) for d in days)
    runs: list[list[int]] = []
    for i in idx:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{WEEKDAYS[run[0]]}–{WEEKDAYS[run[-1]]}")
        else:
            parts.extend(WEEKDAYS[i] for i in run)
    return ", ".join(parts)


@dataclass(frozen=True)
class SiteDue:
    """A site's backup schedule: its name, its last backup (aware, None if never) and its interval."""

    name: str
    last_backup: datetime | None
    interval: timedelta

    def __post_init__(self) -> None:
        if self.last_backup is not None and (self.last_backup.tzinfo is None or self.last_backup.utcoffset() is None):
            raise ValueError(f"{self.name}: last_backup must be timezone-aware, got {self.last_backup!r}")
        if self.interval <= timedelta(0):
            raise ValueError(f"{self.name}: the backup interval must be positive, got {self.interval}")


def due_sites(sites: list[SiteDue], now: datetime) -> list[SiteDue]:
    """The sites due for a backup at ``now`` (aware): never backed up, or ``last_backup + interval <= now``.
    Never-backed-up sites first, then the oldest last backup first; equal times by name."""
    _require_aware(now)
    due = [s for s in sites if s.last_backup is None or s.last_backup + s.interval <= now]
    return sorted(due, key=lambda s: (s.last_backup is not None, s.last_backup or now, s.name))


def last_backup_time(backups: list[dict[str, Any]]) -> datetime | None:
    """The newest ``created`` among the records (whatever their reason), None if none has a usable one."""
    times = [t for t in (backup_created(b) for b in backups) if t is not None]
    return max(times) if times else None


__all__ = [
    "DEFAULT_RULES",
    "WEEKDAYS",
    "BackupWindow",
    "Removal",
    "RetentionPolicy",
    "RetentionRule",
    "SiteDue",
    "backup_created",
    "backups_to_remove",
    "compact_duration",
    "due_sites",
    "format_bytes",
    "format_duration",
    "last_backup_time",
    "parse_duration",
    "parse_rule",
]
