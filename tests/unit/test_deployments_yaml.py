"""prefect.yaml declares a deployment per Aegir task (named like its flow), and `aegir serve` builds exactly
those deployments from it: same names, entrypoints, descriptions, tags and schedules. Nothing is started."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
import yaml

from deployments import code, serve
from flows.runner import FLOWS

REPO = Path(__file__).resolve().parents[2]
SPECS = serve.load_config()
BY_NAME = {spec["name"]: spec for spec in SPECS}
SCHEDULED = {"backup-all": ("0 2 * * *", "nightly"), "purge-backups": ("30 4 * * *", "daily")}


def test_every_task_flow_has_a_deployment_and_every_deployment_a_task_flow():
    assert len(BY_NAME) == len(SPECS), "duplicate deployment names"
    assert sorted(BY_NAME) == sorted(FLOWS)
    for name, spec in BY_NAME.items():
        module, attr = serve.module_ref(spec["entrypoint"])
        assert f"{module}:{attr}" == FLOWS[name], name
        assert (REPO / spec["entrypoint"].split(":")[0]).is_file()


def test_deployments_are_named_like_their_flows_on_the_aegir_pool():
    for name, spec in BY_NAME.items():
        assert serve.load_flow(spec["entrypoint"]).name == name
        assert spec["work_pool"] == {"name": "aegir", "work_queue_name": "default"}, name
        assert spec.get("description") and "aegir" in spec.get("tags", []), name


def test_only_the_backup_manager_is_scheduled_with_stable_slugs():
    for name, spec in BY_NAME.items():
        schedules = spec.get("schedules") or []
        if name not in SCHEDULED:
            assert schedules == [], name
            continue
        cron, slug = SCHEDULED[name]
        assert schedules == [{"cron": cron, "timezone": "UTC", "slug": slug, "active": True}]


def test_parameters_come_from_the_flow_signatures():
    """Defaults belong to the flows (the UI form shows them); prefect.yaml fixes none."""
    assert [name for name, spec in BY_NAME.items() if spec.get("parameters")] == []


def test_the_pull_step_runs_flows_from_the_checkout(monkeypatch, tmp_path):
    from prefect.utilities.importtools import import_object  # how a worker resolves a pull step's name

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    (pull,) = yaml.safe_load((REPO / "prefect.yaml").read_text())["pull"]
    assert pull == {"deployments.code.set_working_directory": {}}
    assert import_object("deployments.code.set_working_directory")() == {"directory": str(REPO)}
    assert Path.cwd() == REPO == code.CODE_ROOT
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(REPO), "/elsewhere"]


def test_serve_builds_a_deployment_per_entry_of_prefect_yaml(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # serve works from the checkout, wherever it is started
    monkeypatch.setenv("PYTHONPATH", "")
    built = serve.build_deployments()
    assert Path.cwd() == REPO
    assert [d.name for d in built] == [spec["name"] for spec in SPECS]
    for deployment in built:
        spec = BY_NAME[deployment.name]
        assert deployment.flow_name == deployment.name
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.description == spec["description"]
        assert deployment.tags == spec["tags"]
        assert deployment.work_pool_name is None and deployment.paused is False
        assert "work_pool_name" in deployment.model_fields_set  # sent, so serving moves it off the pool
        assert deployment.parameters == {}
        slugs = [(s.schedule.cron, s.schedule.timezone, s.slug, s.active) for s in deployment.schedules or []]
        if deployment.name in SCHEDULED:
            cron, slug = SCHEDULED[deployment.name]
            assert slugs == [(cron, "UTC", slug, True)]
        else:
            assert slugs == []
    schema = next(d for d in built if d.name == "migrate-site")._parameter_openapi_schema
    assert schema.required == ["site", "platform"]


def test_schedule_entries_of_every_kind():
    cron = serve.schedule({"cron": "0 2 * * 1-5", "timezone": "Europe/Berlin", "slug": "weekdays", "day_or": False})
    assert (cron.cron, cron.timezone, cron.slug, cron.day_or, cron.active) == (
        "0 2 * * 1-5",
        "Europe/Berlin",
        "weekdays",
        False,
        True,
    )
    every = serve.schedule(
        {
            "interval": 3600,
            "anchor_date": "2026-01-01T04:00:00",
            "timezone": "UTC",
            "active": False,
            "parameters": {"x": 1},
        }
    )
    assert every.interval == datetime.timedelta(hours=1) and every.active is False and every.parameters == {"x": 1}
    assert every.anchor_date == datetime.datetime(2026, 1, 1, 4)
    rrule = serve.schedule({"rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=5", "timezone": "UTC"})
    assert rrule.rrule == "FREQ=WEEKLY;BYDAY=SU;BYHOUR=5"
    for bad in ({}, {"cron": "0 2 * * *", "interval": 60}):
        with pytest.raises(Exception, match="exactly one of cron, interval or rrule"):
            serve.schedule(bad)
