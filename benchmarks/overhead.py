"""Per-operation overhead of dbpulse against the raw driver and the stock contrib instrumentation.

Run: ``python benchmarks/overhead.py`` (add ``--quick`` for a short run, ``--markdown`` for the
README table). Each variant runs in its own subprocess, so instrumentation state never leaks
between variants, and all variants run in the same invocation on the same machine:

* ``raw`` — the driver alone;
* ``contrib`` — opentelemetry-instrumentation-sqlite3 / -psycopg with the SDK (spans only:
  the stock instrumentations record no metrics);
* ``dbpulse aggregated`` — dbpulse in aggregated mode: exact metrics, ISBN keys, no spans;
* ``dbpulse detailed`` — dbpulse keeping every span: span + metrics + ISBN keys;
* ``dbpulse default`` — dbpulse with its default adaptive sampler (the 10k workload only).

Spans go to a ``BatchSpanProcessor`` with an exporter that discards them, so the numbers are
the application's own cost, not the network's. Each measurement is repeated; the table shows
the median over repeats (variants take turns, so drift hits them all alike), the added cost
against ``raw`` and the best repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKLOADS = {
    "sqlite cursor.execute INSERT (1 txn)": "sqlite_cursor",
    "sqlite conn.execute INSERT (1 txn)": "sqlite_conn",
    "sqlite 10k autocommit INSERT, WAL": "sqlite_autocommit",
    "psycopg INSERT (loopback)": "psycopg",
}
VARIANTS = ("raw", "contrib", "dbpulse aggregated", "dbpulse detailed", "dbpulse default")
ISBNS = [
    "9780306406157",
    "9780140449136",
    "9781402894626",
    "9780451524935",
    "9780262033848",
]


# -- inside the child process --------------------------------------------------------------


def _null_span_pipeline() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return Discard()


def _setup(variant: str) -> Any:
    os.environ["OTEL_TRACES_EXPORTER"] = "none"
    os.environ["OTEL_METRICS_EXPORTER"] = "none"
    if variant == "raw":
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if variant == "contrib":
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(_null_span_pipeline()))
        trace.set_tracer_provider(provider)
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        SQLite3Instrumentor().instrument()
        PsycopgInstrumentor().instrument()
        return provider
    import dbpulse
    from dbpulse._sampler import LOAD

    telemetry = dbpulse.configure(
        service_name="bench", span_processors=[BatchSpanProcessor(_null_span_pipeline())]
    )
    dbpulse.instrument()
    if variant == "dbpulse aggregated":
        LOAD.configure(((1e-9, 0.0),))
        LOAD.probability = 0.0
    elif variant == "dbpulse detailed":
        LOAD.configure(())  # no bands: always detailed
    return telemetry


def _sqlite_rows(n: int) -> list[tuple[Any, ...]]:
    return [(ISBNS[i % len(ISBNS)], f"title {i}", 9.99, i) for i in range(n)]


def _bench_sqlite(kind: str, n: int) -> float:
    import sqlite3

    rows = _sqlite_rows(n)
    sql = "INSERT INTO books (isbn, title, price, copies) VALUES (?, ?, ?, ?)"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        if kind == "sqlite_autocommit":
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
        else:
            conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE books (isbn TEXT, title TEXT, price REAL, copies INTEGER)")
        cur = conn.cursor()
        start = time.perf_counter()
        if kind == "sqlite_cursor":
            for row in rows:
                cur.execute(sql, row)
            conn.commit()
        elif kind == "sqlite_conn":
            for row in rows:
                conn.execute(sql, row)
            conn.commit()
        else:
            for row in rows:
                conn.execute(sql, row)
        elapsed = time.perf_counter() - start
        conn.close()
    return elapsed / n


def _bench_psycopg(n: int) -> float:
    import psycopg

    dsn = os.environ.get(
        "DBPULSE_TEST_POSTGRES_DSN", "postgresql://dbpulse:dbpulse@127.0.0.1:5432/dbpulse"
    )
    rows = _sqlite_rows(n)
    table = f"bench_{os.getpid()}"
    with psycopg.connect(dsn) as conn:
        conn.execute(
            f"CREATE TEMP TABLE {table} (isbn text, title text, price real, copies integer)"
        )
        sql = f"INSERT INTO {table} (isbn, title, price, copies) VALUES (%s, %s, %s, %s)"
        cur = conn.cursor()
        start = time.perf_counter()
        for row in rows:
            cur.execute(sql, row)
        elapsed = time.perf_counter() - start
    return elapsed / n


def child(variant: str, workload: str, n: int, repeats: int) -> None:
    telemetry = _setup(variant)
    results = []
    for _ in range(repeats):
        if workload == "psycopg":
            results.append(_bench_psycopg(n))
        else:
            results.append(_bench_sqlite(workload, n))
    if telemetry is not None and hasattr(telemetry, "shutdown"):
        telemetry.shutdown()
    print(json.dumps({"per_op": results}))


# -- the driver ----------------------------------------------------------------------------


def run_variant(variant: str, workload: str, n: int, repeats: int) -> list[float] | None:
    cmd = [sys.executable, __file__, "--child", variant, workload, str(n), str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        print(f"  {variant} / {workload}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["per_op"]  # type: ignore[no-any-return]


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
    parser.add_argument("--quick", action="store_true", help="fewer operations and repeats")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--only", help="run workloads whose name contains this text")
    args = parser.parse_args()
    n, repeats = (2000, 3) if args.quick else (10_000, 7)
    table: list[dict[str, Any]] = []
    for title, workload in WORKLOADS.items():
        if args.only and args.only not in title:
            continue
        count = 10_000 if workload == "sqlite_autocommit" else n
        variants = [
            v for v in VARIANTS if v != "dbpulse default" or workload == "sqlite_autocommit"
        ]
        print(f"{title}: {count} ops x {repeats} repeats", file=sys.stderr)
        # Variants take turns, one repeat each, so that drift (disk, other processes) spreads
        # over all of them instead of favouring whichever ran in a quiet minute.
        samples: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(repeats):
            for variant in variants:
                per_op = run_variant(variant, workload, count, 1)
                if per_op is not None:
                    samples[variant].extend(per_op)
        best: dict[str, float] = {}
        median: dict[str, float] = {}
        for variant, values in samples.items():
            if not values:
                continue
            best[variant] = min(values)
            median[variant] = statistics.median(values)
            print(
                f"  {variant:20s} best {best[variant] * 1e6:8.2f} µs/op"
                f"  median {median[variant] * 1e6:8.2f}",
                file=sys.stderr,
            )
        table.append({"workload": title, "best": best, "median": median})
    print()
    print(f"Machine: {_machine()}")
    print("| workload | variant | µs/op (median) | added µs/op | vs raw | best µs/op |")
    print("|---|---|---:|---:|---:|---:|")
    for row in table:
        raw = row["median"].get("raw")
        for variant, value in row["median"].items():
            added = f"{(value - raw) * 1e6:+.2f}" if raw else ""
            ratio = f"{value / raw:.3f}x" if raw else ""
            best = row["best"][variant] * 1e6
            print(
                f"| {row['workload']} | {variant} | {value * 1e6:.2f} | {added} | {ratio} "
                f"| {best:.2f} |"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
