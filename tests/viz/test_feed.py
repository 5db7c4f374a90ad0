"""The viz feed processor against a real viz server and real WebSocket clients."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, TraceState

from dbpulse.viz import VizFeedProcessor, adjusted_count
from tests.viz._support import ISBNS, Collector, SqliteWriter, viz_server, wait_for


def make_provider(processor: VizFeedProcessor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider


def test_write_spans_reach_websocket_clients(tmp_path: Path) -> None:
    with viz_server() as server:
        watcher = Collector(server.url)
        wait_for(lambda: watcher.messages)  # hello received: subscribed
        feed = VizFeedProcessor(server.url, use_counters=False)
        provider = make_provider(feed)
        writer = SqliteWriter(tmp_path / "books.db", provider)
        writer.write("INSERT", ISBNS[0])
        writer.write("UPDATE", ISBNS[0])
        writer.write("DELETE", ISBNS[1])
        wait_for(lambda: len(watcher.events) == 3)
        provider.shutdown()
        writer.close()
        watcher.close()
    ops = [(e["isbn"], e["operation"]) for e in watcher.events]
    assert ops == [(ISBNS[0], "insert"), (ISBNS[0], "update"), (ISBNS[1], "delete")]
    first = watcher.events[0]
    assert first["table"] == "books"
    assert first["system"] == "sqlite"
    assert first["source"] == "span"
    assert first["count"] == 1
    assert len(first["trace_id"]) == 32
    assert isinstance(first["slot"], int)
    assert watcher.events[1]["slot"] == first["slot"]  # same ISBN, same orb


def test_reads_and_failed_writes_are_not_events(tmp_path: Path) -> None:
    with viz_server() as server:
        feed = VizFeedProcessor(server.url, use_counters=False)
        provider = make_provider(feed)
        tracer = provider.get_tracer("t")
        attributes = {"db.operation.name": "SELECT", "db.collection.name": "books"}
        with tracer.start_as_current_span(
            "SELECT books", kind=SpanKind.CLIENT, attributes=attributes
        ):
            pass
        failed = {"db.operation.name": "INSERT", "book.isbn": ISBNS[2], "error.type": "SQLITE_BUSY"}
        with tracer.start_as_current_span("INSERT books", attributes=failed):
            pass
        with tracer.start_as_current_span(
            "INSERT books", attributes={"db.operation.name": "insert", "book.isbn": ISBNS[3]}
        ):
            pass
        assert feed.force_flush(5000)
        recent = server.hub.recent(None, None, None, 0)
        provider.shutdown()
    assert [e["isbn"] for e in recent] == [ISBNS[3]]


def test_a_full_batch_leaves_before_the_interval() -> None:
    with viz_server() as server:
        feed = VizFeedProcessor(server.url, batch_size=5, batch_interval=30.0, use_counters=False)
        provider = make_provider(feed)
        tracer = provider.get_tracer("t")
        for isbn in ISBNS[:5]:
            with tracer.start_as_current_span(
                "INSERT books", attributes={"db.operation.name": "INSERT", "book.isbn": isbn}
            ):
                pass
        # With a 30 s interval only the size trigger can deliver within the wait.
        wait_for(lambda: server.hub.counters["events_received"] == 5, timeout=15)
        provider.shutdown()


def test_adjusted_count_reads_the_sampling_threshold() -> None:
    assert adjusted_count(None) == 1.0
    assert adjusted_count(TraceState([("ot", "th:0")])) == 1.0
    assert adjusted_count(TraceState([("ot", "th:8")])) == pytest.approx(2.0)
    assert adjusted_count(TraceState([("ot", "rv:abcdef01234567;th:c")])) == pytest.approx(4.0)
    assert adjusted_count(TraceState([("ot", "th:zz")])) == 1.0


def test_sampled_spans_carry_their_weight_without_counters() -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    with viz_server() as server:
        feed = VizFeedProcessor(server.url, use_counters=False)
        provider = make_provider(feed)
        parent = SpanContext(
            trace_id=0x1234,
            span_id=0x5678,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
            trace_state=TraceState([("ot", "th:c")]),
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span(
            "INSERT books",
            context=context,
            attributes={"db.operation.name": "INSERT", "book.isbn": ISBNS[0]},
        ):
            pass
        assert feed.force_flush(5000)
        (event,) = server.hub.recent(None, None, None, 0)
        provider.shutdown()
    assert event["count"] == pytest.approx(4.0)
    assert event["trace_id"] == f"{0x1234:032x}"


def test_counters_make_the_sphere_truthful_under_sampling() -> None:
    """10 writes, 2 sampled spans: the sphere still gets 10, and the 2 traces."""
    counts: dict[tuple[str, str, str], int] = {}
    tables: dict[tuple[str, str, str, str], int] = {}
    lock = threading.Lock()

    def isbn_counts() -> dict[tuple[str, str, str], int]:
        with lock:
            return dict(counts)

    def table_counts() -> dict[tuple[str, str, str, str], int]:
        with lock:
            return dict(tables)

    with viz_server() as server:
        watcher = Collector(server.url)
        wait_for(lambda: watcher.messages)
        feed = VizFeedProcessor(
            server.url, isbn_counts=isbn_counts, table_counts=table_counts, batch_interval=0.05
        )
        provider = make_provider(feed)
        tracer = provider.get_tracer("t")
        with lock:
            counts[("books", "INSERT", ISBNS[5])] = 3  # history before the feed: not replayed
        assert feed.force_flush(5000)
        for i in range(10):
            with lock:  # the metrics path counts every write, before the span ends
                key = ("books", "INSERT", ISBNS[0])
                counts[key] = counts.get(key, 0) + 1
                tkey = ("sqlite", "books.db", "INSERT", "books")
                tables[tkey] = tables.get(tkey, 0) + 1
            if i in (3, 7):  # the sampler kept these two
                attributes = {
                    "db.operation.name": "INSERT",
                    "db.collection.name": "books",
                    "book.isbn": ISBNS[0],
                }
                with tracer.start_as_current_span("INSERT books", attributes=attributes):
                    pass
        wait_for(lambda: watcher.total(ISBNS[0]) >= 10)
        assert feed.force_flush(5000)
        wait_for(lambda: server.hub.exact_by_table.get(("books", "insert"), 0) >= 10)
        provider.shutdown()
        watcher.close()
    assert watcher.total(ISBNS[0]) == 10
    assert watcher.total(ISBNS[5]) == 0
    traced = [e for e in watcher.events if e["trace_id"]]
    assert len(traced) == 2
    assert {e["source"] for e in watcher.events} <= {"span", "metrics"}
    assert server.hub.exact_by_table[("books", "insert")] == 10


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBPULSE_VIZ_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("DBPULSE_VIZ_TOKEN", "t0ken")
    monkeypatch.setenv("DBPULSE_VIZ_BATCH_SIZE", "7")
    monkeypatch.setenv("DBPULSE_VIZ_BATCH_INTERVAL_MS", "250")
    monkeypatch.setenv("DBPULSE_VIZ_QUEUE_SIZE", "notanumber")
    feed = VizFeedProcessor.from_env()
    try:
        assert feed.url == "http://127.0.0.1:9/api/viz/emit"
        assert feed.batch_size == 7
        assert feed.batch_interval == pytest.approx(0.25)
        assert feed.queue_size == 10_000
        assert feed._transport.headers["Authorization"] == "Bearer t0ken"
    finally:
        feed.shutdown()
    monkeypatch.delenv("DBPULSE_VIZ_URL")
    with pytest.raises(ValueError, match="DBPULSE_VIZ_URL"):
        VizFeedProcessor.from_env()


def test_drops_are_exported_as_a_metric() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    # Nothing listens on port 9 (discard): every send fails; a tiny queue overflows.
    feed = VizFeedProcessor(
        "http://127.0.0.1:9", queue_size=10, meter_provider=meter_provider, use_counters=False
    )
    provider = make_provider(feed)
    tracer = provider.get_tracer("t")
    for _ in range(100):
        with tracer.start_as_current_span(
            "INSERT books", attributes={"db.operation.name": "INSERT", "book.isbn": ISBNS[0]}
        ):
            pass
    assert feed.dropped() >= 90
    data = reader.get_metrics_data()
    points = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "dbpulse.telemetry.dropped"
        for point in metric.data.data_points
    ]
    assert points and points[0].attributes == {"dbpulse.component": "viz_feed"}
    assert points[0].value >= 90
    provider.shutdown()


def test_a_forked_worker_gets_its_own_feed_thread() -> None:
    import os

    with viz_server() as server:
        feed = VizFeedProcessor(server.url, use_counters=False)
        provider = make_provider(feed)
        tracer = provider.get_tracer("t")
        pid = os.fork()
        if pid == 0:  # the child: like a gunicorn worker forked after the app was set up
            code = 1
            try:
                attributes = {"db.operation.name": "INSERT", "book.isbn": ISBNS[4]}
                with tracer.start_as_current_span("INSERT books", attributes=attributes):
                    pass
                code = 0 if feed.force_flush(5000) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        wait_for(lambda: [e["isbn"] for e in server.hub.recent(None, None, None, 0)] == [ISBNS[4]])
        provider.shutdown()
