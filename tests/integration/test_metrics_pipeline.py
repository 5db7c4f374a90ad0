"""The aggregated metrics path: cardinality bound, temporality, a provider without the wrapper."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys

import pytest
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics.export import AggregationTemporality

from dbpulse.telemetry.export import AggregatingMetricExporter
from dbpulse.telemetry.metrics import OPERATIONS, OperationMetrics
from tests.conftest import CapturingMetricExporter

ISBNS = ["9780306406157", "9780140449136", "9781402894626", "9780451524935", "9780262033848"]


def test_isbn_series_beyond_the_limit_are_counted_as_overflow(otel, monkeypatch):
    monkeypatch.setattr(OPERATIONS, "cardinality_limit", 3)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE books (isbn TEXT)")
    for isbn in ISBNS:
        conn.execute("INSERT INTO books VALUES (?)", (isbn,))
    points = otel.points("dbpulse.db.isbn.writes")
    named = {p.attributes.get("book.isbn") for p in points if "book.isbn" in p.attributes}
    assert named == set(ISBNS[:3])
    (overflow,) = otel.points("dbpulse.db.isbn.writes", **{"otel.metric.overflow": True})
    assert overflow.value == 2
    dropped = otel.value("dbpulse.telemetry.dropped", **{"dbpulse.component": "isbn_cardinality"})
    assert dropped == 2
    # The per-table write counter stays exact.
    assert otel.value("dbpulse.db.writes", **{"db.collection.name": "books"}) == 5


def test_the_metric_cap_does_not_take_keys_from_the_viz_feed(otel, monkeypatch):
    # The cap is for Prometheus series; the sphere's events carry every ISBN (issue found with
    # the demo: beyond 2,000 ISBNs half its orbs showed as "other").
    from dbpulse.viz.sources import Ledger

    monkeypatch.setattr(OPERATIONS, "cardinality_limit", 3)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE books (isbn TEXT)")
    ledger = Ledger()
    ledger.read_isbns(OPERATIONS.isbn_writes_snapshot(), 0.0)  # the feed's baseline
    for isbn in ISBNS:
        conn.execute("INSERT INTO books VALUES (?)", (isbn,))
    events = ledger.read_isbns(OPERATIONS.isbn_writes_snapshot(), 1.0)
    assert sorted(e["isbn"] for e in events) == sorted(ISBNS)
    assert all(e["table"] == "books" and e["count"] == 1 for e in events)
    # ... while Prometheus still sees three named series and the overflow.
    named = [p for p in otel.points("dbpulse.db.isbn.writes") if "book.isbn" in p.attributes]
    assert len(named) == 3


def test_delta_temporality_exports_increments():
    operations = OperationMetrics()
    inner = CapturingMetricExporter()
    inner._preferred_temporality = {SdkHistogram: AggregationTemporality.DELTA}
    exporter = AggregatingMetricExporter(inner, operations=operations)
    series = operations.series("sqlite", "x.db", "INSERT", "books", None)

    def export() -> list:
        from opentelemetry.sdk.metrics.export import MetricsData

        exporter.export(MetricsData(resource_metrics=[]))
        data = inner.exports[-1]
        return [
            p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        ]

    operations.record(series, 0.002, 0.0, 1, (), None)
    operations.record(series, 0.002, 0.0, 1, (), None)
    (first,) = export()
    operations.record(series, 0.2, 0.0, 1, (), None)
    (second,) = export()
    assert first.count == 2 and second.count == 1
    assert list(second.bucket_counts) == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert export() == []  # nothing new: no point


@pytest.mark.parametrize("when", ["before", "after"])
def test_without_the_wrapper_an_own_provider_still_gets_the_exact_histogram(tmp_path, when):
    """An application with its own MeterProvider and plain reader still gets the histogram,
    set globally before or after ``instrument()``: the aggregated one, never through the SDK's
    ``Histogram.record`` (see tests/integration/test_metric_readers.py)."""
    script = tmp_path / "own_provider.py"
    instrument = "dbpulse.instrument(systems=('sqlite',))\n"
    script.write_text(
        "import sqlite3, dbpulse\n"
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics._internal.instrument import _Histogram\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "def fail(*a, **k): raise AssertionError('SDK Histogram.record called')\n"
        "_Histogram.record = fail\n"
        + (instrument if when == "after" else "")
        + "reader = InMemoryMetricReader()\n"
        "metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))\n"
        + (instrument if when == "before" else "")
        + "c = sqlite3.connect(':memory:')\n"
        "for i in range(7): c.execute('SELECT ?', (i,))\n"
        "data = reader.get_metrics_data()\n"
        "points = [p for rm in data.resource_metrics for sm in rm.scope_metrics\n"
        "          for m in sm.metrics if m.name == 'db.client.operation.duration'\n"
        "          for p in m.data.data_points]\n"
        "print(sum(p.count for p in points))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"


def test_configure_defaults_to_otlp_when_the_variables_are_unset(tmp_path):
    """``dbpulse.configure()`` alone exports over OTLP, as the README says: with no
    ``OTEL_*_EXPORTER`` set, traces and metrics reach the endpoint (a listener here)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(30)
    port = listener.getsockname()[1]
    script = tmp_path / "defaults.py"
    script.write_text(
        "import dbpulse\n"
        "from opentelemetry import trace\n"
        "t = dbpulse.configure(service_name='defaults')\n"
        "trace.get_tracer('x').start_span('one').end()\n"
        "t.force_flush(2000)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}", OTEL_EXPORTER_OTLP_TIMEOUT="1"
    )
    app = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        connection, _ = listener.accept()  # the OTLP exporter connected
        connection.close()
    finally:
        app.kill()
        app.communicate()
        listener.close()


def test_fresh_table_names_do_not_grow_the_series_without_bound(otel, monkeypatch):
    # An ETL job or `sqlite-utils upsert` makes temporary tables with fresh names.
    monkeypatch.setattr(OPERATIONS, "series_limit", 50)
    conn = sqlite3.connect(":memory:")
    for i in range(300):
        conn.execute(f"CREATE TABLE tmp_{i} (x)")
        conn.execute(f"INSERT INTO tmp_{i} VALUES (1)")
    durations = otel.points("db.client.operation.duration")
    assert len(durations) <= 50
    (overflow,) = [p for p in durations if p.attributes.get("otel.metric.overflow")]
    assert sum(p.count for p in durations) == 600  # every operation still counted
    writes = otel.points("dbpulse.db.writes")
    assert sum(p.value for p in writes) == 300
    assert any(p.attributes.get("otel.metric.overflow") for p in writes)
    dropped = otel.value("dbpulse.telemetry.dropped", **{"dbpulse.component": "series_cardinality"})
    assert dropped == overflow.count


ETL = """
import resource, sqlite3, sys
conn = sqlite3.connect(":memory:")
for i in range(int(sys.argv[1])):
    conn.execute(f"CREATE TEMP TABLE tmp_{i} (isbn TEXT, n INTEGER)")
    conn.execute(f"INSERT INTO tmp_{i} VALUES (?, ?)", ("9780306406157", i))
    conn.execute(f"UPDATE tmp_{i} SET n = n + 1 WHERE n = {i}")
    conn.execute(f"SELECT * FROM tmp_{i}").fetchall()
    conn.execute(f"DROP TABLE tmp_{i}")
print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
print("app done")
"""


def test_fresh_table_names_keep_memory_within_the_stated_bound(tmp_path):
    # README: peak RSS 64 MiB with no tables, 99 MiB at 100,000 and at 200,000 (every cache
    # bounded). Here 20,000 tables, each a new text of five statements: at most 40 MiB over
    # the same process with none.
    from tests.integration.test_autoinstrument import run_app

    (tmp_path / "etl.py").write_text(ETL)
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}

    def peak(tables: int) -> int:
        out = run_app(tmp_path, env, ["etl.py", str(tables)]).stdout
        return int(out.split("peak ", 1)[1].split()[0])

    idle, busy = peak(0), peak(20_000)
    assert busy - idle <= 40, (idle, busy)
