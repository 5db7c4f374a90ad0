"""Query insights on a real PostgreSQL: fingerprints across placeholder styles, slow and failed
statements traced in aggregated mode, and sqlcommenter's traceparent seen by the server."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from dbpulse.telemetry.metrics import OPERATIONS
from tests.insights._support import aggregated, captured, settings

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def table(pg_dsn, otel):
    name = f"insights_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, isbn text, title text)")
        conn.execute(
            f"INSERT INTO {name} (isbn, title) SELECT g::text, 't' FROM generate_series(1, 20) g"
        )
    otel.span_exporter.clear()
    OPERATIONS.reset()
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def test_fingerprints_follow_the_shape_across_literals_and_placeholder_styles(pg_dsn, table, otel):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"SELECT title FROM {table} WHERE id = 1").fetchall()
        conn.execute(f"SELECT title FROM {table} WHERE id = %s", (2,)).fetchall()
        conn.execute(f"SELECT title FROM {table} WHERE id = %(id)s", {"id": 3}).fetchall()
        conn.execute(f"SELECT * FROM {table} WHERE id IN (1, 2, 3)").fetchall()
        conn.execute(f"SELECT * FROM {table} WHERE id IN (%s, %s)", (1, 2)).fetchall()
        conn.execute(f"SELECT isbn FROM {table} WHERE id = 1").fetchall()
    prints = [s.attributes["db.query.fingerprint"] for s in otel.spans()]
    assert len(prints) == 6
    assert prints[0] == prints[1] == prints[2]
    assert prints[3] == prints[4]
    assert len({prints[0], prints[3], prints[5]}) == 3


def test_slow_and_failed_postgres_statements_are_traced_in_aggregated_mode(
    pg_dsn, table, otel, monkeypatch
):
    settings(monkeypatch, DBPULSE_SLOW_QUERY_MS="100")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        aggregated(otel, lambda: conn.execute("SELECT 1").fetchall())
        for i in range(20):
            conn.execute(f"SELECT title FROM {table} WHERE id = %s", (i,)).fetchall()
        conn.execute("SELECT pg_sleep(0.15)").fetchall()
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
    spans = otel.spans()
    (slow,) = captured(spans, "slow")
    (error,) = captured(spans, "error")
    assert len(spans) == 2, "the fast calls stay unsampled"
    assert slow.kind is SpanKind.CLIENT and slow.parent is None
    assert (slow.end_time - slow.start_time) / 1e9 >= 0.15
    assert slow.attributes["db.system.name"] == "postgresql"
    assert error.status.status_code is StatusCode.ERROR
    assert error.attributes["error.type"] == "22012"
    assert "division" not in repr(error.attributes).lower(), "the message is not exported"
    total = otel.value("db.client.operation.duration", **{"db.system.name": "postgresql"})
    assert total == 1 + 20 + 2


def test_sqlcommenter_traceparent_is_seen_in_pg_stat_activity(pg_dsn, table, otel, monkeypatch):
    from dbpulse.instrumentors import psycopg as instrumented

    monkeypatch.setattr(instrumented.COMMENTER, "on", True)
    marker = uuid.uuid4().hex[:12]
    seen: list[str] = []

    def watch() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as watcher:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not seen:
                rows = watcher.execute(
                    "SELECT query FROM pg_stat_activity"
                    " WHERE query LIKE %s AND pid <> pg_backend_pid()",
                    (f"%{marker}%traceparent%",),
                ).fetchall()
                seen.extend(r[0] for r in rows)
                time.sleep(0.02)

    tracer = trace.get_tracer("app.http")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        thread = threading.Thread(target=watch)
        thread.start()
        with tracer.start_as_current_span("GET /slow", kind=SpanKind.SERVER):
            conn.execute(f"SELECT pg_sleep(1.5), '{marker}' AS marker").fetchall()
            conn.execute(f"SELECT title FROM {table} WHERE id = %s", (1,)).fetchall()
        thread.join()
    (db_span,) = [s for s in otel.spans() if "pg_sleep" in s.attributes.get("db.query.text", "")]
    context = db_span.context
    assert seen, "the statement with its comment is visible to the server"
    assert f"traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-01'" in seen[0]
    # dbpulse's own view of the statement is the original text, without the comment.
    assert "traceparent" not in db_span.attributes["db.query.text"]
    (param_span,) = [s for s in otel.spans() if "WHERE id" in s.attributes.get("db.query.text", "")]
    assert param_span.status.status_code is not StatusCode.ERROR, "%-escaping kept params valid"


def test_sqlcommenter_leaves_unsampled_calls_as_written(pg_dsn, table, otel, monkeypatch):
    from dbpulse.instrumentors import psycopg as instrumented

    monkeypatch.setattr(instrumented.COMMENTER, "on", True)
    marker = uuid.uuid4().hex[:12]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        aggregated(otel, lambda: conn.execute("SELECT 1").fetchall())
        conn.execute(f"SELECT '{marker}' AS marker").fetchall()
        with psycopg.connect(pg_dsn, autocommit=True) as other:
            # The session's last statement, as the server received it.
            (query,) = other.execute(
                "SELECT query FROM pg_stat_activity WHERE pid = %s", (conn.info.backend_pid,)
            ).fetchone()
    assert marker in query and "traceparent" not in query
