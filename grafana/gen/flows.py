"""The *Pattern flows* dashboard (``dbpulse-flows.json``): rate, end-to-end latency against
the 100 ms target, checkpoints, stuck flows, liveness, recent traces."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import nodegraph, statetimeline, table, tempo
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dm

from .common import FLOW_TARGET_SECONDS, PROMETHEUS, SERVICE, TEMPO, promql, thresholds, traceql
from .panels import Layout, bars, new_dashboard, series, variable

__all__ = ["flows_dashboard"]


#: The dashboard variables as label matchers.
FLOW = 'service_name=~"$service", messaging_destination_name=~"$channel"'


def _checkpoints(checkpoint: str, window: str) -> str:
    return (
        "sum by (messaging_destination_name) (increase(dbpulse_flow_checkpoints_total"
        f'{{{FLOW}, flow_checkpoint="{checkpoint}"}}[{window}]))'
    )


def flows_dashboard() -> dash.Dashboard:
    board = new_dashboard(
        "dbpulse-flows",
        "dbpulse · Pattern flows",
        "Producer → Redis pub/sub → consumer pattern flows: rate, end-to-end latency against "
        "the 100 ms target, checkpoints, stuck flows, liveness, recent traces.",
        ["flows"],
    )
    board = board.with_variable(
        variable(
            "service",
            "Service",
            "label_values(dbpulse_flow_checkpoints_total, service_name)",
            "producer and consumer services",
        )
    )
    board = board.with_variable(
        variable(
            "channel",
            "Channel",
            'label_values(dbpulse_flow_checkpoints_total{service_name=~"$service"}, '
            "messaging_destination_name)",
            "messaging.destination.name (Redis channel)",
        )
    )
    board = board.with_variable(
        dash.TextBoxVariable("flow_id")
        .label("Flow id")
        .description("Paste a flow id (UUID) to open its trace in the 'Flow by id' panel")
        .default_value("")
    )
    layout = Layout()
    layout.add(
        series(
            "Flows/s",
            "How many pattern events are published, per channel? PATTERN_PUBLISHED checkpoints "
            "per second.",
            "ops",
            [
                promql(
                    "sum by (messaging_destination_name) (rate(dbpulse_flow_checkpoints_total"
                    f'{{{FLOW}, flow_checkpoint="PATTERN_PUBLISHED"}}[$__rate_interval]))',
                    "{{messaging_destination_name}}",
                )
            ],
        )
    )
    flow_bucket = f"dbpulse_flow_latency_seconds_bucket{{{FLOW}}}"
    layout.add(
        series(
            "End-to-end latency p50 / p95 / p99 (target 100 ms)",
            "How long from publish to WebSocket delivery? Quantiles of dbpulse.flow.latency "
            "per channel; the dashed line is the 100 ms target (alert: p95 above it).",
            "s",
            [
                promql(
                    f"histogram_quantile({q}, sum by (le, messaging_destination_name) "
                    f"(rate({flow_bucket}[$__rate_interval])))",
                    f"p{int(q * 100)} {{{{messaging_destination_name}}}}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ],
            thresholds((None, "green"), (FLOW_TARGET_SECONDS, "red")),
            threshold_line=True,
        )
    )
    layout.add(
        bars(
            "Checkpoint funnel",
            "Where do flows stop? Checkpoints reached in the time range: PATTERN_PUBLISHED → "
            "EVENT_RECEIVED → EVENT_PARSED → WEBSOCKET_DELIVERED. Equal bars: nothing lost.",
            common_models.BarGaugeDisplayMode.BASIC,
            promql(
                "sum by (flow_checkpoint) (increase(dbpulse_flow_checkpoints_total"
                f"{{{FLOW}}}[$__range]))",
                "{{flow_checkpoint}}",
                instant=True,
            ),
        )
    )
    layout.add(
        series(
            "Stuck flows (published - delivered, 5 min)",
            "Are flows getting lost? Published minus delivered over the last 5 minutes per "
            "channel. A few in flight are normal (metric export intervals); the alert fires "
            "above 10.",
            "short",
            [
                promql(
                    f"{_checkpoints('PATTERN_PUBLISHED', '5m')} - "
                    f"({_checkpoints('WEBSOCKET_DELIVERED', '5m')} or "
                    f"{_checkpoints('PATTERN_PUBLISHED', '5m')} * 0)",
                    "{{messaging_destination_name}}",
                )
            ],
            thresholds((None, "green"), (10, "red")),
            threshold_line=True,
        )
    )
    layout.add(
        series(
            "Flow errors and malformed messages",
            "What breaks? dbpulse.flow.errors (application code raised, by checkpoint and "
            "error.type) and dbpulse.flow.malformed (bad envelopes, by problem), per interval.",
            "short",
            [
                promql(
                    "sum by (flow_checkpoint, error_type) (increase("
                    f"dbpulse_flow_errors_total{{{FLOW}}}[$__rate_interval]))",
                    "error {{flow_checkpoint}} {{error_type}}",
                ),
                promql(
                    "sum by (error_type) (increase("
                    f"dbpulse_flow_malformed_total{{{FLOW}}}[$__rate_interval]))",
                    "malformed {{error_type}}",
                    "B",
                ),
            ],
            thresholds((None, "green"), (1, "red")),
        )
    )
    layout.add(
        series(
            "Heartbeat age per component",
            "Is each producer/consumer alive? Seconds since its last heartbeat (interval "
            "DBPULSE_HEARTBEAT_INTERVAL, 60 s by default); the alert fires above 120 s.",
            "s",
            [
                promql(
                    "time() - max by (service_name, dbpulse_component) "
                    f"(dbpulse_heartbeat_timestamp_seconds{{{SERVICE}}})",
                    "{{service_name}} {{dbpulse_component}}",
                )
            ],
            thresholds((None, "green"), (90, "orange"), (120, "red")),
            threshold_line=True,
        )
    )
    layout.add(
        statetimeline.Panel()
        .title("Subscription state per channel")
        .description(
            "Is each consumer subscribed? 1 once Redis confirmed the subscription, 0 after "
            "unsubscribe, a connection error or close (dbpulse.subscription.active)."
        )
        .datasource(PROMETHEUS)
        .thresholds(thresholds((None, "red"), (1, "green")))
        .mappings(
            [
                dm.ValueMap(
                    options={
                        "0": dm.ValueMappingResult(text="inactive", color="red", index=0),
                        "1": dm.ValueMappingResult(text="active", color="green", index=1),
                    }
                )
            ]
        )
        .with_target(
            promql(
                "max by (service_name, messaging_destination_name) "
                f"(dbpulse_subscription_active{{{FLOW}}})",
                "{{service_name}} {{messaging_destination_name}}",
            )
        )
    )
    layout.add(
        series(
            "Heartbeat events/s",
            "What does each side report doing? Events counted between heartbeats "
            "(published/received/processed/forwarded) and Redis connection errors.",
            "ops",
            [
                promql(
                    "sum by (service_name, dbpulse_event) (rate("
                    f"dbpulse_heartbeat_events_total{{{SERVICE}}}[$__rate_interval]))",
                    "{{service_name}} {{dbpulse_event}}",
                ),
                promql(
                    "sum by (service_name) (rate("
                    f"dbpulse_heartbeat_connection_errors_total{{{SERVICE}}}[$__rate_interval]))",
                    "{{service_name}} connection errors",
                    "B",
                ),
            ],
        )
    )
    layout.add(
        table.Panel()
        .title("Recent flows (Tempo)")
        .description(
            "The latest flows as traces: each row is one flow, trace id = flow id. Click a "
            "trace id to see its four checkpoints across producer and consumer."
        )
        .datasource(TEMPO)
        .with_target(
            traceql(
                '{ span.flow.checkpoint = "PATTERN_PUBLISHED" && '
                'resource.service.name =~ "$service" && '
                'span.messaging.destination.name =~ "$channel" }'
            )
        ),
        width=24,
        height=9,
    )
    layout.add(
        table.Panel()
        .title("Flow by id")
        .description(
            "Paste a flow id into the 'Flow id' variable: every span of that flow "
            "(TraceQL { span.flow.id = ... }). The trace id is the flow id without dashes."
        )
        .datasource(TEMPO)
        .with_target(traceql('{ span.flow.id = "$flow_id" }'))
    )
    layout.add(
        nodegraph.Panel()
        .title("Service graph")
        .description(
            "Who talks to whom? Producer → consumer edges (PRODUCER/CONSUMER spans) and "
            "services → databases, from the collector's service_graph connector "
            "(traces_service_graph_* in Prometheus) through Tempo's service map."
        )
        .datasource(TEMPO)
        .with_target(tempo.TempoQuery().ref_id("A").datasource(TEMPO).query_type("serviceMap"))
    )
    return layout.apply(board)
