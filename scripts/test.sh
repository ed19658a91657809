#!/usr/bin/env bash
# Set up .venv (with test requirements), then check what CI checks, in order: the linter
# (ruff check), the formatting (ruff format --check), the types (mypy), the whole test suite.
# Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
echo "[test] ruff check ." >&2
.venv/bin/ruff check .
echo "[test] ruff format --check ." >&2
.venv/bin/ruff format --check .
echo "[test] mypy" >&2
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
