"""Running a task flow in-process for the CLI: announce the run, keep the console readable, report."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any


class _NoTracebackFormatter(logging.Formatter):
    """Console only: one line per log record; the full traceback still goes to the API (run logs)."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging API)
        return ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        record.exc_text = None  # let other handlers render the traceback themselves
        return text.split("\nTraceback (most recent call last):", 1)[0]


def _quiet_console_tracebacks() -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *[logging.getLogger(n) for n in logging.root.manager.loggerDict]]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler):
                fmt = handler.formatter
                handler.setFormatter(
                    _NoTracebackFormatter(fmt._fmt if fmt else None, fmt.datefmt if fmt else None)  # type: ignore[union-attr]
                )


def run_flow(flow_ref: str, params: dict[str, Any], announce: Callable[[str, str], None]) -> tuple[bool, Any]:
    """Run ``module:function`` with ``params``; returns (True, result) or (False, the exception, or the state's
    message when there is none)."""
    module, attr = flow_ref.split(":")
    flow = getattr(importlib.import_module(module), attr)
    _quiet_console_tracebacks()

    def on_running(_flow: Any, flow_run: Any, _state: Any) -> None:
        announce(flow_run.name, str(flow_run.id))

    state = flow.with_options(on_running=[on_running])(**params, return_state=True)
    if state.is_completed():
        return True, state.result()
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        return False, outcome
    return False, state.message or state.name
