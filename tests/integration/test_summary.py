"""dbpulse.summary(): the predecessor's /api/metrics/database shape from the exact aggregate."""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest

import dbpulse
from dbpulse.telemetry.metrics import DURATION_BUCKETS, OperationMetrics
from dbpulse.telemetry.summary import percentile


def _workload(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE books (isbn TEXT)")
    for i in range(30):
        conn.execute("INSERT INTO books VALUES (?)", (str(i),))
    for _ in range(20):
        conn.execute("SELECT count(*) FROM books").fetchone()
    for _ in range(5):
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("INSERT INTO missing VALUES (1)")
    conn.close()


def test_summary_counts_a_known_workload_exactly(tmp_path: Path, otel):
    _workload(tmp_path / "books.db")
    found = dbpulse.summary()
    assert found["total_operations"] == 1 + 30 + 20 + 5
    assert found["error_count"] == 5
    assert found["error_rate"] == pytest.approx(5 / 56)
    assert found["min_duration"] <= found["p50_duration"] <= found["p95_duration"]
    assert found["p95_duration"] <= found["p99_duration"] <= found["max_duration"]
    rows = {(r["operation"], r.get("table")): r for r in found["operations"]}
    assert rows[("INSERT", "books")]["total_operations"] == 30
    assert rows[("INSERT", "books")]["error_count"] == 0
    assert rows[("SELECT", "books")]["total_operations"] == 20
    assert rows[("INSERT", "missing")]["error_count"] == 5
    assert all(r["system"] == "sqlite" and r["namespace"] == "books.db" for r in rows.values())


def test_percentiles_fall_in_the_bucket_of_the_true_value():
    aggregate = OperationMetrics()
    series = aggregate.series("sqlite", "x.db", "SELECT", "books", None)
    durations = [0.0005 + 0.0003 * i for i in range(1000)]  # 0.5 ms ... 300 ms, uniform
    for d in durations:
        aggregate.record(series, d, 0.0, 0, (), None)
    found = dbpulse.summary(aggregate)
    assert found["total_operations"] == 1000
    assert found["avg_duration"] == pytest.approx(sum(durations) / 1000)
    bounds = (0.0, *DURATION_BUCKETS, float("inf"))
    for name, q in (("p50_duration", 0.5), ("p95_duration", 0.95), ("p99_duration", 0.99)):
        true = sorted(durations)[int(q * 1000) - 1]
        low = max(b for b in bounds if b < true)
        high = min(b for b in bounds if b >= true)
        assert low <= found[name] <= high, (name, true, found[name])


def test_percentile_of_one_bucket_stays_within_the_observed_range():
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    buckets[3] = 10  # all between 10 and 50 ms
    assert 0.02 <= percentile(buckets, 0.5, 0.02, 0.03) <= 0.03


def test_the_wsgi_app_serves_the_summary(tmp_path: Path, otel):
    _workload(tmp_path / "books.db")

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = make_server("127.0.0.1", 0, dbpulse.summary_wsgi, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/metrics/database"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.headers["Content-Type"] == "application/json"
            body = json.loads(response.read())
        assert body["total_operations"] == 56
        request = urllib.request.Request(url, method="POST", data=b"{}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 405
    finally:
        server.shutdown()


async def test_the_asgi_app_mounts_in_fastapi(tmp_path: Path, otel):
    fastapi = pytest.importorskip("fastapi")
    _workload(tmp_path / "books.db")
    app = fastapi.FastAPI()
    app.mount("/api/metrics/database", dbpulse.summary_asgi)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", follow_redirects=True
    ) as client:
        response = await client.get("/api/metrics/database")
        assert response.status_code == 200
        assert response.json()["error_count"] == 5
        assert (await client.delete("/api/metrics/database")).status_code == 405
