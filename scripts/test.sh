#!/usr/bin/env bash
# The test command: provision the services (scripts/services.sh), install dbpulse with its test
# extra, check lint and types, run the whole test suite. Arguments go to pytest.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh tests/unit -q   # a part
#
# With CI=true a missing service fails the tests instead of skipping them.
#
# The whole suite runs on $PYTHON (3.11); then, when no arguments are given, the unit and
# integration suites run again on every other supported Python ($DBPULSE_PYTHONS, default
# "3.12 3.13"; empty skips them), each in a venv under the cache dir (venv-3.12, ...) that is
# reused while pyproject.toml is unchanged. An interpreter is found as pythonX.Y on PATH or
# under pyenv; a missing one is skipped, and fails with CI=true.
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
    status=1
fi
main_version="$("$PYTHON" -c 'import platform; print(platform.python_version())')"
summary=("Python $main_version: tests ${*:-(all)}: $([ "$status" -eq 0 ] && echo passed || echo "FAILED ($status)")")

if [ "$#" -eq 0 ]; then
    for version in ${DBPULSE_PYTHONS-3.12 3.13}; do
        line="$(scripts/other_python.sh "$version")" || status=1
        summary+=("$line")
    done
fi

echo "[test] summary:" >&2
printf '[test]   %s\n' "${summary[@]}" >&2
exit "$status"
