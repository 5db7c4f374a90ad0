"""Generate dbpulse's Grafana dashboards (grafana-foundation-sdk) and alert rules.

    python grafana/generate.py            # write grafana/dashboards/*.json and the alert rules
    python grafana/generate.py --check    # exit 1 if a committed file differs from the code

Needs ``grafana-foundation-sdk==1769699379!11.6.0`` (Python >= 3.11) and PyYAML.

Outputs (committed, provisioned by docker-compose.yml):

* ``grafana/dashboards/dbpulse-database.json``, ``dbpulse-flows.json``, ``dbpulse-pipeline.json``
  (built with the SDK's builders, serialised with sorted keys and stable panel ids);
* ``grafana/provisioning/alerting/rules.yaml`` in Grafana's *file provisioning* format (not the
  SDK's alerting builders, which follow the HTTP API's shape). Every ``$`` of a query or
  annotation is written ``$$``, because Grafana expands environment variables in provisioning
  files.

The PromQL uses the names the collector's ``prometheus`` exporter produces (see README's
metric reference); ``tests/grafana/`` runs every query against the real Prometheus and Tempo.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    nodegraph,
    stat,
    statetimeline,
    table,
    tempo,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import tempo as tempo_models

GRAFANA = Path(__file__).resolve().parent
DASHBOARDS_DIR = GRAFANA / "dashboards"
RULES_FILE = GRAFANA / "provisioning" / "alerting" / "rules.yaml"

#: Datasource uids of grafana/provisioning/datasources/datasources.yaml.
PROMETHEUS_UID = "prometheus"
TEMPO_UID = "tempo"
PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
TEMPO = dm.DataSourceRef(type_val="tempo", uid=TEMPO_UID)

#: The pattern-flow latency target (docs/flows.md).
FLOW_TARGET_SECONDS = 0.1
LOCK_ERRORS = "SQLITE_BUSY|SQLITE_LOCKED|40P01|55P03"
#: Reads get a tighter latency budget than everything else (alert "DB p95 latency").
READ_OPERATIONS = "SELECT|GET|MGET|HGET|HGETALL|EXISTS"
READ_BUDGET_SECONDS = 0.1
OTHER_BUDGET_SECONDS = 0.5

DB = 'service_name=~"$service", db_system_name=~"$system", db_collection_name=~"$table"'
FLOW = 'service_name=~"$service", messaging_destination_name=~"$channel"'


# -- building blocks ------------------------------------------------------------------------


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


GREEN_ONLY = _thresholds((None, "green"))


def _q(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> prom.Dataquery:
    query = prom.Dataquery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    query = query.legend_format(legend or "__auto")
    return query.instant() if instant else query.range()


def _traceql(query: str, ref: str = "A", limit: int = 20) -> tempo.TempoQuery:
    return (
        tempo.TempoQuery()
        .ref_id(ref)
        .datasource(TEMPO)
        .query_type("traceql")
        .query(query)
        .limit(limit)
        .table_type(tempo_models.SearchTableType.TRACES)
    )


def _legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .display_mode(common_models.LegendDisplayMode.TABLE)
        .placement(common_models.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def _series(
    title: str,
    description: str,
    unit: str,
    targets: list[prom.Dataquery],
    thresholds: dash.ThresholdsConfig = GREEN_ONLY,
    *,
    threshold_line: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .thresholds(thresholds)
        .legend(_legend())
        .fill_opacity(10)
    )
    if threshold_line:
        panel = panel.thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_models.GraphThresholdsStyleMode.DASHED)
        )
    for target in targets:
        panel = panel.with_target(target)
    return panel


@dataclass
class Layout:
    """Places panels left to right in rows of 24 grid units; ids in insertion order."""

    panels: list[tuple[Builder[Any], int, int]] = field(default_factory=list)

    def add(self, panel: Builder[Any], width: int = 12, height: int = 8) -> None:
        self.panels.append((panel, width, height))

    def apply(self, board: dash.Dashboard) -> dash.Dashboard:
        x = y = row_height = 0
        for number, (panel, width, height) in enumerate(self.panels, start=1):
            if x + width > 24:
                x, y, row_height = 0, y + row_height, 0
            panel.id(number).grid_pos(dm.GridPos(h=height, w=width, x=x, y=y))  # type: ignore[attr-defined]
            board = board.with_panel(panel)
            x += width
            row_height = max(row_height, height)
        return board


def _variable(name: str, label: str, query: str, description: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .query(query)
        .datasource(PROMETHEUS)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def _board(uid: str, title: str, description: str, tags: list[str]) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["dbpulse", *tags])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )


# -- Database activity ----------------------------------------------------------------------


def _count(extra: str = "") -> str:
    return f"db_client_operation_duration_seconds_count{{{DB}{extra}}}"


def database_dashboard() -> dash.Dashboard:
    failed = _count(', error_type!=""')
    locked = _count(f', error_type=~"{LOCK_ERRORS}"')
    board = _board(
        "dbpulse-database",
        "dbpulse · Database activity",
        "SQLite, PostgreSQL and Redis operations of services instrumented by dbpulse: rate, "
        "errors, latency, writes by table and book, pools, sampling.",
        ["database"],
    )
    board = board.with_variable(
        _variable(
            "service",
            "Service",
            "label_values(db_client_operation_duration_seconds_count, service_name)",
            "service.name of the instrumented applications",
        )
    )
    board = board.with_variable(
        _variable(
            "system",
            "System",
            'label_values(db_client_operation_duration_seconds_count{service_name=~"$service"}, '
            "db_system_name)",
            "db.system.name: sqlite, postgresql, redis",
        )
    )
    board = board.with_variable(
        _variable(
            "table",
            "Table",
            "label_values(db_client_operation_duration_seconds_count"
            '{service_name=~"$service", db_system_name=~"$system"}, db_collection_name)',
            "db.collection.name (Redis commands have none; All includes them)",
        )
    )
    layout = Layout()
    layout.add(
        _series(
            "Operations/s by system, operation and table",
            "How busy is each database, and with what? Every call dbpulse observed (exact "
            "metrics, whatever the sampler kept), per second.",
            "ops",
            [
                _q(
                    "sum by (db_system_name, db_operation_name, db_collection_name) "
                    f"(rate({_count()}[$__rate_interval]))",
                    "{{db_system_name}} {{db_operation_name}} {{db_collection_name}}",
                )
            ],
        ),
        width=24,
    )
    error_ratio = (
        "(sum by (service_name, db_system_name) "
        f"(rate({failed}[$__rate_interval]))"
        " or sum by (service_name, db_system_name) "
        f"(rate({_count()}[$__rate_interval])) * 0)"
        " / sum by (service_name, db_system_name) "
        f"(rate({_count()}[$__rate_interval]))"
    )
    layout.add(
        _series(
            "Error rate",
            "Which share of operations fail? Failed calls (error.type set) over all calls, per "
            "service and system; 0 when nothing fails. Alerts fire above 10% (warning) and "
            "25% (critical).",
            "percentunit",
            [_q(error_ratio, "{{service_name}} {{db_system_name}}")],
            _thresholds((None, "green"), (0.1, "orange"), (0.25, "red")),
            threshold_line=True,
        )
    )
    layout.add(
        _series(
            "Errors/s by error.type",
            "What fails? SQLite error names (SQLITE_ERROR, SQLITE_BUSY), PostgreSQL SQLSTATEs "
            "(42P01, 23505, ...) and Redis exception classes.",
            "ops",
            [
                _q(
                    f"sum by (db_system_name, error_type) (rate({failed}[$__rate_interval]))",
                    "{{db_system_name}} {{error_type}}",
                )
            ],
        )
    )
    bucket = f"db_client_operation_duration_seconds_bucket{{{DB}}}"
    latency_targets = [
        _q(
            f"histogram_quantile({q}, sum by (le, db_operation_name, db_collection_name) "
            f"(rate({bucket}[$__rate_interval])))",
            f"p{int(q * 100)} {{{{db_operation_name}}}} {{{{db_collection_name}}}}",
            ref,
        ).exemplar(True)
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]
    layout.add(
        _series(
            "Latency p50 / p95 / p99 by operation and table",
            "How long do operations take? Quantiles of db.client.operation.duration. Exemplars "
            "(dots) open the trace of a sampled slow call in Tempo. Alert budget for p95: "
            f"{READ_BUDGET_SECONDS * 1000:.0f} ms for reads, "
            f"{OTHER_BUDGET_SECONDS * 1000:.0f} ms otherwise.",
            "s",
            latency_targets,
            _thresholds((None, "green"), (READ_BUDGET_SECONDS, "orange"), (1.0, "red")),
        ),
        width=24,
        height=9,
    )
    layout.add(
        _series(
            "Rows written/s by table",
            "Where do writes go? dbpulse.db.writes: rows the driver reports written (INSERT, "
            "UPDATE, DELETE, batches; Redis SET-family), by system, table and operation.",
            "rowsps",
            [
                _q(
                    "sum by (db_system_name, db_collection_name, db_operation_name) "
                    f"(rate(dbpulse_db_writes_total{{{DB}}}[$__rate_interval]))",
                    "{{db_system_name}} {{db_collection_name}} {{db_operation_name}}",
                )
            ],
        )
    )
    layout.add(
        bargauge.Panel()
        .title("Top 10 most-written ISBNs")
        .description(
            "Which books are written most in the selected time range? dbpulse.db.isbn.writes "
            "(ISBN-13, one per occurrence in a successful write), up to the cardinality limit."
        )
        .datasource(PROMETHEUS)
        .unit("short")
        .thresholds(GREEN_ONLY)
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .with_target(
            _q(
                "topk(10, sum by (book_isbn) (increase(dbpulse_db_isbn_writes_total"
                '{service_name=~"$service", db_collection_name=~"$table", book_isbn!=""}'
                "[$__range])))",
                "{{book_isbn}}",
                instant=True,
            )
        )
    )
    layout.add(
        _series(
            "Lock errors",
            "Is anything fighting over locks? Operations failing with SQLITE_BUSY/SQLITE_LOCKED "
            "or PostgreSQL 40P01 (deadlock) / 55P03 (lock not available), per interval. Empty "
            "while nothing contends.",
            "short",
            [
                _q(
                    "sum by (service_name, db_system_name, error_type) (increase("
                    f"{locked}[$__rate_interval]))",
                    "{{service_name}} {{db_system_name}} {{error_type}}",
                )
            ],
            _thresholds((None, "green"), (1, "red")),
        )
    )
    pool = 'service_name=~"$service"'
    layout.add(
        _series(
            "Pool connections: used / idle / pending",
            "Is the psycopg pool big enough? Connections by state, the pool's maximum and "
            "requests waiting for a connection (db.client.connection.*).",
            "short",
            [
                _q(
                    "sum by (db_client_connection_pool_name, db_client_connection_state) "
                    f"(db_client_connection_count{{{pool}}})",
                    "{{db_client_connection_pool_name}} {{db_client_connection_state}}",
                ),
                _q(
                    "sum by (db_client_connection_pool_name) "
                    f"(db_client_connection_pending_requests{{{pool}}})",
                    "{{db_client_connection_pool_name}} pending",
                    "B",
                ),
                _q(
                    f"sum by (db_client_connection_pool_name) (db_client_connection_max{{{pool}}})",
                    "{{db_client_connection_pool_name}} max",
                    "C",
                ),
            ],
        )
    )
    layout.add(
        _series(
            "Pool wait p95 and timeouts",
            "How long do requests wait for a pooled connection, and how many give up? p95 of "
            "db.client.connection.wait_time and timeouts per interval.",
            "s",
            [
                _q(
                    "histogram_quantile(0.95, sum by (le, db_client_connection_pool_name) "
                    f"(rate(db_client_connection_wait_time_seconds_bucket{{{pool}}}"
                    "[$__rate_interval])))",
                    "{{db_client_connection_pool_name}} wait p95",
                ),
                _q(
                    "sum by (db_client_connection_pool_name) (increase("
                    f"db_client_connection_timeouts_total{{{pool}}}[$__rate_interval]))",
                    "{{db_client_connection_pool_name}} timeouts",
                    "B",
                ),
            ],
        )
    )
    layout.add(
        statetimeline.Panel()
        .title("Sampling mode")
        .description(
            "Which spans does the adaptive sampler keep? detailed (< 100 ops/s, all), sampled "
            "(10%..1%), aggregated (>= 1000 ops/s, metrics only). Metrics stay exact in all."
        )
        .datasource(PROMETHEUS)
        .thresholds(GREEN_ONLY)
        .mappings(
            [
                dm.ValueMap(
                    options={
                        "0": dm.ValueMappingResult(text="detailed", color="green", index=0),
                        "1": dm.ValueMappingResult(text="sampled", color="yellow", index=1),
                        "2": dm.ValueMappingResult(text="aggregated", color="orange", index=2),
                    }
                )
            ]
        )
        .with_target(
            _q(
                "max by (service_name) ("
                f'dbpulse_sampler_mode{{{pool}, dbpulse_sampler_mode="sampled"}} * 1'
                f' or dbpulse_sampler_mode{{{pool}, dbpulse_sampler_mode="aggregated"}} * 2'
                f' or dbpulse_sampler_mode{{{pool}, dbpulse_sampler_mode="detailed"}} * 0)',
                "{{service_name}}",
            )
        )
    )
    layout.add(
        _series(
            "Operation rate seen by the sampler and keep probability",
            "Why is the sampler in this mode? Its ops/s of the last second "
            "(dbpulse.db.operation.rate) and the share of new root spans it keeps.",
            "short",
            [
                _q(
                    f"max by (service_name) (dbpulse_db_operation_rate_per_second{{{pool}}})",
                    "{{service_name}} ops/s",
                ),
                _q(
                    f"max by (service_name) (dbpulse_sampler_probability{{{pool}}})",
                    "{{service_name}} keep probability",
                    "B",
                ),
            ],
        )
    )
    layout.add(
        stat.Panel()
        .title("Redis cache hit ratio")
        .description(
            "Do GET-family commands find their keys? dbpulse.cache.requests hits over all."
        )
        .datasource(PROMETHEUS)
        .unit("percentunit")
        .thresholds(_thresholds((None, "red"), (0.5, "orange"), (0.8, "green")))
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .with_target(
            _q(
                "sum by (service_name) (rate(dbpulse_cache_requests_total"
                f'{{{pool}, dbpulse_cache_result="hit"}}[$__rate_interval]))'
                " / sum by (service_name) (rate(dbpulse_cache_requests_total"
                f"{{{pool}}}[$__rate_interval]))",
                "{{service_name}}",
            )
        )
    )
    return layout.apply(board)


# -- Pattern flows --------------------------------------------------------------------------


def _checkpoints(checkpoint: str, window: str) -> str:
    return (
        "sum by (messaging_destination_name) (increase(dbpulse_flow_checkpoints_total"
        f'{{{FLOW}, flow_checkpoint="{checkpoint}"}}[{window}]))'
    )


def flows_dashboard() -> dash.Dashboard:
    board = _board(
        "dbpulse-flows",
        "dbpulse · Pattern flows",
        "Producer → Redis pub/sub → consumer pattern flows: rate, end-to-end latency against "
        "the 100 ms target, checkpoints, stuck flows, liveness, recent traces.",
        ["flows"],
    )
    board = board.with_variable(
        _variable(
            "service",
            "Service",
            "label_values(dbpulse_flow_checkpoints_total, service_name)",
            "producer and consumer services",
        )
    )
    board = board.with_variable(
        _variable(
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
        _series(
            "Flows/s",
            "How many pattern events are published, per channel? PATTERN_PUBLISHED checkpoints "
            "per second.",
            "ops",
            [
                _q(
                    "sum by (messaging_destination_name) (rate(dbpulse_flow_checkpoints_total"
                    f'{{{FLOW}, flow_checkpoint="PATTERN_PUBLISHED"}}[$__rate_interval]))',
                    "{{messaging_destination_name}}",
                )
            ],
        )
    )
    flow_bucket = f"dbpulse_flow_latency_seconds_bucket{{{FLOW}}}"
    layout.add(
        _series(
            "End-to-end latency p50 / p95 / p99 (target 100 ms)",
            "How long from publish to WebSocket delivery? Quantiles of dbpulse.flow.latency "
            "per channel; the dashed line is the 100 ms target (alert: p95 above it).",
            "s",
            [
                _q(
                    f"histogram_quantile({q}, sum by (le, messaging_destination_name) "
                    f"(rate({flow_bucket}[$__rate_interval])))",
                    f"p{int(q * 100)} {{{{messaging_destination_name}}}}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ],
            _thresholds((None, "green"), (FLOW_TARGET_SECONDS, "red")),
            threshold_line=True,
        )
    )
    layout.add(
        bargauge.Panel()
        .title("Checkpoint funnel")
        .description(
            "Where do flows stop? Checkpoints reached in the time range: PATTERN_PUBLISHED → "
            "EVENT_RECEIVED → EVENT_PARSED → WEBSOCKET_DELIVERED. Equal bars: nothing lost."
        )
        .datasource(PROMETHEUS)
        .unit("short")
        .thresholds(GREEN_ONLY)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .with_target(
            _q(
                "sum by (flow_checkpoint) (increase(dbpulse_flow_checkpoints_total"
                f"{{{FLOW}}}[$__range]))",
                "{{flow_checkpoint}}",
                instant=True,
            )
        )
    )
    layout.add(
        _series(
            "Stuck flows (published - delivered, 5 min)",
            "Are flows getting lost? Published minus delivered over the last 5 minutes per "
            "channel. A few in flight are normal (metric export intervals); the alert fires "
            "above 10.",
            "short",
            [
                _q(
                    f"{_checkpoints('PATTERN_PUBLISHED', '5m')} - "
                    f"({_checkpoints('WEBSOCKET_DELIVERED', '5m')} or "
                    f"{_checkpoints('PATTERN_PUBLISHED', '5m')} * 0)",
                    "{{messaging_destination_name}}",
                )
            ],
            _thresholds((None, "green"), (10, "red")),
            threshold_line=True,
        )
    )
    layout.add(
        _series(
            "Flow errors and malformed messages",
            "What breaks? dbpulse.flow.errors (application code raised, by checkpoint and "
            "error.type) and dbpulse.flow.malformed (bad envelopes, by problem), per interval.",
            "short",
            [
                _q(
                    "sum by (flow_checkpoint, error_type) (increase("
                    f"dbpulse_flow_errors_total{{{FLOW}}}[$__rate_interval]))",
                    "error {{flow_checkpoint}} {{error_type}}",
                ),
                _q(
                    "sum by (error_type) (increase("
                    f"dbpulse_flow_malformed_total{{{FLOW}}}[$__rate_interval]))",
                    "malformed {{error_type}}",
                    "B",
                ),
            ],
            _thresholds((None, "green"), (1, "red")),
        )
    )
    hb = 'service_name=~"$service"'
    layout.add(
        _series(
            "Heartbeat age per component",
            "Is each producer/consumer alive? Seconds since its last heartbeat (interval "
            "DBPULSE_HEARTBEAT_INTERVAL, 60 s by default); the alert fires above 120 s.",
            "s",
            [
                _q(
                    "time() - max by (service_name, dbpulse_component) "
                    f"(dbpulse_heartbeat_timestamp_seconds{{{hb}}})",
                    "{{service_name}} {{dbpulse_component}}",
                )
            ],
            _thresholds((None, "green"), (90, "orange"), (120, "red")),
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
        .thresholds(_thresholds((None, "red"), (1, "green")))
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
            _q(
                "max by (service_name, messaging_destination_name) "
                f"(dbpulse_subscription_active{{{FLOW}}})",
                "{{service_name}} {{messaging_destination_name}}",
            )
        )
    )
    layout.add(
        _series(
            "Heartbeat events/s",
            "What does each side report doing? Events counted between heartbeats "
            "(published/received/processed/forwarded) and Redis connection errors.",
            "ops",
            [
                _q(
                    "sum by (service_name, dbpulse_event) (rate("
                    f"dbpulse_heartbeat_events_total{{{hb}}}[$__rate_interval]))",
                    "{{service_name}} {{dbpulse_event}}",
                ),
                _q(
                    "sum by (service_name) (rate("
                    f"dbpulse_heartbeat_connection_errors_total{{{hb}}}[$__rate_interval]))",
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
            _traceql(
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
        .with_target(_traceql('{ span.flow.id = "$flow_id" }'))
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


# -- Telemetry pipeline ---------------------------------------------------------------------


def pipeline_dashboard() -> dash.Dashboard:
    board = _board(
        "dbpulse-pipeline",
        "dbpulse · Telemetry pipeline",
        "Is telemetry getting through? The collector's accepted, refused and failed spans and "
        "metric points, its export queue, and what dbpulse itself dropped.",
        ["pipeline"],
    )
    board = board.with_variable(
        _variable(
            "service",
            "Service",
            "label_values(dbpulse_sampler_mode, service_name)",
            "service.name of the instrumented applications (dbpulse's own counters)",
        )
    )
    layout = Layout()
    for signal, unit_name in (("spans", "spans"), ("metric_points", "metric points")):
        layout.add(
            _series(
                f"Collector: {unit_name} accepted / refused / failed",
                f"Does the collector take the {unit_name} it is sent? Accepted by the OTLP "
                "receiver, refused (memory limiter: the SDK retries) and failed, per second.",
                "short",
                [
                    _q(
                        "sum by (receiver, transport) "
                        f"(rate(otelcol_receiver_accepted_{signal}[$__rate_interval]))",
                        "accepted {{receiver}} {{transport}}",
                    ),
                    _q(
                        "sum by (receiver, transport) "
                        f"(rate(otelcol_receiver_refused_{signal}[$__rate_interval]))",
                        "refused {{receiver}} {{transport}}",
                        "B",
                    ),
                    _q(
                        "sum by (receiver, transport) "
                        f"(rate(otelcol_receiver_failed_{signal}[$__rate_interval]))",
                        "failed {{receiver}} {{transport}}",
                        "C",
                    ),
                ],
            )
        )
    layout.add(
        _series(
            "Collector: sent / failed by exporter",
            "Do the backends take what the collector sends? Spans to Tempo and metric points "
            "to the Prometheus exporter, and failed sends (0 while none failed).",
            "short",
            [
                _q(
                    "sum by (exporter) (rate(otelcol_exporter_sent_spans[$__rate_interval]))",
                    "sent spans {{exporter}}",
                ),
                _q(
                    "sum by (exporter) "
                    "(rate(otelcol_exporter_sent_metric_points[$__rate_interval]))",
                    "sent metric points {{exporter}}",
                    "B",
                ),
                _q(
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
        _series(
            "Collector: export queue",
            "Is a backend falling behind? Batches waiting in each exporter's sending queue "
            "(persistent for Tempo) against its capacity; the backlog alert fires above 5.",
            "short",
            [
                _q("max by (exporter) (otelcol_exporter_queue_size)", "size {{exporter}}"),
                _q(
                    "max by (exporter) (otelcol_exporter_queue_capacity)",
                    "capacity {{exporter}}",
                    "B",
                ),
            ],
            _thresholds((None, "green"), (5, "red")),
        )
    )
    layout.add(
        _series(
            "dbpulse: telemetry dropped in the application",
            "What did dbpulse drop to protect the application? dbpulse.telemetry.dropped by "
            "component: span_queue (SDK export queue full), viz_feed, isbn_cardinality, "
            "flow, extractor_error. Empty while nothing is dropped.",
            "short",
            [
                _q(
                    "sum by (service_name, dbpulse_component) (increase("
                    'dbpulse_telemetry_dropped_total{service_name=~"$service"}'
                    "[$__rate_interval]))",
                    "{{service_name}} {{dbpulse_component}}",
                )
            ],
            _thresholds((None, "green"), (1, "red")),
        )
    )
    layout.add(
        _series(
            "Spans/s reaching span metrics, by service",
            "Which services send traces? Spans per second counted by the collector's "
            "span_metrics connector (before any sampling in the collector).",
            "ops",
            [
                _q(
                    "sum by (service_name) (rate(traces_span_metrics_calls_total"
                    '{service_name=~"$service"}[$__rate_interval]))',
                    "{{service_name}}",
                )
            ],
        )
    )
    layout.add(
        _series(
            "Collector memory",
            "Is the collector near its memory_limiter limit (400 MiB by default)? Resident "
            "memory and Go heap.",
            "bytes",
            [
                _q("max(otelcol_process_memory_rss)", "rss"),
                _q("max(otelcol_process_runtime_heap_alloc_bytes)", "heap", "B"),
            ],
            _thresholds((None, "green"), (350 * 2**20, "red")),
        )
    )
    return layout.apply(board)


DASHBOARDS = {
    "dbpulse-database.json": database_dashboard,
    "dbpulse-flows.json": flows_dashboard,
    "dbpulse-pipeline.json": pipeline_dashboard,
}


def render_dashboard(builder: dash.Dashboard) -> str:
    """Stable JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(builder.build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


# -- alert rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRule:
    """One Grafana-managed rule: a PromQL query (A), reduce last (B), threshold (C)."""

    uid: str
    title: str
    expr: str
    evaluator: str  # gt, lt
    threshold: float
    severity: str
    for_: str
    no_data: str
    exec_err: str
    summary: str
    description: str
    runbook: str
    hint: str
    window_seconds: int = 600


DB_COUNT = "db_client_operation_duration_seconds_count"
DB_BUCKET = "db_client_operation_duration_seconds_bucket"
_ERROR_RATIO = (
    f'(sum by (service_name, db_system_name) (rate({DB_COUNT}{{error_type!=""}}[5m]))'
    f" or sum by (service_name, db_system_name) (rate({DB_COUNT}[5m])) * 0)"
    f" / sum by (service_name, db_system_name) (rate({DB_COUNT}[5m]))"
)
_LATENCY_BY_OP = "sum by (service_name, db_system_name, db_operation_name, le)"
_PUBLISHED = (
    "sum by (messaging_destination_name) (increase(dbpulse_flow_checkpoints_total"
    '{flow_checkpoint="PATTERN_PUBLISHED"}[5m]))'
)
_DELIVERED = (
    "sum by (messaging_destination_name) (increase(dbpulse_flow_checkpoints_total"
    '{flow_checkpoint="WEBSOCKET_DELIVERED"}[5m]))'
)

ALERT_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        uid="dbpulse-heartbeat-missing",
        title="Heartbeat missing",
        expr=(
            "time() - max by (service_name, dbpulse_component) "
            "(max_over_time(dbpulse_heartbeat_timestamp_seconds[1d]))"
        ),
        evaluator="gt",
        threshold=120,
        severity="critical",
        for_="0s",
        # No component beat in the last day: nothing to watch (a fresh stack), not an outage.
        no_data="OK",
        exec_err="Error",
        summary="{{ $labels.service_name }} {{ $labels.dbpulse_component }}: no heartbeat for "
        "{{ humanizeDuration $values.B.Value }}",
        description="The {{ $labels.dbpulse_component }} of {{ $labels.service_name }} has not "
        "reported a heartbeat for more than 2 minutes (interval 60 s): the process is down, "
        "hung, or cannot reach the collector.",
        runbook="heartbeat-missing",
        hint="is the process running? its log; can it reach the collector (OTLP)?",
        window_seconds=86400,
    ),
    AlertRule(
        uid="dbpulse-db-error-rate-warning",
        title="Database error rate above 10%",
        expr=_ERROR_RATIO,
        evaluator="gt",
        threshold=0.10,
        severity="warning",
        for_="5m",
        no_data="OK",
        exec_err="Error",
        summary="{{ $labels.service_name }}: {{ humanizePercentage $values.B.Value }} of "
        "{{ $labels.db_system_name }} operations fail",
        description="More than 10% of {{ $labels.db_system_name }} operations of "
        "{{ $labels.service_name }} failed over the last 5 minutes.",
        runbook="database-error-rate",
        hint=(
            "Errors/s by error.type on the Database dashboard names the failure; open an "
            "exemplar trace."
        ),
    ),
    AlertRule(
        uid="dbpulse-db-error-rate-critical",
        title="Database error rate above 25%",
        expr=_ERROR_RATIO,
        evaluator="gt",
        threshold=0.25,
        severity="critical",
        for_="2m",
        no_data="OK",
        exec_err="Error",
        summary="{{ $labels.service_name }}: {{ humanizePercentage $values.B.Value }} of "
        "{{ $labels.db_system_name }} operations fail",
        description="More than a quarter of {{ $labels.db_system_name }} operations of "
        "{{ $labels.service_name }} failed over the last 5 minutes.",
        runbook="database-error-rate",
        hint=(
            "Errors/s by error.type on the Database dashboard names the failure; open an "
            "exemplar trace."
        ),
    ),
    AlertRule(
        uid="dbpulse-db-latency-p95",
        title="Database p95 latency over budget",
        expr=(
            f"histogram_quantile(0.95, {_LATENCY_BY_OP} (rate({DB_BUCKET}"
            f'{{db_operation_name=~"{READ_OPERATIONS}"}}[5m]))) / {READ_BUDGET_SECONDS}'
            f" or histogram_quantile(0.95, {_LATENCY_BY_OP} (rate({DB_BUCKET}"
            f'{{db_operation_name!~"{READ_OPERATIONS}"}}[5m]))) / {OTHER_BUDGET_SECONDS}'
        ),
        evaluator="gt",
        threshold=1.0,
        severity="warning",
        for_="5m",
        no_data="OK",
        exec_err="Error",
        summary="{{ $labels.service_name }}: p95 of {{ $labels.db_system_name }} "
        '{{ $labels.db_operation_name }} is {{ printf "%.1f" $values.B.Value }}x its budget',
        description="The 95th percentile latency of {{ $labels.db_operation_name }} on "
        "{{ $labels.db_system_name }} ({{ $labels.service_name }}) exceeded its budget over "
        f"5 minutes: {READ_BUDGET_SECONDS * 1000:.0f} ms for reads ({READ_OPERATIONS}), "
        f"{OTHER_BUDGET_SECONDS * 1000:.0f} ms for everything else. The value is p95 / budget.",
        runbook="database-latency",
        hint=(
            "find the slow operation and table on the latency panel, open an exemplar trace, "
            "check locks and pool wait."
        ),
    ),
    AlertRule(
        uid="dbpulse-flow-latency-p95",
        title="Flow p95 latency above 100 ms",
        expr=(
            "histogram_quantile(0.95, sum by (service_name, messaging_destination_name, le) "
            "(rate(dbpulse_flow_latency_seconds_bucket[5m])))"
        ),
        evaluator="gt",
        threshold=FLOW_TARGET_SECONDS,
        severity="warning",
        for_="5m",
        no_data="OK",
        exec_err="Error",
        summary="{{ $labels.messaging_destination_name }}: flow p95 "
        "{{ humanizeDuration $values.B.Value }} (target 100 ms)",
        description="Pattern events on {{ $labels.messaging_destination_name }} take longer "
        "than 100 ms from publish to WebSocket delivery (p95 over 5 minutes, consumer "
        "{{ $labels.service_name }}).",
        runbook="flow-latency",
        hint=(
            "is the consumer slow (deliver spans) or behind (heartbeat events)? Open a slow "
            "flow in Tempo."
        ),
    ),
    AlertRule(
        uid="dbpulse-flows-stuck",
        title="Flows stuck (published, not delivered)",
        expr=f"{_PUBLISHED} - ({_DELIVERED} or {_PUBLISHED} * 0)",
        evaluator="gt",
        threshold=10,
        severity="critical",
        for_="5m",
        no_data="OK",
        exec_err="Error",
        summary="{{ $labels.messaging_destination_name }}: {{ $values.B.Value }} flows "
        "published but not delivered in 5 minutes",
        description="More than 10 pattern events published on "
        "{{ $labels.messaging_destination_name }} in the last 5 minutes were not delivered to "
        "WebSocket users: no consumer, a consumer that drops or fails them, or one far behind.",
        runbook="flows-stuck",
        hint=(
            "the checkpoint funnel shows where flows stop; is a consumer subscribed "
            "(subscription panel)?"
        ),
    ),
    AlertRule(
        uid="dbpulse-db-no-writes",
        title="No database writes for 1 hour",
        expr=(
            "sum by (service_name) (increase(dbpulse_db_writes_total[1h]))"
            " or sum by (service_name) (count_over_time(dbpulse_db_writes_total[1d])) * 0"
        ),
        evaluator="lt",
        threshold=1,
        severity="warning",
        for_="0s",
        # No service wrote in the last day: there is nothing expected to write.
        no_data="OK",
        exec_err="Error",
        summary="{{ $labels.service_name }} wrote no rows for an hour",
        description="{{ $labels.service_name }} wrote rows in the last day but none in the "
        "last hour (dbpulse.db.writes). Expected writes stopped: the writer is down, stuck, "
        "or its input dried up.",
        runbook="no-writes",
        hint=(
            "is the writer running (heartbeat, sampler mode series)? Did its input stop? "
            "Errors on the same service?"
        ),
        window_seconds=86400,
    ),
    AlertRule(
        uid="dbpulse-telemetry-dropped",
        title="dbpulse dropping telemetry",
        expr=(
            "sum by (service_name) (increase(dbpulse_telemetry_dropped_total[10m]))"
            " or sum by (service_name) (dbpulse_sampler_mode) * 0"
        ),
        evaluator="gt",
        threshold=0,
        severity="warning",
        for_="0s",
        no_data="OK",
        exec_err="Error",
        summary="{{ $labels.service_name }} dropped {{ $values.B.Value }} telemetry items "
        "in 10 minutes",
        description="dbpulse in {{ $labels.service_name }} dropped telemetry to protect the "
        "application (dbpulse.telemetry.dropped: span queue, viz feed, ISBN cardinality, "
        "flow, extractor). Dashboards and traces are incomplete for that time.",
        runbook="telemetry-dropped",
        hint=(
            "the Telemetry pipeline dashboard names the component; raise that queue or fix "
            "its receiver."
        ),
    ),
    AlertRule(
        uid="dbpulse-collector-export-backlog",
        title="Collector export backlog",
        expr="max by (exporter) (otelcol_exporter_queue_size)",
        evaluator="gt",
        threshold=5,
        severity="warning",
        for_="5m",
        # The collector's own metrics are missing: the collector or its scrape is down.
        no_data="Alerting",
        exec_err="Error",
        summary="{{ $labels.exporter }}: {{ $values.B.Value }} batches waiting",
        description="The collector cannot deliver to {{ $labels.exporter }} as fast as data "
        "arrives: its sending queue holds more than 5 batches. For Tempo the queue is "
        "persistent (nothing is lost until it is full: 10000 batches), but traces are late.",
        runbook="collector-backlog",
        hint="is the backend (Tempo) up and reachable from the collector? Check the collector log.",
    ),
)


def _escape(value: Any) -> Any:
    """Grafana expands $VAR in provisioning files: a literal $ is written $$."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value


def provisioning_rule(rule: AlertRule) -> dict[str, Any]:
    """``rule`` in Grafana's alert-rule file-provisioning shape (unescaped)."""
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": rule.window_seconds, "to": 0},
                "datasourceUid": PROMETHEUS_UID,
                "model": {
                    "refId": "A",
                    "expr": rule.expr,
                    "instant": True,
                    "range": False,
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                    "legendFormat": "__auto",
                    "datasource": {"type": "prometheus", "uid": PROMETHEUS_UID},
                },
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                    # NaN (e.g. a quantile of no traffic) is no value, not a firing value.
                    "settings": {"mode": "dropNN"},
                    "datasource": {"type": "__expr__", "uid": "__expr__"},
                },
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [
                        {"evaluator": {"type": rule.evaluator, "params": [rule.threshold]}}
                    ],
                    "datasource": {"type": "__expr__", "uid": "__expr__"},
                },
            },
        ],
        "noDataState": rule.no_data,
        "execErrState": rule.exec_err,
        "for": rule.for_,
        "labels": {"severity": rule.severity, "team": "dbpulse"},
        "annotations": {
            "summary": rule.summary,
            "description": rule.description,
            "runbook": f"docs/grafana.md#{rule.runbook}: {rule.hint}",
        },
        "isPaused": False,
    }


ALERT_GROUPS = (
    ("dbpulse-database", ("db-", "telemetry-")),
    ("dbpulse-flows", ("heartbeat-", "flow")),
    ("dbpulse-pipeline", ("collector-",)),
)


def render_rules() -> str:
    groups = []
    for name, prefixes in ALERT_GROUPS:
        rules = [
            provisioning_rule(r)
            for r in ALERT_RULES
            if r.uid.removeprefix("dbpulse-").startswith(prefixes)
        ]
        groups.append(
            {"orgId": 1, "name": name, "folder": "dbpulse", "interval": "1m", "rules": rules}
        )
    document = {"apiVersion": 1, "groups": _escape(groups)}
    header = (
        "# Generated by grafana/generate.py from its ALERT_RULES; edit that file and run it.\n"
        "# Grafana alert-rule file provisioning; `$$` is a literal `$` (Grafana expands env\n"
        "# vars here). Runbooks: docs/grafana.md. Proven by tests/grafana/test_proof.py.\n"
    )
    body = yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
    return header + body


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {DASHBOARDS_DIR / name: render_dashboard(build()) for name, build in DASHBOARDS.items()}
    files[RULES_FILE] = render_rules()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, content in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == content:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    for path in stale:
        verb = "out of date" if args.check else "written"
        print(f"{path.relative_to(GRAFANA.parent)}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
