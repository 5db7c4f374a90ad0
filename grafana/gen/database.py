"""The *Database activity* dashboard (``dbpulse-database.json``): rate, errors, latency,
writes by table and book, pools, sampling, and the *Database health* row (:mod:`.health`)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, statetimeline
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dm

from .common import (
    GREEN_ONLY,
    OTHER_BUDGET_SECONDS,
    PROMETHEUS,
    READ_BUDGET_SECONDS,
    SERVICE,
    promql,
    thresholds,
)
from .health import health_row, target_variable
from .panels import Layout, bars, new_dashboard, series, variable

__all__ = ["database_dashboard"]


#: error.type values that mean a lock conflict (SQLite names, PostgreSQL SQLSTATEs).
LOCK_ERRORS = "SQLITE_BUSY|SQLITE_LOCKED|40P01|55P03"
#: The dashboard variables as label matchers.
DB = 'service_name=~"$service", db_system_name=~"$system", db_collection_name=~"$table"'


def _count(extra: str = "") -> str:
    return f"db_client_operation_duration_seconds_count{{{DB}{extra}}}"


def database_dashboard() -> dash.Dashboard:
    failed = _count(', error_type!=""')
    locked = _count(f', error_type=~"{LOCK_ERRORS}"')
    board = new_dashboard(
        "dbpulse-database",
        "dbpulse · Database activity",
        "SQLite, PostgreSQL and Redis operations of services instrumented by dbpulse: rate, "
        "errors, latency, writes by table and book, pools, sampling.",
        ["database"],
    )
    board = board.with_variable(
        variable(
            "service",
            "Service",
            # Services that only report health (dbpulse health --export) are listed too.
            'label_values({__name__=~"db_client_operation_duration_seconds_count|'
            'dbpulse_db_health_status"}, service_name)',
            "service.name of the instrumented applications (and of dbpulse health --export)",
        )
    )
    board = board.with_variable(
        variable(
            "system",
            "System",
            'label_values(db_client_operation_duration_seconds_count{service_name=~"$service"}, '
            "db_system_name)",
            "db.system.name: sqlite, postgresql, redis",
        )
    )
    board = board.with_variable(
        variable(
            "table",
            "Table",
            "label_values(db_client_operation_duration_seconds_count"
            '{service_name=~"$service", db_system_name=~"$system"}, db_collection_name)',
            "db.collection.name (Redis commands have none; All includes them)",
        )
    )
    board = board.with_variable(target_variable())
    layout = Layout()
    layout.add(
        series(
            "Operations/s by system, operation and table",
            "How busy is each database, and with what? Every call dbpulse observed (exact "
            "metrics, whatever the sampler kept), per second.",
            "ops",
            [
                promql(
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
        series(
            "Error rate",
            "Which share of operations fail? Failed calls (error.type set) over all calls, per "
            "service and system; 0 when nothing fails. Alerts fire above 10% (warning) and "
            "25% (critical).",
            "percentunit",
            [promql(error_ratio, "{{service_name}} {{db_system_name}}")],
            thresholds((None, "green"), (0.1, "orange"), (0.25, "red")),
            threshold_line=True,
        )
    )
    layout.add(
        series(
            "Errors/s by error.type",
            "What fails? SQLite error names (SQLITE_ERROR, SQLITE_BUSY), PostgreSQL SQLSTATEs "
            "(42P01, 23505, ...) and Redis exception classes.",
            "ops",
            [
                promql(
                    f"sum by (db_system_name, error_type) (rate({failed}[$__rate_interval]))",
                    "{{db_system_name}} {{error_type}}",
                )
            ],
        )
    )
    bucket = f"db_client_operation_duration_seconds_bucket{{{DB}}}"
    latency_targets = [
        promql(
            f"histogram_quantile({q}, sum by (le, db_operation_name, db_collection_name) "
            f"(rate({bucket}[$__rate_interval])))",
            f"p{int(q * 100)} {{{{db_operation_name}}}} {{{{db_collection_name}}}}",
            ref,
        ).exemplar(True)
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]
    layout.add(
        series(
            "Latency p50 / p95 / p99 by operation and table",
            "How long do operations take? Quantiles of db.client.operation.duration. Exemplars "
            "(dots) open the trace of a sampled slow call in Tempo. Alert budget for p95: "
            f"{READ_BUDGET_SECONDS * 1000:.0f} ms for reads, "
            f"{OTHER_BUDGET_SECONDS * 1000:.0f} ms otherwise.",
            "s",
            latency_targets,
            thresholds((None, "green"), (READ_BUDGET_SECONDS, "orange"), (1.0, "red")),
        ),
        width=24,
        height=9,
    )
    layout.add(
        series(
            "Rows written/s by table",
            "Where do writes go? dbpulse.db.writes: rows the driver reports written (INSERT, "
            "UPDATE, DELETE, batches; Redis SET-family), by system, table and operation.",
            "rowsps",
            [
                promql(
                    "sum by (db_system_name, db_collection_name, db_operation_name) "
                    f"(rate(dbpulse_db_writes_total{{{DB}}}[$__rate_interval]))",
                    "{{db_system_name}} {{db_collection_name}} {{db_operation_name}}",
                )
            ],
        )
    )
    layout.add(
        bars(
            "Top 10 most-written ISBNs",
            "Which books are written most in the selected time range? dbpulse.db.isbn.writes "
            "(ISBN-13, one per occurrence in a successful write), up to the cardinality limit.",
            common_models.BarGaugeDisplayMode.GRADIENT,
            promql(
                "topk(10, sum by (book_isbn) (increase(dbpulse_db_isbn_writes_total"
                '{service_name=~"$service", db_collection_name=~"$table", book_isbn!=""}'
                "[$__range])))",
                "{{book_isbn}}",
                instant=True,
            ),
        )
    )
    layout.add(
        series(
            "Lock errors",
            "Is anything fighting over locks? Operations failing with SQLITE_BUSY/SQLITE_LOCKED "
            "or PostgreSQL 40P01 (deadlock) / 55P03 (lock not available), per interval. Empty "
            "while nothing contends.",
            "short",
            [
                promql(
                    "sum by (service_name, db_system_name, error_type) (increase("
                    f"{locked}[$__rate_interval]))",
                    "{{service_name}} {{db_system_name}} {{error_type}}",
                )
            ],
            thresholds((None, "green"), (1, "red")),
        )
    )
    layout.add(
        series(
            "Pool connections: used / idle / pending",
            "Is the psycopg pool big enough? Connections by state, the pool's maximum and "
            "requests waiting for a connection (db.client.connection.*).",
            "short",
            [
                promql(
                    "sum by (db_client_connection_pool_name, db_client_connection_state) "
                    f"(db_client_connection_count{{{SERVICE}}})",
                    "{{db_client_connection_pool_name}} {{db_client_connection_state}}",
                ),
                promql(
                    "sum by (db_client_connection_pool_name) "
                    f"(db_client_connection_pending_requests{{{SERVICE}}})",
                    "{{db_client_connection_pool_name}} pending",
                    "B",
                ),
                promql(
                    "sum by (db_client_connection_pool_name) "
                    f"(db_client_connection_max{{{SERVICE}}})",
                    "{{db_client_connection_pool_name}} max",
                    "C",
                ),
            ],
        )
    )
    layout.add(
        series(
            "Pool wait p95 and timeouts",
            "How long do requests wait for a pooled connection, and how many give up? p95 of "
            "db.client.connection.wait_time and timeouts per interval.",
            "s",
            [
                promql(
                    "histogram_quantile(0.95, sum by (le, db_client_connection_pool_name) "
                    f"(rate(db_client_connection_wait_time_seconds_bucket{{{SERVICE}}}"
                    "[$__rate_interval])))",
                    "{{db_client_connection_pool_name}} wait p95",
                ),
                promql(
                    "sum by (db_client_connection_pool_name) (increase("
                    f"db_client_connection_timeouts_total{{{SERVICE}}}[$__rate_interval]))",
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
            promql(
                "max by (service_name) ("
                f'dbpulse_sampler_mode{{{SERVICE}, dbpulse_sampler_mode="sampled"}} * 1'
                f' or dbpulse_sampler_mode{{{SERVICE}, dbpulse_sampler_mode="aggregated"}} * 2'
                f' or dbpulse_sampler_mode{{{SERVICE}, dbpulse_sampler_mode="detailed"}} * 0)',
                "{{service_name}}",
            )
        )
    )
    layout.add(
        series(
            "Operation rate seen by the sampler and keep probability",
            "Why is the sampler in this mode? Its ops/s of the last second "
            "(dbpulse.db.operation.rate) and the share of new root spans it keeps.",
            "short",
            [
                promql(
                    f"max by (service_name) (dbpulse_db_operation_rate_per_second{{{SERVICE}}})",
                    "{{service_name}} ops/s",
                ),
                promql(
                    f"max by (service_name) (dbpulse_sampler_probability{{{SERVICE}}})",
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
        .thresholds(thresholds((None, "red"), (0.5, "orange"), (0.8, "green")))
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .with_target(
            promql(
                "sum by (service_name) (rate(dbpulse_cache_requests_total"
                f'{{{SERVICE}, dbpulse_cache_result="hit"}}[$__rate_interval]))'
                " / sum by (service_name) (rate(dbpulse_cache_requests_total"
                f"{{{SERVICE}}}[$__rate_interval]))",
                "{{service_name}}",
            )
        )
    )
    health_row(layout)
    return layout.apply(board)
