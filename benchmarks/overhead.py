"""Per-operation overhead of dbpulse against the raw driver and the stock contrib instrumentation.

Run: ``python benchmarks/overhead.py`` (``--quick`` for a short run). For each workload all
variants run in one process, each on its own connection, taking turns in small blocks of
operations; the table shows each variant's median µs/op over the blocks and the added cost
against ``raw``. Taking turns in small blocks cancels the drift of a shared machine (another
process, the disk, CPU frequency), which otherwise moves per-process runs by 2x:

* ``raw`` — the driver alone (a connection made before instrumenting);
* ``contrib`` — a connection instrumented by opentelemetry-instrumentation-sqlite3 / -psycopg
  (``instrument_connection``) with its own SDK tracer (spans only: the stock instrumentations
  record no metrics);
* ``dbpulse aggregated`` — dbpulse in aggregated mode: exact metrics and ISBN keys, no span;
* ``dbpulse detailed`` — dbpulse keeping every span: span + metrics + ISBN keys;
* ``dbpulse default`` — dbpulse with its default adaptive sampler (the 10k autocommit
  workload, the predecessor's benchmark).

Spans go to ``BatchSpanProcessor`` s whose exporters discard them, so the numbers are the
application's own cost, not the network's; each block is timed up to the flush of its own spans,
so the batch thread's work counts for the variant that caused it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ISBNS = [
    "9780306406157",
    "9780140449136",
    "9781402894626",
    "9780451524935",
    "9780262033848",
]
SQLITE_INSERT = "INSERT INTO books (isbn, title, price, copies) VALUES (?, ?, ?, ?)"
PG_INSERT = "INSERT INTO {table} (isbn, title, price, copies) VALUES (%s, %s, %s, %s)"


def rows(n: int) -> list[tuple[Any, ...]]:
    return [(ISBNS[i % len(ISBNS)], f"title {i}", 9.99, i) for i in range(n)]


class Pipeline:
    """The SDK set up once: dbpulse (global providers) and a separate provider for contrib."""

    def __init__(self) -> None:
        os.environ["OTEL_TRACES_EXPORTER"] = "none"
        os.environ["OTEL_METRICS_EXPORTER"] = "none"
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Discard(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        import dbpulse
        from dbpulse.telemetry.sampler import LOAD

        self.load = LOAD
        self.raw_sqlite_connect = sqlite3.connect  # before instrumenting
        self.contrib_provider = TracerProvider()
        self.contrib_provider.add_span_processor(BatchSpanProcessor(Discard()))
        self.telemetry = dbpulse.configure(
            service_name="bench", span_processors=[BatchSpanProcessor(Discard())]
        )
        dbpulse.instrument(systems=("sqlite", "postgresql"))
        self.dbpulse = dbpulse

    def mode(self, variant: str) -> None:
        """Put dbpulse's sampler where the variant wants it before its block runs."""
        if variant == "dbpulse aggregated":
            self.load.configure(((1e-9, 0.0),))
            self.load.probability = 0.0
        elif variant == "dbpulse detailed":
            self.load.configure(())  # no bands: every span kept
        elif variant == "dbpulse default":
            from dbpulse.telemetry.sampler import DEFAULT_BANDS

            self.load.configure(DEFAULT_BANDS)

    def flush(self) -> None:
        self.telemetry.tracer_provider.force_flush()
        self.contrib_provider.force_flush()

    def contrib_sqlite(self, conn: sqlite3.Connection) -> Any:
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        return SQLite3Instrumentor.instrument_connection(
            conn, tracer_provider=self.contrib_provider
        )


def take_turns(
    variants: dict[str, Callable[[list[tuple[Any, ...]]], None]],
    pipeline: Pipeline,
    *,
    block: int,
    rounds: int,
) -> dict[str, list[tuple[float, float]]]:
    """Run ``rounds`` blocks of ``block`` operations per variant, in turns.

    Returns per block (wall µs/op, CPU µs/op); CPU is the whole process's (all threads)."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    data = rows(block)
    for round_no in range(rounds):
        order = list(variants.items())
        if round_no % 2:
            order.reverse()  # nobody always goes first
        for name, run in order:
            pipeline.mode(name)
            start, cpu_start = time.perf_counter(), time.process_time()
            run(data)
            # The variant's own spans are exported within its time: the batch thread's work is
            # the application's cost too, and must not spill into the next variant's block.
            pipeline.flush()
            wall = (time.perf_counter() - start) / block * 1e6
            cpu = (time.process_time() - cpu_start) / block * 1e6
            samples[name].append((wall, cpu))
    return samples


def sqlite_workload(kind: str, pipeline: Pipeline, tmp: Path, block: int, rounds: int) -> Any:
    names = ["raw", "contrib", "dbpulse aggregated", "dbpulse detailed"]
    if kind == "autocommit":
        names.append("dbpulse default")
    runners: dict[str, Callable[[list[tuple[Any, ...]]], None]] = {}
    for i, name in enumerate(names):
        path = tmp / f"{kind}-{i}.db"
        autocommit = kind == "autocommit"
        if name in ("raw", "contrib"):
            conn: Any = pipeline.raw_sqlite_connect(
                path, isolation_level=None if autocommit else "DEFERRED"
            )
        else:
            conn = sqlite3.connect(path, isolation_level=None if autocommit else "DEFERRED")
        if autocommit:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE books (isbn TEXT, title TEXT, price REAL, copies INTEGER)")
        if name == "contrib":
            conn = pipeline.contrib_sqlite(conn)
        runners[name] = _sqlite_runner(kind, conn)
    return take_turns(runners, pipeline, block=block, rounds=rounds)


def _sqlite_runner(kind: str, conn: Any) -> Callable[[list[tuple[Any, ...]]], None]:
    if kind == "cursor":
        cur = conn.cursor()

        def run(data: list[tuple[Any, ...]]) -> None:
            for row in data:
                cur.execute(SQLITE_INSERT, row)
            conn.commit()

    elif kind == "conn":

        def run(data: list[tuple[Any, ...]]) -> None:
            for row in data:
                conn.execute(SQLITE_INSERT, row)
            conn.commit()

    else:

        def run(data: list[tuple[Any, ...]]) -> None:
            for row in data:
                conn.execute(SQLITE_INSERT, row)

    return run


def psycopg_workload(pipeline: Pipeline, block: int, rounds: int) -> Any:
    import psycopg
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as Contrib

    dsn = os.environ.get(
        "DBPULSE_TEST_POSTGRES_DSN", "postgresql://dbpulse:dbpulse@127.0.0.1:5432/dbpulse"
    )
    runners: dict[str, Callable[[list[tuple[Any, ...]]], None]] = {}
    connections = []
    for name in ("raw", "contrib", "dbpulse aggregated", "dbpulse detailed"):
        if name in ("raw", "contrib"):
            pipeline.dbpulse.set_enabled(False)  # these two must not be seen by dbpulse
        conn = psycopg.connect(dsn, autocommit=True)
        table = f"bench_{os.getpid()}_{len(connections)}"
        conn.execute(f"CREATE TEMP TABLE {table} (isbn text, title text, price real, copies int)")
        if name == "contrib":
            conn = Contrib.instrument_connection(conn, tracer_provider=pipeline.contrib_provider)
        connections.append(conn)
        runners[name] = _pg_runner(conn, PG_INSERT.format(table=table), pipeline, name)
        pipeline.dbpulse.set_enabled(True)
    return take_turns(runners, pipeline, block=block, rounds=rounds)


def _pg_runner(
    conn: Any, sql: str, pipeline: Pipeline, name: str
) -> Callable[[list[tuple[Any, ...]]], None]:
    # dbpulse instruments psycopg on its classes, so the raw and contrib blocks run with dbpulse
    # switched off (one flag check per call, measured in the "off" line of the README).
    observed = name.startswith("dbpulse")
    cur = conn.cursor()

    def run(data: list[tuple[Any, ...]]) -> None:
        pipeline.dbpulse.set_enabled(observed)
        for row in data:
            cur.execute(sql, row)
        pipeline.dbpulse.set_enabled(True)

    return run


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--only", help="run workloads whose name contains this text")
    args = parser.parse_args()
    rounds = 8 if args.quick else 30
    pipeline = Pipeline()
    results: list[tuple[str, dict[str, list[tuple[float, float]]]]] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        workloads: list[tuple[str, Callable[[], Any]]] = [
            (
                "sqlite cursor.execute INSERT (1 txn)",
                lambda: sqlite_workload("cursor", pipeline, tmp, 1000, rounds),
            ),
            (
                "sqlite conn.execute INSERT (1 txn)",
                lambda: sqlite_workload("conn", pipeline, tmp, 1000, rounds),
            ),
            (
                "sqlite 10k autocommit INSERT, WAL",
                # Runs of 10,000 inserts, as the predecessor measured; "dbpulse default" starts
                # each run from a fresh sampler, like an application starting up.
                lambda: sqlite_workload("autocommit", pipeline, tmp, 10_000, max(3, rounds // 6)),
            ),
            ("psycopg INSERT (loopback)", lambda: psycopg_workload(pipeline, 200, rounds)),
        ]
        for title, run in workloads:
            if args.only and args.only not in title:
                continue
            print(f"{title} ...", file=sys.stderr)
            try:
                results.append((title, run()))
            except Exception as exc:  # a missing server skips its workload, loudly
                print(f"  skipped: {exc}", file=sys.stderr)
    pipeline.telemetry.shutdown()
    print(f"Machine: {_machine()}; variants taking turns, medians over {rounds} blocks.\n")
    print(
        "| workload | variant | wall µs/op | added wall µs/op | CPU µs/op | added CPU µs/op "
        "| added CPU / raw wall |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for title, samples in results:
        raw_wall = statistics.median(w for w, _ in samples["raw"])
        raw_cpu = statistics.median(c for _, c in samples["raw"])
        for variant, values in samples.items():
            wall = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            print(
                f"| {title} | {variant} | {wall:.2f} | {wall - raw_wall:+.2f} | {cpu:.2f} "
                f"| {cpu - raw_cpu:+.2f} | {(cpu - raw_cpu) / raw_wall * 100:+.1f}% |"
            )


if __name__ == "__main__":
    main()
