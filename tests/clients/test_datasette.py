"""Datasette over HTTP (uvicorn), its pages read by four client threads at once: its queries run
on its own SQL threads, its schema catalogue is written to an in-memory database with a random
name. Counted as SQLite counts them on every connection datasette prepares."""

from __future__ import annotations

from pathlib import Path

from tests.clients._sink import OtlpSink
from tests.clients.conftest import DRIVER_TRANSACTIONS, expected_operations, run_both, writes


def test_datasette_pages_from_threads(sink: OtlpSink, tmp_path: Path):
    run = run_both(sink, tmp_path, "datasette_app.py", ["books.db"])
    pages = [line for line in run.stdout.splitlines() if line[:4] in {"200 ", "404 ", "500 "}]
    assert len(pages) == 24 and all(p.startswith("200 ") for p in pages)
    assert '{"isbn": "9780306400003", "title": "Book 3", "year": 1993}' in run.stdout
    # Every row written: the setup's 30 and datasette's catalogue of its schema.
    assert writes(sink, "sqlite") == run.truth["changes"] > run.truth["setup_changes"] == 30
    # Every statement on books.db, from whichever of datasette's threads it ran.
    on_books = sink.by(
        "db.client.operation.duration",
        "db.operation.name",
        **{"db.system.name": "sqlite", "db.namespace": "books.db"},
    )
    expected = expected_operations(
        run.truth["statements"], run.truth["batches"], DRIVER_TRANSACTIONS
    )
    assert {k: int(v) for k, v in on_books.items()} == expected
