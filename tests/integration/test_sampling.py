"""The application's sampler decides the application's traces; dbpulse's own roots are adaptive.

An HTTP instrumentation makes a SERVER root per request; installing dbpulse must not change how
those are sampled, however busy the database is (OpenTelemetry's rule for instrumentations).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from dbpulse.telemetry.sampler import LOAD
from tests.integration.test_autoinstrument import _objects, run_app

REQUESTS = 200
QUERIES = 20


def test_request_traces_follow_the_application_sampler_under_database_load(tmp_path, otel):
    conn = sqlite3.connect(tmp_path / "books.db")
    conn.execute("CREATE TABLE books (isbn TEXT, n INTEGER)")
    tracer = trace.get_tracer("app.http")
    otel.span_exporter.clear()
    for i in range(REQUESTS):
        with tracer.start_as_current_span(f"GET /books/{i % 7}", kind=SpanKind.SERVER):
            for j in range(QUERIES):
                conn.execute("SELECT * FROM books WHERE n = ?", (j,))
    # 4000 queries in well under a few seconds: the adaptive sampler is aggregated by now...
    assert LOAD.mode == "aggregated"
    spans = otel.spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    # ...but the default parentbased_always_on keeps every request, and their queries follow.
    assert len(servers) == REQUESTS
    assert len(clients) == REQUESTS * QUERIES
    server_ids = {s.context.span_id for s in servers}
    assert all(c.parent is not None and c.parent.span_id in server_ids for c in clients)
    # dbpulse's own roots (queries with no parent) are what the adaptive sampler drops.
    otel.span_exporter.clear()
    for j in range(50):
        conn.execute("SELECT * FROM books WHERE n = ?", (j,))
    assert otel.spans() == []
    total = otel.value("db.client.operation.duration", **{"db.operation.name": "SELECT"})
    assert total == REQUESTS * QUERIES + 50  # metrics exact whatever was sampled


APP = f"""
import sqlite3
from opentelemetry import trace
from opentelemetry.trace import SpanKind
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE books (n INTEGER)")
tracer = trace.get_tracer("app.http")
for i in range({REQUESTS}):
    with tracer.start_as_current_span("GET /books", kind=SpanKind.SERVER):
        for j in range(5):
            conn.execute("SELECT * FROM books WHERE n = ?", (j,))
print("app done")
"""


@pytest.mark.parametrize(
    ("sampler", "arg", "low", "high"),
    [
        ("always_on", None, REQUESTS, REQUESTS),
        ("parentbased_always_on", None, REQUESTS, REQUESTS),
        # Binomial(200, 0.5): 100 ± 7; the bounds are more than 5 standard deviations wide.
        ("traceidratio", "0.5", 60, 140),
        ("always_off", None, 0, 0),
    ],
)
def test_an_explicit_otel_traces_sampler_is_honoured_under_opentelemetry_instrument(
    tmp_path: Path, sampler: str, arg: str | None, low: int, high: int
):
    launcher = shutil.which("opentelemetry-instrument")
    assert launcher
    (tmp_path / "app.py").write_text(APP)
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": "sampled-app",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_TRACES_SAMPLER": sampler,
    }
    env.pop("OTEL_TRACES_SAMPLER_ARG", None)
    if arg is not None:
        env["OTEL_TRACES_SAMPLER_ARG"] = arg
    result = run_app(tmp_path, env)
    spans = [o for o in _objects(result.stdout) if "context" in o and "kind" in o]
    servers = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    clients = [
        s for s in spans if s["kind"] == "SpanKind.CLIENT" and s["name"] != "CREATE TABLE books"
    ]
    assert low <= len(servers) <= high, (sampler, len(servers))
    # The CREATE before any request is dbpulse's own root: adaptive (detailed at this load),
    # whatever the application's sampler says about its own roots.
    (create,) = [s for s in spans if s["name"] == "CREATE TABLE books"]
    assert create["parent_id"] is None
    kept = {s["context"]["span_id"] for s in servers}
    # Children follow their parent: five queries per kept request, none for a dropped one.
    assert len(clients) == 5 * len(servers)
    assert {c["parent_id"] for c in clients} <= kept


def test_a_real_wsgi_instrumentation_keeps_every_request_under_database_load(tmp_path, otel):
    """opentelemetry-instrumentation-wsgi's SERVER roots, served over real HTTP: all kept."""
    wsgi = pytest.importorskip("opentelemetry.instrumentation.wsgi")
    import threading
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    conn = sqlite3.connect(tmp_path / "books.db", check_same_thread=False)
    conn.execute("CREATE TABLE books (isbn TEXT, n INTEGER)")

    def app(environ, start_response):
        for j in range(QUERIES):
            conn.execute("SELECT * FROM books WHERE n = ?", (j,)).fetchall()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):  # keep the test output readable
            pass

    server = make_server("127.0.0.1", 0, wsgi.OpenTelemetryMiddleware(app), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    otel.span_exporter.clear()
    try:
        for i in range(REQUESTS // 2):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/books/{i}") as r:
                assert r.read() == b"ok"
    finally:
        server.shutdown()
        server.server_close()
    assert LOAD.mode == "aggregated"
    spans = otel.spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert len(servers) == REQUESTS // 2
    assert len(clients) == REQUESTS // 2 * QUERIES
