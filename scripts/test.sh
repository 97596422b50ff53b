#!/usr/bin/env bash
# Installs everything, then runs the linter and the whole test suite (unit + integration, real services).
# The suite runs as three shards in parallel (most of an integration test is waiting on real services). The
# second and third shards run against private MariaDB servers on ports 3307 and 3308 (scripts/test-mariadb.sh),
# so no shard ever sees another's databases. Extra arguments go to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .

# shard 2: the long crash and migrate suites
SHARD2=(tests/integration/test_crash_resume.py tests/integration/test_migrate.py tests/integration/test_compare.py)
# shard 3: the suites that bring their own infrastructure (a Prefect server on PostgreSQL and a worker; hosts
# in network namespaces), the backup manager and migrate's fault injection
SHARD3=(tests/integration/test_deployments.py tests/integration/test_remote_hosts.py
        tests/integration/test_hosts.py tests/integration/test_backup_manager.py
        tests/integration/test_migrate_faults.py)
deselect=()
for f in "${SHARD2[@]}" "${SHARD3[@]}"; do deselect+=(--deselect "$f"); done

logs=$(mktemp -d)
scripts/test-mariadb.sh start 3307 >/dev/null
scripts/test-mariadb.sh start 3308 >/dev/null
trap 'scripts/test-mariadb.sh stop 3307 >/dev/null 2>&1 || true; scripts/test-mariadb.sh stop 3308 >/dev/null 2>&1 || true; rm -rf "$logs"' EXIT

.venv/bin/python -m pytest -q -p no:cacheprovider "${deselect[@]}" "$@" >"$logs/1" 2>&1 &
one=$!
AEGIR_TEST_MARIADB_PORT=3307 .venv/bin/python -m pytest -q -p no:cacheprovider "${SHARD2[@]}" "$@" >"$logs/2" 2>&1 &
two=$!
AEGIR_TEST_MARIADB_PORT=3308 .venv/bin/python -m pytest -q -p no:cacheprovider "${SHARD3[@]}" "$@" >"$logs/3" 2>&1 &
three=$!
status=0
wait "$one" || status=1
wait "$two" || status=1
wait "$three" || status=1
for n in 1 2 3; do
  echo "=== shard $n ==="
  cat "$logs/$n"
done
exit "$status"
