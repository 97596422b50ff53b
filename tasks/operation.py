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
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from aegir import registry
from aegir.contexts import ServerContext, SiteContext
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


def lock_name(site: SiteContext) -> str:
    return f"site-{site.slug}"


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


def holder_state(op: dict[str, Any]) -> str:
    """ "alive", "dead" (this host, process gone) or "unknown" (another host)."""
    if op.get("host") != socket.gethostname():
        return "unknown"
    start = _process_start(int(op.get("pid") or 0))
    return "alive" if start is not None and start == op.get("pid_start") else "dead"


def describe(op: dict[str, Any]) -> str:
    return (
        f"{op.get('task')} (flow run {op.get('flow_run')}, pid {op.get('pid')} on {op.get('host')}, "
        f"since {op.get('started')})"
    )


def _site(name: str) -> SiteContext:
    return registry.load_site(store(), name)


def _save(name: str, op: dict[str, Any] | None) -> None:
    """Write the journal onto the freshest copy of the site block (other fields untouched)."""
    site = store().find(name)
    if not isinstance(site, SiteContext):
        return  # renamed away (migrate-site with a new uri): the journal went with the old record
    store().put(type(site).model_validate({**site.model_dump(), "operation": op}))


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
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start": _process_start(os.getpid()),
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
    op = {**op, "undo": list(op.get("undo") or []), "forward": list(op.get("forward") or [])}
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
def ensure_limit(limit: str, slots: int = 1) -> None:
    """Create (or resize) a global concurrency limit: ``strict`` acquisition needs it to exist."""
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(limit, slots)
        except ObjectAlreadyExists:  # upsert is read-then-create: another task created it meanwhile
            client.upsert_global_concurrency_limit_by_name(limit, slots)


def _holder() -> ConcurrencyLeaseHolder | None:
    """The lease holder shown in the API: this flow run."""
    return ConcurrencyLeaseHolder(type="flow_run", id=flow_run.id) if flow_run.id else None


def _break_lock(limit: str) -> None:
    """The holder is a dead process on this host: its lease would hold the site for up to a minute more.
    A new limit of the same name frees the site now (the dead lease dies with the old limit)."""
    with get_client(sync_client=True) as client, contextlib.suppress(Exception):
        client.delete_global_concurrency_limit_by_name(limit)
    ensure_limit(limit)


@contextlib.contextmanager
def site_lock(name: str) -> Iterator[None]:
    """Hold the site's lock; wait (saying for whom) while another task holds it, or fail at once with
    --no-wait. A lock held by a dead process on this host is released."""
    site = _site(name)
    limit = lock_name(site)
    ensure_limit(limit)
    logger = get_run_logger()
    waited_since: float | None = None
    timeout = 0.5  # a first short try: a dead holder is found (and its lock released) without waiting
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(
                    concurrency(
                        limit,
                        occupy=1,
                        timeout_seconds=timeout,
                        strict=True,
                        lease_duration=LEASE_SECONDS,
                        holder=_holder(),
                    )
                )
                break
            except TimeoutError:
                op = _site(name).operation
                if op and holder_state(op) == "dead":
                    logger.warning("%s: the lock was held by a process that is gone: %s; released", name, describe(op))
                    _break_lock(limit)
                    continue
                busy = f"{site.name} is busy with {describe(op)}" if op else f"{site.name} is busy with another task"
                if not _wait():
                    raise SiteBusy(f"{busy}; try again later (or without --no-wait to wait)") from None
                timeout = POLL_SECONDS
                if waited_since is None:
                    waited_since = time.monotonic()
                    logger.info("waiting: %s", busy)
        if waited_since is not None:
            logger.info("%s: lock acquired after %.0f s", site.name, time.monotonic() - waited_since)
        yield


@contextlib.contextmanager
def db_slot(server: ServerContext) -> Iterator[None]:
    """One of the db server's ``db_task_limit`` slots (limit ``db-<slug>``) for a dump or an import."""
    limit = f"db-{server.slug}"
    ensure_limit(limit, server.db_task_limit)
    with concurrency(limit, occupy=1, strict=True, lease_duration=LEASE_SECONDS, holder=_holder()):
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
