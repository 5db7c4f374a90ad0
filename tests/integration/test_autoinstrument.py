"""An unmodified script under ``opentelemetry-instrument`` with dbpulse installed.

The stock opentelemetry-instrumentation-sqlite3/-psycopg are installed alongside (they are in
the test extra): each database call must still produce exactly one span.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

APP = """
import os, sqlite3
c = sqlite3.connect(":memory:")
c.execute("CREATE TABLE books (isbn TEXT)")
c.execute("INSERT INTO books VALUES (?)", ("9780306406157",))
c.cursor().executemany("INSERT INTO books VALUES (?)", [("0-306-40615-2",), ("x",)])
c.cursor().execute("SELECT * FROM books")
dsn = os.environ.get("APP_PG_DSN")
if dsn:
    import psycopg
    with psycopg.connect(dsn) as pg:
        pg.execute("SELECT %s", ("9780140449136",))
print("app done")
"""


def run_app(
    cwd: Path, env: dict[str, str], args: Sequence[str] = ("app.py",), *, instrumented: bool = True
) -> subprocess.CompletedProcess[str]:
    """``opentelemetry-instrument python app.py`` in ``cwd`` (``python app.py`` when not
    ``instrumented``); it must finish and say so ("app done")."""
    launcher = shutil.which("opentelemetry-instrument")
    assert launcher, "opentelemetry-instrument is installed with opentelemetry-instrumentation"
    result = subprocess.run(
        [*([launcher] if instrumented else []), sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout, result.stderr
    return result


def _objects(text: str) -> list[dict]:
    """The console exporters print one JSON document per span / metrics export."""
    decoder = json.JSONDecoder()
    found, index = [], 0
    while True:
        start = text.find("{", index)
        if start < 0:
            return found
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        found.append(obj)
        index = end


def _metrics(objects: list[dict]) -> list[dict]:
    """Every metric of the console exporter's documents (one per metric and export)."""
    return [
        m
        for o in objects
        for rm in o.get("resource_metrics", [])
        for sm in rm["scope_metrics"]
        for m in sm["metrics"]
    ]


def test_opentelemetry_instrument_gives_one_span_per_call_and_metrics(tmp_path: Path, pg_dsn):
    pytest.importorskip("opentelemetry.instrumentation.sqlite3")  # the stock one, alongside
    pytest.importorskip("opentelemetry.instrumentation.psycopg")
    launcher = shutil.which("opentelemetry-instrument")
    assert launcher, "opentelemetry-instrument is installed with opentelemetry-instrumentation"
    (tmp_path / "app.py").write_text(APP)
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": "unmodified-app",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "APP_PG_DSN": pg_dsn,
    }
    result = run_app(tmp_path, env)
    objects = _objects(result.stdout)
    spans = [o for o in objects if "context" in o and "kind" in o]
    names = sorted(s["name"] for s in spans)
    assert names == ["CREATE TABLE books", "INSERT books", "INSERT books", "SELECT", "SELECT books"]
    assert {s["kind"] for s in spans} == {"SpanKind.CLIENT"}
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"unmodified-app"}
    batch = next(s for s in spans if s["attributes"].get("db.operation.batch.size"))
    assert batch["attributes"]["book.isbn"] == "9780306406157"

    metrics = {m["name"]: m["data"]["data_points"] for m in _metrics(objects)}
    durations = metrics["db.client.operation.duration"]
    assert sum(p["count"] for p in durations) == 5
    systems = {p["attributes"]["db.system.name"] for p in durations}
    assert systems == {"sqlite", "postgresql"}
    writes = {p["attributes"]["book.isbn"]: p["value"] for p in metrics["dbpulse.db.isbn.writes"]}
    assert writes == {"9780306406157": 2}


@pytest.mark.parametrize("variable", ["DBPULSE_ENABLED=false", "OTEL_SDK_DISABLED=true"])
def test_switched_off_from_the_environment_exports_nothing(tmp_path: Path, variable: str):
    (tmp_path / "app.py").write_text(
        APP + "import dbpulse\nprint('enabled', dbpulse.is_enabled())\n"
    )
    name, value = variable.split("=")
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        name: value,
    }
    env.pop("APP_PG_DSN", None)
    launcher = shutil.which("opentelemetry-instrument")
    assert launcher
    result = run_app(tmp_path, env)
    assert "enabled False" in result.stdout
    assert [o for o in _objects(result.stdout) if "kind" in o] == []
    exported = [
        m["name"]
        for m in _metrics(_objects(result.stdout))
        if any(p.get("value") or p.get("count") for p in m["data"]["data_points"])
    ]
    assert [m for m in exported if m.startswith(("db.", "dbpulse.db."))] == []
    if name == "OTEL_SDK_DISABLED":
        assert exported == []  # no SDK at all


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_collector_listening_exits_at_once_and_quietly(tmp_path: Path, protocol: str):
    """A one-shot script, the default OTLP exporters, nothing on the endpoint: the last batch is
    dropped at exit instead of retried (each retry would wait up to the 30 s timeout set here,
    so the run's 20 s limit fails a retrying exit), and no export error is printed."""
    launcher = shutil.which("opentelemetry-instrument")
    assert launcher, "opentelemetry-instrument is installed with opentelemetry-instrumentation"
    (tmp_path / "app.py").write_text(APP)
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{held.getsockname()[1]}",
            OTEL_EXPORTER_OTLP_TIMEOUT="30",
        )
        env.pop("APP_PG_DSN", None)
        result = subprocess.run(
            [launcher, sys.executable, "app.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "app done\n"
    assert result.stderr == ""


RETURNING_APP = """
import sqlite3
c = sqlite3.connect(":memory:")
c.execute("CREATE TABLE books (id INTEGER PRIMARY KEY, isbn TEXT)")
first = c.execute("INSERT INTO books (isbn) VALUES ('a'), ('b'), ('c') RETURNING id")
print("first id", first.fetchone()[0])  # read in part, kept to the end of the script
unread = c.cursor()
unread.execute("INSERT INTO books (isbn) VALUES ('d'), ('e') RETURNING id")
print("app done")
"""


def test_returning_writes_left_unread_at_exit_are_in_the_last_export(tmp_path: Path):
    # SQLite counts a RETURNING statement's rows only as it ends; cursors a script keeps to
    # its end are finalised after the SDK's last export, so dbpulse counts them before it.
    (tmp_path / "app.py").write_text(RETURNING_APP)
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
    }
    result = run_app(tmp_path, env)
    assert "first id 1" in result.stdout
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    writes = [
        p["value"]
        for m in _metrics(_objects(result.stdout))
        if m["name"] == "dbpulse.db.writes"
        for p in m["data"]["data_points"]
    ]
    assert sum(writes) == 5
