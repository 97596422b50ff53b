"""What every task needs: the context store, transports, and the retry policy for transient faults."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, get_run_logger, task
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import MissingContextError
from prefect.states import State

from aegir.contexts import ContextBase
from aegir.errors import AegirError
from blocks.store import BlockStore

from . import progress

# transient faults are retried after these delays (seconds); AEGIR_TASK_RETRY_DELAYS="0,0" shortens them
P = ParamSpec("P")
R = TypeVar("R")

RETRY_DELAYS = [float(d) for d in os.environ.get("AEGIR_TASK_RETRY_DELAYS", "2,5,15").split(",") if d.strip()]


_stores: dict[str, BlockStore] = {}


def store() -> BlockStore:
    """The context store of the API this process's Prefect client uses: one per API and process (a new HTTP
    client costs ~17 ms — its TLS context — and new connections; httpx clients are thread-safe)."""
    from prefect.settings import PREFECT_API_URL

    url = str(PREFECT_API_URL.value() or "")
    if url not in _stores:
        _stores[url] = BlockStore.from_prefect()
    return _stores[url]


def transient_only(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry connection-type faults (refused, timed out, SSH dropped); never logic errors."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and bool(getattr(exc, "transient", False))


TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": len(RETRY_DELAYS),
    "retry_delay_seconds": RETRY_DELAYS,
    "retry_condition_fn": transient_only,
}


def record(ctx: ContextBase, **facts: Any) -> ContextBase:
    """Write task-managed facts of a context (validated with the rest of ``ctx``): only these fields are
    written, so fields other tasks (or `aegir save`) wrote meanwhile are kept. A context whose record is gone
    (renamed, deleted) is written whole."""
    updated = type(ctx).model_validate({**ctx.model_dump(), **facts})
    if not store().update(updated, facts):
        store().put(updated)
    return updated


# ---------------------------------------------------------------------------------------------------------
# the core's logs in the run's log
# ---------------------------------------------------------------------------------------------------------
class RunLogBridge(logging.Handler):
    """Records of the core's loggers (``aegir.*``: the core never imports Prefect) go to the log of the flow
    or task run they happen in — e.g. the whole output of a failed drush command. Outside any run, warnings
    and errors go to stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            try:
                logger = get_run_logger()
            except MissingContextError:
                if record.levelno >= logging.WARNING:
                    sys.stderr.write(f"{record.levelname} {record.name}: {message}\n")
                return
            logger.log(record.levelno, "%s", message)
        except Exception:  # noqa: BLE001 - logging must never break the task
            self.handleError(record)


def bridge_core_logs() -> None:
    """Install :class:`RunLogBridge` on the ``aegir`` logger once (INFO and up; not propagated further, so a
    record is not printed twice)."""
    core = logging.getLogger("aegir")
    if not any(isinstance(h, RunLogBridge) for h in core.handlers):
        core.addHandler(RunLogBridge())
        core.setLevel(logging.INFO)
        core.propagate = False


bridge_core_logs()


# ---------------------------------------------------------------------------------------------------------
# sub-tasks whose boundaries tests can break on purpose
# ---------------------------------------------------------------------------------------------------------
FAULT_ENV = "AEGIR_FAULT"
_calls: Counter[tuple[str, str]] = Counter()  # (flow run, sub-task) -> calls so far


def _run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or "")


def fault_point(name: str, when: str) -> None:
    """Fault injection for the crash and rollback tests: ``AEGIR_FAULT="deploy-archive:after:kill"`` kills the
    process (SIGKILL) right after that sub-task's body; ``maintenance-mode#2:before:raise`` fails the second
    maintenance-mode call of the flow run before it runs; ``backup-archive:before:pause=5`` holds it 5 s (a busy site).
    Comma-separated for several. Unset (always, in production): no-op."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for fault in spec.split(","):
        target, _, rest = fault.strip().partition(":")
        at, _, kind = rest.partition(":")
        step_name, _, nth = target.partition("#")
        if step_name != name or at != when or (nth and int(nth) != _calls[(_run_id(), name)]):
            continue
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind.startswith("pause="):
            time.sleep(float(kind[len("pause=") :]))
            continue
        raise InjectedFault(f"injected fault {fault.strip()}")


class InjectedFault(AegirError):
    """Raised by :func:`fault_point` (tests only)."""


def step(name: str, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task(name=..., **options)`` with fault points at its start and end (see :func:`fault_point`)."""

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        @functools.wraps(fn)
        def body(*args: P.args, **kwargs: P.kwargs) -> R:
            _calls[(_run_id(), name)] += 1
            fault_point(name, "before")
            result = fn(*args, **kwargs)
            fault_point(name, "after")
            progress.advance(name)
            return result

        return task(name=name, **options)(body)

    return decorate


class TaskFailed(AegirError):
    """A task flow failed (and rolled back): the message says why and what was undone."""
