"""Failed and crashed task runs notify the hosting team (``aegir-email-notification/default``, if configured).
Every task flow is declared with :func:`task_flow`, which attaches the hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Flow, flow
from prefect.client.schemas.objects import FlowRun
from prefect.logging import get_logger
from prefect.settings import PREFECT_UI_URL
from prefect.states import State

from aegir.errors import AegirError
from aegir.notify import DEFAULT_NAME, failure_notice


def notify_failure(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Hook: e-mail the failure. A run inside another (a site's backup in backup-all) stays quiet: the outer
    run reports, once. No notification configured: nothing to do. A mail problem is logged, never raised."""
    if flow_run.parent_task_run_id is not None:
        return
    from blocks.notifications import AegirEmailNotification

    logger = get_logger("aegir.notify")
    try:
        block = AegirEmailNotification.load(DEFAULT_NAME)
    except ValueError:
        return
    ui = PREFECT_UI_URL.value()
    subject, body = failure_notice(
        run_name=flow_run.name,
        state=state.name,
        reason=state.message or "",
        run_id=str(flow_run.id),
        url=f"{ui}/runs/flow-run/{flow_run.id}" if ui else None,
        parameters=dict(flow_run.parameters),
    )
    try:
        block.send(body, subject)
        logger.info("failure of %s notified to %s", flow_run.name, ", ".join(block.to))
    except (AegirError, ValueError) as e:
        logger.warning("failure of %s NOT notified: %s", flow_run.name, e)


def task_flow(**options: Any) -> Callable[[Callable[..., Any]], Flow[Any, Any]]:
    """``@flow(**options)`` whose failure or crash notifies."""
    return flow(on_failure=[notify_failure], on_crashed=[notify_failure], **options)
