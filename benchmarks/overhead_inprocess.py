"""In-process workloads of ``overhead.py``: variants on their own connections, taking turns.

Each workload builds one runner per variant (``raw``, ``contrib``, ``dbpulse aggregated``,
``dbpulse detailed``, for the autocommit workload also ``dbpulse default``, for the SQLite cursor
"no keys" workload also ``dbpulse aggregated, user MeterProvider``: dbpulse given an
application-built provider with an ``InMemoryMetricReader``, collected once after the turns,
outside the timing, as a reader collects once per export interval) and
:func:`take_turns` runs them in alternating order, block by block, each block on rows no block
saw before (see ``overhead_mixes``).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from overhead_mixes import Mix, Row, redis_items

Samples = dict[str, list[tuple[float, float]]]
Runner = Callable[[list[Any]], None]

SQLITE_INSERT = "INSERT INTO books (isbn, title, price, copies) VALUES (?, ?, ?, ?)"
PG_INSERT = "INSERT INTO {table} (isbn, title, price, copies) VALUES (%s, %s, %s, %s)"
VARIANTS = ("raw", "contrib", "dbpulse aggregated", "dbpulse detailed")
USER_PROVIDER = "dbpulse aggregated, user MeterProvider"


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
            """Counts and drops: the numbers are the application's cost, not the network's."""

            def __init__(self) -> None:
                self.spans = 0

            def export(self, spans: Any) -> SpanExportResult:
                self.spans += len(spans)
                return SpanExportResult.SUCCESS

        import dbpulse

        self.raw_sqlite_connect = sqlite3.connect  # before instrumenting
        self.contrib_spans, self.dbpulse_spans = Discard(), Discard()
        self.contrib_provider = TracerProvider()
        self.contrib_provider.add_span_processor(BatchSpanProcessor(self.contrib_spans))
        self.telemetry = dbpulse.configure(
            service_name="bench", span_processors=[BatchSpanProcessor(self.dbpulse_spans)]
        )
        dbpulse.instrument(systems=("sqlite", "postgresql", "redis"))
        # An application's own MeterProvider and in-memory reader, given to instrument() too.
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        self.user_reader = InMemoryMetricReader()
        self.user_provider = MeterProvider(metric_readers=[self.user_reader])
        dbpulse.uninstrument(systems=("sqlite",))
        dbpulse.instrument(systems=("sqlite",), meter_provider=self.user_provider)
        self.dbpulse = dbpulse

    @staticmethod
    def mode(variant: str) -> None:
        """Put dbpulse's sampler where the variant wants it before its block runs.

        The one use of dbpulse internals in the benchmarks: the process-wide load monitor that
        the adaptive sampler reads (``dbpulse.telemetry.sampler.LOAD``), given bands that force
        a mode. Everything else goes through ``dbpulse.configure/instrument/set_enabled``.
        """
        from dbpulse.telemetry.sampler import DEFAULT_BANDS, LOAD

        if variant.startswith("dbpulse aggregated"):
            LOAD.configure(((1e-9, 0.0),))  # any rate is "above the last band": no span
            LOAD.probability = 0.0
        elif variant == "dbpulse detailed":
            LOAD.configure(())  # no bands: every span kept
        elif variant == "dbpulse default":
            LOAD.configure(DEFAULT_BANDS)  # a fresh sampler, as at application start

    def flush(self) -> None:
        self.telemetry.tracer_provider.force_flush()
        self.contrib_provider.force_flush()

    def user_histogram_count(self) -> int:
        """Operations in the user provider's ``db.client.operation.duration`` (a collection)."""
        data = self.user_reader.get_metrics_data()
        if data is None:
            return 0
        return sum(
            point.count
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "db.client.operation.duration"
            for point in m.data.data_points
        )

    def span_counts(self) -> tuple[int, int]:
        """(contrib, dbpulse) spans exported so far: a check that each variant did its work."""
        return self.contrib_spans.spans, self.dbpulse_spans.spans


def take_turns(
    runners: dict[str, Runner],
    pipeline: Pipeline,
    make_data: Callable[[int], list[Any]],
    *,
    rounds: int,
) -> Samples:
    """Run ``rounds`` blocks per variant, in turns; each block on ``make_data(unique number)``.

    Returns per block (wall µs/op, CPU µs/op); CPU is the whole process's (all threads)."""
    samples: Samples = {name: [] for name in runners}
    block_no = 0
    for round_no in range(rounds):
        order = list(runners.items())
        if round_no % 2:
            order.reverse()  # nobody always goes first
        for name, run in order:
            data = make_data(block_no)  # outside the timing
            block_no += 1
            pipeline.mode(name)
            start, cpu_start = time.perf_counter(), time.process_time()
            run(data)
            # The variant's own spans are exported within its time: the batch thread's work is
            # the application's cost too, and must not spill into the next variant's block.
            pipeline.flush()
            wall = (time.perf_counter() - start) / len(data) * 1e6
            cpu = (time.process_time() - cpu_start) / len(data) * 1e6
            samples[name].append((wall, cpu))
    return samples


def _blocks(mix: Mix, block: int) -> Callable[[int], list[Row]]:
    return lambda block_no: mix.make(block_no * block, block)


def _report_spans(pipeline: Pipeline, before: tuple[int, int]) -> None:
    contrib, ours = pipeline.span_counts()
    print(
        f"  spans exported: contrib {contrib - before[0]}, dbpulse {ours - before[1]}",
        file=sys.stderr,
    )


def sqlite_workload(
    kind: str, mix: Mix, pipeline: Pipeline, tmp: Path, block: int, rounds: int
) -> Samples:
    """``kind``: ``cursor``/``conn`` (one transaction per block) or ``autocommit`` (WAL file)."""
    names = [*VARIANTS, "dbpulse default"] if kind == "autocommit" else list(VARIANTS)
    if kind == "cursor" and mix.name == "no keys":
        names.append(USER_PROVIDER)
    autocommit = kind == "autocommit"
    runners: dict[str, Runner] = {}
    for i, name in enumerate(names):
        path = tmp / f"{kind}-{mix.name.split()[0]}-{i}.db"
        connect = pipeline.raw_sqlite_connect if name in ("raw", "contrib") else sqlite3.connect
        conn: Any = connect(path, isolation_level=None if autocommit else "DEFERRED")
        if autocommit:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE books (isbn, title, price, copies)")
        if name == "contrib":
            from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

            conn = SQLite3Instrumentor.instrument_connection(
                conn, tracer_provider=pipeline.contrib_provider
            )
        runners[name] = _sqlite_runner(kind, conn)
    before = pipeline.span_counts()
    samples = take_turns(runners, pipeline, _blocks(mix, block), rounds=rounds)
    _report_spans(pipeline, before)
    if USER_PROVIDER in runners:
        start = time.perf_counter()
        count = pipeline.user_histogram_count()
        took = (time.perf_counter() - start) * 1e3
        print(
            f"  user MeterProvider's reader: db.client.operation.duration count {count} "
            f"(every dbpulse variant's operations so far), one collection {took:.1f} ms",
            file=sys.stderr,
        )
    return samples


def _sqlite_runner(kind: str, conn: Any) -> Runner:
    if kind == "cursor":
        cur = conn.cursor()

        def run(data: list[Row]) -> None:
            for row in data:
                cur.execute(SQLITE_INSERT, row)
            conn.commit()

    elif kind == "conn":

        def run(data: list[Row]) -> None:
            for row in data:
                conn.execute(SQLITE_INSERT, row)
            conn.commit()

    else:

        def run(data: list[Row]) -> None:
            for row in data:
                conn.execute(SQLITE_INSERT, row)

    return run


def _switched(pipeline: Pipeline, name: str, body: Runner) -> Runner:
    """psycopg and redis-py are instrumented on their classes: raw and contrib blocks run with
    dbpulse switched off (one flag check per call, the README's "off" line)."""
    observed = name.startswith("dbpulse")

    def run(data: list[Any]) -> None:
        pipeline.dbpulse.set_enabled(observed)
        try:
            body(data)
        finally:
            pipeline.dbpulse.set_enabled(True)

    return run


def psycopg_workload(mix: Mix, pipeline: Pipeline, block: int, rounds: int) -> Samples:
    import psycopg
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as Contrib

    dsn = os.environ.get(
        "DBPULSE_TEST_POSTGRES_DSN", "postgresql://dbpulse:dbpulse@127.0.0.1:5432/dbpulse"
    )
    runners: dict[str, Runner] = {}
    connections = []
    for i, name in enumerate(VARIANTS):
        pipeline.dbpulse.set_enabled(name.startswith("dbpulse"))  # setup unseen for raw/contrib
        conn = psycopg.connect(dsn, autocommit=True)
        table = f"bench_{os.getpid()}_{i}"
        key, title, price, copies = mix.columns.split(", ")
        conn.execute(
            f"CREATE TEMP TABLE {table} (isbn {key}, title {title}, price {price}, copies {copies})"
        )
        if name == "contrib":
            conn = Contrib.instrument_connection(conn, tracer_provider=pipeline.contrib_provider)
        pipeline.dbpulse.set_enabled(True)
        connections.append(conn)
        cur = conn.cursor()
        sql = PG_INSERT.format(table=table)

        def body(data: list[Row], cur: Any = cur, sql: str = sql) -> None:
            for row in data:
                cur.execute(sql, row)

        runners[name] = _switched(pipeline, name, body)
    before = pipeline.span_counts()
    try:
        samples = take_turns(runners, pipeline, _blocks(mix, block), rounds=rounds)
    finally:
        for conn in connections:
            conn.close()
    _report_spans(pipeline, before)
    return samples


def redis_workload(mix: Mix, pipeline: Pipeline, block: int, rounds: int) -> Samples:
    """One op = ``SET key value EX 600`` + ``GET key``; keys carry the mix's key column."""
    import redis
    from opentelemetry.instrumentation.redis import RedisInstrumentor as Contrib

    url = os.environ.get("DBPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"dbpulse-bench:{os.getpid()}:"  # the server is shared: own keys, expiring
    runners: dict[str, Runner] = {}
    clients = []
    for name in VARIANTS:
        client = redis.Redis.from_url(url)
        if name == "contrib":
            Contrib.instrument_client(client, tracer_provider=pipeline.contrib_provider)
        clients.append(client)

        def body(data: list[tuple[str, str]], client: Any = client) -> None:
            for key, value in data:
                client.set(key, value, ex=600)
                client.get(key)

        runners[name] = _switched(pipeline, name, body)

    def make_data(block_no: int) -> list[tuple[str, str]]:
        items = redis_items(mix.make(block_no * block, block))
        return [(prefix + key, value) for key, value in items]

    before = pipeline.span_counts()
    try:
        samples = take_turns(runners, pipeline, make_data, rounds=rounds)
    finally:
        pipeline.dbpulse.set_enabled(False)
        keys = list(clients[0].scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            clients[0].unlink(*keys[i : i + 500])
        pipeline.dbpulse.set_enabled(True)
        for client in clients:
            client.close()
    _report_spans(pipeline, before)
    return samples


DUCKDB_VARIANTS = ("raw", "dbpulse aggregated", "dbpulse detailed")  # no contrib exists
DUCKDB_SUMMARY = "SELECT count(*), avg(price), max(copies) FROM books WHERE copies > 1"


def _duckdb_connections(pipeline: Pipeline, tmp: Path, label: str, columns: str) -> dict[str, Any]:
    """A DuckDB file per variant with a typed ``books`` table; ``raw`` unwrapped (dbpulse's
    proxy taken off: the compiled connection alone), the others observed."""
    import duckdb

    from dbpulse import DuckDBInstrumentor

    pipeline.dbpulse.instrument(systems=("duckdb",))
    key, title, price, copies = columns.split(", ")
    connections: dict[str, Any] = {}
    for i, name in enumerate(DUCKDB_VARIANTS):
        conn = duckdb.connect(str(tmp / f"duckdb-{label}-{os.getpid()}-{i}.duckdb"))
        if name == "raw":
            conn = DuckDBInstrumentor.uninstrument_connection(conn)
        conn.execute(
            f"CREATE TABLE books (isbn {key}, title {title}, price {price}, copies {copies})"
        )
        connections[name] = conn
    return connections


def duckdb_insert_workload(
    mix: Mix, pipeline: Pipeline, tmp: Path, block: int, rounds: int
) -> Samples:
    """Small INSERTs through ``execute`` with a parameter list, one transaction per block."""
    connections = _duckdb_connections(pipeline, tmp, mix.name.split()[0], mix.columns)
    runners: dict[str, Runner] = {}
    for name, conn in connections.items():

        def run(data: list[Row], conn: Any = conn) -> None:
            conn.begin()
            for row in data:
                conn.execute(SQLITE_INSERT, list(row))
            conn.commit()

        runners[name] = run
    before = pipeline.span_counts()
    try:
        samples = take_turns(runners, pipeline, _blocks(mix, block), rounds=rounds)
    finally:
        for conn in connections.values():
            conn.close()
    _report_spans(pipeline, before)
    return samples


def duckdb_relation_workload(
    mix: Mix, pipeline: Pipeline, tmp: Path, block: int, rounds: int, rows: int = 1000
) -> Samples:
    """One relation built per variant (``rel = conn.sql(...)``) and fetched ``block`` times a
    block (``rel.fetchall()``): each fetch runs the aggregate over ``rows`` rows again."""
    connections = _duckdb_connections(pipeline, tmp, "relation", mix.columns)
    runners: dict[str, Runner] = {}
    for name, conn in connections.items():
        conn.executemany(SQLITE_INSERT, [list(row) for row in mix.make(0, rows)])
        relation = conn.sql(DUCKDB_SUMMARY)

        def run(data: list[int], relation: Any = relation) -> None:
            for _ in data:
                relation.fetchall()

        runners[name] = run
    before = pipeline.span_counts()
    try:
        samples = take_turns(runners, pipeline, lambda _: list(range(block)), rounds=rounds)
    finally:
        for conn in connections.values():
            conn.close()
    _report_spans(pipeline, before)
    return samples
