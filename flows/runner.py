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


# every task flow, by its Prefect flow name (what `aegir resume` re-runs)
FLOWS = {
    "verify-server": "flows.verify_server:verify_server",
    "verify-platform": "flows.verify_platform:verify_platform",
    "verify-site": "flows.verify_site:verify_site",
    "install-site": "flows.install_site:install_site",
    "login-reset": "flows.login_reset:login_reset",
    "disable-site": "flows.disable_enable:disable_site",
    "enable-site": "flows.disable_enable:enable_site",
    "backup-site": "flows.backup_site:backup_site",
    "backup-delete": "flows.backup_site:backup_delete",
    "restore-site": "flows.restore_site:restore_site",
    "delete-site": "flows.delete_site:delete_site",
    "compare-site": "flows.compare_site:compare_site",
    "migrate-site": "flows.migrate_site:migrate_site",
    "clone-site": "flows.clone_site:clone_site",
    "backup-all": "flows.backup_all:backup_all",
    "purge-backups": "flows.purge_backups:purge_backups",
    "migrate-platform": "flows.migrate_platform:migrate_platform",
}


def _load(flow_ref: str) -> Any:
    module, attr = flow_ref.split(":")
    return getattr(importlib.import_module(module), attr)


def _outcome(state: Any) -> tuple[bool, Any]:
    if state.is_completed():
        return True, state.result()
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        return False, outcome
    return False, state.message or state.name


def _announcing(flow: Any, announce: Callable[[str, str], None]) -> Any:
    def on_running(_flow: Any, flow_run: Any, _state: Any) -> None:
        announce(flow_run.name, str(flow_run.id))

    return flow.with_options(on_running=[on_running])


def run_flow(flow_ref: str, params: dict[str, Any], announce: Callable[[str, str], None]) -> tuple[bool, Any]:
    """Run ``module:function`` with ``params``; returns (True, result) or (False, the exception, or the state's
    message when there is none)."""
    flow = _announcing(_load(flow_ref), announce)
    _quiet_console_tracebacks()  # after the import: importing Prefect sets up its console handlers
    return _outcome(flow(**params, return_state=True))


def resume_flow_run(flow_run_id: str, force: bool, announce: Callable[[str, str], None]) -> tuple[bool, Any]:
    """Run an interrupted (or failed) flow run again, as the same flow run: under the site's lock it first
    rolls back — or finishes — what the interrupted attempt left (tasks/operation.py), then runs its steps.

    A run still marked Running is taken over only when its process is known to be gone (the site's journal
    names the host and pid), or with ``force`` when it ran on another host."""
    from uuid import UUID

    from prefect import get_client
    from prefect.flow_engine import run_flow_sync
    from prefect.states import Crashed, Scheduled

    from aegir.errors import AegirError, InputError, NotFoundError
    from blocks.store import BlockStore
    from tasks.operation import describe, holder_state

    try:
        run_id = UUID(flow_run_id)
    except ValueError:
        raise InputError("flow_run_id", f"must be a flow run id (a UUID), not {flow_run_id!r}") from None
    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(run_id)
        except Exception as e:  # noqa: BLE001 - the API's "not found" is an httpx error subclass
            raise NotFoundError(f"no flow run {flow_run_id}") from e
        flow_name = client.read_flow(flow_run.flow_id).name
        if flow_name not in FLOWS:
            raise InputError("flow_run_id", f"{flow_run_id} is a {flow_name} run, not an Aegir task")
        state = flow_run.state
        if state is not None and not state.is_final():
            journal = next(
                (
                    ctx.operation
                    for ctx in BlockStore.from_prefect().list("site")
                    if getattr(ctx, "operation", None) and ctx.operation.get("flow_run") == flow_run_id
                ),
                None,
            )
            if journal is not None:
                holder = holder_state(journal)
                if holder == "alive" or (holder == "unknown" and not force):
                    raise AegirError(
                        f"{flow_run_id} is still running: {describe(journal)}"
                        + ("" if holder == "alive" else "; if that worker is gone, use --force")
                    )
            client.set_flow_run_state(run_id, Crashed(message="taken over by aegir resume"), force=True)
        client.set_flow_run_state(run_id, Scheduled(message="resumed by aegir resume"), force=True)
        flow_run = client.read_flow_run(run_id)
    flow = _announcing(_load(FLOWS[flow_name]), announce)
    _quiet_console_tracebacks()
    return _outcome(run_flow_sync(flow, flow_run=flow_run, parameters=flow_run.parameters, return_type="state"))
