"""Demo workloads for the Grafana proof: real dbpulse-instrumented applications.

Each role runs in its own process under its own ``service.name``, builds its SDK with
``dbpulse.configure()`` from the ``OTEL_*`` variables (OTLP to the harness collector, short
export interval) and instruments the real drivers with ``dbpulse.instrument()``::

    python -m tests.grafana.workload db --mode steady --sqlite /tmp/books.db \\
        --postgres postgresql://... --redis redis://... --stop-file /tmp/stop
    python -m tests.grafana.workload producer --channel a --channel b --stop-file /tmp/stop
    python -m tests.grafana.workload consumer --channel a --drop 0.5 --seconds 20

Roles and what they make visible:

``db --mode steady``
    SQLite and PostgreSQL (through a ``psycopg_pool`` pool) inserts, updates and reads of
    books with ISBNs, Redis GET/SET with hits and misses: operations/s, latency, writes by
    table and ISBN, pool connections, sampling mode. No errors.
``db --mode fault``
    A few writes first, then none (the "no writes" alert), failing statements (error rate),
    slow reads (latency alert), lock errors (``SQLITE_BUSY``, SQLSTATE ``55P03``), a pool
    exhausted by held connections (pending requests, timeouts) and a viz feed pointed at a
    closed port with a tiny queue (dbpulse's own drop counter).
``producer``
    ``dbpulse.flow.publish`` to each channel at ``--rate`` flows/s, with a heartbeat.
``consumer``
    ``dbpulse.flow.Subscriber`` with a heartbeat; ``--drop``/``--delay`` make stuck and slow
    flows; ``--seconds`` ends it (its heartbeat then goes silent).
``health --health-dir DIR``
    An app whose ``DBPULSE_HEALTH_TARGETS`` (set by the caller) names three SQLite files it
    keeps in DIR: ``ok.db`` (WAL, a fresh row every 0.5 s: healthy), ``big.db`` (rollback
    journal, rows two hours old, extended to 1.1 GB without using the disk: size, status and
    no-new-rows faults) and ``wal.db`` (a reader holding a snapshot open while a writer
    appends: the WAL grows past 16 MB, then writing stops at 32 MB).
``storm``
    Four writer threads on one SQLite file through ``dbpulse.retry`` with a 1 ms busy timeout
    for ``--storm-seconds`` (default 30), then idle until stopped: the lock storm, and after
    it the quiet.

Every role prints one JSON line (what it did) on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

#: Valid ISBN-13s (checksums hold); the steady workload writes them with skewed frequency so
#: the top-10 panel has a ranking.
ISBNS = (
    "9780306406157",
    "9780131103627",
    "9780262033848",
    "9781492052203",
    "9780140449136",
    "9780596007126",
    "9780321125217",
    "9781449355739",
    "9780132350884",
    "9780201633610",
    "9780134685991",
    "9781617294136",
)
TABLE = "gf_books"


def _stopped(stop_file: str | None, deadline: float) -> bool:
    return time.monotonic() >= deadline or (stop_file is not None and Path(stop_file).exists())


# -- databases ------------------------------------------------------------------------------


def _create_postgres_table(pool: Any) -> None:
    # The steady and fault workloads start together: CREATE TABLE IF NOT EXISTS races.
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(74062)")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (isbn TEXT, title TEXT, copies INT)")


def _db_steady(args: argparse.Namespace, report: dict[str, Any]) -> None:
    import psycopg_pool
    import redis

    lite = sqlite3.connect(args.sqlite, isolation_level=None)
    lite.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (isbn TEXT, title TEXT, copies INT)")
    pool = psycopg_pool.ConnectionPool(
        args.postgres, min_size=1, max_size=3, name="gf-steady", open=True
    )
    _create_postgres_table(pool)
    cache = redis.Redis.from_url(args.redis)
    tracer = trace.get_tracer("gf.steady.http")
    deadline = time.monotonic() + args.seconds
    i = 0
    while not _stopped(args.stop_file, deadline):
        # Skewed: ISBN k is written about 1/(k+1) as often as the first.
        isbn = ISBNS[(i * i) % len(ISBNS) if i % 3 else 0]
        lite.execute(f"INSERT INTO {TABLE} (isbn, title, copies) VALUES (?, ?, 1)", (isbn, "t"))
        lite.execute(f"UPDATE {TABLE} SET copies = copies + 1 WHERE isbn = ?", (isbn,))
        lite.execute(f"SELECT title FROM {TABLE} WHERE isbn = ?", (isbn,)).fetchall()
        with pool.connection() as conn:
            conn.execute(
                f"INSERT INTO {TABLE} (isbn, title, copies) VALUES (%s, %s, 1)", (isbn, "t")
            )
            conn.execute(f"SELECT title FROM {TABLE} WHERE isbn = %s LIMIT 1", (isbn,)).fetchall()
        cache.set(f"gf:book:{isbn}", "t", ex=60)
        cache.get(f"gf:book:{isbn}")
        cache.get(f"gf:missing:{i}")
        report["ops"] = report.get("ops", 0) + 8
        if i % 10 == 0:  # an N+1 page: one SELECT per book under one request (the N+1 panel)
            with tracer.start_as_current_span("GET /shelf", kind=SpanKind.SERVER):
                for book in ISBNS[:6]:
                    lite.execute(f"SELECT title FROM {TABLE} WHERE isbn = ?", (book,)).fetchall()
            report["n_plus_one_pages"] = report.get("n_plus_one_pages", 0) + 1
            report["ops"] += 6
        i += 1
        time.sleep(args.interval)
    pool.close()
    cache.close()
    lite.close()


def _sqlite_busy(path: str) -> int:
    """One SQLITE_BUSY: a second connection writes while the first holds the write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        other.execute(f"INSERT INTO {TABLE} (isbn, title, copies) VALUES ('x', 'busy', 1)")
    except sqlite3.OperationalError:
        return 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        other.close()
    return 0


def _postgres_lock_not_available(pool: Any) -> int:
    """One SQLSTATE 55P03: ``FOR UPDATE NOWAIT`` on a row another transaction holds."""
    import psycopg

    with pool.connection() as holder, pool.connection() as other:
        holder.execute(f"SELECT isbn FROM {TABLE} LIMIT 1 FOR UPDATE")
        try:
            other.execute(f"SELECT isbn FROM {TABLE} LIMIT 1 FOR UPDATE NOWAIT")
        except psycopg.errors.LockNotAvailable:
            other.rollback()
            return 1
        finally:
            holder.rollback()
    return 0


def _pool_exhausted(pool: Any, hold_seconds: float) -> int:
    """Hold every connection of the pool while another thread waits for one (and times out)."""
    import psycopg_pool

    held = [pool.getconn() for _ in range(pool.max_size)]
    timeouts = 0

    def wait() -> None:
        nonlocal timeouts
        try:
            pool.putconn(pool.getconn(timeout=hold_seconds / 2))
        except psycopg_pool.PoolTimeout:
            timeouts += 1

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(hold_seconds)
    for conn in held:
        pool.putconn(conn)
    waiter.join()
    return timeouts


def _db_fault(args: argparse.Namespace, report: dict[str, Any]) -> None:
    import psycopg
    import psycopg_pool

    lite = sqlite3.connect(args.sqlite, isolation_level=None)
    lite.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (isbn TEXT, title TEXT, copies INT)")
    pool = psycopg_pool.ConnectionPool(
        args.postgres, min_size=2, max_size=2, name="gf-fault", open=True
    )
    _create_postgres_table(pool)
    # The writes this service is expected to keep doing; afterwards it only reads and fails.
    for isbn in ISBNS[:4]:
        lite.execute(f"INSERT INTO {TABLE} (isbn, title, copies) VALUES (?, 't', 1)", (isbn,))
        with pool.connection() as conn:
            conn.execute(f"INSERT INTO {TABLE} (isbn, title, copies) VALUES (%s, 't', 1)", (isbn,))
    report["writes"] = 8
    report.update(sqlite_busy=0, lock_not_available=0, failed=0, slow=0, pool_timeouts=0)
    report["sqlite_busy"] += _sqlite_busy(args.sqlite)
    report["lock_not_available"] += _postgres_lock_not_available(pool)
    report["pool_timeouts"] += _pool_exhausted(pool, hold_seconds=1.0)
    deadline = time.monotonic() + args.seconds
    i = 0
    while not _stopped(args.stop_file, deadline):
        # Per round: 3 failing statements, 2 good reads, 1 slow read (~50% errors).
        for statement in ("INSERT INTO gf_missing_table (isbn) VALUES (?)",):
            with contextlib.suppress(sqlite3.OperationalError):
                lite.execute(statement, (ISBNS[i % len(ISBNS)],))
                report["failed"] += 1
        with pool.connection() as conn:
            for _ in range(2):
                try:
                    conn.execute("SELECT isbn FROM gf_missing_table LIMIT 1")
                except psycopg.errors.UndefinedTable:
                    conn.rollback()
                    report["failed"] += 1
            conn.execute(f"SELECT title FROM {TABLE} LIMIT 1").fetchall()
            conn.execute("SELECT pg_sleep(0.3)").fetchall()
            report["slow"] += 1
        lite.execute(f"SELECT title FROM {TABLE} LIMIT 1").fetchall()
        if i % 5 == 0:
            report["sqlite_busy"] += _sqlite_busy(args.sqlite)
            report["lock_not_available"] += _postgres_lock_not_available(pool)
        i += 1
        time.sleep(args.interval)
    pool.close()
    lite.close()


def _db(args: argparse.Namespace) -> dict[str, Any]:
    import dbpulse

    telemetry = dbpulse.configure()
    dbpulse.instrument()
    report: dict[str, Any] = {"role": "db", "mode": args.mode}
    try:
        (_db_fault if args.mode == "fault" else _db_steady)(args, report)
    finally:
        telemetry.shutdown()
    return report


# -- database health and the lock storm ----------------------------------------------------

HEALTH_TABLE = "events"
_WAL_CAP = 32 * 1024 * 1024


def _events(path: Path, journal: str, rows: int, age_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {HEALTH_TABLE} (at REAL, payload BLOB)")
    conn.execute("PRAGMA user_version = 3")
    conn.executemany(f"INSERT INTO {HEALTH_TABLE} (at) VALUES (?)", [(time.time() - age_s,)] * rows)
    return conn


def _health(args: argparse.Namespace) -> dict[str, Any]:
    import os

    import dbpulse

    folder = Path(args.health_dir)
    ok = _events(folder / "ok.db", "WAL", 10, 0)
    _events(folder / "big.db", "DELETE", 5, 7200).close()
    os.truncate(folder / "big.db", 1100 * 1024 * 1024)  # sparse: 1.1 GB that uses no disk
    wal = _events(folder / "wal.db", "WAL", 1, 0)
    reader = sqlite3.connect(folder / "wal.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute(f"SELECT count(*) FROM {HEALTH_TABLE}").fetchall()  # the old snapshot
    telemetry = dbpulse.configure()  # starts the health monitor (DBPULSE_HEALTH_TARGETS)
    dbpulse.instrument()
    deadline, rounds = time.monotonic() + args.seconds, 0
    blob = bytes(64 * 1024)
    wal_file = folder / "wal.db-wal"
    while not _stopped(args.stop_file, deadline):
        if rounds % 10 == 0:
            ok.execute(f"INSERT INTO {HEALTH_TABLE} (at) VALUES (?)", (time.time(),))
        if wal_file.stat().st_size < _WAL_CAP:
            wal.execute(f"INSERT INTO {HEALTH_TABLE} VALUES (?, ?)", (time.time(), blob))
        rounds += 1
        time.sleep(0.05)
    wal_bytes = wal_file.stat().st_size  # the last close checkpoints and removes it
    reader.execute("COMMIT")
    for conn in (ok, wal, reader):
        conn.close()
    telemetry.shutdown()
    return {"role": "health", "rounds": rounds, "wal_bytes": wal_bytes}


def _storm(args: argparse.Namespace) -> dict[str, Any]:
    import dbpulse

    telemetry = dbpulse.configure()
    dbpulse.instrument()
    path = args.sqlite
    setup = dbpulse.sqlite_connect(path, isolation_level=None)
    setup.execute("CREATE TABLE IF NOT EXISTS storm (worker INT, seq INT)")
    setup.close()
    storm_end = time.monotonic() + args.storm_seconds
    writes, gave_up = [0] * 4, [0] * 4

    def writer(worker: int) -> None:
        conn = dbpulse.sqlite_connect(path, busy_timeout_ms=1, isolation_level=None)
        policy = dbpulse.retry(max_attempts=200, initial_delay=0.001, max_delay=0.02)
        while time.monotonic() < storm_end:
            try:
                for attempt in policy:
                    with attempt:
                        conn.execute("BEGIN IMMEDIATE")
                        try:
                            conn.execute(
                                "INSERT INTO storm VALUES (?, ?)", (worker, writes[worker])
                            )
                            time.sleep(0.002)  # a transaction that holds the lock a moment
                            conn.execute("COMMIT")
                        except BaseException:
                            conn.execute("ROLLBACK")
                            raise
                writes[worker] += 1
            except sqlite3.OperationalError:
                gave_up[worker] += 1  # dbpulse.retry's deadline: counted, the storm goes on
        conn.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(len(writes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # After the storm: still alive and exporting, no more lock errors.
    deadline = time.monotonic() + args.seconds
    while not _stopped(args.stop_file, deadline):
        time.sleep(0.2)
    telemetry.shutdown()
    return {"role": "storm", "writes": sum(writes), "gave_up": sum(gave_up)}


# -- pattern flows --------------------------------------------------------------------------


def _producer(args: argparse.Namespace) -> dict[str, Any]:
    from dbpulse import configure
    from dbpulse.demo import flows as _flowdemo

    telemetry = configure()
    stop = threading.Event()
    reports: dict[str, Any] = {}

    def run(channel: str) -> None:
        options = _flowdemo.ProducerOptions(
            redis_url=args.redis,
            channel=channel,
            rate=args.rate,
            heartbeat_interval=args.heartbeat_interval,
            wait_subscribers=10.0,
            duration=args.seconds,
        )
        reports[channel] = _flowdemo.run_producer(options, stop).published

    threads = [threading.Thread(target=run, args=(c,)) for c in args.channel]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if args.stop_file and Path(args.stop_file).exists():
            stop.set()
        time.sleep(0.2)
    telemetry.shutdown()
    return {"role": "producer", "published": reports}


def _consumer(args: argparse.Namespace) -> dict[str, Any]:
    from dbpulse import configure
    from dbpulse.demo import flows as _flowdemo

    telemetry = configure()
    stop = threading.Event()
    result: dict[str, Any] = {}
    options = _flowdemo.ConsumerOptions(
        redis_url=args.redis,
        channel=args.channel[0],
        users=25,
        drop=args.drop,
        delay=args.delay,
        delay_seconds=args.delay_seconds,
        duration=args.seconds,
        heartbeat_interval=args.heartbeat_interval,
        seed=7,
    )
    thread = threading.Thread(
        target=lambda: result.update(vars(_flowdemo.run_consumer(options, stop)))
    )
    thread.start()
    while thread.is_alive():
        if args.stop_file and Path(args.stop_file).exists():
            stop.set()
        time.sleep(0.2)
    telemetry.shutdown()
    return {"role": "consumer", **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["db", "producer", "consumer", "health", "storm"])
    parser.add_argument("--mode", choices=["steady", "fault"], default="steady")
    parser.add_argument("--sqlite", default=":memory:")
    parser.add_argument("--postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--channel", action="append", default=[])
    parser.add_argument("--rate", type=float, default=5.0, help="flows/s per channel")
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--delay-seconds", type=float, default=0.3)
    parser.add_argument("--heartbeat-interval", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between rounds")
    parser.add_argument("--seconds", type=float, default=240.0, help="stop after (safety)")
    parser.add_argument("--stop-file", help="stop when this file exists")
    parser.add_argument("--health-dir", help="health: where its SQLite files are made")
    parser.add_argument("--storm-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    run = {
        "db": _db,
        "producer": _producer,
        "consumer": _consumer,
        "health": _health,
        "storm": _storm,
    }[args.role]
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
