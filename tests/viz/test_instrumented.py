"""dbpulse's own SQLite instrumentation feeding the sphere, in every sampler mode."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbpulse.telemetry.sampler import LOAD
from dbpulse.viz import WRITE_OPERATIONS, VizFeedProcessor
from tests.viz._support import ISBNS, Collector, viz_server, wait_for


@pytest.fixture
def sphere(otel: Any, tmp_path: Path) -> Iterator[tuple[Any, Collector, VizFeedProcessor]]:
    with viz_server() as server:
        watcher = Collector(server.url)
        wait_for(lambda: watcher.messages)
        feed = VizFeedProcessor(server.url, batch_interval=0.05)
        otel.telemetry.tracer_provider.add_span_processor(feed)
        assert feed.force_flush(5000)  # first counter read: the baseline
        try:
            yield server, watcher, feed
        finally:
            feed.shutdown()
            watcher.close()


def books(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "books.db")
    conn.execute("CREATE TABLE books (isbn TEXT PRIMARY KEY, title TEXT)")
    return conn


def test_detailed_mode_every_write_with_its_trace(otel: Any, sphere: Any, tmp_path: Path) -> None:
    _server, watcher, feed = sphere
    conn = books(tmp_path)
    conn.execute("INSERT INTO books VALUES (?, ?)", (ISBNS[0], "Odyssey"))
    conn.execute("UPDATE books SET title = ? WHERE isbn = ?", ("The Odyssey", ISBNS[0]))
    conn.execute("DELETE FROM books WHERE isbn = ?", (ISBNS[0],))
    conn.commit()
    wait_for(lambda: watcher.total(ISBNS[0]) >= 3)
    assert feed.force_flush(5000)
    spans = {s.name: s for s in otel.spans()}
    events = [e for e in watcher.events if e["isbn"] == ISBNS[0]]
    assert [e["operation"] for e in events] == ["insert", "update", "delete"]
    assert events[0]["trace_id"] == f"{spans['INSERT books'].context.trace_id:032x}"
    assert watcher.total(ISBNS[0]) == 3  # the counters add nothing on top of the spans
    conn.close()


@pytest.mark.parametrize(("probability", "mode"), [(0.0, "aggregated"), (0.25, "sampled")])
def test_counts_stay_exact_when_the_sampler_keeps_few_spans(
    otel: Any, sphere: Any, tmp_path: Path, probability: float, mode: str
) -> None:
    _server, watcher, feed = sphere
    conn = books(tmp_path)
    LOAD.configure(((0.5, probability),))  # any load at all: this mode
    for round_ in range(20):
        for isbn in ISBNS[:4]:
            conn.execute("INSERT OR REPLACE INTO books VALUES (?, ?)", (isbn, f"v{round_}"))
    conn.commit()
    assert LOAD.mode == mode
    wait_for(lambda: all(watcher.total(isbn) >= 20 for isbn in ISBNS[:4]), timeout=15)
    assert feed.force_flush(5000)
    assert {isbn: watcher.total(isbn) for isbn in ISBNS[:4]} == dict.fromkeys(ISBNS[:4], 20)
    traced = [e for e in watcher.events if e["trace_id"]]
    kept = [s for s in otel.spans() if s.attributes.get("db.operation.name") in WRITE_OPERATIONS]
    assert len(kept) < 80  # the sampler did drop spans...
    assert len(traced) == len(kept)  # ...and every kept one still lends its trace id
    conn.close()
