"""What every task needs: the context store, transports, and the retry policy for transient faults."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NoReturn

from prefect import Task, get_run_logger
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from aegir.contexts import ContextBase
from aegir.errors import AegirError
from blocks.store import BlockStore

# transient faults are retried after these delays (seconds); AEGIR_TASK_RETRY_DELAYS="0,0" shortens them
RETRY_DELAYS = [float(d) for d in os.environ.get("AEGIR_TASK_RETRY_DELAYS", "2,5,15").split(",") if d.strip()]


def store() -> BlockStore:
    return BlockStore.from_prefect()


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
    """Write task-managed facts onto a context (validated) and persist it."""
    updated = type(ctx).model_validate({**ctx.model_dump(), **facts})
    store().put(updated)
    return updated


class Undo:
    """Compensation for a flow's completed steps: each step that changed the world pushes its undo (a task
    and its arguments); on failure :meth:`rollback` runs them newest first and reports what it did.

    Prefect transactions fire rollback hooks on a failed *attempt* even when a retry then succeeds
    (prefect-notes §2.5), so flows whose steps retry transient faults compensate explicitly instead.
    """

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []

    def push(self, label: str, fn: Callable[..., Any], *args: Any) -> None:
        self._steps.append((label, fn, args))

    def rollback(self) -> tuple[list[str], list[str]]:
        """Run every undo (newest first); one failing undo does not stop the others."""
        logger = get_run_logger()
        done: list[str] = []
        failed: list[str] = []
        while self._steps:
            label, fn, args = self._steps.pop()
            try:
                fn(*args)
                done.append(label)
                logger.info("rolled back: %s", label)
            except Exception as e:  # noqa: BLE001 - every undo must get its chance
                failed.append(f"{label} ({e})")
                logger.error("rollback step failed: %s: %s", label, e)
        return done, failed

    def fail(self, task: str, error: BaseException) -> NoReturn:
        """Roll back, then raise one error saying what failed and what was undone."""
        done, failed = self.rollback()
        summary = f"rolled back: {', '.join(done) if done else 'nothing to undo'}"
        if failed:
            summary += f"; ROLLBACK INCOMPLETE, check by hand: {'; '.join(failed)}"
        raise TaskFailed(f"{task}: {error} ({summary})") from error


class TaskFailed(AegirError):
    """A task flow failed (and rolled back): the message says why and what was undone."""
