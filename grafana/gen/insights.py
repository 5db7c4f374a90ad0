"""The *Query insights* dashboard (``dbpulse-insights.json``): top statements by total time and
the N+1 patterns, from ``dbpulse.db.statement.duration`` and ``dbpulse.db.n_plus_one``."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as prom_models

from .common import GREEN_ONLY, PROMETHEUS, SERVICE, promql
from .panels import Layout, bars, new_dashboard, series, variable

__all__ = ["insights_dashboard"]

#: The exported statement series: the top N shapes by total time of each export interval, and
#: the rest under ``otel_metric_overflow="true"`` (no fingerprint, no summary).
STATEMENT = "dbpulse_db_statement_duration_seconds"
BY = "db_system_name, db_query_fingerprint, db_query_summary"


def _table_query(expr: str, ref: str) -> object:
    return promql(expr, ref=ref, instant=True).format(prom_models.PromQueryFormat.TABLE)


def _top_statements() -> table.Panel:
    selector = f'{{{SERVICE}, db_query_fingerprint!=""}}'
    total = f"sum by ({BY}) (increase({STATEMENT}_sum{selector}[$__range]))"
    share = f"{total} / scalar(sum(increase({STATEMENT}_sum{{{SERVICE}}}[$__range])))"
    calls = f"sum by ({BY}) (rate({STATEMENT}_count{selector}[$__range]))"
    p95 = (
        f"histogram_quantile(0.95, sum by (le, {BY}) "
        f"(rate({STATEMENT}_bucket{selector}[$__range])))"
    )
    errors = f"sum by ({BY}) (increase(dbpulse_db_statement_errors_total{selector}[$__range]))"
    panel = (
        table.Panel()
        .title("Top statements by total time")
        .description(
            "Which statement shapes cost the database the most time? Exact per-shape totals "
            "(db.query.fingerprint: literals and IN-list lengths collapsed) of every call, "
            "sampled or not: total time, its share of all statement time, calls/s, p95 and "
            "errors in the selected range. Each export carries the top N shapes by total time "
            "(DBPULSE_TOP_STATEMENTS); the rest are summed under otel_metric_overflow."
        )
        .datasource(PROMETHEUS)
        .thresholds(GREEN_ONLY)
        .sort_by([common_builders.TableSortByFieldState().display_name("Value #A").desc(True)])
        # One row a statement shape: the five instant queries joined on their labels.
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_target(_table_query(f"topk(20, {total})", "A"))
        .with_target(_table_query(share, "B"))
        .with_target(_table_query(calls, "C"))
        .with_target(_table_query(p95, "D"))
        .with_target(_table_query(errors, "E"))
    )
    return panel


def insights_dashboard() -> dash.Dashboard:
    board = new_dashboard(
        "dbpulse-insights",
        "dbpulse · Query insights",
        "Statement shapes of services instrumented by dbpulse: top statements by total time "
        "(exact, bounded cardinality) and N+1 query patterns.",
        ["database"],
    )
    board = board.with_variable(
        variable(
            "service",
            "Service",
            f"label_values({STATEMENT}_count, service_name)",
            "service.name of the instrumented applications",
        )
    )
    layout = Layout()
    layout.add(_top_statements(), width=24, height=10)
    layout.add(
        series(
            "Statement time/s by shape",
            "Where does database time go over time? Seconds spent per second in each of the "
            "top statement shapes (and the overflow of the rest).",
            "s",
            [
                promql(
                    "sum by (db_query_summary, db_query_fingerprint, otel_metric_overflow) "
                    f"(rate({STATEMENT}_sum{{{SERVICE}}}[$__rate_interval]))",
                    "{{db_query_summary}} {{db_query_fingerprint}}",
                )
            ],
        )
    )
    layout.add(
        bars(
            "N+1 patterns: worst offenders",
            "Which statement runs once per item under one request or flow checkpoint? "
            "dbpulse.db.n_plus_one counts each parent span under which one shape ran "
            "DBPULSE_N_PLUS_ONE_THRESHOLD (default 5) or more times as single calls "
            "(executemany batches do not count). The parent span has an event naming it.",
            common_models.BarGaugeDisplayMode.GRADIENT,
            promql(
                "topk(10, sum by (db_query_summary, db_query_fingerprint) "
                f"(increase(dbpulse_db_n_plus_one_total{{{SERVICE}}}[$__range])))",
                "{{db_query_summary}} ({{db_query_fingerprint}})",
                instant=True,
            ),
        )
    )
    return layout.apply(board)
