"""A small instrumented workload for the end-to-end pipeline tests.

It writes books (with ISBNs) to SQLite and, when a DSN is given, PostgreSQL, as a plain
application instrumented by dbpulse (its own process, exporting over OTLP), and passes a
message producer → Redis → consumer between two services (PRODUCER/CONSUMER spans linked
through a W3C ``traceparent`` in the message) for the service graph. ``run_duckdb_workload``
runs the demo's DuckDB execution log (seed 003's ``executions`` table) the same way.

Run as a program it loops until a stop file appears (the collector-kill test drives it)::

    python -m tests.e2e.workload --otlp 127.0.0.1:4317 --service demo --stop-file /tmp/stop

``python -m tests.e2e.workload flows REDIS_URL CHANNEL FLOW_ID... [--interval S]`` is the
pattern-flow producer (``dbpulse.flow.publish``, one flow per id) of the flow and scale tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
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
_REPO = Path(__file__).resolve().parents[2]


@dataclass
class OtlpProviders:
    """SDK providers exporting over OTLP/gRPC to one collector endpoint."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    endpoint: str = ""

    @classmethod
    def otlp(
        cls, endpoint: str, service_name: str, export_interval_ms: int = 1000
    ) -> OtlpProviders:
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
        return cls(tracer_provider, meter_provider, endpoint)

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@dataclass
class WorkloadResult:
    """What the workload did, for the test to look for in Prometheus and the trace store."""

    trace_id: str = ""
    ops_by_system: dict[str, int] = field(default_factory=dict)
    isbns: list[str] = field(default_factory=list)
    flow_trace_id: str = ""
    spans: int = 0  # spans in the database trace (root + one per statement)


def run_workload(
    app: OtlpProviders,
    consumer: OtlpProviders,
    *,
    ops_per_system: int,
    sqlite_path: Path,
    postgres_dsn: str | None,
    redis_url: str | None,
) -> WorkloadResult:
    """Write ``ops_per_system`` books per database and pass one message through Redis.

    The database part is an ordinary application instrumented by dbpulse
    (``dbpulse.configure()`` + ``dbpulse.instrument()``), run in its own process under the app's
    service name and exporting to the same collector. All its database spans share one trace
    (``result.trace_id``); the producer and consumer spans share another
    (``result.flow_trace_id``), with the consumer in the ``consumer`` service so the service
    graph has an edge.
    """
    command = ["db", "--ops", str(ops_per_system), "--sqlite", str(sqlite_path)]
    if postgres_dsn:
        command += ["--postgres", postgres_dsn]
    report = _run_instrumented(app, command)
    result = WorkloadResult(
        trace_id=report["trace_id"],
        ops_by_system=report["ops_by_system"],
        isbns=report["isbns"],
        spans=report["spans"],
    )
    if redis_url:
        tracer = app.tracer_provider.get_tracer("dbpulse.e2e")
        result.flow_trace_id = _producer_consumer(tracer, consumer, redis_url)
    app.flush()
    consumer.flush()
    return result


def run_duckdb_workload(app: OtlpProviders, database: Path, executions: int, rate: float) -> Any:
    """``executions`` runs of the DuckDB execution log (``dbpulse.demo.executions``) at ``rate``
    per second, in one trace (``trace_id``), in an instrumented process under the app's service
    name; returns its report (counts by statement, ``spans`` in the trace)."""
    command = ["duckdb", "--database", str(database), "--count", str(executions)]
    return _run_instrumented(app, [*command, "--rate", str(rate)])


def app_env(endpoint: str, service: str) -> dict[str, str]:
    """The environment of an instrumented application process exporting OTLP/gRPC to
    ``endpoint`` (``host:port``) as ``service``, metrics every second, spans within 200 ms."""
    return {
        **os.environ,
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{endpoint}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "DBPULSE_HEARTBEAT_INTERVAL": "1",
    }


def _run_instrumented(app: OtlpProviders, arguments: list[str]) -> Any:
    """``python -m tests.e2e.workload <arguments>`` exporting to ``app``'s collector under its
    service name; the JSON report it prints last."""
    service = str(app.tracer_provider.resource.attributes["service.name"])
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{app.endpoint}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
    }
    command = [sys.executable, "-m", "tests.e2e.workload", *arguments]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=_REPO)
    if done.returncode != 0:
        raise RuntimeError(f"the instrumented workload failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _duckdb_workload(database: Path, executions: int, rate: float) -> dict[str, Any]:
    """The instrumented application: the demo's DuckDB execution log under dbpulse, one trace."""
    from dataclasses import asdict

    from opentelemetry import trace

    import dbpulse
    from dbpulse.demo.executions import ExecutionsOptions, run_executions

    telemetry = dbpulse.configure()
    dbpulse.instrument(systems=("duckdb",))
    options = ExecutionsOptions(database=str(database), rate=rate, count=executions)
    with trace.get_tracer("dbpulse.e2e").start_as_current_span("e2e duckdb workload") as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        done = run_executions(options)
    telemetry.shutdown()
    report = asdict(done)
    report["summary"] = [list(row) for row in done.summary]
    spans = 1 + sum(done.statements.values())  # the root, then one per statement
    return {**report, "trace_id": trace_id, "spans": spans}


def _database_workload(ops: int, sqlite_path: Path, postgres_dsn: str | None) -> dict[str, Any]:
    """The instrumented application: plain sqlite3/psycopg code under dbpulse."""
    from opentelemetry import trace

    import dbpulse

    telemetry = dbpulse.configure()
    dbpulse.instrument()
    report: dict[str, Any] = {"ops_by_system": {}, "isbns": [], "spans": 1}
    databases: list[tuple[str, Any]] = [("sqlite", sqlite3.connect(sqlite_path))]
    if postgres_dsn:
        import psycopg

        databases.append(("postgresql", psycopg.connect(postgres_dsn, autocommit=True)))
    tracer = trace.get_tracer("dbpulse.e2e")
    with tracer.start_as_current_span("e2e workload") as root:
        report["trace_id"] = format(root.get_span_context().trace_id, "032x")
        for system, conn in databases:
            table = "e2e_books"
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (isbn TEXT, title TEXT)")
            report["spans"] += 1
            placeholder = "?" if system == "sqlite" else "%s"
            for i in range(ops):
                isbn = ISBNS[i % len(ISBNS)]
                conn.execute(
                    f"INSERT INTO {table} (isbn, title) VALUES ({placeholder}, {placeholder})",
                    (isbn, f"book {i}"),
                )
                report["ops_by_system"][system] = report["ops_by_system"].get(system, 0) + 1
                report["isbns"].append(isbn)
                report["spans"] += 1
            if system == "sqlite":
                conn.commit()
            conn.close()
    telemetry.shutdown()
    return report


def _producer_consumer(tracer: Tracer, consumer: OtlpProviders, redis_url: str) -> str:
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
    """Write one book every few milliseconds until the stop file exists; print a summary.

    An ordinary application under dbpulse: the collector may die and come back meanwhile.
    """
    import dbpulse

    os.environ.update(
        {
            "OTEL_SERVICE_NAME": args.service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{args.otlp}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
        }
    )
    telemetry = dbpulse.configure()
    dbpulse.instrument()
    ops = errors = 0
    deadline = time.monotonic() + args.max_seconds
    with _sqlite_file() as path:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE books (isbn TEXT, title TEXT)")
        while not Path(args.stop_file).exists() and time.monotonic() < deadline:
            # The application's own error accounting: telemetry must never make this count rise.
            try:
                isbn = ISBNS[ops % len(ISBNS)]
                conn.execute("INSERT INTO books VALUES (?, ?)", (isbn, "t"))
                conn.commit()
                ops += 1
            except Exception:
                errors += 1
            time.sleep(args.interval)
        conn.close()
    telemetry.shutdown()
    print(json.dumps({"ops": ops, "errors": errors}), flush=True)
    return 0


def _publish_flows(
    url: str, channel: str, flow_ids: list[str], interval: float = 0.0
) -> dict[str, Any]:
    """The instrumented producer: ``dbpulse.flow.publish`` of one pattern event per flow id
    (each flow its own trace, trace id = flow id) once a consumer has subscribed, ``interval``
    seconds apart; reports how many it published and when (Unix time of each)."""
    import redis

    import dbpulse
    from dbpulse import flow

    telemetry = dbpulse.configure()
    dbpulse.instrument(systems=("redis",))
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    while client.pubsub_numsub(channel)[0][1] < 1:  # wait for the consumer's subscription
        if time.monotonic() > deadline:
            raise SystemExit("no consumer subscribed")
        time.sleep(0.05)
    event = {"symbol": "AAPL", "pattern_name": "Doji", "confidence": 0.9}
    published_at = []
    for flow_id in flow_ids:
        published_at.append(time.time())
        flow.publish(client, channel, event, flow_id=flow_id)
        time.sleep(interval)
    telemetry.shutdown()
    return {"published": len(flow_ids), "published_at": published_at}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "flows":
        parser = argparse.ArgumentParser(description="publish one pattern flow per flow id")
        parser.add_argument("url", help="Redis URL")
        parser.add_argument("channel")
        parser.add_argument("flow_ids", nargs="+")
        parser.add_argument("--interval", type=float, default=0.0, help="seconds between flows")
        args = parser.parse_args(sys.argv[2:])
        report = _publish_flows(args.url, args.channel, args.flow_ids, args.interval)
        print(json.dumps(report), flush=True)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "duckdb":
        parser = argparse.ArgumentParser(description="the instrumented DuckDB workload")
        parser.add_argument("--database", type=Path, required=True)
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--rate", type=float, default=10.0)
        args = parser.parse_args(sys.argv[2:])
        print(json.dumps(_duckdb_workload(args.database, args.count, args.rate)), flush=True)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "db":
        parser = argparse.ArgumentParser(description="one instrumented database workload")
        parser.add_argument("--ops", type=int, required=True)
        parser.add_argument("--sqlite", type=Path, required=True)
        parser.add_argument("--postgres")
        args = parser.parse_args(sys.argv[2:])
        print(json.dumps(_database_workload(args.ops, args.sqlite, args.postgres)), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--otlp", required=True, help="collector OTLP/gRPC host:port")
    parser.add_argument("--service", required=True, help="service.name")
    parser.add_argument("--stop-file", required=True, help="stop when this file exists")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between writes")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="safety stop")
    return _loop(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
