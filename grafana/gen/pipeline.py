"""The *Telemetry pipeline* dashboard (``dbpulse-pipeline.json``): the collector's accepted,
refused and failed spans and metric points, its export queue, and what dbpulse dropped."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash

from .common import promql, thresholds
from .panels import Layout, new_dashboard, series, variable

__all__ = ["pipeline_dashboard"]


def pipeline_dashboard() -> dash.Dashboard:
    board = new_dashboard(
        "dbpulse-pipeline",
        "dbpulse · Telemetry pipeline",
        "Is telemetry getting through? The collector's accepted, refused and failed spans and "
        "metric points, its export queue, and what dbpulse itself dropped.",
        ["pipeline"],
    )
    board = board.with_variable(
        variable(
            "service",
            "Service",
            "label_values(dbpulse_sampler_mode, service_name)",
            "service.name of the instrumented applications (dbpulse's own counters)",
        )
    )
    layout = Layout()
    for signal, unit_name in (("spans", "spans"), ("metric_points", "metric points")):
        layout.add(
            series(
                f"Collector: {unit_name} accepted / refused / failed",
                f"Does the collector take the {unit_name} it is sent? Accepted by the OTLP "
                "receiver, refused (memory limiter: the SDK retries) and failed, per second.",
                "short",
                [
                    promql(
                        "sum by (receiver, transport) "
                        f"(rate(otelcol_receiver_accepted_{signal}[$__rate_interval]))",
                        "accepted {{receiver}} {{transport}}",
                    ),
                    promql(
                        "sum by (receiver, transport) "
                        f"(rate(otelcol_receiver_refused_{signal}[$__rate_interval]))",
                        "refused {{receiver}} {{transport}}",
                        "B",
                    ),
                    promql(
                        "sum by (receiver, transport) "
                        f"(rate(otelcol_receiver_failed_{signal}[$__rate_interval]))",
                        "failed {{receiver}} {{transport}}",
                        "C",
                    ),
                ],
            )
        )
    layout.add(
        series(
            "Collector: sent / failed by exporter",
            "Do the backends take what the collector sends? Spans to Tempo and metric points "
            "to the Prometheus exporter, and failed sends (0 while none failed).",
            "short",
            [
                promql(
                    "sum by (exporter) (rate(otelcol_exporter_sent_spans[$__rate_interval]))",
                    "sent spans {{exporter}}",
                ),
                promql(
                    "sum by (exporter) "
                    "(rate(otelcol_exporter_sent_metric_points[$__rate_interval]))",
                    "sent metric points {{exporter}}",
                    "B",
                ),
                promql(
                    "sum by (exporter) (rate(otelcol_exporter_send_failed_spans"
                    "[$__rate_interval])) or sum by (exporter) "
                    "(rate(otelcol_exporter_sent_spans[$__rate_interval])) * 0",
                    "failed spans {{exporter}}",
                    "C",
                ),
            ],
        )
    )
    layout.add(
        series(
            "Collector: export queue",
            "Is a backend falling behind? Batches waiting in each exporter's sending queue "
            "(persistent for Tempo) against its capacity; the backlog alert fires above 5.",
            "short",
            [
                promql("max by (exporter) (otelcol_exporter_queue_size)", "size {{exporter}}"),
                promql(
                    "max by (exporter) (otelcol_exporter_queue_capacity)",
                    "capacity {{exporter}}",
                    "B",
                ),
            ],
            thresholds((None, "green"), (5, "red")),
        )
    )
    layout.add(
        series(
            "dbpulse: telemetry dropped in the application",
            "What did dbpulse drop to protect the application? dbpulse.telemetry.dropped by "
            "component: span_queue (SDK export queue full), viz_feed, isbn_cardinality, "
            "flow, extractor_error. Empty while nothing is dropped.",
            "short",
            [
                promql(
                    "sum by (service_name, dbpulse_component) (increase("
                    'dbpulse_telemetry_dropped_total{service_name=~"$service"}'
                    "[$__rate_interval]))",
                    "{{service_name}} {{dbpulse_component}}",
                )
            ],
            thresholds((None, "green"), (1, "red")),
        )
    )
    layout.add(
        series(
            "Spans/s reaching span metrics, by service",
            "Which services send traces? Spans per second counted by the collector's "
            "span_metrics connector (before any sampling in the collector).",
            "ops",
            [
                promql(
                    "sum by (service_name) (rate(traces_span_metrics_calls_total"
                    '{service_name=~"$service"}[$__rate_interval]))',
                    "{{service_name}}",
                )
            ],
        )
    )
    layout.add(
        series(
            "Collector memory",
            "Is the collector near its memory_limiter limit (400 MiB by default)? Resident "
            "memory and Go heap.",
            "bytes",
            [
                promql("max(otelcol_process_memory_rss)", "rss"),
                promql("max(otelcol_process_runtime_heap_alloc_bytes)", "heap", "B"),
            ],
            thresholds((None, "green"), (350 * 2**20, "red")),
        )
    )
    return layout.apply(board)
