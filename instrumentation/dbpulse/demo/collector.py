"""The ISBN collector: a book-price collector writing to SQLite and to PostgreSQL.

It plays an application that collects book prices: per tick it picks a book from the demo
catalogue (popular books more often) and records it in its local SQLite file and in the shared
PostgreSQL database, whose connections come from a ``psycopg_pool`` pool. Inserts of new
books, price updates, price history rows, some deletes (withdrawn books) and reads by ISBN: the
database dashboard's operations, latency, rows written, top ISBNs and pool panels, and the
sphere's orbs when the viz feed is on (``DBPULSE_VIZ_URL``)::

    options = CollectorOptions(sqlite_path="books.db", postgres_dsn="postgresql://...")
    with stop_on_signals() as stop:
        report = run_collector(options, stop)

Run it as ``dbpulse demo collector`` (under ``opentelemetry-instrument`` for telemetry).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dbpulse.demo.books import Catalogue
from dbpulse.demo.running import paced

__all__ = ["CollectorOptions", "CollectorReport", "run_collector"]

_log = logging.getLogger(__name__)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
#: Held while creating the PostgreSQL tables: two collectors starting together would race
#: ``CREATE TABLE IF NOT EXISTS``.
_SCHEMA_LOCK = 74_063


@dataclass
class CollectorOptions:
    sqlite_path: str = "books.db"
    postgres_dsn: str | None = None
    """``None``: SQLite only."""
    rate: float = 20.0
    """Ticks per second; each tick writes once to each database, every 5th also reads."""
    isbns: int = 5000
    table: str = "books"
    """The books table; price history goes to ``<table>_prices``."""
    pool_size: int = 4
    pool_name: str = "collector"
    duration: float | None = None
    seed: int | None = 7

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.table):
            raise ValueError(f"table {self.table!r} is not a plain identifier")


@dataclass
class CollectorReport:
    writes: dict[str, int] = field(
        default_factory=lambda: {"insert": 0, "update": 0, "delete": 0, "price": 0}
    )
    reads: int = 0
    errors: int = 0


def _schema(table: str, *, postgres: bool) -> list[str]:
    real = "double precision" if postgres else "REAL"
    return [
        f"CREATE TABLE IF NOT EXISTS {table} "
        f"(isbn TEXT PRIMARY KEY, title TEXT, price {real}, updated {real})",
        f"CREATE TABLE IF NOT EXISTS {table}_prices (isbn TEXT, price {real}, seen {real})",
    ]


class _Books:
    """One database's copy of the books: the same statements, in its parameter style."""

    def __init__(self, execute: Any, marker: str, table: str) -> None:
        self.execute = execute
        self.table = table
        self.p = marker

    def apply(self, action: str, isbn: str, title: str, price: float) -> None:
        p, table, now = self.p, self.table, time.time()
        if action == "insert":
            # An upsert: a restarted collector finds the books an earlier run left behind.
            self.execute(
                f"INSERT INTO {table} (isbn, title, price, updated) VALUES ({p}, {p}, {p}, {p}) "
                "ON CONFLICT (isbn) DO UPDATE SET price = excluded.price",
                (isbn, title, price, now),
            )
        elif action == "delete":
            self.execute(f"DELETE FROM {table} WHERE isbn = {p}", (isbn,))
        elif action == "price":
            self.execute(
                f"INSERT INTO {table}_prices (isbn, price, seen) VALUES ({p}, {p}, {p})",
                (isbn, price, now),
            )
        else:
            self.execute(
                f"UPDATE {table} SET price = {p}, updated = {p} WHERE isbn = {p}",
                (price, now, isbn),
            )

    def read(self, isbn: str) -> None:
        self.execute(
            f"SELECT title, price FROM {self.table} WHERE isbn = {self.p}", (isbn,)
        ).fetchall()


def _open_sqlite(options: CollectorOptions) -> sqlite3.Connection:
    conn = sqlite3.connect(options.sqlite_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in _schema(options.table, postgres=False):
        conn.execute(statement)
    return conn


def _open_pool(options: CollectorOptions) -> Any:
    import psycopg_pool  # the postgres extra

    pool = psycopg_pool.ConnectionPool(
        options.postgres_dsn or "",
        min_size=1,
        max_size=options.pool_size,
        name=options.pool_name,
        kwargs={"autocommit": True},
        open=True,
    )
    with pool.connection() as conn, conn.transaction():
        conn.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        for statement in _schema(options.table, postgres=True):
            conn.execute(statement)
    return pool


def _action(present: set[str], isbn: str, roll: float) -> str:
    """New books are inserted; known ones mostly get a new price, a few are withdrawn."""
    if isbn not in present:
        return "insert"
    if roll < 0.06:
        return "delete"
    return "price" if roll < 0.36 else "update"


def _apply(
    stores: list[_Books], action: str, isbn: str, title: str, price: float, read: bool
) -> int:
    """One action on every store; the number of stores where it failed."""
    failed = 0
    for books in stores:
        try:
            books.apply(action, isbn, title, price)
            if read:
                books.read(isbn)
        except Exception as exc:
            failed += 1
            _log.warning("collector: %s of %s failed: %s", action, isbn, exc)
    return failed


def run_collector(
    options: CollectorOptions, stop: threading.Event | None = None
) -> CollectorReport:
    """Collect until ``stop`` is set (or ``duration`` passes); returns what was written."""
    stop = stop or threading.Event()
    report = CollectorReport()
    catalogue = Catalogue(options.isbns, seed=options.seed)
    lite = _open_sqlite(options)
    local = _Books(lite.execute, "?", options.table)
    present = {row[0] for row in lite.execute(f"SELECT isbn FROM {options.table}").fetchall()}
    pool = _open_pool(options) if options.postgres_dsn else None
    try:
        for tick in paced(options.rate, stop, options.duration):
            isbn = catalogue.pick()
            action = _action(present, isbn, catalogue.rng.random())
            args = (action, isbn, catalogue.title(isbn), catalogue.price(), tick % 5 == 0)
            if pool is None:
                report.errors += _apply([local], *args)
            else:
                with pool.connection() as conn:
                    report.errors += _apply(
                        [local, _Books(conn.execute, "%s", options.table)], *args
                    )
            if action == "insert":
                present.add(isbn)
            elif action == "delete":
                present.discard(isbn)
            report.writes[action] += 1
            report.reads += tick % 5 == 0
    finally:
        if pool is not None:
            pool.close()
        lite.close()
    return report
