"""Prefork servers: a forked child counts from zero and keeps exporting (gunicorn --preload,
Celery prefork, multiprocessing with fork)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from dbpulse import flow

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

ISBN = "9780306406157"


def _in_child(work, otel) -> dict:
    """Run ``work()`` in a forked child; return what the child's own export said."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read)
            work()
            report = {
                "writes": otel.value("dbpulse.db.writes", **{"db.collection.name": "books"}),
                "inserts": otel.value(
                    "db.client.operation.duration", **{"db.operation.name": "INSERT"}
                ),
                "isbn": otel.value("dbpulse.db.isbn.writes", **{"book.isbn": ISBN}),
            }
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(b"".join(chunks))


def test_children_count_only_their_own_writes(tmp_path: Path, otel):
    path = tmp_path / "books.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE books (isbn TEXT)")
    for _ in range(100):
        conn.execute("INSERT INTO books VALUES (?)", (ISBN,))
    conn.commit()
    conn.close()

    def ten_writes() -> None:
        child = sqlite3.connect(path)
        for _ in range(10):
            child.execute("INSERT INTO books VALUES (?)", (ISBN,))
        child.commit()

    reports = [_in_child(ten_writes, otel) for _ in range(2)]
    assert reports == [{"writes": 10, "inserts": 10, "isbn": 10}] * 2
    # The parent's own counts are untouched by its children.
    assert otel.value("dbpulse.db.writes", **{"db.collection.name": "books"}) == 100
    assert sqlite3.connect(path).execute("SELECT count(*) FROM books").fetchone()[0] == 120


def test_a_running_heartbeat_beats_again_in_the_child(otel):
    heartbeat = flow.Heartbeat(f"fork-{os.getpid()}", interval=0.05).start()
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read)
                first = heartbeat.last_beat
                deadline = time.monotonic() + 5
                while heartbeat.last_beat == first and time.monotonic() < deadline:
                    time.sleep(0.02)
                beating = heartbeat.last_beat != first
                os.write(write, json.dumps({"beating": beating}).encode())
            finally:
                os._exit(0)
        os.close(write)
        answer = json.loads(os.read(read, 1024) or b"{}")
        os.close(read)
        os.waitpid(pid, 0)
        assert answer == {"beating": True}
    finally:
        heartbeat.stop()
