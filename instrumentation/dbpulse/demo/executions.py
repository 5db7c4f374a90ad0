"""The pattern-execution log: seed 003's monitored DuckDB database, as a workload.

It plays a pattern engine that records each run of a trading pattern in a DuckDB file: per tick
one execution starts (``INSERT`` with status ``running``) and finishes (``UPDATE`` with its
duration and status, ``ok`` or now and then ``failed``), and the dashboard's summary (count and
average duration per status) is read from one relation built at start and fetched again every
tick, the way DuckDB code re-reads a query (``rel = con.sql(...)``; ``rel.fetchall()``)::

    options = ExecutionsOptions(database="executions.duckdb")
    with stop_on_signals() as stop:
        report = run_executions(options, stop)

Every statement is one DuckDB execution dbpulse observes (``db.system.name = "duckdb"``,
collection ``executions``): the database dashboard's operations, latency and rows-written
panels. Run it as ``dbpulse demo executions`` (under ``opentelemetry-instrument`` for
telemetry).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dbpulse.demo.running import paced

__all__ = ["PATTERNS", "SYMBOLS", "ExecutionsOptions", "ExecutionsReport", "run_executions"]

PATTERNS = ("Doji", "Hammer", "Bullish Engulfing", "Morning Star", "Shooting Star")
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "TSLA", "META")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS executions (id BIGINT PRIMARY KEY, pattern VARCHAR NOT NULL, "
    "symbol VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, duration_ms DOUBLE, "
    "status VARCHAR NOT NULL)"
)
LAST_ID = "SELECT coalesce(max(id), 0) FROM executions"
START = (
    "INSERT INTO executions (id, pattern, symbol, started_at, status) "
    "VALUES (?, ?, ?, ?, 'running')"
)
FINISH = "UPDATE executions SET duration_ms = ?, status = ? WHERE id = ?"
SUMMARY = (
    "SELECT status, count(*) AS executions, avg(duration_ms) AS avg_ms "
    "FROM executions GROUP BY status ORDER BY status"
)


@dataclass
class ExecutionsOptions:
    database: str = "executions.duckdb"
    rate: float = 10.0
    """Executions per second (each: one INSERT, one UPDATE, one read of the summary)."""
    failure_rate: float = 0.05
    """Share of executions that finish ``failed`` (an outcome in the log, not a DuckDB error)."""
    duration: float | None = None
    count: int | None = None
    """Stop after this many executions (``None``: until stopped or ``duration``)."""
    seed: int | None = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure rate {self.failure_rate} is not in [0, 1]")


@dataclass
class ExecutionsReport:
    """What the workload did: its statements by operation, as dbpulse names them (the counts
    the dashboards must show), and the executions by outcome."""

    statements: dict[str, int] = field(default_factory=dict)
    """``CREATE`` once, ``SELECT`` (the last id at start, then one fetch of the summary
    relation per execution), ``INSERT`` and ``UPDATE`` (one row each) per execution."""
    by_status: dict[str, int] = field(default_factory=dict)
    summary: list[tuple[Any, ...]] = field(default_factory=list)
    """The summary relation's last result: (status, executions, avg_ms) rows."""

    def ran(self, operation: str) -> None:
        self.statements[operation] = self.statements.get(operation, 0) + 1

    def count(self, operation: str) -> int:
        return self.statements.get(operation, 0)


def run_executions(
    options: ExecutionsOptions, stop: threading.Event | None = None
) -> ExecutionsReport:
    """Record executions until ``stop`` is set (or ``duration``/``count``); returns the counts."""
    import duckdb  # the duckdb extra

    stop = stop or threading.Event()
    report = ExecutionsReport()
    rng = random.Random(options.seed)
    con = duckdb.connect(options.database)
    try:
        con.execute(SCHEMA)
        report.ran("CREATE")
        row = con.execute(LAST_ID).fetchone()
        report.ran("SELECT")
        next_id = int(row[0]) + 1 if row else 1
        summary = con.sql(SUMMARY)  # built once: runs at each fetch
        for _ in paced(options.rate, stop, options.duration, options.count):
            pattern, symbol = rng.choice(PATTERNS), rng.choice(SYMBOLS)
            started_at = datetime.now(UTC).replace(tzinfo=None)
            con.execute(START, [next_id, pattern, symbol, started_at])
            report.ran("INSERT")
            duration_ms = round(rng.lognormvariate(3.5, 0.6), 3)  # ~33 ms median
            status = "failed" if rng.random() < options.failure_rate else "ok"
            con.execute(FINISH, [duration_ms, status, next_id])
            report.ran("UPDATE")
            report.by_status[status] = report.by_status.get(status, 0) + 1
            next_id += 1
            report.summary = summary.fetchall()
            report.ran("SELECT")
    finally:
        con.close()
    return report
