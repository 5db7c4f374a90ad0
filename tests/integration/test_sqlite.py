"""SQLite (stdlib sqlite3) through dbpulse: what a user sees in Tempo and Prometheus."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

import dbpulse
from dbpulse.telemetry.metrics import OPERATIONS
from dbpulse.telemetry.sampler import LOAD

ISBN = "9780306406157"
ISBN10 = "0-306-40615-2"  # the same book as ISBN
OTHER = "9780140449136"


@pytest.fixture
def db(tmp_path: Path, otel):
    conn = sqlite3.connect(tmp_path / "books.db")
    conn.execute("CREATE TABLE books (isbn TEXT, title TEXT, price REAL)")
    otel.span_exporter.clear()
    OPERATIONS.reset()
    yield conn
    conn.close()


def span_names(otel) -> list[str]:
    return [s.name for s in otel.spans()]


def test_connection_execute_span_has_stable_semconv_attributes(db, otel):
    db.execute("INSERT INTO books (isbn, title, price) VALUES (?, ?, ?)", (ISBN, "Signals", 2.5))

    (span,) = otel.spans()
    assert span.name == "INSERT books"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes)
    assert attrs["db.system.name"] == "sqlite"
    assert attrs["db.namespace"] == "books.db"
    assert attrs["db.operation.name"] == "INSERT"
    assert attrs["db.collection.name"] == "books"
    assert attrs["db.query.summary"] == "INSERT books"
    assert attrs["db.query.text"] == "INSERT INTO books (isbn, title, price) VALUES (?, ?, ?)"
    assert attrs["book.isbn"] == ISBN
    # Parameter values other than recognised keys are never exported.
    assert "Signals" not in repr(attrs) and "2.5" not in repr(attrs)


def test_literals_are_replaced_in_query_text(db, otel):
    db.execute("UPDATE books SET title = 'secret title', price = 9.99 WHERE isbn = '0306406152'")
    (span,) = otel.spans()
    text = span.attributes["db.query.text"]
    assert "secret" not in text and "9.99" not in text
    assert span.attributes["book.isbn"] == ISBN  # ISBN-10 literal, normalised


def test_reads_carry_the_isbn_of_their_parameters_on_the_span(db, otel):
    db.execute("SELECT title FROM books WHERE isbn = ?", ("ISBN 0-306-40615-2",))
    (span,) = otel.spans()
    assert span.attributes["book.isbn"] == ISBN
    # ... but a read is not a write: no write metrics.
    assert otel.value("dbpulse.db.isbn.writes") == 0


def test_every_sqlite_path_is_observed_exactly_once(db, otel):
    cur = db.cursor()
    db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
    db.executemany("INSERT INTO books (isbn) VALUES (?)", [(ISBN10,), (OTHER,)])
    db.executescript("INSERT INTO books (isbn) VALUES ('9780140449136'); DELETE FROM books;")
    cur.execute("SELECT * FROM books WHERE isbn = ?", (ISBN,))
    cur.executemany("INSERT INTO books (isbn) VALUES (?)", [(ISBN,)])
    cur.executescript("SELECT 1;")
    assert len(otel.spans()) == 6
    assert otel.value("db.client.operation.duration", **{"db.system.name": "sqlite"}) == 6


def test_executemany_reports_batch_size_and_every_isbn(db, otel):
    db.executemany(
        "INSERT INTO books (isbn, title) VALUES (?, ?)",
        [(ISBN, "a"), (OTHER, "b"), ("not an isbn", "c")],
    )
    (span,) = otel.spans()
    assert span.attributes["db.operation.batch.size"] == 3
    assert span.attributes["book.isbn"] == ISBN
    assert list(span.attributes["book.isbns"]) == [ISBN, OTHER]
    assert span.attributes["book.isbn.count"] == 2
    assert otel.value("dbpulse.db.writes", **{"db.collection.name": "books"}) == 3


def test_executemany_with_a_generator_is_not_copied_or_lost(db, otel):
    rows = ((isbn,) for isbn in (ISBN, OTHER))
    db.executemany("INSERT INTO books (isbn) VALUES (?)", rows)
    (span,) = otel.spans()
    assert db.execute("SELECT count(*) FROM books").fetchone()[0] == 2
    assert span.attributes["db.operation.batch.size"] == 2
    assert span.attributes["book.isbn.count"] == 2


def test_sqlite_utils_insert_produces_spans(tmp_path, otel):
    sqlite_utils = pytest.importorskip("sqlite_utils")
    database = sqlite_utils.Database(tmp_path / "utils.db")
    database["books"].insert_all([{"isbn": ISBN, "title": "a"}, {"isbn": OTHER, "title": "b"}])
    inserts = [s for s in otel.spans() if s.name == "INSERT books"]
    assert inserts, f"no INSERT span among {span_names(otel)}"
    isbns = {
        i
        for s in inserts
        for i in (s.attributes.get("book.isbns") or [s.attributes.get("book.isbn")])
    }
    assert {ISBN, OTHER} <= isbns


def test_write_metrics_are_exact_by_table_operation_and_isbn(db, otel):
    for _ in range(3):
        db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
    db.execute("UPDATE books SET price = ? WHERE isbn = ?", (1.0, ISBN))
    db.execute("DELETE FROM books WHERE isbn = ?", (ISBN,))
    db.execute("SELECT * FROM books")

    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "INSERT"}) == 3
    # UPDATE touched the three rows: rows written comes from the driver's rowcount.
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "UPDATE"}) == 3
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "DELETE"}) == 3
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "SELECT"}) == 0
    assert (
        otel.value("dbpulse.db.isbn.writes", **{"book.isbn": ISBN, "db.operation.name": "INSERT"})
        == 3
    )
    assert (
        otel.value("dbpulse.db.isbn.writes", **{"book.isbn": ISBN, "db.operation.name": "UPDATE"})
        == 1
    )
    (point,) = otel.points("db.client.operation.duration", **{"db.operation.name": "INSERT"})
    assert point.count == 3 and sum(point.bucket_counts) == 3
    assert list(point.explicit_bounds) == [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]
    assert point.attributes == {
        "db.system.name": "sqlite",
        "db.namespace": "books.db",
        "db.operation.name": "INSERT",
        "db.collection.name": "books",
    }


def test_errors_carry_the_sqlite_error_name(db, otel):
    with pytest.raises(sqlite3.OperationalError):
        db.execute("INSERT INTO missing (isbn) VALUES (?)", (ISBN,))
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "SQLITE_ERROR"
    assert otel.value("db.client.operation.duration", **{"error.type": "SQLITE_ERROR"}) == 1
    # A failed write wrote nothing.
    assert otel.value("dbpulse.db.writes") == 0


def test_lock_contention_is_reported_as_sqlite_busy(tmp_path, otel):
    path = tmp_path / "busy.db"
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError):
        other.execute("INSERT INTO t VALUES (1)")
    writer.execute("ROLLBACK")
    failed = [s for s in otel.spans() if s.status.status_code is StatusCode.ERROR]
    assert [s.attributes["error.type"] for s in failed] == ["SQLITE_BUSY"]


def test_spans_are_children_of_the_application_span(db, otel):
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("import batch") as parent:
        db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
    child, root = sorted(otel.spans(), key=lambda s: s.name != "INSERT books")
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context.trace_id == root.context.trace_id


def test_instrument_connection_covers_connections_made_before(tmp_path, otel):
    dbpulse.uninstrument(systems=("sqlite",))
    plain = sqlite3.connect(tmp_path / "early.db")
    dbpulse.instrument(systems=("sqlite",))
    plain.execute("CREATE TABLE t (isbn)")
    assert otel.spans() == []  # made before instrumenting: not patched

    conn = dbpulse.SQLite3Instrumentor.instrument_connection(plain)
    assert isinstance(conn, sqlite3.Connection)
    conn.execute("INSERT INTO t VALUES (?)", (ISBN,))
    conn.cursor().execute("SELECT * FROM t")
    with conn:
        conn.executemany("INSERT INTO t VALUES (?)", [(OTHER,)])
    assert span_names(otel) == ["INSERT t", "SELECT t", "INSERT t"]
    assert otel.spans()[0].attributes["db.namespace"] == "early.db"


def test_uninstrument_stops_work_on_open_connections(db, otel):
    cur = db.cursor()
    dbpulse.uninstrument(systems=("sqlite",))
    try:
        db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
        cur.execute("SELECT * FROM books")
        assert otel.spans() == []
        assert otel.value("db.client.operation.duration") == 0
        assert db.execute("SELECT count(*) FROM books").fetchone()[0] == 1  # the write happened
    finally:
        dbpulse.instrument(systems=("sqlite",))
    db.execute("SELECT 1")
    assert len(otel.spans()) == 1


def test_set_enabled_false_stops_spans_and_metrics_at_run_time(db, otel):
    dbpulse.set_enabled(False)
    db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
    assert otel.spans() == [] and otel.value("db.client.operation.duration") == 0
    dbpulse.set_enabled(True)
    db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
    assert len(otel.spans()) == 1


def test_aggregated_mode_keeps_metrics_exact_without_spans(db, otel):
    LOAD.configure(((0.5, 0.0),))  # any load at all: aggregated
    LOAD.probability = 0.0
    for i in range(500):
        db.execute("INSERT INTO books (isbn, price) VALUES (?, ?)", (ISBN, i))
    assert otel.spans() == []
    assert otel.value("db.client.operation.duration", **{"db.operation.name": "INSERT"}) == 500
    assert otel.value("dbpulse.db.isbn.writes", **{"book.isbn": ISBN}) == 500
    (mode,) = otel.points("dbpulse.sampler.mode", **{"dbpulse.sampler.mode": "aggregated"})
    assert mode.value == 1


def test_a_sampled_incoming_trace_still_gets_its_database_spans_in_aggregated_mode(db, otel):
    LOAD.configure(((0.5, 0.0),))
    LOAD.probability = 0.0
    incoming = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(incoming)):
        db.execute("SELECT 1")
    (span,) = otel.spans()
    assert span.context.trace_id == 0x1234 and span.parent.span_id == 0x5678
    # ... and an unsampled one gets none.
    with trace.use_span(NonRecordingSpan(SpanContext(0x99, 0x98, is_remote=True))):
        db.execute("SELECT 1")
    assert len(otel.spans()) == 1


def test_exemplars_link_latency_to_sampled_traces(db, otel):
    db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
    (span,) = otel.spans()
    (point,) = otel.points("db.client.operation.duration", **{"db.operation.name": "INSERT"})
    assert [(e.trace_id, e.span_id) for e in point.exemplars] == [
        (span.context.trace_id, span.context.span_id)
    ]


def test_concurrent_threads_are_counted_exactly(tmp_path, otel):
    path = tmp_path / "threads.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)")

    def work() -> None:
        conn = sqlite3.connect(path, timeout=30)
        for i in range(200):
            conn.execute("SELECT ?", (i,))
        conn.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert otel.value("db.client.operation.duration", **{"db.namespace": "threads.db"}) == 801


def test_a_broken_extractor_never_reaches_the_application(db, otel):
    class Broken:
        name = "isbn"
        span_attribute = "book.isbn"

        def from_sql(self, sql):
            raise RuntimeError("boom")

        def from_params(self, params):
            raise RuntimeError("boom")

    dbpulse.instrument(extractor=Broken())  # already instrumented: only swaps the extractor
    db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
    assert db.execute("SELECT count(*) FROM books").fetchone()[0] == 1
    assert otel.value("dbpulse.telemetry.dropped", **{"dbpulse.component": "extractor_error"}) >= 1
    assert otel.value("db.client.operation.duration", **{"db.operation.name": "INSERT"}) == 1


def test_a_failing_exporter_never_reaches_the_application(tmp_path):
    """A span exporter that raises and a metric exporter that fails: the app runs on."""
    script = tmp_path / "app.py"
    script.write_text(
        "import sqlite3, dbpulse\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter\n"
        "from opentelemetry.sdk.metrics.export import MetricExporter\n"
        "class Boom(SpanExporter):\n"
        "    def export(self, spans): raise ConnectionError('collector down')\n"
        "class BoomMetrics(MetricExporter):\n"
        "    def export(self, data, timeout_millis=0, **kw): raise ConnectionError('down')\n"
        "    def force_flush(self, timeout_millis=0): return False\n"
        "    def shutdown(self, timeout_millis=0, **kw): pass\n"
        "t = dbpulse.configure(service_name='app', metric_exporter=BoomMetrics(),\n"
        "                      span_processors=[SimpleSpanProcessor(Boom())])\n"
        "dbpulse.instrument()\n"
        "c = sqlite3.connect(':memory:')\n"
        "c.execute('CREATE TABLE books (isbn)')\n"
        "for _ in range(100): c.execute('INSERT INTO books VALUES (?)', ('9780306406157',))\n"
        "t.meter_provider.force_flush()\n"
        "print(c.execute('SELECT count(*) FROM books').fetchone()[0])\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "100"


def test_direct_and_sdk_span_recording_export_the_same_span(db, otel, monkeypatch):
    """DBPULSE_SPAN_MODE=sdk (the SDK's tracer, with on_start) gives the same span."""
    from dbpulse.instrumentors.sqlite import SWITCH
    from dbpulse.telemetry.spans import DirectSpans, TracerSpans

    def one_span() -> Any:
        otel.span_exporter.clear()
        db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
        (span,) = otel.spans()
        return span

    assert isinstance(SWITCH.spans, DirectSpans)
    direct = one_span()
    monkeypatch.setenv("DBPULSE_SPAN_MODE", "sdk")
    SWITCH.refresh_recorder()
    try:
        assert isinstance(SWITCH.spans, TracerSpans)
        sdk = one_span()
    finally:
        monkeypatch.delenv("DBPULSE_SPAN_MODE")
        SWITCH.refresh_recorder()
    assert (direct.name, direct.kind, dict(direct.attributes)) == (
        sdk.name,
        sdk.kind,
        dict(sdk.attributes),
    )
    assert direct.instrumentation_scope.name == sdk.instrumentation_scope.name == "dbpulse"
    assert direct.resource.attributes["service.name"] == "dbpulse-tests"
    assert direct.context.trace_state.get("ot") == "th:0"
    assert direct.end_time >= direct.start_time


class OrderExtractor:
    """A non-ISBN entity key: order numbers like ``ORD-12345``."""

    name = "order"
    span_attribute = "shop.order_id"

    def from_sql(self, sql: str) -> tuple[str, ...]:
        return ()

    def from_params(self, params: Any) -> tuple[str, ...]:
        values = params.values() if isinstance(params, dict) else params
        return tuple(v for v in values if isinstance(v, str) and v.startswith("ORD-"))


def test_a_custom_extractor_names_the_span_attribute_and_the_metric_label(db, otel):
    db.execute("CREATE TABLE orders (id TEXT, isbn TEXT)")
    dbpulse.instrument(extractor=OrderExtractor())
    otel.span_exporter.clear()
    db.execute("INSERT INTO orders VALUES (?, ?)", ("ORD-1", ISBN))
    # Rows read lazily from a generator: their keys arrive after the span started.
    db.executemany("INSERT INTO orders VALUES (?, ?)", ((f"ORD-{i}", ISBN) for i in (2, 3)))
    single, batch = otel.spans()
    assert single.attributes["shop.order_id"] == "ORD-1"
    assert list(batch.attributes["shop.order_ids"]) == ["ORD-2", "ORD-3"]
    assert batch.attributes["shop.order_id.count"] == 2
    for span in (single, batch):
        assert not any(k.startswith("book.") for k in span.attributes)
    points = otel.points("dbpulse.db.isbn.writes")
    assert sorted(p.attributes["shop.order_id"] for p in points) == ["ORD-1", "ORD-2", "ORD-3"]
    assert all("book.isbn" not in p.attributes for p in points)


def test_executescript_counts_the_rows_the_script_changed(db, otel):
    db.executescript(
        f"""
        INSERT INTO books (isbn) VALUES ('{ISBN}');
        INSERT INTO books (isbn) VALUES ('{OTHER}'), ('x');
        UPDATE books SET price = 1;
        """
    )
    db.cursor().executescript("DELETE FROM books WHERE isbn = 'x'")
    assert db.total_changes == 7  # the driver's own count: 1 + 2 + 3 + 1
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "BATCH"}) == 6
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "DELETE"}) == 1


def test_a_write_behind_a_cte_counts_the_rows_it_changed(db, otel):
    """The driver's rowcount is -1 for ``WITH ... INSERT``: dbpulse counts total_changes."""
    before = db.total_changes
    cursor = db.execute(
        "WITH n(isbn) AS (VALUES (?), (?), ('x')) INSERT INTO books (isbn) SELECT isbn FROM n",
        (ISBN, OTHER),
    )
    assert cursor.rowcount == -1  # what the application sees stays the driver's
    db.cursor().execute("WITH gone AS (SELECT 'x') DELETE FROM books WHERE isbn IN gone")
    assert db.total_changes - before == 4
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "INSERT"}) == 3
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "DELETE"}) == 1


def _partly_read(conn: sqlite3.Connection, sql: str, then: str) -> None:
    cursor = conn.cursor()
    cursor.execute(sql)
    cursor.fetchone()
    if then == "close":
        cursor.close()
    elif then == "reuse":
        cursor.execute("SELECT 1")
    elif then == "break":
        for _ in cursor:
            break
        del cursor
    elif then == "connection":
        conn.close()
    else:
        del cursor  # dropped


def _fails(fn: Any) -> None:
    with pytest.raises(sqlite3.Error):
        fn()


_FIVE = "INSERT INTO t (v) SELECT value FROM json_each('[11, 12, 13, 14, 15]')"
_TIMES_TEN = "UPDATE t SET v = 10 * v"
_CTE_FIVE = "WITH q AS (SELECT 1) " + _FIVE
# Statement shapes whose row count the driver's rowcount can't tell (or tells late), each
# against a table of no triggers, where SQLite's total_changes is the truth.
_SHAPES: dict[str, Any] = {
    "returning-closed": lambda c: _partly_read(c, _FIVE + " RETURNING id", "close"),
    "returning-dropped": lambda c: _partly_read(c, _FIVE + " RETURNING id", "drop"),
    "returning-reused": lambda c: _partly_read(c, _FIVE + " RETURNING id", "reuse"),
    "returning-loop-broken": lambda c: _partly_read(c, _FIVE + " RETURNING id", "break"),
    "returning-connection-closed": lambda c: _partly_read(c, _FIVE + " RETURNING id", "connection"),
    "returning-never-read": lambda c: c.execute(_FIVE + " RETURNING id"),
    "returning-fetchmany": lambda c: c.execute(_FIVE + " RETURNING id").fetchmany(5),
    "update-returning-closed": lambda c: _partly_read(
        c, "UPDATE t SET v = 10 * v RETURNING v", "close"
    ),
    "cte-returning-closed": lambda c: _partly_read(c, _CTE_FIVE + " RETURNING id", "close"),
    "cte-returning-read": lambda c: list(c.execute(_CTE_FIVE + " RETURNING id")),
    "executemany-returning": lambda c: _fails_or_not(
        lambda: c.executemany("INSERT INTO t (v) VALUES (?) RETURNING id", [(10,), (11,)])
    ),
    "executemany-fails-midway": lambda c: _fails(
        lambda: c.executemany("INSERT INTO t (v) VALUES (?)", [(10,), (11,), (1,)])
    ),
    "executescript-fails-midway": lambda c: _fails(
        lambda: c.executescript("INSERT INTO t (v) VALUES (10); INSERT INTO t (v) VALUES (1);")
    ),
    "insert-or-fail": lambda c: _fails(
        lambda: c.execute("INSERT OR FAIL INTO t (v) SELECT value FROM json_each('[7, 8, 3, 9]')")
    ),
    "upserts": lambda c: c.executemany(
        "INSERT INTO t (v) VALUES (?) ON CONFLICT (v) DO UPDATE SET v = excluded.v + 100",
        [(1,), (20,), (2,)],
    ),
}


def _fails_or_not(fn: Any) -> None:
    # RETURNING in executemany: 3.11 runs every row, 3.12+ refuses after the first.
    try:
        fn()
    except sqlite3.Error:
        pass


@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_writes_equal_sqlites_own_count_for_every_statement_shape(shape, tmp_path, otel):
    conn = sqlite3.connect(tmp_path / "shapes.db")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v UNIQUE)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(1,), (2,), (3,)])
    OPERATIONS.reset()
    before = conn.total_changes
    _SHAPES[shape](conn)
    try:
        truth = conn.total_changes - before
    except sqlite3.ProgrammingError:  # closed (and rolled back): the statement's five rows
        truth = 5
    assert truth > 0
    assert sum(OPERATIONS.writes_snapshot().values()) == truth


def test_trigger_rows_are_not_counted_as_the_statements_own(db, otel):
    # The rule: a statement's rows are those SQLite's changes() counts (what rowcount says):
    # rows a trigger, a foreign-key action or REPLACE's deletion make are not the statement's.
    db.execute("CREATE TABLE audit (isbn TEXT)")
    db.execute(
        "CREATE TRIGGER logged AFTER INSERT ON books BEGIN "
        "INSERT INTO audit VALUES (new.isbn); INSERT INTO audit VALUES (new.isbn); END"
    )
    OPERATIONS.reset()
    db.execute("INSERT INTO books (isbn) VALUES (?)", (ISBN,))
    cursor = db.execute("INSERT INTO books (isbn) VALUES ('a'), ('b') RETURNING isbn")
    cursor.fetchone()
    cursor.close()
    assert db.execute("SELECT changes()").fetchone() == (2,)
    assert otel.value("dbpulse.db.writes", **{"db.collection.name": "books"}) == 3
    assert otel.value("dbpulse.db.writes", **{"db.collection.name": "audit"}) == 0
    # A script's statements are not told apart by the driver: its count is the connection's
    # total_changes difference, trigger rows included (docs/metrics.md says so).
    db.executescript("INSERT INTO books (isbn) VALUES ('c');")
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "INSERT"}) == 3 + 1 + 2


def test_returning_writes_are_counted_once_their_rows_are_read(db, otel):
    # What Django and SQLAlchemy emit for autoincrement keys on SQLite: rowcount is 0 until
    # the rows are read, so the count is taken then.
    one = db.execute("INSERT INTO books (isbn) VALUES (?) RETURNING rowid", (ISBN,))
    assert one.fetchone() is not None
    many = db.cursor()
    many.execute("INSERT INTO books (isbn) VALUES ('a'), ('b'), ('c') RETURNING rowid")
    assert len(many.fetchall()) == 3
    assert len(list(db.execute("INSERT INTO books (isbn) VALUES ('d'), ('e') RETURNING isbn"))) == 2
    updated = db.execute("UPDATE books SET price = 2 RETURNING isbn")
    assert len(updated.fetchmany(4)) + len(updated.fetchmany(10)) == 6
    assert db.total_changes == 12  # the driver's own count: 1 + 3 + 2 inserts, 6 updates
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "INSERT"}) == 6
    assert otel.value("dbpulse.db.writes", **{"db.operation.name": "UPDATE"}) == 6
    assert otel.value("dbpulse.db.isbn.writes", **{"book.isbn": ISBN}) == 1
    # One span per statement, as for any other write; the cursors stay the driver's type.
    assert span_names(otel).count("INSERT books") == 3
    assert isinstance(one, sqlite3.Cursor) and type(one) is type(db.cursor())
