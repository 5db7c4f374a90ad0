"""The aggregated ``db.client.operation.duration`` reaches every reader a user can configure.

Prometheus pull (in-process and under ``opentelemetry-instrument``), an in-memory reader on an
application's own ``MeterProvider`` (and a reader added to it later; a global provider set
before or after ``instrument()`` is in test_metrics_pipeline.py), and push exporters still
wrapped in ``AggregatingMetricExporter``: exact counts, one copy of each point, and never the
SDK's per-call ``Histogram.record``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.instrument import _Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)

import dbpulse
from dbpulse.telemetry.metrics import DURATION_BUCKETS
from tests.conftest import CapturingMetricExporter

prometheus = pytest.importorskip("opentelemetry.exporter.prometheus")
prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

DURATION = "db.client.operation.duration"
FAMILY = "db_client_operation_duration_seconds"
NEVER = 3_600_000  # export interval: only force_flush exports


@pytest.fixture
def served(otel) -> Iterator[Callable[..., MeterProvider]]:
    """``served(*readers)``: a new ``MeterProvider`` given to ``dbpulse.instrument``."""
    providers: list[MeterProvider] = []

    def make(*readers: MetricReader) -> MeterProvider:
        provider = MeterProvider(metric_readers=list(readers))
        providers.append(provider)
        dbpulse.uninstrument(systems=("sqlite",))
        dbpulse.instrument(systems=("sqlite",), meter_provider=provider)
        return provider

    yield make
    dbpulse.uninstrument(systems=("sqlite",))
    dbpulse.instrument(systems=("sqlite",))
    for provider in providers:
        provider.shutdown()


def _work(inserts: int, selects: int) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE books (isbn TEXT)")
    for i in range(inserts):
        conn.execute("INSERT INTO books VALUES (?)", (str(i),))
    for _ in range(selects):
        conn.execute("SELECT count(*) FROM books").fetchall()
    conn.close()


def _durations(data: MetricsData | None) -> list[list[Any]]:
    """The data points of every ``db.client.operation.duration`` metric in ``data``."""
    if data is None:
        return []
    return [
        list(metric.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == DURATION
    ]


def _counts(data: MetricsData | None) -> dict[str, int]:
    """Operations per ``db.operation.name``; asserts the histogram appears once."""
    metrics = _durations(data)
    assert len(metrics) == 1, f"{len(metrics)} copies of {DURATION}"
    counts: dict[str, int] = {}
    for point in metrics[0]:
        name = point.attributes["db.operation.name"]
        counts[name] = counts.get(name, 0) + point.count
        assert sum(point.bucket_counts) == point.count
    return counts


@pytest.fixture
def no_sdk_histogram(monkeypatch) -> list[Any]:
    """Calls of the SDK's ``Histogram.record`` while the test runs (dbpulse makes none)."""
    calls: list[Any] = []
    original = _Histogram.record

    def record(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(self.name)
        original(self, *args, **kwargs)

    monkeypatch.setattr(_Histogram, "record", record)
    return calls


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _histogram(text: str, **labels: str) -> tuple[float, dict[str, float]]:
    """(``_count``, ``{le: cumulative count}``) of the duration family's series matching
    ``labels`` in a Prometheus text scrape."""
    count = 0.0
    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != FAMILY:
            continue
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            if sample.name == f"{FAMILY}_count":
                count += sample.value
            elif sample.name == f"{FAMILY}_bucket":
                le = sample.labels["le"]
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return count, buckets


def _assert_buckets_add_up(count: float, buckets: dict[str, float]) -> None:
    bounds = sorted((float(le), value) for le, value in buckets.items())
    assert [b for b, _ in bounds] == [*DURATION_BUCKETS, float("inf")]
    values = [v for _, v in bounds]
    assert values == sorted(values)  # cumulative
    assert values[-1] == count


def _scrape(url: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_prometheus_pull_reader_scrape_has_the_exact_histogram(served, no_sdk_histogram):
    registry = prometheus_client.CollectorRegistry()
    reader = prometheus.PrometheusMetricReader(registry=registry)
    served(reader)
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        _work(inserts=23, selects=4)
        text = _scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    count, buckets = _histogram(text, db_operation_name="INSERT", db_system_name="sqlite")
    assert count == 23
    _assert_buckets_add_up(count, buckets)
    count, buckets = _histogram(text, db_operation_name="SELECT")
    assert count == 4
    _assert_buckets_add_up(count, buckets)
    assert "dbpulse_db_writes" in text  # the observable counters alongside
    assert no_sdk_histogram == []


def test_in_memory_reader_on_a_user_meter_provider_gets_exact_counts(served, no_sdk_histogram):
    reader = InMemoryMetricReader()
    provider = served(reader)
    _work(inserts=7, selects=3)
    assert _counts(reader.get_metrics_data()) == {"CREATE": 1, "INSERT": 7, "SELECT": 3}
    # A reader added to that provider later collects it too.
    later = InMemoryMetricReader()
    provider.add_metric_reader(later)
    assert _counts(later.get_metrics_data()) == {"CREATE": 1, "INSERT": 7, "SELECT": 3}
    assert no_sdk_histogram == []


def test_a_delta_reader_gets_increments(served):
    reader = InMemoryMetricReader(
        preferred_temporality={SdkHistogram: AggregationTemporality.DELTA}
    )
    served(reader)
    _work(inserts=5, selects=0)
    assert _counts(reader.get_metrics_data()) == {"CREATE": 1, "INSERT": 5}
    _work(inserts=2, selects=1)
    assert _counts(reader.get_metrics_data()) == {"CREATE": 1, "INSERT": 2, "SELECT": 1}
    assert _durations(reader.get_metrics_data()) == []  # nothing new: no point


def test_the_wrapper_on_a_served_provider_exports_each_point_once(served):
    """``AggregatingMetricExporter`` still works and never adds a second copy."""
    console_out = io.StringIO()
    captured = CapturingMetricExporter()
    delta = CapturingMetricExporter()
    delta._preferred_temporality = {SdkHistogram: AggregationTemporality.DELTA}
    provider = served(
        *(
            PeriodicExportingMetricReader(
                dbpulse.AggregatingMetricExporter(exporter), export_interval_millis=NEVER
            )
            for exporter in (ConsoleMetricExporter(out=console_out), captured, delta)
        )
    )
    _work(inserts=6, selects=2)
    provider.force_flush()
    assert _counts(captured.exports[-1]) == {"CREATE": 1, "INSERT": 6, "SELECT": 2}
    assert _counts(delta.exports[-1]) == {"CREATE": 1, "INSERT": 6, "SELECT": 2}
    printed = json.loads(console_out.getvalue())
    names = [
        m["name"]
        for rm in printed["resource_metrics"]
        for sm in rm["scope_metrics"]
        for m in sm["metrics"]
    ]
    assert names.count(DURATION) == 1
    _work(inserts=1, selects=0)
    provider.force_flush()
    assert _counts(delta.exports[-1]) == {"CREATE": 1, "INSERT": 1}
    assert _counts(captured.exports[-1]) == {"CREATE": 2, "INSERT": 7, "SELECT": 2}


def test_a_disabled_provider_gets_no_histogram(served, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")  # read by MeterProvider() itself
    reader = InMemoryMetricReader()
    served(reader)
    _work(inserts=3, selects=0)
    assert _durations(reader.get_metrics_data()) == []


APP = """
import sqlite3, sys
c = sqlite3.connect(":memory:")
c.execute("CREATE TABLE books (isbn TEXT)")
for i in range(31):
    c.execute("INSERT INTO books VALUES (?)", (str(i),))
print("ready", flush=True)
sys.stdin.readline()
"""


def test_opentelemetry_instrument_with_the_prometheus_exporter(tmp_path: Path):
    launcher = shutil.which("opentelemetry-instrument")
    assert launcher, "opentelemetry-instrument is installed with opentelemetry-instrumentation"
    (tmp_path / "app.py").write_text(APP)
    port = _free_port()
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": "scraped-app",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
    }
    app = subprocess.Popen(
        [launcher, sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None and app.stdin is not None
        line = app.stdout.readline()
        assert line.strip() == "ready", app.stderr.read() if app.stderr else ""
        text = _scrape(f"http://127.0.0.1:{port}/metrics")
        app.stdin.write("\n")
        app.stdin.flush()
        _, stderr = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, stderr
    count, buckets = _histogram(text, db_operation_name="INSERT", db_system_name="sqlite")
    assert count == 31
    _assert_buckets_add_up(count, buckets)
    assert _histogram(text, db_operation_name="CREATE")[0] == 1
