"""``aegir serve`` / ``python -m deployments.serve``: every deployment of prefect.yaml, served by one
long-running process with no work pool or worker (the one-machine setup).

prefect.yaml is the single source of truth: each deployment's name, entrypoint, description, tags, parameters
and schedules (cron, interval or rrule with timezone, slug, active, parameters) are read from it. The
deployments keep the names ``prefect deploy --all`` gives them, so ``prefect deployment run
migrate-site/migrate-site …``, the UI and the schedules work the same with either. Each run executes in a
subprocess of this process, from the checkout's root (deployments.code), so the entrypoints resolve.
Stopping the process (Ctrl-C, SIGINT or SIGTERM, also while a run is finishing, also when started in the
background) pauses the deployments and marks their schedules inactive, so `prefect deployment schedule ls` says
what runs; the next ``aegir serve`` resumes them.
"""

from __future__ import annotations

import datetime
import importlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from aegir.errors import AegirError
from deployments.code import CODE_ROOT, use_code_root

PREFECT_YAML = CODE_ROOT / "prefect.yaml"
SCHEDULE_KINDS = ("cron", "interval", "rrule")


def load_config(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The ``deployments`` of prefect.yaml (anchors resolved)."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise AegirError(f"cannot read {path}: {e}") from None
    deployments = (config or {}).get("deployments") or []
    if not deployments:
        raise AegirError(f"{path} declares no deployments")
    return deployments


def module_ref(entrypoint: str) -> tuple[str, str]:
    """``flows/migrate_site.py:migrate_site`` → (``flows.migrate_site``, ``migrate_site``)."""
    path, _, attr = entrypoint.rpartition(":")
    if not path.endswith(".py") or not attr:
        raise AegirError(f"entrypoint {entrypoint!r} is not of the form path/to/module.py:function")
    return path[: -len(".py")].replace("/", "."), attr


def load_flow(entrypoint: str) -> Any:
    """The flow object, imported as a module of the package (the same objects the CLI runs)."""
    module, attr = module_ref(entrypoint)
    return getattr(importlib.import_module(module), attr)


def schedule(spec: dict[str, Any]) -> Any:
    """One schedule entry of prefect.yaml as a prefect.schedules object."""
    from prefect.schedules import Cron, Interval, RRule

    kinds = [k for k in SCHEDULE_KINDS if spec.get(k) is not None]
    if len(kinds) != 1:
        raise AegirError(f"a schedule needs exactly one of cron, interval or rrule: {spec!r}")
    common = {
        "timezone": spec.get("timezone"),
        "active": spec.get("active", True),
        "parameters": spec.get("parameters") or {},
        "slug": spec.get("slug"),
    }
    if kinds == ["cron"]:
        return Cron(spec["cron"], day_or=spec.get("day_or", True), **common)
    if kinds == ["rrule"]:
        return RRule(spec["rrule"], **common)
    interval = spec["interval"]
    if isinstance(interval, int | float):
        interval = datetime.timedelta(seconds=interval)
    anchor = spec.get("anchor_date")
    if isinstance(anchor, str):
        anchor = datetime.datetime.fromisoformat(anchor)
    return Interval(interval, anchor_date=anchor, **common)


def build_deployments(path: Path = PREFECT_YAML) -> list[Any]:
    """A ``RunnerDeployment`` per entry of prefect.yaml (nothing is registered or started)."""
    use_code_root()  # entrypoints are relative to the checkout; served runs start from here too
    built = []
    for spec in load_config(path):
        flow = load_flow(spec["entrypoint"])
        deployment = flow.to_deployment(
            name=spec["name"],
            description=spec.get("description"),
            tags=spec.get("tags"),
            version=spec.get("version"),
            parameters=spec.get("parameters") or None,
            schedules=[schedule(s) for s in spec.get("schedules") or []],
            paused=False,  # resumes what the last shutdown paused
            enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
        )
        # Set explicitly (as Prefect's own Runner.add_flow does), so a deployment `prefect deploy` put on the
        # work pool moves to this process instead of waiting for a worker.
        deployment.work_pool_name = None
        deployment.work_queue_name = None
        built.append(deployment)
    return built


def _registered(client: Any, deployments: list[Any]) -> Iterator[tuple[Any, str, Any]]:
    """(deployment, its "flow/name", what the API holds for it) of each of ``deployments`` the API has."""
    from prefect.exceptions import ObjectNotFound

    for deployment in deployments:
        name = f"{deployment.flow_name}/{deployment.name}"
        try:
            yield deployment, name, client.read_deployment_by_name(name)
        except ObjectNotFound:
            continue


def take_over(deployments: list[Any]) -> list[str]:
    """Deployments that ``prefect deploy`` made for the work pool (pull steps, no ``path``) get ``path: .``,
    as served ones have: serving updates the rest, but Prefect's update never sends ``path``, and a
    deployment with neither pull steps nor path crashes its runs ("No such file or directory: '…/None'")."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    changed = []
    with get_client(sync_client=True) as client:
        for _, name, existing in _registered(client, deployments):
            if existing.path != ".":
                client.update_deployment(existing.id, DeploymentUpdate(path="."))
                changed.append(name)
    return changed


def set_served(deployments: list[Any], served: bool) -> list[str]:
    """Not served (a serve stopping): each deployment paused and its schedules inactive, so nothing is scheduled
    that no process would run. Served (a serve starting): unpaused, each schedule as prefect.yaml says (by slug).
    Prefect's runner pauses on a clean stop only (a SIGTERM while a run is finishing can leave deployments
    unpaused), a paused deployment's schedules still list as active, and re-serving a deployment (an upsert)
    changes neither. Returns the deployments changed."""
    from prefect import get_client

    changed = []
    with get_client(sync_client=True) as client:
        for deployment, name, existing in _registered(client, deployments):
            wanted = {s.slug: s.active for s in deployment.schedules if s.slug}
            for entry in client.read_deployment_schedules(existing.id):
                active = served and wanted.get(entry.slug, True)
                if entry.active != active:
                    client.update_deployment_schedule(existing.id, entry.id, active=active)
            if served:
                client.resume_deployment(existing.id)
            else:
                client.pause_deployment(existing.id)
            changed.append(name)
    return changed


def serve(limit: int | None = None) -> None:
    """Serve every deployment until interrupted (blocks); on the way out, whatever stopped it, the deployments
    are paused (see :func:`set_served`)."""
    from prefect import serve as prefect_serve

    deployments = build_deployments()
    take_over(deployments)
    set_served(deployments, True)
    # A process started in the background by a non-interactive shell inherits SIGINT ignored: Ctrl-C / kill -INT
    # must stop it all the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        prefect_serve(*deployments, limit=limit)
    except SystemExit as e:  # Prefect's own SIGTERM handler exits with 0 once the runner stopped
        if e.code not in (0, None):
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the pause short
            signal.signal(sig, signal.SIG_IGN)
        paused = set_served(deployments, False)
        print(f"stopped: {len(paused)} deployments paused, their schedules inactive", flush=True)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m deployments.serve",
        description="Serve every deployment of prefect.yaml from this process, with no work pool (as aegir serve).",
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many runs at once")
    args = parser.parse_args(argv)
    from blocks.store import START_HINT, configured_api_url

    if not configured_api_url():  # never serve against a throw-away ephemeral server
        print(f"no Prefect API is configured: {START_HINT}", file=sys.stderr)
        raise SystemExit(4)  # as aegir's "no Prefect API"
    serve(limit=args.limit)


if __name__ == "__main__":
    main()
