"""dbpulse under ``opentelemetry-instrument`` plays by its rules: a quiet start (with
opentelemetry-distro installed alongside, as in the test extra, and without it, in a venv that
holds dbpulse alone), a quiet ``dbpulse demo``, and ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
honoured with the stock names as well as dbpulse's."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

APP = """
import sqlite3
from opentelemetry import trace
c = sqlite3.connect(":memory:")
c.execute("CREATE TABLE books (isbn TEXT)")
c.execute("INSERT INTO books VALUES (?)", ("9780306406157",))
print("ids", type(getattr(trace.get_tracer_provider(), "id_generator", None)).__name__)
print("app done")
"""

NOISE = re.compile(r"WARNING|not allowed|not loaded|already instrumented", re.IGNORECASE)


REPO = Path(__file__).resolve().parents[2]


def _instrumented(
    args: list[str], cwd: Path, python: str = sys.executable, **env: str
) -> subprocess.CompletedProcess[str]:
    launcher = str(Path(python).parent / "opentelemetry-instrument")
    if not Path(launcher).exists():
        launcher = shutil.which("opentelemetry-instrument") or ""
    assert launcher, "opentelemetry-instrument is installed with opentelemetry-instrumentation"
    full = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", **env}
    for name in ("OTEL_PYTHON_DISTRO", "OTEL_PYTHON_CONFIGURATOR"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run(
        [launcher, python, *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOISE.search(line)]


# Unset: whichever distro comes first. "distro": opentelemetry-distro's, so its
# instrumentors are loaded after dbpulse's took them over and dbpulse's configurator still runs.
@pytest.mark.parametrize("distro", [None, "dbpulse", "distro"])
def test_a_start_under_opentelemetry_instrument_is_quiet(tmp_path: Path, distro: str | None):
    pytest.importorskip("opentelemetry.distro")  # the situation this is about
    (tmp_path / "app.py").write_text(APP)
    env = {"OTEL_PYTHON_DISTRO": distro} if distro else {}
    result = _instrumented(["app.py"], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout
    assert _noise(result.stderr) == [], result.stderr
    # dbpulse's configurator built the SDK (flow-aware trace ids), not the stock one.
    assert "ids FlowIdGenerator" in result.stdout, result.stdout


def test_a_configurator_the_user_chose_is_still_reported(tmp_path: Path):
    """The quiet is for what dbpulse chose: skipping dbpulse's own configurator stays loud."""
    pytest.importorskip("opentelemetry.distro")
    (tmp_path / "app.py").write_text(APP)
    result = _instrumented(["app.py"], tmp_path, OTEL_PYTHON_CONFIGURATOR="configurator")
    assert result.returncode == 0, result.stderr
    assert "Configuration of dbpulse not loaded" in result.stderr


def _venv_without_distro() -> Path:
    """A venv holding dbpulse with its CLI and viz extras and no opentelemetry-distro: what a
    user who installs dbpulse alone has. Made once under the cache dir and reused while
    pyproject.toml and the checkout are unchanged (about 20 s cold)."""
    cache = Path(
        os.environ.get("DBPULSE_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dbpulse"
    )
    venv = cache / f"venv-nodistro-{sys.version_info[0]}.{sys.version_info[1]}"
    python = venv / "bin" / "python"
    stamp = venv / ".dbpulse-installed"
    want = f"{REPO} {hashlib.sha256((REPO / 'pyproject.toml').read_bytes()).hexdigest()}"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text() != want:
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", f"{REPO}[cli,viz]"], check=True, timeout=600)
        stamp.write_text(want)
    return python


@pytest.fixture(scope="module")
def nodistro_python() -> str:
    python = _venv_without_distro()
    has = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print(u.find_spec('opentelemetry.distro'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert has.stdout.strip() == "None", "the venv must not hold opentelemetry-distro"
    return str(python)


def test_a_start_without_opentelemetry_distro_is_quiet(tmp_path: Path, nodistro_python: str):
    (tmp_path / "app.py").write_text(APP)
    result = _instrumented(["app.py"], tmp_path, python=nodistro_python)
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout
    assert _noise(result.stderr) == [], result.stderr
    assert "ids FlowIdGenerator" in result.stdout, result.stdout


def test_the_demo_without_opentelemetry_distro_is_quiet(tmp_path: Path, nodistro_python: str):
    args = ["-m", "dbpulse.cli", "demo", "--duration", "2", "--no-summary", "--port", "0"]
    result = _instrumented(args, tmp_path, python=nodistro_python)
    assert result.returncode == 0, result.stderr
    assert _noise(result.stderr) == [], result.stderr
    assert "viz server received" in " ".join(result.stdout.split()), result.stdout


@pytest.mark.parametrize("otlp", [False, True])
def test_the_demo_under_opentelemetry_instrument_reuses_the_sdk_quietly(tmp_path: Path, otlp):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    # An endpoint made the demo call dbpulse.configure() again: "Overriding ... not allowed".
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"} if otlp else {}
    args = ["-m", "dbpulse.cli", "demo", "--duration", "2", "--no-summary", "--port", "0"]
    result = _instrumented(args, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert _noise(result.stderr) == [], result.stderr
    found = re.search(r"viz server received ([\d,]+) events", " ".join(result.stdout.split()))
    assert found, result.stdout
    assert int(found.group(1).replace(",", "")) > 0, "the sphere is fed from the borrowed SDK"


CHECK = """
import importlib
module, name = "{module}", "{name}"
instrumentor = getattr(importlib.import_module(module), name)()
print("instrumented", instrumentor.is_instrumented_by_opentelemetry)
"""


@pytest.mark.parametrize(
    ("disabled", "module", "name", "expected"),
    [
        ("sqlite3", "dbpulse.instrumentors.sqlite", "SQLite3Instrumentor", False),
        ("dbpulse_sqlite3", "dbpulse.instrumentors.sqlite", "SQLite3Instrumentor", False),
        ("flask , sqlite3", "dbpulse.instrumentors.sqlite", "SQLite3Instrumentor", False),
        ("redis", "dbpulse.instrumentors.sqlite", "SQLite3Instrumentor", True),
        ("redis", "dbpulse.instrumentors.redis", "RedisInstrumentor", False),
        ("psycopg", "dbpulse.instrumentors.psycopg", "PsycopgInstrumentor", False),
        ("duckdb", "dbpulse.instrumentors.duckdb", "DuckDBInstrumentor", False),
        ("sqlite3", "dbpulse.instrumentors.redis", "RedisInstrumentor", True),
    ],
)
def test_disabled_instrumentations_take_the_stock_names_too(
    tmp_path: Path, disabled: str, module: str, name: str, expected: bool
):
    driver = {"redis": "redis", "psycopg": "psycopg", "duckdb": "duckdb"}.get(
        module.rsplit(".")[-1]
    )
    if driver:
        pytest.importorskip(driver)
    (tmp_path / "check.py").write_text(CHECK.format(module=module, name=name))
    result = _instrumented(["check.py"], tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
    assert result.returncode == 0, result.stderr
    assert f"instrumented {expected}" in result.stdout, (result.stdout, result.stderr)
