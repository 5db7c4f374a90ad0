"""The synthetic traffic of ``dbpulse diagnose`` and the small HTTP probes it reads results with.

Usage (``dbpulse.faces.diagnose`` drives it)::

    spans = RecordingSpanExporter(OTLPSpanExporter(...), online=True)
    traffic = Traffic(marker="diagnose-1a2b3c", spans=spans)
    trace_id = traffic.sqlite_write(tmp_dir)          # one INSERT through dbpulse's sqlite3
    flow_id = traffic.redis_flow(redis_url, timeout=5) # publish → receive → parse → deliver

The exporters wrap the real OTLP ones: they keep every span handed to them (so a hop can check
what dbpulse recorded before it left the process) and count what the endpoint accepted. Offline
(the OTLP hop failed) they refuse at once instead of retrying against a dead endpoint.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from dbpulse.flow import Subscriber, publish

__all__ = [
    "CHECKPOINTS",
    "DIAGNOSE_CHANNEL",
    "DIAGNOSE_TABLE",
    "RecordingMetricExporter",
    "RecordingSpanExporter",
    "Traffic",
]

DIAGNOSE_TABLE = "dbpulse_diagnose"
"""The table of the synthetic write (one name for every run: one series, not one per run)."""
DIAGNOSE_CHANNEL = "dbpulse.diagnose"
"""The Redis channel of the synthetic flow."""
CHECKPOINTS = ("PATTERN_PUBLISHED", "EVENT_RECEIVED", "EVENT_PARSED", "WEBSOCKET_DELIVERED")
# A valid ISBN-13 (the one value dbpulse exports), so the write lights an orb on the sphere.
_ISBN = "9780140449136"


class RecordingSpanExporter(SpanExporter):
    """Keeps the spans it is given; passes them to ``inner`` when online, counting the result."""

    def __init__(self, inner: SpanExporter | None, online: bool) -> None:
        self.inner = inner
        self.online = online and inner is not None
        self.spans: list[ReadableSpan] = []
        self.accepted = 0
        self.refused = 0
        self.error: str | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        if not self.online or self.inner is None:
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not end the diagnosis
            self.error = f"{type(exc).__name__}: {exc}"
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.accepted += len(spans)
        else:
            self.refused += len(spans)
        return result

    def shutdown(self) -> None:
        if self.inner is not None:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class RecordingMetricExporter(MetricExporter):
    """Counts the metric exports ``inner`` got through (and the failed ones)."""

    def __init__(self, inner: MetricExporter | None, online: bool) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self.inner = inner
        self.online = online and inner is not None
        self.accepted = 0
        self.refused = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if not self.online or self.inner is None:
            self.refused += 1
            return MetricExportResult.FAILURE
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            result = MetricExportResult.FAILURE
        if result is MetricExportResult.SUCCESS:
            self.accepted += 1
        else:
            self.refused += 1
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self.inner is not None:
            self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class Traffic:
    """One diagnosis's synthetic operations, all under the global providers dbpulse set up."""

    def __init__(self, marker: str, spans: RecordingSpanExporter) -> None:
        self.marker = marker
        self.spans = spans
        self.tracer = trace.get_tracer("dbpulse.diagnose")

    def sqlite_write(self, directory: Path) -> str:
        """An INSERT into a temporary SQLite file through dbpulse's sqlite3 instrumentation,
        under one ``dbpulse diagnose`` span; returns the trace id (hex)."""
        with self.tracer.start_as_current_span("dbpulse diagnose") as parent:
            parent.set_attribute("dbpulse.diagnose.marker", self.marker)
            conn = sqlite3.connect(directory / "diagnose.db")
            try:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {DIAGNOSE_TABLE} (isbn TEXT, marker TEXT)"
                )
                conn.execute(
                    f"INSERT INTO {DIAGNOSE_TABLE} (isbn, marker) VALUES (?, ?)",
                    (_ISBN, self.marker),
                )
                conn.commit()
            finally:
                conn.close()
            return f"{parent.get_span_context().trace_id:032x}"

    def redis_flow(self, redis_url: str, timeout: float) -> str:
        """One pattern flow through real Redis pub/sub with :mod:`dbpulse.flow`: the four
        checkpoints in this process. Returns the flow id; raises on a Redis error or when the
        message does not come back within ``timeout`` seconds."""
        import redis  # the redis extra

        client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        subscriber = Subscriber(client.pubsub(), DIAGNOSE_CHANNEL)
        try:
            subscriber.subscribe()
            subscriber.get_event(timeout=timeout)  # the subscribe reply: now we are listening
            payload = {"pattern.name": "diagnose", "diagnose.marker": self.marker}
            flow_id = publish(client, DIAGNOSE_CHANNEL, payload)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                event = subscriber.get_event(timeout=min(0.5, timeout))
                if event is None or event.flow_id != flow_id:
                    continue  # another diagnosis on the same channel
                with event:
                    with event.parsed():
                        pass
                    with event.delivered(users=0):
                        pass
                return flow_id
            raise TimeoutError(f"the flow did not come back from Redis within {timeout:g} s")
        finally:
            subscriber.close()
            client.close()

    def checkpoints_recorded(self, flow_id: str) -> set[str]:
        """The checkpoints of ``flow_id`` among the spans that reached the exporter."""
        found = set()
        for span in self.spans.spans:
            attributes = span.attributes or {}
            if attributes.get("flow.id") == flow_id or (
                span.context is not None and f"{span.context.trace_id:032x}" == _hex(flow_id)
            ):
                checkpoint = attributes.get("flow.checkpoint")
                if isinstance(checkpoint, str):
                    found.add(checkpoint)
        return found

    def writes_recorded(self, trace_id: str) -> list[ReadableSpan]:
        """The INSERT spans of the synthetic write."""
        return [
            span
            for span in self.spans.spans
            if span.context is not None
            and f"{span.context.trace_id:032x}" == trace_id
            and (span.attributes or {}).get("db.operation.name") == "INSERT"
        ]


def _hex(flow_id: str) -> str:
    return flow_id.replace("-", "").lower()
