#!/usr/bin/env bash
# After scripts/demo.sh: the hosting system is running - the API answers, every deployment of prefect.yaml is
# registered, and the scheduled ones (backup-all, purge-backups) are unpaused with their schedules active.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/aegir server status
.venv/bin/python - <<'PY'
import sys

from prefect import get_client

from deployments.serve import load_config

problems = []
with get_client(sync_client=True) as client:
    for spec in load_config():
        name = f"{spec['name']}/{spec['name']}"
        try:
            d = client.read_deployment_by_name(name)
        except Exception as e:  # noqa: BLE001 - reported below
            problems.append(f"{name}: {e}")
            continue
        if spec.get("schedules"):
            schedules = client.read_deployment_schedules(d.id)
            if d.paused or not schedules or not all(s.active for s in schedules):
                problems.append(f"{name}: paused={d.paused}, schedules active={[s.active for s in schedules]}")
            else:
                print(f"{name}: served, {len(schedules)} schedule(s) active")
if problems:
    sys.exit("check-running: " + "; ".join(problems))
print("check-running: every deployment registered, the scheduled ones active")
PY
