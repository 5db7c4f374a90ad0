"""Query insights on real SQLite: fingerprints, bounded top statements, N+1, slow/failed capture."""

from __future__ import annotations

import sqlite3
import time

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import dbpulse
from dbpulse.telemetry.metrics import OPERATIONS
from tests.insights._support import (
    STATEMENT_DURATION,
    aggregated,
    captured,
    settings,
    unsampled_parent,
)


@pytest.fixture
def conn(tmp_path, otel):
    connection = sqlite3.connect(tmp_path / "shop.db", isolation_level=None)
    connection.execute("CREATE TABLE books (id INTEGER PRIMARY KEY, isbn TEXT, title TEXT)")
    connection.executemany(
        "INSERT INTO books (isbn, title) VALUES (?, ?)", [(str(i), f"t{i}") for i in range(20)]
    )
    otel.span_exporter.clear()
    OPERATIONS.reset()
    yield connection
    connection.close()


def _fingerprints(otel) -> list[str]:
    return [s.attributes["db.query.fingerprint"] for s in otel.spans()]


def test_fingerprints_follow_the_shape_not_literals_or_list_lengths(conn, otel):
    same = [
        "SELECT title FROM books WHERE id = 1",
        "select title from books where id = 42",
        "SELECT title FROM books WHERE id = ?",
    ]
    conn.execute(same[0])
    conn.execute(same[1])
    conn.execute(same[2], (3,))
    in_lists = [
        "SELECT * FROM books WHERE id IN (1)",
        "SELECT * FROM books WHERE id IN (1, 2, 3, 4, 5)",
        "SELECT * FROM books WHERE id IN (?, ?)",
    ]
    conn.execute(in_lists[0])
    conn.execute(in_lists[1])
    conn.execute(in_lists[2], (1, 2))
    conn.execute("INSERT INTO books (isbn, title) VALUES ('a', 'b')")
    conn.execute("INSERT INTO books (isbn, title) VALUES ('a', 'b'), ('c', 'd'), ('e', 'f')")
    conn.execute("SELECT isbn FROM books WHERE id = 1")  # another column: another shape
    conn.execute("SELECT title FROM books WHERE isbn = 'x'")  # another predicate
    found = _fingerprints(otel)
    assert len(set(found[0:3])) == 1
    assert len(set(found[3:6])) == 1
    assert found[6] == found[7]
    assert len({found[0], found[3], found[6], found[8], found[9]}) == 5
    assert all(len(f) == 16 and int(f, 16) >= 0 for f in found)
    # Stable across processes: a known value, not Python's salted hash().
    from dbpulse.core.fingerprint import fingerprint

    assert fingerprint("SELECT title FROM books WHERE id = ?") == found[0]


def test_top_statements_exact_and_bounded_under_10k_distinct_shapes(conn, otel, monkeypatch):
    settings(monkeypatch, DBPULSE_TOP_STATEMENTS="5")
    aggregated(otel, lambda: conn.execute("SELECT 1").fetchall())
    for i in range(300):  # the statement that takes the time
        conn.execute("SELECT count(*) FROM books b1, books b2, books b3 WHERE b1.id > ?", (i,))
    for i in range(10_000):  # ten thousand shapes (alias names make distinct texts)
        conn.execute(f"SELECT {i} AS c{i}")
    metrics = otel.metrics()
    points = metrics[STATEMENT_DURATION]
    assert len(points) <= 5 + 1, "top N plus one overflow series per collection"
    overflow = [p for p in points if p.attributes.get("otel.metric.overflow")]
    assert len(overflow) == 1
    named = [p for p in points if not p.attributes.get("otel.metric.overflow")]
    top = max(named, key=lambda p: p.sum)
    assert top.attributes["db.query.summary"] == "SELECT books books books"
    assert top.count == 300
    assert sum(p.count for p in points) == 10_000 + 300 + 1  # every call, exactly
    for name in ("dbpulse.db.statement.errors", "dbpulse.db.statement.rows"):
        assert len(metrics[name]) <= 6
    # Shapes beyond the in-process table (5000) are counted, not kept.
    dropped = otel.value(
        "dbpulse.telemetry.dropped", **{"dbpulse.component": "statement_cardinality"}
    )
    assert dropped >= 10_000 - 5000
    # The next collection: every series only grew, and the total is still exact.
    before = {frozenset(p.attributes.items()): p.count for p in points}
    for i in range(50):
        conn.execute("SELECT title FROM books WHERE id = ?", (i,))
    again = otel.metrics()[STATEMENT_DURATION]
    assert len(again) <= 6
    for p in again:
        assert p.count >= before.get(frozenset(p.attributes.items()), 0)
    latest = {**before, **{frozenset(p.attributes.items()): p.count for p in again}}
    assert sum(latest.values()) == 10_000 + 300 + 1 + 50
    # The summary has the exact table, busiest first (the 5000 uncounted shapes are one row).
    rows = dbpulse.summary()["top_statements"]
    assert [r["total_duration"] for r in rows] == sorted(
        (r["total_duration"] for r in rows), reverse=True
    )
    heavy = next(r for r in rows if r["summary"] == "SELECT books books books")
    assert heavy["calls"] == 300 and heavy["fingerprint"] == top.attributes["db.query.fingerprint"]


def test_series_sum_to_exact_totals_across_collections(conn, otel, monkeypatch):
    settings(monkeypatch, DBPULSE_TOP_STATEMENTS="2")
    total = 0
    shown: dict[frozenset, int] = {}
    for round_ in range(3):
        for i in range(6):  # the ranking changes between rounds
            for _ in range(1 + (i + round_) % 6):
                conn.execute(f"SELECT id AS r{i} FROM books WHERE id = ?", (i,)).fetchall()
                total += 1
        points = otel.metrics()[STATEMENT_DURATION]
        assert len(points) <= 3
        for p in points:
            key = frozenset(p.attributes.items())
            assert p.count >= shown.get(key, 0), "a series never goes down"
            shown[key] = p.count
    assert sum(shown.values()) == total


def test_n_plus_one_under_one_request_detected_batches_and_other_parents_not(conn, otel):
    tracer = trace.get_tracer("app.http")
    with tracer.start_as_current_span("GET /books", kind=SpanKind.SERVER):
        ids = [r[0] for r in conn.execute("SELECT id FROM books LIMIT 6")]
        for book_id in ids:  # the N+1 loop
            conn.execute("SELECT title FROM books WHERE id = ?", (book_id,)).fetchall()
    with tracer.start_as_current_span("POST /books", kind=SpanKind.SERVER):
        conn.executemany(  # one batch of the same size: no alarm
            "UPDATE books SET title = ? WHERE id = ?", [(f"x{i}", i) for i in range(6)]
        )
    for book_id in range(6):  # the same loop, one call per request: no alarm
        with tracer.start_as_current_span(f"GET /books/{book_id}", kind=SpanKind.SERVER):
            conn.execute("SELECT title FROM books WHERE id = ?", (book_id,)).fetchall()
    for book_id in range(6):  # and without any parent: not counted
        conn.execute("SELECT title FROM books WHERE id = ?", (book_id,)).fetchall()
    spans = otel.spans()
    (loop,) = [s for s in spans if s.name == "GET /books"]
    (event,) = [e for e in loop.events if e.name == "dbpulse.db.n_plus_one"]
    assert event.attributes["db.query.summary"] == "SELECT books"
    assert event.attributes["dbpulse.n_plus_one.count"] == 5
    select = next(
        s for s in spans if s.attributes.get("db.query.text", "").startswith("SELECT title")
    )
    assert event.attributes["db.query.fingerprint"] == select.attributes["db.query.fingerprint"]
    others = [s for s in spans if s.kind is SpanKind.SERVER and s.name != "GET /books"]
    assert len(others) == 7 and not any(s.events for s in others)
    points = otel.points("dbpulse.db.n_plus_one")
    assert [(p.attributes["db.query.summary"], p.value) for p in points] == [("SELECT books", 1)]


def test_n_plus_one_under_an_ended_parent_marks_the_database_span(conn, otel):
    tracer = trace.get_tracer("app.worker")
    parent = tracer.start_span("job", kind=SpanKind.INTERNAL)
    parent.end()  # a context kept past its span (a callback, a background task)
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        for book_id in range(5):
            conn.execute("SELECT title FROM books WHERE id = ?", (book_id,)).fetchall()
    finally:
        otel_context.detach(token)
    marked = [s for s in otel.spans() if "dbpulse.n_plus_one.count" in s.attributes]
    assert len(marked) == 1 and marked[0].parent.span_id == parent.get_span_context().span_id
    assert otel.value("dbpulse.db.n_plus_one") == 1


@pytest.fixture
def sleepy(conn):
    conn.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000) or ms)
    return conn


def test_slow_and_failed_statements_are_traced_in_aggregated_mode(sleepy, otel, monkeypatch):
    settings(monkeypatch, DBPULSE_SLOW_QUERY_MS="50")
    aggregated(otel, lambda: sleepy.execute("SELECT 1").fetchall())
    for _ in range(20):
        sleepy.execute("SELECT title FROM books WHERE id = 1").fetchall()  # fast: dropped
    sleepy.execute("SELECT sleep_ms(80)").fetchall()
    with pytest.raises(sqlite3.OperationalError):
        sleepy.execute("SELECT * FROM no_such_table")
    token = otel_context.attach(unsampled_parent())
    try:
        sleepy.execute("SELECT sleep_ms(60)").fetchall()
    finally:
        otel_context.detach(token)
    spans = otel.spans()
    slow = captured(spans, "slow")
    (error,) = captured(spans, "error")
    assert len(slow) == 2 and len(spans) == 3, "fast calls stay unsampled"
    root, linked = slow
    assert root.parent is None and root.name == "SELECT" and not root.links
    assert (root.end_time - root.start_time) / 1e9 >= 0.08
    assert root.context.trace_flags.sampled and "ot" not in root.context.trace_state
    assert linked.parent is None and linked.links[0].context.span_id == 0x051581BF3CB55C13
    assert error.status.status_code is StatusCode.ERROR
    assert error.attributes["error.type"] == "SQLITE_ERROR"
    # The metrics stay exact: every call counted once, captured or not.
    assert otel.value("db.client.operation.duration", **{"db.system.name": "sqlite"}) == 1 + 20 + 3
    # The slow bucket's exemplar points at a captured trace.
    traces = {s.context.trace_id for s in slow}
    exemplars = [
        e.trace_id
        for p in otel.points("db.client.operation.duration", **{"db.system.name": "sqlite"})
        for e in p.exemplars
        if e.value >= 0.05
    ]
    assert exemplars and set(exemplars) <= traces


def test_sampled_spans_keep_their_threshold_and_captures_have_none(sleepy, otel, monkeypatch):
    settings(monkeypatch, DBPULSE_SLOW_QUERY_MS="50")
    from dbpulse.telemetry.sampler import LOAD

    LOAD.configure(((1, 0.5),))  # keep half the roots
    for i in range(200):
        sleepy.execute("SELECT title FROM books WHERE id = ?", (i,)).fetchall()
    for _ in range(4):
        sleepy.execute("SELECT sleep_ms(60)").fetchall()
    spans = otel.spans()
    sampled = [s for s in spans if "dbpulse.sampling.reason" not in s.attributes]
    assert 40 < len(sampled) < 160
    # Every probability-sampled span says with which threshold (th:8 = 50%; the first call
    # ran in detailed mode, th:0), so adjusted counts (1/p) add up to the calls made.
    assert all(s.context.trace_state.get("ot", "").startswith("th:") for s in sampled)
    assert sum(s.context.trace_state.get("ot") == "th:8" for s in sampled) >= len(sampled) - 1
    slow = [s for s in spans if s.attributes.get("db.query.text") == "SELECT sleep_ms(?)"]
    assert len(slow) == 4, "every slow call has a span: sampled, or captured"
    for s in slow:
        reason = s.attributes.get("dbpulse.sampling.reason")
        assert (reason == "slow") == ("ot" not in s.context.trace_state)


def test_capture_rate_limit_holds_under_a_thousand_failures_per_second(conn, otel, monkeypatch):
    settings(monkeypatch, DBPULSE_CAPTURE_PER_SECOND="10", DBPULSE_CAPTURE_BURST="20")
    aggregated(otel, lambda: conn.execute("SELECT 1").fetchall())
    started = time.monotonic()
    for i in range(1000):  # about a thousand failures per second, for a second
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("SELECT * FROM gone_table")
        if i % 100 == 99:
            time.sleep(0.1)
    elapsed = time.monotonic() - started
    errors = captured(otel.spans(), "error")
    allowed = 20 + 10 * elapsed + 1
    assert 20 <= len(errors) <= allowed
    dropped = otel.value("dbpulse.telemetry.dropped", **{"dbpulse.component": "capture_rate_limit"})
    assert dropped == 1000 - len(errors)
    failed = otel.value("db.client.operation.duration", **{"error.type": "SQLITE_ERROR"})
    assert failed == 1000
    print(f"1000 failures in {elapsed:.2f} s: {len(errors)} captured, {dropped:.0f} dropped")
