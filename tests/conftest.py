"""Shared fixtures: one SDK pipeline per test session with in-memory exporters, and services.

OpenTelemetry's global providers can be set once per process, so the session configures
dbpulse once (``dbpulse.configure`` with in-memory exporters) and each test starts from a clean
slate: spans cleared, the metric aggregate reset, the sampler back in detailed mode.

Services: PostgreSQL and Redis come from ``scripts/services.sh`` (see ``tests/services.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dbpulse
import dbpulse.testing
from tests import services

# The real collector/Prometheus/Tempo fixtures (tests/harness) for the end-to-end tests.
pytest_plugins = (
    ["tests.harness.fixtures"]
    if (Path(__file__).parent / "harness" / "fixtures.py").exists()
    else []
)


class CapturingMetricExporter(MetricExporter):
    """Keeps every export in memory (the metric twin of ``InMemorySpanExporter``)."""

    def __init__(self) -> None:
        super().__init__()
        self.exports: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class Exported:
    """What the application exported, as a test reads it."""

    def __init__(
        self,
        telemetry: dbpulse.Telemetry,
        spans: InMemorySpanExporter,
        exporter: CapturingMetricExporter,
    ) -> None:
        self.telemetry = telemetry
        self.span_exporter = spans
        self.exporter = exporter

    def spans(self) -> list[Any]:
        return list(self.span_exporter.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        """Collect now and return ``{metric name: [data points]}``."""
        self.telemetry.meter_provider.force_flush()
        data = self.exporter.exports[-1]
        found: dict[str, list[Any]] = {}
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def points(self, name: str, **attributes: Any) -> list[Any]:
        """Data points of ``name`` whose attributes include ``attributes``."""
        return [
            p
            for p in self.metrics().get(name, [])
            if all(p.attributes.get(k) == v for k, v in attributes.items())
        ]

    def value(self, name: str, **attributes: Any) -> float:
        """Sum of the matching points: ``count`` for histograms, ``value`` otherwise."""
        points = self.points(name, **attributes)
        return sum(p.count if hasattr(p, "count") else p.value for p in points)


_SESSION: dict[str, Any] = {}


def _session_telemetry() -> Exported:
    if "telemetry" not in _SESSION:
        spans = InMemorySpanExporter()
        exporter = CapturingMetricExporter()
        # Only the in-memory exporters; the variables are restored so that subprocesses the
        # tests start (applications under test) see the environment as it was.
        saved = {k: os.environ.get(k) for k in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME")}
        os.environ["OTEL_TRACES_EXPORTER"] = "none"
        try:
            telemetry = dbpulse.configure(
                service_name="dbpulse-tests",
                metric_exporter=exporter,
                span_processors=[SimpleSpanProcessor(spans)],
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        _SESSION["telemetry"] = Exported(telemetry, spans, exporter)
    return _SESSION["telemetry"]  # type: ignore[no-any-return]


@pytest.fixture
def otel() -> Iterator[Exported]:
    """The session's SDK pipeline, cleared; dbpulse instrumented and enabled, detailed mode."""
    telemetry = _session_telemetry()
    telemetry.span_exporter.clear()
    dbpulse.testing.reset()
    dbpulse.instrument(systems=("sqlite", "postgresql"))
    yield telemetry
    dbpulse.testing.reset()


@pytest.fixture
def pg_dsn() -> str:
    return services.postgres_dsn()


@pytest.fixture
def redis_url() -> str:
    return services.redis_url()
