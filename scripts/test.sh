#!/usr/bin/env bash
# The test command: provision the services (scripts/services.sh), install dbpulse with its test
# extra, check lint and types, run the whole test suite. Arguments go to pytest.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh tests/unit -q   # a part
#
# With CI=true a missing service fails the tests instead of skipping them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"

scripts/services.sh all
# shellcheck disable=SC1090
. "${DBPULSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dbpulse}/env"

echo "[test] installing dbpulse[test]" >&2
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[test]"

echo "[test] ruff, mypy and the import layers" >&2
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
"$PYTHON" -m mypy
# import-linter has no "python -m" entry; its console script sits next to this interpreter.
"$("$PYTHON" -c "import sys, os; print(os.path.join(os.path.dirname(sys.executable), 'lint-imports'))")"

echo "[test] pytest $*" >&2
set +e
"$PYTHON" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "[test] pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
