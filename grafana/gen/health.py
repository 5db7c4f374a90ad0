"""The *Database health* row of the Database dashboard: what ``dbpulse.health`` checks, as the
``dbpulse.db.health.*`` gauges (an app with ``DBPULSE_HEALTH_TARGETS``, or ``dbpulse health
--export``), and the lock retries of ``dbpulse.retry``."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, statetimeline
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dm

from .common import PROMETHEUS, SERVICE, promql, thresholds
from .panels import Layout, series, variable

__all__ = [
    "HEALTH",
    "SIZE_CRITICAL_BYTES",
    "SIZE_WARNING_BYTES",
    "WAL_FLOOR_BYTES",
    "health_row",
    "target_variable",
]

#: Seed 003's database size alerts, as ``dbpulse health``'s defaults (thresholds.py).
SIZE_WARNING_BYTES = 500 * 1024 * 1024
SIZE_CRITICAL_BYTES = 1024 * 1024 * 1024
#: A WAL under this is what SQLite's auto-checkpoint keeps (1000 pages of 4 KB) plus headroom.
WAL_FLOOR_BYTES = 16 * 1024 * 1024
#: The dashboard variables as label matchers of the health gauges.
HEALTH = f'{SERVICE}, dbpulse_health_target=~"$target"'
_BY = "max by (service_name, dbpulse_health_target)"
_LEGEND = "{{dbpulse_health_target}} ({{service_name}})"

_STATES = (
    ("0", "OK", "green"),
    ("1", "WARNING", "yellow"),
    ("2", "ERROR", "red"),
    ("3", "CRITICAL", "dark-red"),
    ("4", "UNKNOWN", "purple"),
)


def target_variable() -> dash.QueryVariable:
    return variable(
        "target",
        "Health target",
        f"label_values(dbpulse_db_health_status{{{SERVICE}}}, dbpulse_health_target)",
        "dbpulse.health.target: the databases DBPULSE_HEALTH_TARGETS or dbpulse health "
        "--export check (file base name, host:port/dbname)",
    )


def health_row(layout: Layout) -> None:
    """Add the row and its panels to ``layout``."""
    layout.add(dash.Row("Database health"), width=24, height=1)
    layout.add(
        statetimeline.Panel()
        .title("Health status by target")
        .description(
            "Is each database healthy? The worst check of dbpulse.health per target "
            "(dbpulse.db.health.status: 0 OK, 1 WARNING, 2 ERROR, 3 CRITICAL, 4 UNKNOWN). "
            "`dbpulse health TARGET` gives the reasons."
        )
        .datasource(PROMETHEUS)
        .thresholds(thresholds((None, "green")))
        .mappings(
            [
                dm.ValueMap(
                    options={
                        value: dm.ValueMappingResult(text=text, color=color, index=i)
                        for i, (value, text, color) in enumerate(_STATES)
                    }
                )
            ]
        )
        .with_target(promql(f"{_BY} (dbpulse_db_health_status{{{HEALTH}}})", _LEGEND)),
        width=24,
        height=6,
    )
    layout.add(
        series(
            "Database size",
            "How big is each database? File + WAL + shared memory (SQLite), file + WAL "
            "(DuckDB), pg_database_size (PostgreSQL). Alerts at 500 MB (warning) and 1 GB "
            "(critical).",
            "bytes",
            [promql(f"{_BY} (dbpulse_db_health_size_bytes{{{HEALTH}}})", _LEGEND)],
            thresholds(
                (None, "green"), (SIZE_WARNING_BYTES, "orange"), (SIZE_CRITICAL_BYTES, "red")
            ),
            threshold_line=True,
        ),
        width=8,
    )
    layout.add(
        series(
            "WAL size",
            "Do checkpoints keep up? The write-ahead log alone (SQLite -wal, DuckDB .wal). A "
            "WAL that keeps growing past 16 MB means checkpoints cannot finish (a reader "
            "holds an old snapshot): the WAL growing alert.",
            "bytes",
            [promql(f"{_BY} (dbpulse_db_health_wal_size_bytes{{{HEALTH}}})", _LEGEND)],
            thresholds((None, "green"), (WAL_FLOOR_BYTES, "orange")),
        ),
        width=8,
    )
    layout.add(
        stat.Panel()
        .title("Schema version")
        .description(
            "Which schema does each database run? PRAGMA user_version or a numeric migration "
            "version (Alembic revisions are text and not shown)."
        )
        .datasource(PROMETHEUS)
        .unit("none")
        .thresholds(thresholds((None, "blue")))
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .with_target(promql(f"{_BY} (dbpulse_db_health_schema_version{{{HEALTH}}})", _LEGEND)),
        width=8,
    )
    by_table = "max by (service_name, dbpulse_health_target, db_collection_name)"
    table_legend = "{{dbpulse_health_target}} {{db_collection_name}}"
    layout.add(
        series(
            "Rows by table",
            "How many rows do the configured tables hold (DBPULSE_HEALTH_TABLES, --table)?",
            "short",
            [promql(f"{by_table} (dbpulse_db_health_rows{{{HEALTH}}})", table_legend)],
        ),
        width=8,
    )
    layout.add(
        series(
            "Newest row age",
            "Is data still arriving? Seconds since the newest row of each table configured "
            "with a timestamp column (TABLE:COLUMN). The alert fires after an hour.",
            "s",
            [
                promql(
                    f"{by_table} (dbpulse_db_health_newest_row_age_seconds{{{HEALTH}}})",
                    table_legend,
                )
            ],
            thresholds((None, "green"), (3600, "red")),
            threshold_line=True,
        ),
        width=8,
    )
    layout.add(
        series(
            "Lock retries/s by outcome",
            "Is anything fighting over locks? dbpulse.retry's retries of SQLITE_BUSY/LOCKED "
            "and PostgreSQL 40001/40P01 (retried, succeeded_after_retry, gave_up). With the "
            "busy errors of the Lock errors panel they make the lock storm alert.",
            "ops",
            [
                promql(
                    "sum by (service_name, outcome) "
                    f"(rate(dbpulse_db_retries_total{{{SERVICE}}}[$__rate_interval]))",
                    "{{service_name}} {{outcome}}",
                )
            ],
            thresholds((None, "green")),
        ),
        width=8,
    )
