#!/usr/bin/env bash
# Set up the environment (scripts/setup_env.sh) and run the linter, the import-layer contract (pyproject.toml,
# [tool.importlinter]) and the whole test suite.
# pytest's exit code 5 ("no tests collected") is a failure here, not a success.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh || exit 1
# shellcheck disable=SC1091
. "${SEAL_VENV:-.venv}/bin/activate"
ruff check seal_transfer scripts tests || exit 1
lint-imports --no-cache || exit 1
python -m pytest -q -n 2 "$@"
code=$?
if [ "$code" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$code"
