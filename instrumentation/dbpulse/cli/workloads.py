"""``dbpulse demo collector``, ``cache`` and ``executions``: database workloads for the dashboards.

The CLI registers the functions as Typer commands::

    demo.command("collector")(collector)
    demo.command("cache")(cache)
    demo.command("executions")(executions)

``collector`` writes books with ISBNs to SQLite and, given a DSN, to PostgreSQL through a
``psycopg_pool`` pool (``dbpulse.demo.collector``); ``cache`` looks books up through a Redis
cache with hits and misses (``dbpulse.demo.cache``); ``executions`` keeps a pattern-execution
log in a DuckDB file (``dbpulse.demo.executions``). Each runs until ``--duration``, SIGTERM or
Ctrl-C, then prints what it did and exits 0; the cache rides out a lost Redis connection (and
the collector's pool a lost PostgreSQL one: failed writes are counted and logged). Telemetry
as for the flow commands: the process's SDK under ``opentelemetry-instrument``, else
:func:`dbpulse.configure`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dbpulse.cli._running import redis_errors, run_until_stopped
from dbpulse.demo.cache import CacheOptions, run_cache
from dbpulse.demo.collector import CollectorOptions, run_collector
from dbpulse.demo.executions import ExecutionsOptions, run_executions
from dbpulse.demo.running import rerun_on

__all__ = ["cache", "collector", "executions"]

Rate = Annotated[float, typer.Option("--rate", help="Operations per second.", min=0.1)]
Isbns = Annotated[int, typer.Option("--isbns", help="Distinct books in the catalogue.", min=1)]
Duration = Annotated[
    float, typer.Option("--duration", help="Stop after this many seconds (0: until stopped).")
]


def _file(flag: str, envvar: str, help: str) -> Any:
    """A file option, also read from ``envvar``."""
    return typer.Option(flag, envvar=envvar, help=help)


def collector(
    sqlite: Annotated[
        Path, _file("--sqlite", "DBPULSE_SQLITE_PATH", "SQLite file the collector writes.")
    ] = Path("books.db"),
    postgres: Annotated[
        str | None,
        typer.Option(
            "--postgres",
            envvar="DBPULSE_POSTGRES_DSN",
            help="PostgreSQL DSN (postgresql://user:pass@host/db); none: SQLite only.",
            show_default=False,
        ),
    ] = None,
    rate: Rate = 20.0,
    isbns: Isbns = 5000,
    table: Annotated[
        str, typer.Option(help="Books table (price history goes to <table>_prices).")
    ] = "books",
    pool_size: Annotated[int, typer.Option(help="Largest PostgreSQL pool size.", min=1)] = 4,
    duration: Duration = 0.0,
) -> None:
    """Collect book prices: ISBN writes to SQLite and PostgreSQL (through a pool)."""
    try:
        options = CollectorOptions(
            sqlite_path=str(sqlite),
            postgres_dsn=postgres or None,
            rate=rate,
            isbns=isbns,
            table=table,
            pool_size=pool_size,
            duration=duration or None,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--table") from None
    targets = f"{sqlite} and PostgreSQL" if postgres else f"{sqlite} (no --postgres: SQLite only)"
    typer.echo(f"dbpulse demo collector: {rate:g} writes/s into {targets}")
    report = run_until_stopped("dbpulse-demo-collector", lambda stop: run_collector(options, stop))
    written = ", ".join(f"{name} {count}" for name, count in report.writes.items())
    typer.echo(f"collector stopped: {written}; {report.reads} reads, {report.errors} errors")


def cache(
    redis_url: Annotated[
        str,
        typer.Option("--redis-url", envvar="DBPULSE_REDIS_URL", help="URL of the Redis cache."),
    ] = "redis://127.0.0.1:6379/0",
    rate: Rate = 20.0,
    isbns: Isbns = 5000,
    ttl: Annotated[int, typer.Option(help="Seconds a cached book lives.", min=1)] = 30,
    duration: Duration = 0.0,
) -> None:
    """Look books up through a Redis cache (cache-aside): hits and misses."""
    options = CacheOptions(
        redis_url=redis_url, rate=rate, isbns=isbns, ttl=ttl, duration=duration or None
    )
    typer.echo(f"dbpulse demo cache: {rate:g} lookups/s through {redis_url}")
    report = run_until_stopped(
        "dbpulse-demo-cache",
        lambda stop: rerun_on(redis_errors(), lambda: run_cache(options, stop), stop, what="cache"),
    )
    if report is not None:
        typer.echo(
            f"cache stopped: {report.hits} hits, {report.misses} misses (ratio {report.ratio:.2f})"
        )


def executions(
    database: Annotated[
        Path, _file("--database", "DBPULSE_DUCKDB_PATH", "DuckDB file of the execution log.")
    ] = Path("executions.duckdb"),
    rate: Rate = 10.0,
    failure_rate: Annotated[
        float, typer.Option(help="Share of executions that finish 'failed'.", min=0.0, max=1.0)
    ] = 0.05,
    count: Annotated[
        int, typer.Option("--count", help="Stop after this many executions (0: no limit).", min=0)
    ] = 0,
    duration: Duration = 0.0,
) -> None:
    """Keep a pattern-execution log in DuckDB: INSERT, UPDATE and a re-read relation per run."""
    options = ExecutionsOptions(
        database=str(database),
        rate=rate,
        failure_rate=failure_rate,
        duration=duration or None,
        count=count or None,
    )
    typer.echo(f"dbpulse demo executions: {rate:g} executions/s into {database}")
    report = run_until_stopped(
        "dbpulse-demo-executions", lambda stop: run_executions(options, stop)
    )
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.by_status.items()))
    typer.echo(
        f"executions stopped: {report.count('INSERT')} started, {report.count('UPDATE')} "
        f"finished ({statuses or 'none'}), {report.count('SELECT')} reads"
    )
