#!/usr/bin/env bash
# Installs everything, then runs the whole test suite (unit + integration, real services) and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
