"""Per-operation overhead of dbpulse against the raw driver and the stock contrib instrumentation.

Run from the repository root (PostgreSQL and Redis as in the tests' ``DBPULSE_TEST_POSTGRES_DSN``
and ``DBPULSE_TEST_REDIS_URL``; a server that is not there skips its rows, loudly)::

    python benchmarks/overhead.py                 # everything, 5-10 minutes on 2 quiet cores
    python benchmarks/overhead.py --quick         # fewer rounds and smaller blocks
    python benchmarks/overhead.py --only psycopg  # workloads whose title contains the text
    python benchmarks/overhead.py --only duckdb --no-e2e  # the DuckDB rows
    python benchmarks/overhead.py --no-e2e        # in-process rows only (--e2e-only: the rest)
    python benchmarks/overhead.py --mix 'free text'  # one data mix (e2e rows: that mix)

It prints markdown tables for the README's benchmark section (machine, Python, date first).

**In-process rows.** For each workload and data mix all variants run in one process, each on
its own connection, taking turns in blocks of operations (the order reversed every round); a row
shows the variant's median µs/op over the blocks, wall and CPU (the whole process's, all
threads), and the added cost against ``raw``. Taking turns cancels the drift of a shared machine
(another process, the disk, CPU frequency), which otherwise moves per-process runs by 2x.

* ``raw`` — the driver alone (a connection made before instrumenting; for psycopg and redis-py,
  which dbpulse instruments on their classes, blocks run with ``dbpulse.set_enabled(False)``);
* ``contrib`` — a connection (client) instrumented by opentelemetry-instrumentation-sqlite3 /
  -psycopg / -redis (``instrument_connection`` / ``instrument_client``) with its own SDK tracer
  (spans only: the stock instrumentations record no metrics);
* ``dbpulse aggregated`` — dbpulse in aggregated mode: exact metrics and ISBN keys, no span;
* ``dbpulse detailed`` — dbpulse keeping every span: span + metrics + ISBN keys;
* ``dbpulse default`` — dbpulse with its default adaptive sampler, fresh each block (the
  autocommit workload only).

Workloads: SQLite ``cursor.execute`` and ``conn.execute`` INSERTs in one transaction per block
(files in a temp directory), 10k autocommit INSERTs on a WAL file (valid ISBN-13 mix, the
predecessor's benchmark), psycopg INSERTs over loopback (autocommit), redis-py ``SET`` + ``GET``
of one key (µs per pair), DuckDB ``execute`` INSERTs with a parameter list in one transaction
per block (files), and one DuckDB relation fetched again and again (``rel = conn.sql("SELECT
...")`` once, ``rel.fetchall()`` per op: each fetch is an execution, an aggregate over 1000
rows). DuckDB rows have no ``contrib`` variant: no OpenTelemetry instrumentation of DuckDB
exists besides dbpulse's; ``raw`` is a connection with dbpulse's proxy taken off
(``DuckDBInstrumentor.uninstrument_connection``). Mixes (``overhead_mixes.py``): distinct valid
ISBN-13s, distinct 13-digit numbers failing the checksum, free text, integers only. No block
reuses another's values, so dbpulse's cache of recent values gets no help it would not get in
production.

Spans go to ``BatchSpanProcessor`` s whose exporters count and discard them (the counts are
printed on stderr, a check that each variant did its work), so the numbers are the
application's own cost, not the network's; each block is timed up to the flush of its own
spans, so the batch thread's work counts for the variant that caused it.

**End-to-end rows** (``overhead_e2e.py``, ``overhead_e2e_child.py``): the SQLite workload as
whole processes, ``cursor.execute`` of the valid ISBN-13 mix (``--mix`` picks another): 10k
autocommit INSERTs on a WAL file (the predecessor's benchmark, at default settings) and 50k
INSERTs in one transaction (where the default sampler goes to aggregated mode). Variants, in
turns after one warm-up round:

* ``plain python`` — the child alone, no ``OTEL_*`` variable;
* ``otel-instrument, dbpulse`` — ``opentelemetry-instrument python ...``, default settings
  (dbpulse's distro and sampler), exporters ``none``: spans and metrics are made and dropped;
* ``otel-instrument, stock contrib`` — the same with the upstream distro and configurator and
  dbpulse's instrumentors disabled: opentelemetry-instrumentation-sqlite3;
* ``otel-instrument, OTEL_SDK_DISABLED=true`` — the dbpulse variant with the SDK disabled.

Columns: process wall and CPU (user + system from ``wait4``, medians); ``added CPU / plain
wall`` = (variant CPU - plain CPU) / plain wall, start-up included; the same variant's start-up
alone (the child with no rows); the insert loop as the child timed it, per op; and the loop's
added CPU over plain's loop wall, start-up excluded. The target for the 10k autocommit INSERTs
at default settings is ≤ 2% added CPU over raw wall. Every run checks who wrapped the child's
cursor: an install whose entry points do not load (stale metadata, say) skips the rows, loudly,
instead of timing an unobserved workload.

The one use of dbpulse internals is ``Pipeline.mode`` (``overhead_inprocess.py``), which forces
the sampler's mode for the aggregated/detailed/default variants.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from overhead_e2e import E2E_HEADER, e2e_workload, print_e2e
from overhead_inprocess import (
    Pipeline,
    Samples,
    duckdb_insert_workload,
    duckdb_relation_workload,
    psycopg_workload,
    redis_workload,
    sqlite_workload,
)
from overhead_mixes import MIXES

VALID = MIXES["valid ISBN-13"]


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )


def inprocess_workloads(
    pipeline: Pipeline, tmp: Path, quick: bool
) -> list[tuple[str, str, Callable[[], Samples]]]:
    """(workload, mix, run) for every in-process row group, in table order."""
    rounds = 6 if quick else 30
    block = 200 if quick else 1000
    net_block = 50 if quick else 200
    autocommit_block = 1000 if quick else 10_000
    out: list[tuple[str, str, Callable[[], Samples]]] = []
    for kind, title in (("cursor", "cursor.execute"), ("conn", "conn.execute")):
        for mix in MIXES.values():
            run = partial(sqlite_workload, kind, mix, pipeline, tmp, block, rounds)
            out.append((f"sqlite {title} INSERT (1 txn)", mix.name, run))
    # The predecessor's benchmark; "dbpulse default" starts each block from a fresh sampler.
    run = partial(
        sqlite_workload, "autocommit", VALID, pipeline, tmp, autocommit_block, max(3, rounds // 6)
    )
    out.append((f"sqlite {autocommit_block} autocommit INSERT, WAL", VALID.name, run))
    for title, workload in (
        ("psycopg INSERT (loopback)", psycopg_workload),
        ("redis SET+GET (loopback, per pair)", redis_workload),
    ):
        for mix in MIXES.values():
            out.append((title, mix.name, partial(workload, mix, pipeline, net_block, rounds)))
    for mix in MIXES.values():
        run = partial(duckdb_insert_workload, mix, pipeline, tmp, block, rounds)
        out.append(("duckdb execute INSERT, parameters (1 txn)", mix.name, run))
    run = partial(duckdb_relation_workload, VALID, pipeline, tmp, block, rounds)
    out.append(("duckdb relation fetchall, same relation again", VALID.name, run))
    return out


def print_inprocess(results: list[tuple[str, str, Samples]]) -> None:
    print(
        "| workload | mix | variant | wall µs/op | added wall µs/op | CPU µs/op "
        "| added CPU µs/op | added CPU / raw wall |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for title, mix, samples in results:
        raw_wall = statistics.median(w for w, _ in samples["raw"])
        raw_cpu = statistics.median(c for _, c in samples["raw"])
        for variant, values in samples.items():
            wall = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            print(
                f"| {title} | {mix} | {variant} | {wall:.2f} | {wall - raw_wall:+.2f} "
                f"| {cpu:.2f} | {cpu - raw_cpu:+.2f} | {(cpu - raw_cpu) / raw_wall * 100:+.1f}% |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller blocks")
    parser.add_argument("--only", help="run workloads whose title contains this text")
    parser.add_argument("--mix", choices=list(MIXES), help="one data mix only")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end rows")
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end rows")
    parser.add_argument("--e2e-rounds", type=int, help="counted runs per e2e variant")
    args = parser.parse_args()
    inprocess: list[tuple[str, str, Samples]] = []
    e2e: list[tuple[str, int, dict]] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if not args.e2e_only:
            pipeline = Pipeline()
            for title, mix, run in inprocess_workloads(pipeline, tmp, args.quick):
                if (args.only and args.only not in title) or (args.mix and args.mix != mix):
                    continue
                print(f"{title} / {mix} ...", file=sys.stderr)
                try:
                    inprocess.append((title, mix, run()))
                except Exception as exc:  # a missing server skips its workload, loudly
                    print(f"  skipped: {exc!r}", file=sys.stderr)
            pipeline.telemetry.shutdown()
        if not args.no_e2e:
            rounds = args.e2e_rounds or (2 if args.quick else 5)
            scale = 10 if args.quick else 1
            e2e_mix = MIXES[args.mix] if args.mix else VALID
            for title, n, autocommit in (
                (f"{10_000 // scale} autocommit INSERT, WAL", 10_000 // scale, True),
                (f"{50_000 // scale} INSERT in 1 txn", 50_000 // scale, False),
            ):
                if args.only and args.only not in title:
                    continue
                print(f"e2e {title} / {e2e_mix.name} ...", file=sys.stderr)
                try:
                    results = e2e_workload(title, e2e_mix, n, autocommit, tmp, rounds)
                except RuntimeError as exc:  # a broken install or a failing child, loudly
                    print(f"  skipped: {exc}", file=sys.stderr)
                    continue
                e2e.append((f"{title} ({e2e_mix.name})", n, results))
    print(f"Machine: {_machine()}.\n")
    if inprocess:
        print("In-process, variants taking turns; medians over the blocks.\n")
        print_inprocess(inprocess)
        print()
    if e2e:
        print("End to end: whole processes in turns, medians of the counted runs.\n")
        print(E2E_HEADER)
        for title, n, results in e2e:
            print_e2e(title, n, results)


if __name__ == "__main__":
    main()
