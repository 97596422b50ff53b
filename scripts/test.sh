#!/usr/bin/env bash
# Installs everything, then runs the linter and the whole test suite (unit + integration, real services).
# The suite runs as two shards in parallel (most of an integration test is waiting on real services): the
# second shard against a private MariaDB on port 3307 (scripts/test-mariadb.sh), so the shards never see each
# other's databases. Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .

# the second shard: the long crash, migrate and fault-injection suites
SHARD2=(tests/integration/test_crash_resume.py tests/integration/test_migrate.py
        tests/integration/test_migrate_faults.py tests/integration/test_compare.py)
deselect=()
for f in "${SHARD2[@]}"; do deselect+=(--deselect "$f"); done

logs=$(mktemp -d)
scripts/test-mariadb.sh start 3307 >/dev/null
trap 'scripts/test-mariadb.sh stop 3307 >/dev/null 2>&1 || true; rm -rf "$logs"' EXIT

.venv/bin/python -m pytest -q -p no:cacheprovider "${deselect[@]}" "$@" >"$logs/1" 2>&1 &
one=$!
AEGIR_TEST_MARIADB_PORT=3307 .venv/bin/python -m pytest -q -p no:cacheprovider "${SHARD2[@]}" "$@" >"$logs/2" 2>&1 &
two=$!
status=0
wait "$one" || status=1
wait "$two" || status=1
for n in 1 2; do
  echo "=== shard $n ==="
  cat "$logs/$n"
done
exit "$status"
