"""``dbpulse.retry`` against a real locked SQLite file, and the 8-process lock storm."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace

import dbpulse
from dbpulse.health.retry import RETRIES, _Loop, is_lock_error
from tests.health._storm import writer


@pytest.fixture(autouse=True)
def _counts() -> Iterator[None]:
    RETRIES.reset()
    yield
    RETRIES.reset()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "locked.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    conn.close()
    return path


def hold_lock(path: Path, seconds: float | None) -> sqlite3.Connection:
    """A connection holding the write lock; released after ``seconds`` (never if None)."""
    holder = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    if seconds is not None:
        threading.Timer(seconds, holder.rollback).start()
    return holder


def test_a_lock_released_later_is_waited_out(db: Path) -> None:
    conn = sqlite3.connect(db, timeout=0)
    calls = 0

    @dbpulse.retry(max_attempts=8, initial_delay=0.05)
    def write(value: str) -> str:
        nonlocal calls
        calls += 1
        with conn:
            conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    hold_lock(db, 0.3)
    started = time.monotonic()
    assert write("a") == "a"
    assert time.monotonic() - started >= 0.25
    assert calls > 1
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    assert RETRIES.total("retried") == calls - 1
    assert RETRIES.total("succeeded_after_retry") == 1
    assert RETRIES.total("gave_up") == 0


def test_after_the_last_attempt_the_original_exception_is_raised(db: Path) -> None:
    conn = sqlite3.connect(db, timeout=0)
    raised: list[BaseException] = []

    def write() -> None:
        try:
            with conn:
                conn.execute("INSERT INTO t (v) VALUES ('b')")
        except sqlite3.OperationalError as exc:
            raised.append(exc)
            raise

    holder = hold_lock(db, None)
    with pytest.raises(sqlite3.OperationalError) as info:
        dbpulse.retry(max_attempts=3, initial_delay=0.01).call(write)
    holder.rollback()
    assert len(raised) == 3
    assert info.value is raised[-1]  # unchanged: same object, same traceback
    assert info.value.sqlite_errorname == "SQLITE_BUSY"
    assert RETRIES.total("retried") == 2 and RETRIES.total("gave_up") == 1


def test_other_errors_fail_fast(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO t (v) VALUES ('dup')")
    conn.commit()
    calls = 0

    @dbpulse.retry
    def duplicate() -> None:
        nonlocal calls
        calls += 1
        conn.execute("INSERT INTO t (v) VALUES ('dup')")

    with pytest.raises(sqlite3.IntegrityError):
        duplicate()
    assert calls == 1
    assert RETRIES.counts == {}


def test_the_deadline_bounds_the_whole_call(db: Path) -> None:
    conn = sqlite3.connect(db, timeout=0)
    holder = hold_lock(db, None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError):
        for attempt in dbpulse.retry(max_attempts=1000, initial_delay=0.02, deadline=0.3):
            with attempt:
                conn.execute("INSERT INTO t (v) VALUES ('c')")
    elapsed = time.monotonic() - started
    holder.rollback()
    assert elapsed < 0.6, elapsed
    assert RETRIES.total("gave_up") == 1


def test_backoff_doubles_with_jitter(db: Path) -> None:
    policy = dbpulse.retry(jitter=0)
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorname = "SQLITE_BUSY"  # type: ignore[attr-defined]
    loop = _Loop(policy)
    delays = [policy._after_failure(loop, number, error) for number in (1, 2, 3)]
    assert delays == [0.1, 0.2, 0.4]
    assert policy._after_failure(loop, 4, error) is None  # max_attempts=4 by default
    jittered = dbpulse.retry(jitter=0.25)
    values = {jittered._after_failure(loop, 1, error) for _ in range(50)}
    assert len(values) > 10 and all(0.075 <= v <= 0.125 for v in values)  # type: ignore[operator]


def test_lock_errors_are_recognised() -> None:
    psycopg_errors = pytest.importorskip("psycopg.errors")
    assert is_lock_error(psycopg_errors.SerializationFailure("x"))
    assert is_lock_error(psycopg_errors.DeadlockDetected("x"))
    assert not is_lock_error(psycopg_errors.UniqueViolation("x"))
    locked = sqlite3.OperationalError("database table is locked")
    locked.sqlite_errorname = "SQLITE_LOCKED_SHAREDCACHE"  # type: ignore[attr-defined]
    assert is_lock_error(locked)

    class Wrapped(Exception):  # SQLAlchemy's OperationalError keeps the driver's as .orig
        orig = psycopg_errors.DeadlockDetected("x")

    assert is_lock_error(Wrapped())
    assert not is_lock_error(ValueError("database is locked"))


async def test_async_decorator_and_loop(db: Path) -> None:
    conn = sqlite3.connect(db, timeout=0, check_same_thread=False)
    calls = 0

    @dbpulse.retry(max_attempts=10, initial_delay=0.05)
    async def write(value: str) -> str:
        nonlocal calls
        calls += 1
        with conn:
            conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        await asyncio.sleep(0)
        return value

    hold_lock(db, 0.2)
    assert await write("async") == "async"
    assert calls > 1
    hold_lock(db, 0.2)
    async for attempt in dbpulse.retry(max_attempts=10, initial_delay=0.05):
        with attempt, conn:
            conn.execute("INSERT INTO t (v) VALUES ('loop')")
    assert attempt.number > 1
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    assert RETRIES.total("succeeded_after_retry") == 2


def test_each_retry_is_a_span_event_and_counted(otel, db: Path) -> None:  # type: ignore[no-untyped-def]
    conn = dbpulse.sqlite_connect(str(db), busy_timeout_ms=0)
    hold_lock(db, 0.25)
    with trace.get_tracer("test").start_as_current_span("save"):
        for attempt in dbpulse.retry(max_attempts=10, initial_delay=0.05):
            with attempt, conn:
                conn.execute("INSERT INTO t (v) VALUES ('traced')")
    (save,) = [s for s in otel.spans() if s.name == "save"]
    events = [e for e in save.events if e.name == "dbpulse.retry"]
    assert len(events) == attempt.number - 1 >= 1
    assert [e.attributes["attempt"] for e in events] == list(range(1, attempt.number))
    assert {e.attributes["error.type"] for e in events} == {"SQLITE_BUSY"}
    assert all(e.attributes["delay_s"] > 0 for e in events)
    assert otel.value("dbpulse.db.retries", outcome="retried") == len(events)
    assert otel.value("dbpulse.db.retries", outcome="succeeded_after_retry") == 1
    # The connection from sqlite_connect is traced like any other.
    assert any(s.attributes.get("db.system.name") == "sqlite" for s in otel.spans())


def test_sqlite_connect_sets_wal_and_busy_timeout(tmp_path: Path) -> None:
    conn = dbpulse.sqlite_connect(str(tmp_path / "app.db"))
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA busy_timeout").fetchone() == (30000,)
    plain = dbpulse.sqlite_connect(str(tmp_path / "plain.db"), wal=False, busy_timeout_ms=1500)
    assert plain.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert plain.execute("PRAGMA busy_timeout").fetchone() == (1500,)


def test_lock_storm_loses_no_write(tmp_path: Path) -> None:
    """8 writer processes, one file, a 1 ms busy timeout: every write lands, retries counted."""
    path = tmp_path / "storm.db"
    setup = dbpulse.sqlite_connect(str(path))
    setup.execute("CREATE TABLE writes (worker INTEGER, seq INTEGER, PRIMARY KEY (worker, seq))")
    setup.commit()
    workers, writes = 8, 150
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.starmap(writer, [(str(path), w, writes) for w in range(workers)])
    (rows,) = setup.execute("SELECT count(*) FROM writes").fetchone()
    attempted = sum(r["attempted"] for r in results)
    retried = sum(r["retried"] for r in results)
    max_used = max(r["max_attempts_used"] for r in results)
    print(
        f"\nlock storm: {workers} processes, writes attempted {attempted}, rows present {rows}, "
        f"retries {retried}, max attempts used {max_used}, app-visible errors "
        f"{sum(r['errors'] for r in results)}"
    )
    assert rows == attempted == workers * writes
    assert sum(r["errors"] for r in results) == 0
    assert retried > 0, "the storm never hit a lock: make it stormier"
    assert sum(r["counted_retried"] for r in results) == retried
    assert sum(r["counted_gave_up"] for r in results) == 0
    assert sum(r["counted_succeeded"] for r in results) <= retried
