"""One demo command (``dbpulse demo producer|consumer``) in its own process, telemetry in memory.

Usage: ``python -m tests.flow._child OUT.json producer|consumer [options]``. The process builds
the SDK the way dbpulse's configurator does (``FlowIdGenerator``, ``ParentBased``; ALWAYS_ON
here) with an in-memory span exporter and metric reader, runs the Typer command, and at exit,
also after a crash, writes what it exported to ``OUT.json`` for the test to read.
"""

from __future__ import annotations

import atexit
import json
import sys
from typing import Any

import typer
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from dbpulse.cli.flows import consumer, producer
from dbpulse.telemetry.ids import FlowIdGenerator


def _span(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "attributes": dict(span.attributes or {}),
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
        "status": span.status.status_code.name,
        "service": span.resource.attributes.get("service.name"),
    }


def _metrics(reader: InMemoryMetricReader) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    row: dict[str, Any] = {"attributes": dict(point.attributes or {})}
                    if hasattr(point, "count"):
                        row.update(count=point.count, sum=point.sum)
                    else:
                        row["value"] = point.value
                    found.setdefault(metric.name, []).append(row)
    return found


def main() -> None:
    out, command = sys.argv[1], sys.argv[2]
    resource = Resource.create({"service.name": f"flow-test-{command}"})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(
        resource=resource, id_generator=FlowIdGenerator(), sampler=ParentBased(ALWAYS_ON)
    )
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))

    def dump() -> None:
        with open(out, "w") as f:
            json.dump(
                {
                    "spans": [_span(s) for s in spans.get_finished_spans()],
                    "metrics": _metrics(reader),
                },
                f,
            )

    atexit.register(dump)
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("producer")(producer)
    app.command("consumer")(consumer)
    app(sys.argv[2:], prog_name="dbpulse demo")


if __name__ == "__main__":
    main()
