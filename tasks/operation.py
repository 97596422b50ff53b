"""One task at a time per site, and a journal of what the running task has changed that outlives its worker.

``with site_operation(name, "restore-site") as op:`` takes the site's lock (a strict Prefect global concurrency
limit ``site-<slug>`` with one slot, created on demand, leased so a dead worker cannot hold it forever), then
keeps a journal in the site block (field ``operation``): who runs (task, flow run, host, pid), the undo of every
step that changed the world (pushed *before* the step runs, so a step killed half-way is undone too), and, once
the task has passed its point of no return (:meth:`Operation.commit`), the steps that finish it.

- A step fails: the undos run newest first and the task fails saying what was undone (nothing lost).
- The worker dies (SIGKILL, power cut): the journal stays. The next task on the site — or a re-run of the same
  flow run (``aegir resume <flow-run-id>``, or Prefect's retry) — finds it under the lock and first rolls the
  interrupted task back (or, past its point of no return, finishes it). No step is ever half-kept.

Undo functions receive only names, paths and ids (JSON, never secrets) and must be idempotent: they may run
for a step that never started, and again after a crash during the rollback itself.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NoReturn

from prefect import get_client, get_run_logger
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from aegir import registry
from aegir.contexts import ServerContext, SiteContext, slugify
from aegir.errors import AegirError

from . import progress
from .common import TaskFailed, store

LEASE_SECONDS = 60.0  # the minimum Prefect accepts: a dead worker's lock frees itself within a minute
POLL_SECONDS = 5.0

NO_WAIT_ENV = "AEGIR_NO_WAIT"  # "1" (aegir --no-wait): fail at once instead of waiting for a busy site


def _wait() -> bool:
    return os.environ.get(NO_WAIT_ENV) != "1"


class SiteBusy(AegirError):
    """Another task holds the site (and --no-wait was given)."""

    exit_code = 5


def lock_name(name: str) -> str:
    return f"site-{slugify(name)}"


# ---------------------------------------------------------------------------------------------------------
# who holds a site
# ---------------------------------------------------------------------------------------------------------
def _process_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot), to tell a pid from its reuse; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _me() -> dict[str, Any]:
    """This process, as a journal names who runs a task (the start time tells a pid from its reuse)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid())}


def holder_state(op: dict[str, Any]) -> str:
    """ "alive", "dead" (this host, process gone) or "unknown" (another host) — of the process recovering
    the journal when one is (it holds the lock now), else of the one that wrote it."""
    who = op.get("recovering_by") or op
    if who.get("host") != socket.gethostname():
        return "unknown"
    start = _process_start(int(who.get("pid") or 0))
    return "alive" if start is not None and start == who.get("pid_start") else "dead"


def describe(op: dict[str, Any]) -> str:
    return (
        f"{op.get('task')} (flow run {op.get('flow_run')}, pid {op.get('pid')} on {op.get('host')}, "
        f"since {op.get('started')})"
    )


def _site(name: str) -> SiteContext:
    return registry.load_site(store(), name)


def _save(name: str, op: dict[str, Any] | None) -> None:
    """Write the journal into the site block (only that field: the others stay as stored). A site renamed
    away (migrate-site with a new uri) has no record any more: its journal went with it."""
    store().update_data("site", name, {"operation": op})


# ---------------------------------------------------------------------------------------------------------
# the journal
# ---------------------------------------------------------------------------------------------------------
def _ref(fn: Callable[..., Any]) -> str:
    target = getattr(fn, "fn", fn)  # a Prefect task: its function's module and name
    return f"{target.__module__}:{target.__name__}"


def _resolve(ref: str) -> Callable[..., Any]:
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


class Operation:
    """The journal of one task on one site (see the module docstring)."""

    def __init__(self, name: str, task: str) -> None:
        self.name = name
        self.task = task
        self.record: dict[str, Any] = {
            "task": task,
            "flow_run": str(flow_run.id) if flow_run.id else None,
            **_me(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "phase": "running",
            "undo": [],
            "forward": [],
        }
        self.resumed: str | None = None  # "rolled back" / "completed": what recovery did to this same run

    # -- life cycle ----------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Under the lock: deal with an interrupted task first, then record this one."""
        leftover = _site(self.name).operation
        if leftover:
            outcome = recover(self.name, leftover)
            if leftover.get("flow_run") == self.record["flow_run"]:
                self.resumed = outcome
        _save(self.name, self.record)

    def end(self) -> None:
        if not self.record["forward"] and self.record["phase"] != "rollback pending":
            _save(self.name, None)

    @property
    def pending(self) -> bool:
        return bool(self.record["undo"])

    # -- steps -----------------------------------------------------------------------------------------------
    def push(self, label: str, fn: Callable[..., Any], *args: Any) -> None:
        """Register the undo of the step about to run (persisted before the step starts)."""
        self.record["undo"].append({"label": label, "ref": _ref(fn), "args": list(args)})
        _save(self.name, self.record)

    def commit(self, label: str, fn: Callable[..., Any], *args: Any) -> Any:
        """The point of no return: forget the undos, persist the finishing step, run it, forget it."""
        undo = self.record["undo"]
        self.record.update(phase="committed", undo=[], forward=[{"label": label, "ref": _ref(fn), "args": list(args)}])
        try:
            _save(self.name, self.record)
        except Exception:
            self.record.update(phase="running", undo=undo, forward=[])  # not committed: rolled back instead
            raise
        result = fn(*args)
        self.record["forward"] = []
        _save(self.name, self.record)
        return result

    def rollback(self) -> tuple[list[str], list[str]]:
        """Run every undo, newest first; one failing undo does not stop the others."""
        done, failed = _run_undos(self.record["undo"], lambda: _save(self.name, self.record))
        return done, failed

    def fail(self, error: BaseException) -> NoReturn:
        """Roll back, then raise one error saying what failed and what was undone."""
        done, failed = self.rollback()
        summary = f"rolled back: {', '.join(done) if done else 'nothing to undo'}"
        if self.record["undo"]:  # undos that met an unreachable host: the journal keeps them
            self.record["phase"] = "rollback pending"
            _save(self.name, self.record)
            summary += (
                f"; ROLLBACK PENDING: {'; '.join(failed)}; the next task on {self.name}, or aegir resume "
                f"{self.record['flow_run']}, finishes it"
            )
        elif failed:
            summary += f"; ROLLBACK INCOMPLETE, check by hand: {'; '.join(failed)}"
        raise TaskFailed(f"{self.task}: {error} ({summary})") from error


def _run_undos(steps: list[dict[str, Any]], persist: Callable[[], None]) -> tuple[list[str], list[str]]:
    """Run the undos newest first; one failing does not stop the others. An undo that failed on a transient
    fault (a host unreachable, a connection refused) stays in ``steps`` — and so in the journal — for the next
    task on the site (or ``aegir resume``) to retry; other failures are reported for a human."""
    logger = get_run_logger()
    done: list[str] = []
    failed: list[str] = []
    kept: list[dict[str, Any]] = []
    while steps:
        entry = steps[-1]
        try:
            _resolve(entry["ref"])(*entry["args"])
            done.append(entry["label"])
            logger.info("rolled back: %s", entry["label"])
        except Exception as e:  # noqa: BLE001 - every undo must get its chance
            if getattr(e, "transient", False):
                kept.insert(0, entry)
                failed.append(f"{entry['label']} ({e}; kept: retried by the next task on the site)")
            else:
                failed.append(f"{entry['label']} ({e})")
            logger.error("rollback step failed: %s: %s", entry["label"], e)
        steps.pop()
        persist()
    steps.extend(kept)
    if kept:
        persist()
    return done, failed


def recover(name: str, op: dict[str, Any]) -> str:
    """Finish (past its point of no return) or roll back an interrupted task; returns what was done."""
    logger = get_run_logger()
    logger.warning("%s: %s was interrupted: recovering", name, describe(op))
    # this process (holding the lock) recovers it now: the journal says so, so the next task on the site waits
    # for it instead of taking its lock for a dead holder's
    op = {**op, "undo": list(op.get("undo") or []), "forward": list(op.get("forward") or []), "recovering_by": _me()}
    _save(name, op)
    if op["forward"]:
        for entry in op["forward"]:
            _resolve(entry["ref"])(*entry["args"])
            logger.info("finished: %s", entry["label"])
        outcome = "completed"
    else:
        _done, failed = _run_undos(op["undo"], lambda: _save(name, op))
        if op["undo"]:  # still unreachable: nothing else may run on a half-rolled-back site
            raise TaskFailed(
                f"{name}: the rollback of the interrupted {op['task']} cannot finish yet: {'; '.join(failed)}"
            )
        if failed:
            logger.error("%s: rollback of the interrupted %s incomplete, check by hand: %s", name, op["task"], failed)
        outcome = "rolled back" if op.get("phase") != "committed" else "completed"
    _save(name, None)
    logger.warning("%s: the interrupted %s was %s", name, op.get("task"), outcome)
    return outcome


# ---------------------------------------------------------------------------------------------------------
# the site lock
# ---------------------------------------------------------------------------------------------------------
ENSURE_TTL = 60.0  # a limit resized by another process is set right again within a minute
_ensured: dict[tuple[str, str], tuple[int, float]] = {}  # (API, limit) -> (slots, when) this process set


def _api() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value() or "")


def ensure_limit(limit: str, slots: int = 1, again: bool = False) -> None:
    """Create (or resize) a global concurrency limit: ``strict`` acquisition needs it to exist. Not asked
    again for a minute once this process set it to that size (``again``: it was found missing since)."""
    from prefect.exceptions import ObjectAlreadyExists

    key = (_api(), limit)
    known = _ensured.get(key)
    if not again and known and known[0] == slots and time.monotonic() - known[1] < ENSURE_TTL:
        return
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(limit, slots)
        except ObjectAlreadyExists:  # upsert is read-then-create: another task created it meanwhile
            client.upsert_global_concurrency_limit_by_name(limit, slots)
    _ensured[key] = (slots, time.monotonic())


def _lease(limit: str, timeout: float | None) -> contextlib.AbstractContextManager[Any]:
    """A slot of the limit, leased to this flow run (a dead worker's lease ends by itself)."""
    return concurrency(
        limit, occupy=1, timeout_seconds=timeout, strict=True, lease_duration=LEASE_SECONDS, holder=_holder()
    )


@contextlib.contextmanager
def _slot(limit: str, slots: int, timeout: float | None = None) -> Iterator[None]:
    """One slot of the limit (made sure of first); a limit deleted since this process made sure of it is made
    again."""
    ensure_limit(limit, slots)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_lease(limit, timeout))
        except ConcurrencySlotAcquisitionError:  # strict: the limit is gone (deleted by hand, or by a break)
            ensure_limit(limit, slots, again=True)
            stack.enter_context(_lease(limit, timeout))
        yield


def _holder() -> ConcurrencyLeaseHolder | None:
    """The lease holder shown in the API: this flow run."""
    return ConcurrencyLeaseHolder(type="flow_run", id=flow_run.id) if flow_run.id else None


def _break_lock(limit: str) -> None:
    """The holder is a dead process on this host: its lease would hold the site for up to a minute more.
    A new limit of the same name frees the site now (the dead lease dies with the old limit)."""
    with get_client(sync_client=True) as client, contextlib.suppress(Exception):
        client.delete_global_concurrency_limit_by_name(limit)
    ensure_limit(limit, again=True)


@contextlib.contextmanager
def site_lock(name: str) -> Iterator[None]:
    """Hold the site's lock; wait (saying for whom) while another task holds it, or fail at once with
    --no-wait. A lock held by a dead process on this host is released."""
    limit = lock_name(name)
    logger = get_run_logger()
    waited_since: float | None = None
    # a journal names a holder (busy, or dead): a first short try, to release a dead one's lock or to refuse at
    # once with --no-wait; none (the usual case): the lock is free, and a slow API is no reason to call it busy
    timeout = 0.5 if _site(name).operation else POLL_SECONDS
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(_slot(limit, 1, timeout))
                break
            except TimeoutError:
                op = _site(name).operation
                if op and holder_state(op) == "dead":
                    logger.warning("%s: the lock was held by a process that is gone: %s; released", name, describe(op))
                    _break_lock(limit)
                    continue
                busy = f"{name} is busy with {describe(op)}" if op else f"{name} is busy with another task"
                if not _wait():
                    raise SiteBusy(f"{busy}; try again later (or without --no-wait to wait)") from None
                timeout = POLL_SECONDS
                if waited_since is None:
                    waited_since = time.monotonic()
                    logger.info("waiting: %s", busy)
        if waited_since is not None:
            logger.info("%s: lock acquired after %.0f s", name, time.monotonic() - waited_since)
        yield


@contextlib.contextmanager
def db_slot(server: ServerContext) -> Iterator[None]:
    """One of the db server's ``db_task_limit`` slots (limit ``db-<slug>``) for a dump or an import."""
    with _slot(f"db-{server.slug}", server.db_task_limit):
        yield


@contextlib.contextmanager
def site_operation(name: str, task: str, steps: int | None = None) -> Iterator[Operation]:
    """The site's lock and the task's journal. An exception in the body before :meth:`Operation.commit`
    rolls back what was pushed; after it, the journal keeps the finishing steps for the next run. A long task
    gives its usual number of sub-tasks (``steps``): a progress artifact follows them."""
    with site_lock(name), progress.tracking(f"{task} {name}", steps) if steps else contextlib.nullcontext():
        op = Operation(name, task)
        op.begin()
        try:
            yield op
        except Exception as e:
            if op.record["forward"]:
                raise TaskFailed(
                    f"{task}: {e} (the task had passed its point of no return; the next task on {name}, or "
                    f"aegir resume {op.record['flow_run']}, finishes it)"
                ) from e
            if not op.pending and isinstance(e, AegirError):
                _save(name, None)
                raise  # refused before anything changed: the error as it is (bad input keeps exit code 2)
            try:
                op.fail(e)
            finally:
                op.end()
        op.end()
