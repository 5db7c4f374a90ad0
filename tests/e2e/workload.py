"""A small instrumented workload for the end-to-end pipeline tests.

It writes books (with ISBNs) to SQLite and, when a DSN is given, PostgreSQL, and passes a
message producer → Redis → consumer, instrumented directly on the OpenTelemetry SDK the way
dbpulse instruments them: CLIENT spans named ``{operation} {table}`` with the stable database
attributes and ``book.isbn``, a ``db.client.operation.duration`` histogram (seconds), and a
PRODUCER/CONSUMER pair linked through a W3C ``traceparent`` in the message.
:func:`run_workload` is the one function to swap for ``dbpulse.instrument()`` later.

Run as a program it loops until a stop file appears (the collector-kill test drives it)::

    python -m tests.e2e.workload --otlp 127.0.0.1:4317 --service demo --stop-file /tmp/stop
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Tracer

#: Valid ISBN-13s (checksums hold), written one per operation in turn.
ISBNS = ("9780306406157", "9780131103627", "9780262033848", "9781492052203")
QUEUE_DESTINATION = "dbpulse.e2e.patterns"


@dataclass
class Telemetry:
    """SDK providers exporting over OTLP/gRPC to one collector endpoint."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    @classmethod
    def otlp(cls, endpoint: str, service_name: str, export_interval_ms: int = 1000) -> Telemetry:
        resource = Resource.create({"service.name": service_name})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=5),
                schedule_delay_millis=200,
            )
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=endpoint, insecure=True, timeout=5),
            export_interval_millis=export_interval_ms,
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        return cls(tracer_provider, meter_provider)

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@dataclass
class WorkloadResult:
    """What the workload did, for the test to look for in Prometheus and Tempo."""

    trace_id: str = ""
    ops_by_system: dict[str, int] = field(default_factory=dict)
    isbns: list[str] = field(default_factory=list)
    flow_trace_id: str = ""


def run_workload(
    app: Telemetry,
    consumer: Telemetry,
    *,
    ops_per_system: int,
    sqlite_path: Path,
    postgres_dsn: str | None,
    redis_url: str | None,
) -> WorkloadResult:
    """Write ``ops_per_system`` books per database and pass one message through Redis.

    All database spans share one trace (its id is ``result.trace_id``); the producer and
    consumer spans share another (``result.flow_trace_id``), with the consumer in the
    ``consumer`` service so the service graph has an edge.
    """
    tracer = app.tracer_provider.get_tracer("dbpulse.e2e")
    duration = app.meter_provider.get_meter("dbpulse.e2e").create_histogram(
        "db.client.operation.duration", unit="s", description="Duration of database operations"
    )
    result = WorkloadResult()
    databases: list[tuple[str, Any]] = [("sqlite", sqlite3.connect(sqlite_path))]
    if postgres_dsn:
        import psycopg

        databases.append(("postgresql", psycopg.connect(postgres_dsn, autocommit=True)))
    with tracer.start_as_current_span("e2e workload") as root:
        result.trace_id = format(root.get_span_context().trace_id, "032x")
        for system, conn in databases:
            table = "e2e_books"
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (isbn TEXT, title TEXT)")
            placeholder = "?" if system == "sqlite" else "%s"
            for i in range(ops_per_system):
                isbn = ISBNS[i % len(ISBNS)]
                attrs = {
                    "db.system.name": system,
                    "db.operation.name": "INSERT",
                    "db.collection.name": table,
                }
                start = time.perf_counter()
                with tracer.start_as_current_span(
                    f"INSERT {table}", kind=SpanKind.CLIENT, attributes={**attrs, "book.isbn": isbn}
                ):
                    conn.execute(
                        f"INSERT INTO {table} (isbn, title) VALUES ({placeholder}, {placeholder})",
                        (isbn, f"book {i}"),
                    )
                duration.record(time.perf_counter() - start, attrs)
                result.ops_by_system[system] = result.ops_by_system.get(system, 0) + 1
                result.isbns.append(isbn)
            if system == "sqlite":
                conn.commit()
            conn.close()
    if redis_url:
        result.flow_trace_id = _producer_consumer(tracer, consumer, redis_url)
    app.flush()
    consumer.flush()
    return result


def _producer_consumer(tracer: Tracer, consumer: Telemetry, redis_url: str) -> str:
    """PRODUCER span → message with traceparent in a Redis list → CONSUMER span (other service)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"{QUEUE_DESTINATION}.{os.getpid()}.{time.monotonic_ns()}"
    attrs = {"messaging.system": "redis", "messaging.destination.name": QUEUE_DESTINATION}
    with tracer.start_as_current_span(
        f"publish {QUEUE_DESTINATION}", kind=SpanKind.PRODUCER, attributes=attrs
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        client.rpush(key, json.dumps({"headers": carrier, "body": "pattern"}))
        flow_trace_id = format(span.get_span_context().trace_id, "032x")
    popped = client.blpop([key], timeout=5)
    client.delete(key)
    if popped is None:
        raise RuntimeError(f"message on Redis list {key} did not arrive")
    message = json.loads(popped[1])
    consumer_tracer = consumer.tracer_provider.get_tracer("dbpulse.e2e")
    with consumer_tracer.start_as_current_span(
        f"process {QUEUE_DESTINATION}",
        kind=SpanKind.CONSUMER,
        context=propagate.extract(message["headers"]),
        attributes=attrs,
    ):
        pass
    return flow_trace_id


@contextlib.contextmanager
def _sqlite_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dbpulse-e2e-") as tmp:
        yield Path(tmp) / "books.db"


def _loop(args: argparse.Namespace) -> int:
    """Write one book every few milliseconds until the stop file exists; print a summary."""
    app = Telemetry.otlp(args.otlp, args.service)
    tracer = app.tracer_provider.get_tracer("dbpulse.e2e")
    duration = app.meter_provider.get_meter("dbpulse.e2e").create_histogram(
        "db.client.operation.duration", unit="s"
    )
    ops = errors = 0
    deadline = time.monotonic() + args.max_seconds
    with _sqlite_file() as path:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE books (isbn TEXT, title TEXT)")
        attrs = {
            "db.system.name": "sqlite",
            "db.operation.name": "INSERT",
            "db.collection.name": "books",
        }
        while not Path(args.stop_file).exists() and time.monotonic() < deadline:
            # The application's own error accounting: telemetry must never make this count rise.
            try:
                isbn = ISBNS[ops % len(ISBNS)]
                start = time.perf_counter()
                with tracer.start_as_current_span(
                    "INSERT books", kind=SpanKind.CLIENT, attributes={**attrs, "book.isbn": isbn}
                ):
                    conn.execute("INSERT INTO books VALUES (?, ?)", (isbn, "t"))
                    conn.commit()
                duration.record(time.perf_counter() - start, attrs)
                ops += 1
            except Exception:
                errors += 1
            time.sleep(args.interval)
        conn.close()
    app.shutdown()
    print(json.dumps({"ops": ops, "errors": errors}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--otlp", required=True, help="collector OTLP/gRPC host:port")
    parser.add_argument("--service", required=True, help="service.name")
    parser.add_argument("--stop-file", required=True, help="stop when this file exists")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between writes")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="safety stop")
    return _loop(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
