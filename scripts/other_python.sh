#!/usr/bin/env bash
# The unit and integration suites on another supported Python: scripts/other_python.sh 3.12
#
# The venv is $DBPULSE_CACHE_DIR/venv-<version>, created once and reinstalled (pip install -e
# .[test]) only when pyproject.toml or the checkout's path changed. Prints one summary line on
# stdout ("Python 3.12.1: tests/unit tests/integration: passed in 95 s"); exits non-zero when
# the tests fail, or when the interpreter is missing and CI=true.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version="$1"
CACHE_DIR="${DBPULSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dbpulse}"
SUITES=(tests/unit tests/integration)
start=$(date +%s)

interpreter=""
for candidate in "$(command -v "python$version" 2>/dev/null || true)" \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    # pyenv's shims exist for versions that are not selected: ask the interpreter itself.
    if "$candidate" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$version')" 2>/dev/null; then
        interpreter="$candidate"
        break
    fi
done
if [ -z "$interpreter" ]; then
    echo "[test] no Python $version found (pythonX.Y on PATH or under pyenv)" >&2
    if [ "${CI:-}" = "true" ]; then
        echo "Python $version: MISSING"
        exit 1
    fi
    echo "Python $version: skipped (not installed)"
    exit 0
fi

venv="$CACHE_DIR/venv-$version"
stamp="$venv/.dbpulse-installed"
want="$(pwd) $(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
    echo "[test] Python $version: creating $venv" >&2
    "$interpreter" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "[test] Python $version: installing dbpulse[test]" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
    echo "$want" >"$stamp"
fi
ready=$(date +%s)

full="$("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
echo "[test] Python $full ($venv): pytest ${SUITES[*]}" >&2
set +e
# The venv's bin first: the opentelemetry-instrument and dbpulse the tests launch are its own.
PATH="$venv/bin:$PATH" PYTHONPATH="$(pwd)/instrumentation${PYTHONPATH:+:$PYTHONPATH}" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "${SUITES[@]}" >&2
status=$?
set -e
took="set up in $((ready - start)) s, tests in $(($(date +%s) - ready)) s"
if [ "$status" -eq 0 ]; then
    echo "Python $full: ${SUITES[*]}: passed ($took)"
else
    echo "Python $full: ${SUITES[*]}: FAILED ($status; $took)"
fi
exit "$status"
