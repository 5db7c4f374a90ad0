"""Health as telemetry end to end: an app under ``opentelemetry-instrument`` with
``DBPULSE_HEALTH_TARGETS`` naming a real SQLite file (WAL) and the shared PostgreSQL exports
the ``dbpulse.db.health.*`` gauges, and they reach the real Prometheus through the collector
with the values the databases hold: size is the file + WAL + shm bytes on disk, WAL size the
``-wal`` file's, row counts the rows written, schema version ``PRAGMA user_version``, a fresh
newest row. The checks run in the app's background thread and are not the app's database
work: its own operations are all the ``db.client`` series show.

``dbpulse health TARGET --export`` pushes the same gauges from the command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import services
from tests.harness.stack import OtelStack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROWS_SQLITE, ROWS_POSTGRES, ROWS_DUCKDB, USER_VERSION = 37, 11, 23, 42

APP = """
import os, sqlite3, time
import duckdb, psycopg
table, path, dsn = os.environ["APP_TABLE"], os.environ["APP_SQLITE"], os.environ["APP_PG_DSN"]
# The app's own DuckDB file, held open (writable) while the health worker checks it.
duck = duckdb.connect(os.environ["APP_DUCKDB"])
duck.execute(f"CREATE TABLE {table} (isbn VARCHAR, added TIMESTAMPTZ DEFAULT now())")
duck.execute(f"INSERT INTO {table} (isbn) SELECT '9780306406157' FROM range(%d)"
             % int(os.environ["APP_ROWS_DUCKDB"]))
lite = sqlite3.connect(path, isolation_level=None)
lite.execute("PRAGMA journal_mode=WAL")
lite.execute(f"CREATE TABLE {table} (isbn TEXT, added REAL)")
lite.execute("PRAGMA user_version = %d" % int(os.environ["APP_USER_VERSION"]))
for i in range(int(os.environ["APP_ROWS_SQLITE"])):
    lite.execute(f"INSERT INTO {table} VALUES (?, ?)", ("9780306406157", time.time()))
with psycopg.connect(dsn, autocommit=True) as pg:
    pg.execute(f"CREATE TABLE {table} (isbn TEXT, added TIMESTAMPTZ DEFAULT now())")
    for i in range(int(os.environ["APP_ROWS_POSTGRES"])):
        pg.execute(f"INSERT INTO {table} (isbn) VALUES (%s)", ("9780140449136",))
print("app ready", flush=True)
while not os.path.exists(os.environ["APP_STOP"]):
    time.sleep(0.1)
duck.execute(f"INSERT INTO {table} (isbn) VALUES ('9780140449136')")  # still the app's
lite.close()
duck.close()
print("app done", flush=True)
"""


def _env(otel_stack: OtelStack, service: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "instrumentation")]),
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otel_stack.otlp_grpc_endpoint}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        **extra,
    }


@pytest.fixture
def app(otel_stack: OtelStack, tmp_path: Path) -> Iterator[dict[str, Any]]:
    dsn = services.postgres_dsn()
    run = uuid.uuid4().hex[:8]
    table, service = f"e2e_health_{run}", f"e2e-health-{run}"
    (tmp_path / "app.py").write_text(APP)
    database, stop = tmp_path / f"health-{run}.db", tmp_path / "stop"
    duck = tmp_path / f"health-{run}.duckdb"
    launcher = shutil.which("opentelemetry-instrument")
    assert launcher, "opentelemetry-instrument is installed with opentelemetry-instrumentation"
    env = _env(
        otel_stack,
        service,
        DBPULSE_HEALTH_TARGETS=f"{database}, {dsn}, {duck}",
        DBPULSE_HEALTH_TABLES=f"{table}:added",
        DBPULSE_HEALTH_INTERVAL="1",
        APP_TABLE=table,
        APP_SQLITE=str(database),
        APP_DUCKDB=str(duck),
        APP_PG_DSN=dsn,
        APP_STOP=str(stop),
        APP_USER_VERSION=str(USER_VERSION),
        APP_ROWS_SQLITE=str(ROWS_SQLITE),
        APP_ROWS_POSTGRES=str(ROWS_POSTGRES),
        APP_ROWS_DUCKDB=str(ROWS_DUCKDB),
    )
    process = subprocess.Popen(
        [launcher, sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "app ready" in line, line + process.stdout.read()
        yield {"service": service, "table": table, "database": database, "dsn": dsn, "duck": duck}
    finally:
        stop.touch()
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        assert process.returncode == 0, output
        assert "app done" in output, output


def _values(otel_stack: OtelStack, promql: str, expected: int) -> dict[str, float]:
    """``{target: value}`` of a gauge once ``expected`` targets report it."""
    series = otel_stack.wait_for_series(
        promql, timeout=60, predicate=lambda found: len(found) >= expected
    )
    return {s["metric"]["dbpulse_health_target"]: float(s["value"][1]) for s in series}


def _on_disk(database: Path) -> tuple[int, int]:
    sizes = [
        Path(f"{database}{suffix}").stat().st_size if Path(f"{database}{suffix}").exists() else 0
        for suffix in ("", "-wal", "-shm")
    ]
    return sum(sizes), sizes[1]


def test_health_gauges_reach_prometheus_with_the_databases_values(
    otel_stack: OtelStack, app: dict[str, Any]
) -> None:
    service, table, database = app["service"], app["table"], app["database"]
    lite = database.name
    dsn = urlsplit(app["dsn"])
    pg = f"{dsn.hostname}:{dsn.port or 5432}{dsn.path}"  # host:port/dbname, no credentials
    job = f'service_name="{service}"'

    duck = app["duck"].name
    status = _values(otel_stack, f"dbpulse_db_health_status{{{job}}}", 3)
    # OK: WAL, readable, fresh rows; the DuckDB file the app holds open is checked through the
    # app's own database instance (another process could not open it).
    assert status[lite] == 0 and status[duck] == 0, status
    assert set(status) == {lite, pg, duck}, "targets are exported by safe names, never the DSN"

    total, wal = _on_disk(database)
    sizes = _values(otel_stack, f"dbpulse_db_health_size_bytes{{{job}}}", 3)
    assert sizes[lite] == total and sizes[pg] > 0 and sizes[duck] > 0, (sizes, total)
    wals = _values(otel_stack, f"dbpulse_db_health_wal_size_bytes{{{job}}}", 1)
    assert wals[lite] == wal, wals

    rows = _values(otel_stack, f'dbpulse_db_health_rows{{{job}, db_collection_name="{table}"}}', 3)
    assert rows == {lite: ROWS_SQLITE, pg: ROWS_POSTGRES, duck: ROWS_DUCKDB}
    versions = _values(otel_stack, f"dbpulse_db_health_schema_version{{{job}}}", 1)
    assert versions == {lite: USER_VERSION}
    ages = _values(otel_stack, f"dbpulse_db_health_newest_row_age_seconds{{{job}}}", 2)
    assert all(0 <= age < 600 for age in ages.values()), ages

    # The checks are not the app's work: only the app's own statements are db.client series.
    operations = {
        s["metric"].get("db_operation_name", "")
        for s in otel_stack.query_prometheus(f"db_client_operation_duration_seconds_count{{{job}}}")
    }
    assert operations == {"PRAGMA", "CREATE", "INSERT"}, operations


def test_health_export_pushes_the_gauges(otel_stack: OtelStack, tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / f"export-{uuid.uuid4().hex[:8]}.db"
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("PRAGMA user_version = 3")
    service = f"e2e-health-export-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dbpulse.cli",
            "health",
            str(database),
            "--export",
            "--interval",
            "1",
            "--json",
        ],
        env=_env(otel_stack, service),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job = f'service_name="{service}"'
        versions = _values(otel_stack, f"dbpulse_db_health_schema_version{{{job}}}", 1)
        assert versions == {database.name: 3}
        assert _values(otel_stack, f"dbpulse_db_health_status{{{job}}}", 1) == {database.name: 0}
    finally:
        process.terminate()
        output, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors  # SIGTERM ends it; the last verdict was OK
    assert '"status": "OK"' in output.splitlines()[0]
