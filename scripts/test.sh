#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite: ruff, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test-packages
echo "test: ruff check"
.venv/bin/ruff check .
echo "test: ruff format --check"
.venv/bin/ruff format --check .
echo "test: mypy"
.venv/bin/mypy
echo "test: pytest"
.venv/bin/pytest "$@"
