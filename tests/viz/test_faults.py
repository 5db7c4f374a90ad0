"""The application comes first: a viz server that is down, hanging or refusing never slows it."""

from __future__ import annotations

import time
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from dbpulse.viz import VizFeedProcessor
from tests.viz._support import (
    ISBNS,
    Collector,
    SlowServer,
    SqliteWriter,
    free_port,
    isbn13,
    viz_server,
    wait_for,
)

WRITES = 3000


def write_loop(writer: SqliteWriter, n: int = WRITES) -> float:
    start = time.perf_counter()
    for i in range(n):
        writer.write("INSERT", isbn13(i))
    return time.perf_counter() - start


def test_server_down_then_back(tmp_path: Path) -> None:
    port = free_port()
    feed = VizFeedProcessor(
        f"http://127.0.0.1:{port}", queue_size=500, max_backoff=0.3, use_counters=False
    )
    provider = TracerProvider()
    provider.add_span_processor(feed)
    writer = SqliteWriter(tmp_path / "books.db", provider)
    elapsed = write_loop(writer)  # must complete without an exception
    print(f"{WRITES} writes with the viz server down: {elapsed * 1000:.0f} ms")
    wait_for(lambda: feed.failed_posts > 0)
    assert feed.dropped() >= WRITES - 500 - feed.max_events_per_post
    assert feed.connected is False

    with viz_server(port=port) as server:
        watcher = Collector(server.url)
        wait_for(lambda: watcher.messages)
        writer.write("INSERT", ISBNS[0])
        wait_for(lambda: any(e["isbn"] == ISBNS[0] for e in watcher.events), timeout=15)
        assert feed.connected is True
        provider.shutdown()
        watcher.close()
    writer.close()


def test_hanging_server_does_not_slow_the_app(tmp_path: Path) -> None:
    hanging = SlowServer()
    feed = VizFeedProcessor(
        f"http://127.0.0.1:{hanging.port}",
        queue_size=200,
        timeout=0.5,
        shutdown_timeout=0.5,
        use_counters=False,
    )
    provider = TracerProvider()
    provider.add_span_processor(feed)
    writer = SqliteWriter(tmp_path / "books.db", provider)
    elapsed = write_loop(writer)
    print(f"{WRITES} writes with a hanging viz server: {elapsed * 1000:.0f} ms")
    wait_for(lambda: feed.failed_posts > 0)
    assert feed.dropped() > 0
    assert "timed out" in (feed.last_error or "")
    provider.shutdown()  # bounded by shutdown_timeout + timeout: must return
    assert not feed._thread.is_alive()
    writer.close()
    hanging.close()


def test_without_the_feed_for_comparison(tmp_path: Path) -> None:
    provider = TracerProvider()
    writer = SqliteWriter(tmp_path / "books.db", provider)
    elapsed = write_loop(writer)
    print(f"{WRITES} writes without a viz feed: {elapsed * 1000:.0f} ms")
    writer.close()


def test_refused_events_are_counted_as_dropped() -> None:
    with viz_server(token="right") as server:
        feed = VizFeedProcessor(server.url, token="wrong", use_counters=False)
        provider = TracerProvider()
        provider.add_span_processor(feed)
        tracer = provider.get_tracer("t")
        for isbn in ISBNS:
            with tracer.start_as_current_span(
                "INSERT books", attributes={"db.operation.name": "INSERT", "book.isbn": isbn}
            ):
                pass
        feed.force_flush(5000)
        wait_for(lambda: feed.dropped() == len(ISBNS))
        assert feed.rejected_events == len(ISBNS)
        assert "HTTP 401" in (feed.last_error or "")
        assert server.hub.counters["rejected_auth"] >= 1
        provider.shutdown()


def test_on_end_never_raises() -> None:
    feed = VizFeedProcessor("http://127.0.0.1:9", use_counters=False)

    class Broken:
        @property
        def attributes(self) -> dict[str, object]:
            raise RuntimeError("boom")

    feed.on_end(Broken())  # type: ignore[arg-type]
    feed.shutdown()
    feed.on_end(Broken())  # type: ignore[arg-type]
