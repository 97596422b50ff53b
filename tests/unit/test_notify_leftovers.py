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
