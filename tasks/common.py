"""What every task needs: the context store, transports, and the retry policy for transient faults."""

from __future__ import annotations

import os
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from aegir.contexts import ContextBase
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
