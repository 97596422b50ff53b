"""Progress of a long site task, shown in the flow run's Artifacts tab: a progress artifact advanced by every
sub-task (``step``), at 100 % when the task ends well. The expected number of sub-tasks is the task's own
estimate (the usual path); the bar stops short of 100 % until the end if a run takes more."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact


@dataclass
class Progress:
    label: str
    expected: int
    artifact: UUID
    done: int = 0

    def advance(self, step: str) -> None:
        self.done += 1
        share = min(95.0, 100.0 * self.done / self.expected)
        update_progress_artifact(self.artifact, share, description=f"{self.label}: {step} done ({self.done} steps)")


_current: ContextVar[Progress | None] = ContextVar("aegir_progress", default=None)


@contextlib.contextmanager
def tracking(label: str, expected: int) -> Iterator[Progress]:
    """A progress artifact for the body; 100 % if it ends without an exception."""
    progress = Progress(label, expected, create_progress_artifact(0.0, description=f"{label}: starting"))
    token = _current.set(progress)
    try:
        yield progress
        update_progress_artifact(progress.artifact, 100.0, description=f"{label}: finished ({progress.done} steps)")
    finally:
        _current.reset(token)


def advance(step: str) -> None:
    """Called by every sub-task when it ends (no-op outside :func:`tracking`)."""
    progress = _current.get()
    if progress is not None:
        progress.advance(step)
