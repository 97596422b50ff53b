"""The journal's helpers and the fault-injection points, without a Prefect API."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from tasks import common, operation
from tasks.common import InjectedFault, fault_point, step


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch):
    monkeypatch.setattr(common, "_calls", common.Counter())


def test_no_fault_configured_is_a_no_op(monkeypatch):
    monkeypatch.delenv(common.FAULT_ENV, raising=False)
    fault_point("deploy-archive", "before")


def test_raise_fault_hits_only_its_step_and_boundary(monkeypatch):
    monkeypatch.setenv(common.FAULT_ENV, "deploy-archive:after:raise")
    fault_point("deploy-archive", "before")
    fault_point("switch-site", "after")
    with pytest.raises(InjectedFault, match="deploy-archive:after:raise"):
        fault_point("deploy-archive", "after")


def test_nth_call_of_a_step(monkeypatch):
    calls: list[str] = []

    @step("maintenance-mode")
    def maintenance(on: bool) -> None:
        calls.append(str(on))

    monkeypatch.setenv(common.FAULT_ENV, "other:before:raise, maintenance-mode#2:before:raise")
    maintenance.fn(True)
    with pytest.raises(InjectedFault):
        maintenance.fn(False)
    assert calls == ["True"]  # the second call failed before its body ran


def test_pause_fault_sleeps_and_goes_on(monkeypatch):
    monkeypatch.setenv(common.FAULT_ENV, "backup-archive:before:pause=0.2")
    started = time.monotonic()
    fault_point("backup-archive", "before")
    assert time.monotonic() - started >= 0.2


def test_step_keeps_the_function_name_for_the_journal():
    @step("some-step")
    def some_function(x: int) -> int:
        return x + 1

    assert some_function.name == "some-step"
    assert some_function.fn(1) == 2
    assert operation._ref(some_function) == f"{__name__}:some_function"


def test_undo_references_resolve_to_the_task():
    from tasks import restore

    ref = operation._ref(restore.switch_back)
    assert ref == "tasks.restore:switch_back"
    assert operation._resolve(ref) is restore.switch_back


def _holder(pid: int, start: str | None, host: str | None = None) -> dict:
    return {"host": host or socket.gethostname(), "pid": pid, "pid_start": start, "task": "restore-site"}


def test_holder_alive_dead_or_unknown():
    me = os.getpid()
    assert operation.holder_state(_holder(me, operation._process_start(me))) == "alive"
    # the same pid with another start time: the pid was reused, the holder is gone
    assert operation.holder_state(_holder(me, "1")) == "dead"
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert operation.holder_state(_holder(gone.pid, "123")) == "dead"
    assert operation.holder_state(_holder(me, operation._process_start(me), host="elsewhere.example")) == "unknown"


def test_a_journal_being_recovered_belongs_to_the_recovering_process():
    """A dead task's journal, taken over by a live process (which holds the site's lock now): not dead, so
    nobody breaks that process's lock for the dead one's."""
    me = os.getpid()
    journal = _holder(me, "1")  # the interrupted task: gone
    assert operation.holder_state(journal) == "dead"
    assert operation.holder_state({**journal, "recovering_by": operation._me()}) == "alive"
    assert operation.holder_state({**journal, "recovering_by": _holder(me, "1")}) == "dead"  # it died too


def test_describe_names_task_run_and_process():
    text = operation.describe({**_holder(42, "7"), "flow_run": "abc", "started": "2026-01-01T00:00:00+00:00"})
    assert "restore-site" in text and "abc" in text and "pid 42" in text
