"""An OTLP/HTTP receiver in the test process: what applications under ``opentelemetry-instrument``
export, decoded with the OTLP protobuf messages, exactly as a collector would receive it.

Every process (a gunicorn master and its workers included) posts to the same sink; a process is
told apart by its resource and the start time of its cumulative series, and its counts are its
last export. ``total`` sums them over processes, as a backend sums series over instances.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["OtlpSink", "Point"]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class Point:
    """One exported data point: ``value`` is a sum's value or a histogram's count."""

    resource: tuple[tuple[str, Any], ...]
    metric: str
    attributes: dict[str, Any]
    start: int
    time: int
    value: float


class OtlpSink:
    """``POST /v1/metrics`` and ``/v1/traces`` on 127.0.0.1; keeps every metric point."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.spans = 0
        self.requests = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the exporter's only method
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.endswith("/v1/metrics"):
                    sink._metrics(ExportMetricsServiceRequest.FromString(body))
                    reply = ExportMetricsServiceResponse().SerializeToString()
                else:
                    spans = ExportTraceServiceRequest.FromString(body)
                    with sink._lock:
                        sink.spans += sum(
                            len(s.spans) for r in spans.resource_spans for s in r.scope_spans
                        )
                    reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The variables that point an application's OTLP exporters here."""
        return {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            # One export at shutdown: the counts of the whole run.
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        }

    def clear(self) -> None:
        with self._lock:
            self.points.clear()
            self.spans = 0
            self.requests = 0

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _metrics(self, request: ExportMetricsServiceRequest) -> None:
        found = []
        for rm in request.resource_metrics:
            resource = tuple(sorted((a.key, _value(a.value)) for a in rm.resource.attributes))
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point, value in _points(metric):
                        found.append(
                            Point(
                                resource,
                                metric.name,
                                {a.key: _value(a.value) for a in point.attributes},
                                point.start_time_unix_nano,
                                point.time_unix_nano,
                                value,
                            )
                        )
        with self._lock:
            self.points.extend(found)
            self.requests += 1

    def latest(self, metric: str) -> list[Point]:
        """Each process's last point of each series of ``metric`` (cumulative counts)."""
        last: dict[tuple[Any, ...], Point] = {}
        with self._lock:
            points = [p for p in self.points if p.metric == metric]
        for p in points:
            key = (p.resource, p.start, tuple(sorted(p.attributes.items())))
            if key not in last or last[key].time <= p.time:
                last[key] = p
        return list(last.values())

    def total(self, metric: str, **attributes: Any) -> float:
        """The sum over processes and series of ``metric`` whose attributes include these."""
        return sum(
            p.value
            for p in self.latest(metric)
            if all(p.attributes.get(k) == v for k, v in attributes.items())
        )

    def by(self, metric: str, attribute: str, **attributes: Any) -> dict[Any, float]:
        """``metric`` summed by one attribute's value (zeros left out)."""
        found: dict[Any, float] = {}
        for p in self.latest(metric):
            if all(p.attributes.get(k) == v for k, v in attributes.items()) and p.value:
                key = p.attributes.get(attribute)
                found[key] = found.get(key, 0) + p.value
        return found

    def processes(self) -> set[tuple[Any, ...]]:
        """The distinct (resource, start time) pairs that exported dbpulse's counters."""
        return {(p.resource, p.start) for p in self.latest("dbpulse.db.writes")}


def _points(metric: Any) -> Iterator[tuple[Any, float]]:
    kind = metric.WhichOneof("data")
    if kind == "sum":
        for p in metric.sum.data_points:
            yield p, (p.as_int if p.WhichOneof("value") == "as_int" else p.as_double)
    elif kind == "histogram":
        for p in metric.histogram.data_points:
            yield p, float(p.count)
    elif kind == "gauge":
        for p in metric.gauge.data_points:
            yield p, (p.as_int if p.WhichOneof("value") == "as_int" else p.as_double)
