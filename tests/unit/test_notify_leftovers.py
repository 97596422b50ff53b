"""Failure notices (aegir/notify.py) and the leftovers purge-backups removes (aegir/leftovers.py)."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from aegir.leftovers import remove_leftover, stale_leftovers
from aegir.notify import Notifications, failure_notice


def test_notice_names_the_run_the_reason_and_how_to_resume():
    subject, body = failure_notice(
        run_name="migrate-site @a.example.com @platform_new",
        state="Failed",
        reason="migrate-site: updatedb failed (rolled back: target removed)",
        run_id="1234",
        url="http://127.0.0.1:4200/runs/flow-run/1234",
        parameters={"site": "@a.example.com", "new_uri": None, "dry_run": False},
    )
    assert subject == "migrate-site @a.example.com @platform_new failed"
    assert "Reason: migrate-site: updatedb failed (rolled back: target removed)" in body
    assert "http://127.0.0.1:4200/runs/flow-run/1234" in body and "aegir resume 1234" in body
    assert "site='@a.example.com'" in body and "dry_run=False" in body and "new_uri" not in body


def test_message_goes_to_every_address_once_with_the_prefix():
    n = Notifications(to=["ops@example.com", " dev@example.org ", "ops@example.com"])
    m = n.message("backup-all failed", "body")
    assert m["To"] == "ops@example.com, dev@example.org" and m["Subject"] == "[aegir] backup-all failed"


@pytest.mark.parametrize("to", [[], ["not an address"], ["a@b"], ["x@@example.com"]])
def test_bad_recipients_are_refused_naming_the_field(to):
    with pytest.raises((ValidationError, ValueError)) as e:
        Notifications(to=to)
    assert "to: " in str(e.value) or "to\n" in str(e.value)


def test_only_leftovers_untouched_long_enough_are_stale(tmp_path):
    now = 1_000_000.0
    names = [".a.tar.gz.partial", ".a.tar.gz.tmp", ".deploy-x.sql", "b.tar.gz", ".hidden", ".b.tar.gz.partial"]
    for n in names:
        (tmp_path / n).mkdir() if n.endswith(".tmp") else (tmp_path / n).write_text("x")
    for n in names[:-1]:
        os.utime(tmp_path / n, (now - 90_000, now - 90_000))  # older than a day
    os.utime(tmp_path / names[-1], (now - 60, now - 60))  # a backup being written right now
    stale = stale_leftovers(str(tmp_path), 86_400, now=now)
    assert [os.path.basename(p) for p in stale] == [".a.tar.gz.partial", ".a.tar.gz.tmp", ".deploy-x.sql"]
    for p in stale:
        remove_leftover(p)
    assert sorted(os.listdir(tmp_path)) == [".b.tar.gz.partial", ".hidden", "b.tar.gz"]
    assert stale_leftovers(str(tmp_path / "missing"), 0) == []


def test_unrecorded_archives_are_this_sites_since_the_time_and_named_by_no_record(tmp_path):
    from datetime import UTC, datetime

    from aegir.leftovers import unrecorded_archives

    names = [
        "a.example.com-20261204.180000.tar.gz",  # made at the start second: found
        "a.example.com-20261204.175959.tar.gz",  # before: another task's, left alone
        "a.example.com-20261204.180005.tar.zst",  # recorded: kept
        "a.example.com-20261204.180006.tar.gz.sha256",  # a sidecar goes with its archive, not on its own
        ".a.example.com-20261204.180007.tar.gz.partial",  # a partial archive: a leftover of its own kind
        "a.example.com.au-20261204.180001.tar.gz",  # another site whose uri starts alike
        "b.example.com-20261204.180001.tar.gz",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    since = datetime(2026, 12, 4, 18, 0, 0, 700000, tzinfo=UTC)
    recorded = [str(tmp_path / "a.example.com-20261204.180005.tar.zst")]
    found = unrecorded_archives(str(tmp_path), "a.example.com", since, recorded)
    assert found == [str(tmp_path / "a.example.com-20261204.180000.tar.gz")]
    assert unrecorded_archives(str(tmp_path / "gone"), "a.example.com", since, []) == []
