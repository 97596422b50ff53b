"""Backup retention and scheduling policy (aegir.backup_policy): pure functions, no services.

Every expected set of survivors / removals below is worked out by hand in the comments next to it (epoch
buckets: days start at 00:00 UTC, weeks on Thursdays 00:00 UTC, 30-day months every 30 days since
1970-01-01); none is recomputed with the algorithm under test.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from aegir.backup_policy import (
    DEFAULT_RULES,
    BackupWindow,
    RetentionPolicy,
    RetentionRule,
    SiteDue,
    backup_created,
    backups_to_remove,
    compact_duration,
    due_sites,
    format_bytes,
    format_duration,
    last_backup_time,
    parse_duration,
    parse_rule,
)
from aegir.errors import InputError

GB = 1_000_000_000


def rec(created: str | None, ident: str | None = None, **extra: Any) -> dict[str, Any]:
    """A backup record like SiteContext.backups holds; ``created`` is an ISO string (UTC) or None (missing)."""
    r: dict[str, Any] = {
        "id": ident or f"ex-{created}",
        "file": f"/var/aegir/backups/{ident or created}.tar.gz",
        "server": "@server_master",
        "size": 1000,
        "reason": "Automated backup",
        "pinned": False,
        "compression": "gzip",
    }
    if created is not None:
        r["created"] = created
    r.update(extra)
    return r


def ids(backups: list[dict[str, Any]]) -> list[str]:
    return [b["id"] for b in backups]


# --------------------------------------------------------------------------------------------------------
# durations
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6h", timedelta(hours=6)),
        ("7d", timedelta(days=7)),
        ("7 d", timedelta(days=7)),
        ("5w", timedelta(days=35)),
        ("12mo", timedelta(days=360)),
        ("12 MO", timedelta(days=360)),
        ("1y", timedelta(days=365)),
        ("2Y", timedelta(days=730)),
        ("1 hour", timedelta(hours=1)),
        ("7 days", timedelta(days=7)),
        ("1 days", timedelta(days=1)),
        ("5 weeks", timedelta(days=35)),
        ("12 months", timedelta(days=360)),
        ("1 year", timedelta(days=365)),
        ("  3 Years ", timedelta(days=1095)),
        ("hour", timedelta(hours=1)),
        ("day", timedelta(days=1)),
        ("Week", timedelta(days=7)),
        ("month", timedelta(days=30)),
        ("year", timedelta(days=365)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["7x", "90m", "", "d", "days", "weeks", "0d", "0 days", "-1d", "1.5d", "7", "7 dayz", "1w2d", "mo7", "1 fortnight"],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_duration(text)
    msg = str(e.value)
    assert f"{text!r}" in msg
    assert "h, d, w, mo, y" in msg


def test_parse_duration_messages() -> None:
    expected = r"^'7x' is not a duration: use a number and a unit h, d, w, mo, y \(e\.g\. 7d, 5w, 12mo"
    with pytest.raises(ValueError, match=expected):
        parse_duration("7x")
    with pytest.raises(ValueError, match="minutes are not supported; months are 'mo'"):
        parse_duration("90m")
    with pytest.raises(ValueError, match="at least 1"):
        parse_duration("0w")
    with pytest.raises(ValueError, match="too long"):
        parse_duration("999999999y")
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(7)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("td", "expected"),
    [
        (timedelta(hours=6), "6h"),
        (timedelta(hours=30), "30h"),
        (timedelta(days=1), "1d"),
        (timedelta(days=2), "2d"),
        (timedelta(days=7), "1w"),
        (timedelta(days=14), "2w"),
        (timedelta(days=35), "5w"),
        (timedelta(days=30), "1mo"),
        (timedelta(days=60), "2mo"),
        (timedelta(days=210), "7mo"),  # also 30w: months come first
        (timedelta(days=360), "12mo"),
        (timedelta(days=365), "1y"),
        (timedelta(days=730), "2y"),
        (timedelta(days=400), "400d"),
    ],
)
def test_format_duration(td: timedelta, expected: str) -> None:
    assert format_duration(td) == expected
    assert parse_duration(expected) == td


@pytest.mark.parametrize("td", [timedelta(0), timedelta(days=-1), timedelta(minutes=90), timedelta(seconds=1)])
def test_format_duration_refuses(td: timedelta) -> None:
    with pytest.raises(ValueError, match="not a positive whole number of hours"):
        format_duration(td)


@pytest.mark.parametrize(
    ("text", "expected"), [("7 days", "7d"), ("week", "1w"), ("12 Months", "12mo"), ("5W", "5w"), ("1 year", "1y")]
)
def test_compact_duration_keeps_the_unit(text: str, expected: str) -> None:
    assert compact_duration(text) == expected


# --------------------------------------------------------------------------------------------------------
# rules and policy models
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "older_than", "keep", "described"),
    [
        ("older than 7 days keep 1 per week", "7d", "1w", "older than 7d keep 1 per 1w"),
        ("Older than 7d, keep one per 1w", "7d", "1w", "older than 7d keep 1 per 1w"),
        ("For backups older than 4 weeks, keep 1 backup per 4 weeks", "4w", "4w", "older than 4w keep 1 per 4w"),
        ("older than 1y keep none", "1y", None, "older than 1y keep none"),
        ("7d:1w", "7d", "1w", "older than 7d keep 1 per 1w"),
        (" 5w : 1mo ", "5w", "1mo", "older than 5w keep 1 per 1mo"),
        ("1y:none", "1y", None, "older than 1y keep none"),
        ("12mo:", "12mo", None, "older than 12mo keep none"),
    ],
)
def test_parse_rule(text: str, older_than: str, keep: str | None, described: str) -> None:
    rule = parse_rule(text)
    assert (rule.older_than, rule.keep_one_per) == (older_than, keep)
    assert rule.describe() == described
    assert parse_rule(rule.describe()) == rule


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("blah", r"'blah' is not a retention rule: use 'older than 7d keep 1 per 1w'.*'7d:1w' or '1y:none'"),
        ("7d:1w:2d", "is not a retention rule"),
        ("older than 7d keep all", "after 'keep' write '1 per <duration>' or 'none'"),
        ("older than 7d keep 2 per 1w", "only 1 backup per period"),
        ("7x:1w", r"^older_than: '7x' is not a duration: use a number and a unit h, d, w, mo, y"),
        ("older than 7d keep 1 per fortnight", r"^keep_one_per: 'fortnight' is not a duration"),
    ],
)
def test_parse_rule_refuses(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_rule(text)


def test_parse_rule_bad_duration_is_an_input_error_naming_the_field() -> None:
    with pytest.raises(InputError) as e:
        parse_rule("7d:0w")
    assert e.value.field == "keep_one_per"


def test_retention_rule_model() -> None:
    rule = RetentionRule(older_than="7 days", keep_one_per="week")
    assert (rule.older_than, rule.keep_one_per) == ("7d", "1w")
    assert rule.older_than_delta == timedelta(days=7)
    assert rule.keep_delta == timedelta(days=7)
    horizon = RetentionRule(older_than="1y", keep_one_per="none")
    assert horizon.keep_one_per is None and horizon.keep_delta is None
    assert horizon.describe() == "older than 1y keep none"
    assert RetentionRule(older_than=timedelta(days=35), keep_one_per=timedelta(days=30)).describe() == (
        "older than 5w keep 1 per 1mo"
    )
    schema = RetentionRule.model_json_schema()["properties"]
    assert "older than" in schema["older_than"]["description"].lower()
    assert "none" in schema["keep_one_per"]["description"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"older_than": "7x", "keep_one_per": "1w"}, "older_than"),
        ({"older_than": "7d", "keep_one_per": "7x"}, "keep_one_per"),
        ({"older_than": "0d", "keep_one_per": "1w"}, "older_than"),
        ({"older_than": "7d", "keep_one_per": timedelta(minutes=5)}, "keep_one_per"),
    ],
)
def test_retention_rule_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        RetentionRule(**kwargs)
    assert f"{field}: " in str(e.value)
    err = InputError.from_validation(e.value)
    assert err.field == field
    assert "h, d, w, mo, y" in str(err) or "hours" in str(err)


def test_default_rules() -> None:
    assert [r.describe() for r in DEFAULT_RULES] == [
        "older than 1d keep 1 per 1d",
        "older than 7d keep 1 per 1w",
        "older than 5w keep 1 per 1mo",
        "older than 12mo keep none",
    ]
    policy = RetentionPolicy()
    assert policy.rules == list(DEFAULT_RULES)
    assert (policy.max_count, policy.max_bytes, policy.keep_latest) == (None, None, True)


def test_retention_policy_model() -> None:
    policy = RetentionPolicy(rules=["7d:1w", "older than 1y keep none"], max_count=10, max_bytes=4 * GB)
    assert policy.rules == [RetentionRule(older_than="7d", keep_one_per="1w"), RetentionRule(older_than="1y")]
    assert policy.describe() == (
        "older than 7d keep 1 per 1w; older than 1y keep none; at most 10 backups; at most 4.0 GB; "
        "the newest backup always kept"
    )
    assert RetentionPolicy.model_validate(policy.model_dump()) == policy
    for bad in ({"max_count": 0}, {"max_bytes": 0}, {"rules": ["nonsense"]}, {"max_cuont": 3}):
        with pytest.raises(ValidationError):
            RetentionPolicy(**bad)


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (5 * GB, "5.0 GB"), (1_240_000, "1.2 MB")]
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


# --------------------------------------------------------------------------------------------------------
# retention: three years of backups every 6 hours under DEFAULT_RULES
# --------------------------------------------------------------------------------------------------------
# NOW is day 20790 since the epoch (a Thursday, 20790 = 210 * 99): day, week and 30-day bucket boundaries all
# fall on NOW, so backup k (k = 1..4380, made at NOW - 6h*k) lies in
#   day bucket   D-j  for k in 4(j-1)+1 .. 4j   (newest: k = 4j-3, at 18:00)
#   week bucket  W_i  for k in 28i+1 .. 28i+28  (newest: k = 28i+1), W_i = [NOW-7(i+1)d, NOW-7i d)
#   month bucket M_m  for k in 120m+1 .. 120m+120 (newest: k = 120m+1)
# and the rules consider: 1d → k > 4; 7d → k > 28; 5w → k > 140; 12mo → k > 1440 (strictly older).
# Survivors:
#   k = 1..4            the last day (k = 4 is exactly 1d old, not older)
#   k = 5, 9, ..., 25   newest of each day, up to 7d (k = 25 is the newest of day D-7; k = 28 is exactly 7d old)
#   k = 29, 57, 85, 113 newest of each week W_1..W_4, up to 5w (k = 140 is exactly 5w old)
#   k = 141             newest considered of M_1 (k = 121..140 are younger than 5w), also newest of W_5 and day
#   k = 120m+1, m=2..11 newest of M_m. The weekly rule removes most of them (they are the newest of their week
#                       only when 30m is a multiple of 7, i.e. m = 7), and the monthly rule removes every other
#                       backup of M_m: Aegir's plain union would leave those months empty (16 survivors in all,
#                       not 25); we keep the month's newest.
#   nothing with k > 1440 (older than 360 days); k = 1441 is the newest of M_12 but older than 12mo.
NOW = datetime(2026, 12, 3, tzinfo=UTC)
SURVIVORS_3Y = [
    "s-20261202T1800",  # k=1
    "s-20261202T1200",
    "s-20261202T0600",
    "s-20261202T0000",  # k=4, exactly 1 day old
    "s-20261201T1800",  # k=5: newest of 12-01
    "s-20261130T1800",
    "s-20261129T1800",
    "s-20261128T1800",
    "s-20261127T1800",
    "s-20261126T1800",  # k=25: newest of 11-26 (day D-7)
    "s-20261125T1800",  # k=29: newest of week 11-19..11-25
    "s-20261118T1800",
    "s-20261111T1800",
    "s-20261104T1800",  # k=113: newest of week 10-29..11-04
    "s-20261028T1800",  # k=141: newest older than 5w in month 10-04..11-02
    "s-20261003T1800",  # k=241: newest of month 09-04..10-03
    "s-20260903T1800",
    "s-20260804T1800",
    "s-20260705T1800",
    "s-20260605T1800",
    "s-20260506T1800",  # k=841: also the newest of its week (m = 7)
    "s-20260406T1800",
    "s-20260307T1800",
    "s-20260205T1800",
    "s-20260106T1800",  # k=1321: newest of month 2025-12-08..2026-01-06
]
PINNED_2Y = [
    rec("2024-12-01T03:00:00+00:00", "p-pre-migration", pinned=True, reason="Pre-migration backup"),
    rec("2024-06-10T09:30:00+00:00", "p-pre-delete", pinned=True, reason="Pre-delete backup"),
]


def history_3y() -> list[dict[str, Any]]:
    out = []
    for k in range(1, 3 * 365 * 4 + 1):
        t = NOW - timedelta(hours=6 * k)
        out.append(rec(t.isoformat(), f"s-{t:%Y%m%dT%H%M}"))
    return out + PINNED_2Y


@pytest.fixture(scope="module")
def removed_3y() -> dict[str, str]:
    return {r.backup["id"]: r.reason for r in backups_to_remove(history_3y(), RetentionPolicy(), NOW)}


def test_three_years_exact_survivors(removed_3y: dict[str, str]) -> None:
    history = history_3y()
    assert len(history) == 4382
    kept = [b["id"] for b in history if b["id"] not in removed_3y]
    assert kept == SURVIVORS_3Y + ["p-pre-migration", "p-pre-delete"]
    assert len(removed_3y) == 4380 - 25


def test_three_years_boundaries(removed_3y: dict[str, str]) -> None:
    # day bucket 2026-11-30 (k = 9..12): the newest, 18:00, survives; the others name it
    for t in ("20261130T1200", "20261130T0600", "20261130T0000"):
        assert removed_3y[f"s-{t}"] == "older than 1d: 1 per 1d kept (bucket of 2026-11-30, kept s-20261130T1800)"
    # week bucket Thu 2026-11-19 .. Wed 11-25 (k = 29..56): the newest, 11-25 18:00, survives
    assert "s-20261125T1800" not in removed_3y
    assert removed_3y["s-20261124T1800"] == (
        "older than 7d: 1 per 1w kept (bucket of 2026-11-19, kept s-20261125T1800)"
    )
    # week 10-01..10-07 keeps 10-07 18:00 by the weekly rule, which the monthly rule removes (month 10-04..11-02
    # keeps 10-28 18:00); 10-03 18:00, removed by the weekly rule only, survives as the newest of its month
    assert removed_3y["s-20261002T1800"] == (
        "older than 7d: 1 per 1w kept (bucket of 2026-10-01, kept s-20261007T1800)"
    )
    assert removed_3y["s-20261007T1800"] == (
        "older than 5w: 1 per 1mo kept (bucket of 2026-10-04, kept s-20261028T1800)"
    )
    assert "s-20261003T1800" not in removed_3y
    assert removed_3y["s-20261003T1200"] == (
        "older than 1d: 1 per 1d kept (bucket of 2026-10-03, kept s-20261003T1800)"
    )
    # the 12-month horizon: 2025-12-08 00:00 is exactly 360 days old (not removed by "none"), but not the
    # newest of its day; 2025-12-07 18:00 is the newest of its day and of month 2025-11-08..12-07 but too old
    assert removed_3y["s-20251208T0000"].startswith("older than 1d: ")
    assert removed_3y["s-20251207T1800"] == (
        "older than 7d: 1 per 1w kept (bucket of 2025-12-04, kept s-20251210T1800)"
    )
    assert removed_3y["s-20231204T0000"].startswith("older than 1d: ")


def test_three_years_last_day_all_kept_nothing_older_than_12_months(removed_3y: dict[str, str]) -> None:
    history = {b["id"]: b for b in history_3y()}
    for ident, b in history.items():
        created = datetime.fromisoformat(b["created"])
        if created >= NOW - timedelta(days=1):
            assert ident not in removed_3y
        if created < NOW - timedelta(days=360):
            assert (ident in removed_3y) != b["pinned"]
    assert "p-pre-migration" not in removed_3y and "p-pre-delete" not in removed_3y


def test_three_years_removals_oldest_first_and_input_order_does_not_matter() -> None:
    history = history_3y()
    removals = backups_to_remove(history, RetentionPolicy(), NOW)
    created = [r.backup["created"] for r in removals]
    assert created == sorted(created)
    assert removals[0].backup["id"] == "s-20231204T0000"
    assert removals[-1].backup["id"] == "s-20261201T1200"
    shuffled = history[:]
    random.Random(7).shuffle(shuffled)
    assert backups_to_remove(shuffled, RetentionPolicy(), NOW) == removals


# --------------------------------------------------------------------------------------------------------
# retention: Aegir's own example configuration
# --------------------------------------------------------------------------------------------------------
AEGIR_EXAMPLE = RetentionPolicy(
    rules=[
        "older than 1 day keep 1 per day",
        "older than 7 days keep 1 per week",
        "older than 4 weeks keep 1 per 4 weeks",
    ]
)
# NOW: Sunday 2026-11-22 12:00 UTC. Thresholds: 1d → 11-21 12:00, 7d → 11-15 12:00, 4w → 10-25 12:00.
# Weeks start on Thursdays: 11-19, 11-12, 11-05, 10-29, 10-22, 10-15, 10-08, 10-01, 09-24, 09-17.
# 4-week buckets (day 20776 = 742 * 28 is 11-19): 11-19, 10-22..11-18, 09-24..10-21, 08-27..09-23.
AEGIR_NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
AEGIR_HISTORY = [
    "2026-11-22T06",  # 6h old: no rule applies                                                      kept
    "2026-11-21T18",  # 18h old                                                                      kept
    "2026-11-21T06",  # newest of day 11-21 older than 1d (11-21T18 is too young to count)           kept
    "2026-11-21T00",  # day 11-21 keeps 11-21T06                                                     removed
    "2026-11-20T23",  # newest of day 11-20                                                          kept
    "2026-11-20T01",  # day 11-20 keeps 11-20T23                                                     removed
    "2026-11-17T10",  # newest of its day; 5 days old                                                kept
    "2026-11-15T20",  # newest of day 11-15; 6d16h old: not yet weekly                               kept
    "2026-11-15T08",  # newest of week 11-12 older than 7d, but day 11-15 keeps 11-15T20              removed
    "2026-11-13T12",  # week 11-12 keeps 11-15T08                                                    removed
    "2026-11-11T12",  # newest of week 11-05 (too young for 4w)                                      kept
    "2026-11-06T12",  # week 11-05 keeps 11-11T12                                                    removed
    "2026-10-28T12",  # newest of week 10-22; too young for 4w                                       kept
    "2026-10-25T18",  # week 10-22 keeps 10-28T12                                                    removed
    "2026-10-25T06",  # newest of 4-week 10-22 older than 4w, but day 10-25 keeps 10-25T18           removed
    "2026-10-21T12",  # newest of week 10-15 and of 4-week 09-24                                     kept
    "2026-10-16T12",  # week 10-15 keeps 10-21T12 (and so does 4-week 09-24)                         removed
    "2026-10-01T12",  # newest of week 10-01 but 4-week 09-24 keeps 10-21T12                         removed
    "2026-09-20T12",  # newest of day, week 09-17 and 4-week 08-27                                   kept
    "2026-09-20T06",  # day 09-20 keeps 09-20T12                                                     removed
]


def aegir_history() -> list[dict[str, Any]]:
    return [rec(f"{t}:00:00+00:00", f"ex-{t[5:7]}{t[8:10]}T{t[11:13]}") for t in AEGIR_HISTORY]


def test_aegir_example_config_exact_removals() -> None:
    removals = backups_to_remove(aegir_history(), AEGIR_EXAMPLE, AEGIR_NOW)
    # oldest first; when several rules remove a backup, the reason is the shortest older_than's
    assert [(r.backup["id"], r.reason) for r in removals] == [
        ("ex-0920T06", "older than 1d: 1 per 1d kept (bucket of 2026-09-20, kept ex-0920T12)"),
        ("ex-1001T12", "older than 4w: 1 per 4w kept (bucket of 2026-09-24, kept ex-1021T12)"),
        ("ex-1016T12", "older than 7d: 1 per 1w kept (bucket of 2026-10-15, kept ex-1021T12)"),
        ("ex-1025T06", "older than 1d: 1 per 1d kept (bucket of 2026-10-25, kept ex-1025T18)"),
        ("ex-1025T18", "older than 7d: 1 per 1w kept (bucket of 2026-10-22, kept ex-1028T12)"),
        ("ex-1106T12", "older than 7d: 1 per 1w kept (bucket of 2026-11-05, kept ex-1111T12)"),
        ("ex-1113T12", "older than 7d: 1 per 1w kept (bucket of 2026-11-12, kept ex-1115T08)"),
        ("ex-1115T08", "older than 1d: 1 per 1d kept (bucket of 2026-11-15, kept ex-1115T20)"),
        ("ex-1120T01", "older than 1d: 1 per 1d kept (bucket of 2026-11-20, kept ex-1120T23)"),
        ("ex-1121T00", "older than 1d: 1 per 1d kept (bucket of 2026-11-21, kept ex-1121T06)"),
    ]


def test_rule_order_does_not_matter_and_rules_are_unioned() -> None:
    reversed_rules = RetentionPolicy(rules=list(reversed(AEGIR_EXAMPLE.rules)))
    assert backups_to_remove(aegir_history(), reversed_rules, AEGIR_NOW) == backups_to_remove(
        aegir_history(), AEGIR_EXAMPLE, AEGIR_NOW
    )
    # each rule alone removes less than the three together
    only_daily = backups_to_remove(aegir_history(), RetentionPolicy(rules=["1d:1d"]), AEGIR_NOW)
    assert ids([r.backup for r in only_daily]) == ["ex-0920T06", "ex-1025T06", "ex-1115T08", "ex-1120T01", "ex-1121T00"]
    only_weekly = backups_to_remove(aegir_history(), RetentionPolicy(rules=["7d:1w"]), AEGIR_NOW)
    # week 09-17: 09-20T12 keeps; 10-15: 10-21T12; 10-22: 10-28T12; 11-05: 11-11T12; 11-12: 11-15T08
    assert ids([r.backup for r in only_weekly]) == [
        "ex-0920T06",
        "ex-1016T12",
        "ex-1025T06",
        "ex-1025T18",
        "ex-1106T12",
        "ex-1113T12",
    ]


def test_same_older_than_the_stricter_rule_wins() -> None:
    # 7d:1d keeps one per day, 7d:1w one per week (the union): week 10-15 keeps 10-21T12 only
    policy = RetentionPolicy(rules=["7d:1d", "7d:1w"])
    removed = ids([r.backup for r in backups_to_remove(aegir_history(), policy, AEGIR_NOW)])
    assert "ex-1016T12" in removed and "ex-1021T12" not in removed


def test_a_month_is_not_emptied_by_the_weekly_rule() -> None:
    # NOW: Thursday 2026-12-03, a week and 30-day boundary. Weeks: 10-01..10-07, 09-24..09-30.
    # 30-day months: 10-04..11-02 and 09-04..10-03.
    # weekly rule: week 10-01 keeps 10-05, removes 10-03; week 09-24 keeps 09-29.
    # monthly rule: month 10-04 keeps 10-05; month 09-04 keeps 10-03, removes 09-29.
    # Aegir's union would remove 10-03 and 09-29, leaving month 09-04..10-03 without any backup.
    history = [rec("2026-10-05T12:00:00+00:00", "b-1005"), rec("2026-10-03T12:00:00+00:00", "b-1003")]
    history.append(rec("2026-09-29T12:00:00+00:00", "b-0929"))
    policy = RetentionPolicy(rules=["7d:1w", "5w:1mo"], keep_latest=False)
    assert [(r.backup["id"], r.reason) for r in backups_to_remove(history, policy, NOW)] == [
        ("b-0929", "older than 5w: 1 per 1mo kept (bucket of 2026-09-04, kept b-1003)"),
    ]


def test_hour_buckets_name_the_hour() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    history = [rec("2026-11-22T06:40:00+00:00", "a"), rec("2026-11-22T06:10:00+00:00", "b")]
    removals = backups_to_remove(history, RetentionPolicy(rules=["1h:6h"]), now)
    assert [(r.backup["id"], r.reason) for r in removals] == [
        ("b", "older than 1h: 1 per 6h kept (bucket of 2026-11-22 06:00 UTC, kept a)")
    ]


# --------------------------------------------------------------------------------------------------------
# retention: horizon, keep_latest, pinned, max_count, max_bytes, bad records
# --------------------------------------------------------------------------------------------------------
OLD_ONLY = [
    rec("2024-12-20T02:00:00+00:00", "old-1220"),
    rec("2024-11-15T02:00:00+00:00", "old-1115"),
    rec("2024-10-01T02:00:00+00:00", "old-1001"),
]


def test_keep_latest_keeps_the_newest_of_a_site_with_only_old_backups() -> None:
    # 45 days apart: each is the newest of its day, week and month; only "12mo keep none" removes them
    removals = backups_to_remove(OLD_ONLY, RetentionPolicy(), NOW)
    assert [(r.backup["id"], r.reason) for r in removals] == [
        ("old-1001", "older than 12mo: none kept"),
        ("old-1115", "older than 12mo: none kept"),
    ]
    without = backups_to_remove(OLD_ONLY, RetentionPolicy(keep_latest=False), NOW)
    assert ids([r.backup for r in without]) == ["old-1001", "old-1115", "old-1220"]


def test_keep_latest_means_the_newest_unpinned_backup() -> None:
    pinned = rec("2026-12-01T00:00:00+00:00", "pinned-new", pinned=True)
    removals = backups_to_remove([*OLD_ONLY, pinned], RetentionPolicy(), NOW)
    assert ids([r.backup for r in removals]) == ["old-1001", "old-1115"]


def test_pinned_backups_are_never_removed_nor_bucketed() -> None:
    history = [
        rec("2026-11-20T18:00:00+00:00", "p", pinned=True),  # newest of day 11-20, but pinned
        rec("2026-11-20T12:00:00+00:00", "a"),  # so a is the day's keeper among unpinned ones
        rec("2026-11-20T06:00:00+00:00", "b"),
        rec("2024-01-01T00:00:00+00:00", "ancient", pinned=True),
    ]
    removals = backups_to_remove(history, RetentionPolicy(rules=["1d:1d", "1y:none"], max_count=1), NOW)
    assert [(r.backup["id"], r.reason) for r in removals] == [
        ("b", "older than 1d: 1 per 1d kept (bucket of 2026-11-20, kept a)")
    ]


def test_max_count() -> None:
    history = [rec(f"2026-11-{d:02d}T03:00:00+00:00", f"d{d}") for d in range(20, 25)]  # d20 .. d24
    history.append(rec("2026-11-19T03:00:00+00:00", "pinned", pinned=True))  # not counted
    removals = backups_to_remove(history, RetentionPolicy(rules=[], max_count=3), NOW)
    assert [(r.backup["id"], r.reason) for r in removals] == [
        ("d20", "more than 3 backups (max_count)"),
        ("d21", "more than 3 backups (max_count)"),
    ]
    # backups the rules remove are not counted: d20..d24 share the week of Thursday 11-19, "1d:1w" keeps d24
    # only, and max_count=3 has nothing left to remove
    mixed = backups_to_remove(history, RetentionPolicy(rules=["1d:1w"], max_count=3), NOW)
    assert [(r.backup["id"], r.reason.split(" (")[0]) for r in mixed] == [
        ("d20", "older than 1d: 1 per 1w kept"),
        ("d21", "older than 1d: 1 per 1w kept"),
        ("d22", "older than 1d: 1 per 1w kept"),
        ("d23", "older than 1d: 1 per 1w kept"),
    ]


def test_max_bytes_counts_pinned_but_never_removes_them() -> None:
    history = [
        rec("2026-11-01T03:00:00+00:00", "pinned", pinned=True, size=2 * GB),
        rec("2026-11-10T03:00:00+00:00", "a", size=GB),
        rec("2026-11-11T03:00:00+00:00", "b", size=GB),
        rec("2026-11-12T03:00:00+00:00", "c", size=GB),
        rec("2026-11-13T03:00:00+00:00", "d", size=GB),
    ]
    # total 6 GB: remove a (→ 5 GB), then b (→ 4 GB), then stop
    removals = backups_to_remove(history, RetentionPolicy(rules=[], max_bytes=4 * GB), NOW)
    assert [(r.backup["id"], r.reason) for r in removals] == [
        ("a", "total 6.0 GB over max_bytes 4.0 GB"),
        ("b", "total 5.0 GB over max_bytes 4.0 GB"),
    ]
    # pinned alone over the limit: every unpinned one goes except the newest (keep_latest)
    removals = backups_to_remove(history, RetentionPolicy(rules=[], max_bytes=GB), NOW)
    assert ids([r.backup for r in removals]) == ["a", "b", "c"]
    removals = backups_to_remove(history, RetentionPolicy(rules=[], max_bytes=GB, keep_latest=False), NOW)
    assert ids([r.backup for r in removals]) == ["a", "b", "c", "d"]


def test_max_bytes_after_rules_and_max_count() -> None:
    history = [
        rec("2026-11-10T03:00:00+00:00", "a", size=GB),
        rec("2026-11-10T09:00:00+00:00", "b", size=GB),  # newest of day 11-10: a goes by the daily rule
        rec("2026-11-11T03:00:00+00:00", "c", size=GB),
        rec("2026-11-12T03:00:00+00:00", "d", size=GB),
        rec("2026-11-13T03:00:00+00:00", "e", size=GB),
        rec("2026-11-14T03:00:00+00:00", "f", size=GB),
    ]
    # daily rule removes a; max_count 4 removes b; 4 GB left (c..f) over 3 GB: c goes
    policy = RetentionPolicy(rules=["1d:1d"], max_count=4, max_bytes=3 * GB)
    assert [(r.backup["id"], r.reason.split(" (")[0]) for r in backups_to_remove(history, policy, NOW)] == [
        ("a", "older than 1d: 1 per 1d kept"),
        ("b", "more than 4 backups"),
        ("c", "total 4.0 GB over max_bytes 3.0 GB"),
    ]


def test_records_without_a_usable_created_are_never_removed() -> None:
    garbage = [
        rec(None, "no-created"),
        rec("yesterday", "words"),
        rec("2020-01-01T00:00:00", "naive"),  # no UTC offset: we cannot place it
        {"id": "epoch-int", "created": 1_600_000_000, "size": 5 * GB},
        rec("", "empty"),
    ]
    history = [*garbage, *OLD_ONLY]
    policy = RetentionPolicy(rules=["1d:none"], max_count=1, max_bytes=1, keep_latest=False)
    removals = backups_to_remove(history, policy, NOW)
    assert ids([r.backup for r in removals]) == ["old-1001", "old-1115", "old-1220"]
    assert all(backup_created(b) is None for b in garbage)


def test_records_of_unknown_size_are_not_removed_for_max_bytes() -> None:
    history = [
        rec("2026-11-10T03:00:00+00:00", "unknown", size=None),
        rec("2026-11-11T03:00:00+00:00", "big", size=3 * GB),
        rec("2026-11-12T03:00:00+00:00", "new", size=GB),
    ]
    removals = backups_to_remove(history, RetentionPolicy(rules=[], max_bytes=2 * GB), NOW)
    assert [(r.backup["id"], r.reason) for r in removals] == [("big", "total 4.0 GB over max_bytes 2.0 GB")]


def test_equal_created_times_do_not_depend_on_input_order() -> None:
    same = "2026-11-20T06:00:00+00:00"
    history = [rec(same, "site-b"), rec(same, "site-a"), rec("2026-11-20T01:00:00+00:00", "site-c")]
    policy = RetentionPolicy(rules=["1d:1d"])
    first = backups_to_remove(history, policy, NOW)
    assert backups_to_remove(list(reversed(history)), policy, NOW) == first
    assert ids([r.backup for r in first]) == ["site-c", "site-a"]  # ties: the greater id counts as newer


def test_offsets_are_compared_as_instants() -> None:
    # 11-20T23:30-02:00 is 11-21T01:30Z: day 11-21, not 11-20, so it does not compete with 11-20T20:00Z
    history = [rec("2026-11-20T23:30:00-02:00", "late"), rec("2026-11-20T20:00:00+00:00", "evening")]
    history.append(rec("2026-11-20T19:00:00+00:00", "earlier"))
    removals = backups_to_remove(history, RetentionPolicy(rules=["1d:1d"]), NOW)
    assert [(r.backup["id"], r.reason) for r in removals] == [
        ("earlier", "older than 1d: 1 per 1d kept (bucket of 2026-11-20, kept evening)")
    ]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        backups_to_remove(OLD_ONLY, RetentionPolicy(), datetime(2026, 12, 3))


def test_no_backups() -> None:
    assert backups_to_remove([], RetentionPolicy(max_count=1, max_bytes=1), NOW) == []


# --------------------------------------------------------------------------------------------------------
# backup window
# --------------------------------------------------------------------------------------------------------
def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_window_defaults_are_always_open() -> None:
    w = BackupWindow()
    assert w.describe() == "every day 00:00–23:59 UTC"
    assert w.contains(utc("2026-11-22T00:00")) and w.contains(utc("2026-11-22T23:59:59.999"))


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        ("2026-11-23T09:00", True),  # Monday 09:00 (the start)
        ("2026-11-23T08:59", False),
        ("2026-11-23T17:30:59", True),  # end inclusive through the end of that minute
        ("2026-11-23T17:31", False),
        ("2026-11-27T12:00", True),  # Friday
        ("2026-11-28T12:00", False),  # Saturday
    ],
)
def test_window_same_day(instant: str, inside: bool) -> None:
    w = BackupWindow(days=["Fri", "Mon", "Tue", "Wed", "Thu"], start="09:00", end="17:30")
    assert w.days == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert w.contains(utc(instant)) is inside


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        ("2026-11-27T23:30", True),  # Friday night
        ("2026-11-27T22:00", True),
        ("2026-11-27T21:59", False),
        ("2026-11-28T03:00", True),  # Saturday early morning: Friday's night
        ("2026-11-28T04:00:59", True),
        ("2026-11-28T04:01", False),
        ("2026-11-28T23:30", False),  # Saturday night is not listed
        ("2026-11-27T03:00", False),  # Friday early morning belongs to Thursday's night
        ("2026-11-29T03:00", False),
    ],
)
def test_window_crossing_midnight(instant: str, inside: bool) -> None:
    w = BackupWindow(days=["Fri"], start="22:00", end="04:00")
    assert w.contains(utc(instant)) is inside


def test_window_crossing_midnight_from_sunday_to_monday() -> None:
    w = BackupWindow(days=["Sun"], start="23:00", end="01:00")
    assert w.contains(utc("2026-11-29T23:30"))  # Sunday night
    assert w.contains(utc("2026-11-30T00:30"))  # Monday morning: Sunday's night
    assert w.contains(utc("2026-11-30T01:00"))
    assert not w.contains(utc("2026-11-30T23:30"))  # Monday night
    assert not w.contains(utc("2026-12-01T00:30"))  # Tuesday morning
    assert not w.contains(utc("2026-11-29T00:30"))  # Sunday morning: Saturday's night


def test_window_start_equals_end_is_one_minute() -> None:
    w = BackupWindow(start="03:15", end="03:15")
    assert w.contains(utc("2026-11-22T03:15"))
    assert w.contains(utc("2026-11-22T03:15:59"))
    assert not w.contains(utc("2026-11-22T03:14:59"))
    assert not w.contains(utc("2026-11-22T03:16"))


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        # spring forward, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST
        ("2026-03-29T00:29", False),  # 01:29 CET
        ("2026-03-29T00:30", True),  # 01:30 CET
        ("2026-03-29T00:59", True),  # 01:59 CET
        ("2026-03-29T01:00", True),  # 03:00 CEST
        ("2026-03-29T01:30", True),  # 03:30 CEST
        ("2026-03-29T01:31", False),  # 03:31 CEST
        # fall back, Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET, 02:xx happens twice
        ("2026-10-24T23:29", False),  # 01:29 CEST
        ("2026-10-24T23:30", True),  # 01:30 CEST
        ("2026-10-25T00:30", True),  # 02:30 CEST
        ("2026-10-25T01:30", True),  # 02:30 CET
        ("2026-10-25T02:30", True),  # 03:30 CET
        ("2026-10-25T02:31", False),  # 03:31 CET
    ],
)
def test_window_across_dst_in_berlin(instant: str, inside: bool) -> None:
    w = BackupWindow(days=["Sun"], start="01:30", end="03:30", timezone="Europe/Berlin")
    assert w.contains(utc(instant)) is inside


def test_window_in_the_skipped_hour_does_not_open() -> None:
    w = BackupWindow(days=["Sun"], start="02:00", end="02:59", timezone="Europe/Berlin")
    spring = [utc("2026-03-29T00:00") + timedelta(minutes=m) for m in range(0, 180)]
    assert not any(w.contains(t) for t in spring)
    assert w.contains(utc("2026-04-05T00:30"))  # 02:30 CEST a week later


def test_window_converts_any_aware_instant() -> None:
    w = BackupWindow(days=["Mon"], start="22:00", end="23:00", timezone="Europe/Berlin")
    assert w.contains(datetime(2026, 11, 23, 16, 30, tzinfo=timezone(timedelta(hours=-5))))  # 22:30 CET
    with pytest.raises(ValueError, match="timezone-aware"):
        w.contains(datetime(2026, 11, 23, 22, 30))


def test_window_describe() -> None:
    w = BackupWindow(days=["Mon", "Tue", "Wed", "Thu", "Fri"], start="22:00", end="4:00", timezone="Europe/Berlin")
    assert w.end == "04:00"
    assert w.describe() == "Mon–Fri 22:00–04:00 Europe/Berlin"
    assert BackupWindow(days=["Sun", "Sat", "Mon"]).describe() == "Mon, Sat, Sun 00:00–23:59 UTC"
    assert BackupWindow(days=["Tue", "Wed", "Thu", "Sat"], start="01:00", end="02:00").describe() == (
        "Tue–Thu, Sat 01:00–02:00 UTC"
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"start": "24:00"}, "start", r"start: '24:00' is not a time: use HH:MM from 00:00 to 23:59"),
        ({"end": "12:60"}, "end", r"end: '12:60' is not a time"),
        ({"end": "noon"}, "end", r"end: 'noon' is not a time"),
        ({"start": 930}, "start", r"start: 930 is not a time"),
        ({"timezone": "Mars/Olympus"}, "timezone", r"'Mars/Olympus' is not a time zone: use an IANA name"),
        ({"timezone": "../etc/passwd"}, "timezone", r"is not a time zone"),
        ({"days": []}, "days", r"days: pick at least one day"),
        ({"days": ["Monday"]}, "days", r"Mon"),
    ],
)
def test_window_errors(kwargs: dict[str, Any], field: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as e:
        BackupWindow(**kwargs)
    assert InputError.from_validation(e.value).field.split(".")[0] == field


# --------------------------------------------------------------------------------------------------------
# due sites
# --------------------------------------------------------------------------------------------------------
def test_due_sites_order_and_ties() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    day = timedelta(days=1)
    three_days_ago = now - 3 * day
    sites = [
        SiteDue("d.example.com", three_days_ago, day),
        SiteDue("never-b.example.com", None, day),
        SiteDue("f.example.com", now - day, day),  # exactly one interval ago: due
        SiteDue("e.example.com", now - timedelta(hours=2), day),  # not due
        SiteDue("c.example.com", three_days_ago.astimezone(timezone(timedelta(hours=2))), day),  # same instant
        SiteDue("never-a.example.com", None, timedelta(days=365)),
        SiteDue("g.example.com", now - 10 * day, timedelta(days=28)),  # not due
        SiteDue("h.example.com", now - day + timedelta(seconds=1), day),  # one second short
        SiteDue("i.example.com", now - 8 * day, timedelta(days=7)),
    ]
    assert [s.name for s in due_sites(sites, now)] == [
        "never-a.example.com",
        "never-b.example.com",
        "i.example.com",
        "c.example.com",
        "d.example.com",
        "f.example.com",
    ]
    assert due_sites([], now) == []


def test_due_sites_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_sites([], datetime(2026, 11, 22))
    with pytest.raises(ValueError, match="example.com: last_backup must be timezone-aware"):
        SiteDue("example.com", datetime(2026, 11, 22), timedelta(days=1))
    with pytest.raises(ValueError, match="interval must be positive"):
        SiteDue("example.com", None, timedelta(0))


def test_site_due_takes_parsed_intervals() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    site = SiteDue("example.com", now - timedelta(hours=7), parse_duration("6h"))
    assert due_sites([site], now) == [site]


def test_last_backup_time() -> None:
    records = [
        rec("2026-11-22T10:15:00+02:00", "a", reason="Generated on request"),  # 08:15Z
        rec("2026-11-22T09:00:00+00:00", "b", reason="Pre-migration backup", pinned=True),  # newest
        rec("2026-11-21T09:00:00+00:00", "c"),
        rec("garbage", "d"),
        rec(None, "e"),
        rec("2026-12-31T00:00:00", "naive"),
    ]
    assert last_backup_time(records) == datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert last_backup_time([rec("garbage", "d")]) is None
    assert last_backup_time([]) is None
