"""Row counts of SQLite writes with ``RETURNING``, known only once their statement ends.

``INSERT ... RETURNING id`` (what Django and SQLAlchemy emit for autoincrement keys on SQLite)
reports ``rowcount == 0`` after ``execute``: SQLite steps the statement as the application
fetches, and adds the statement's rows to its counts when the statement ends (its last row is
read, or it is reset). The write is recorded at execute time with its duration; its rows (and
entity keys) are added when the statement ends:

- read to the end: the driver's ``rowcount``, now final;
- closed, or dropped unread: the rows SQLite adds to ``total_changes`` while the statement is
  reset (only the statement's own rows: a trigger's are added as they are made);
- executed again: the rest of its rows are read first (with no row factory), so the driver's
  ``rowcount`` is final;
- its connection closed: as when executed again, just before the connection closes;
- still pending when the process exits: as when executed again, before the SDK's last export.

Meanwhile the cursor's class is a subclass of its own that watches these methods, and it is
switched back once counted, so cursors of other statements pay nothing. A cursor made outside
dbpulse's classes (a proxied connection's own) counts one row per call, as a write with an
unknown count does.
"""

from __future__ import annotations

import atexit
import sqlite3
import weakref
from typing import Any

from dbpulse.core.pipeline import call_keys
from dbpulse.core.statements import Database, Statement
from dbpulse.telemetry.metrics import OPERATIONS

__all__ = ["count_when_read", "settle_all", "settle_connection"]

_classes: dict[type, type] = {}
# Cursors whose statement has not ended, so a closing connection can count them first.
_pending: weakref.WeakSet[Any] = weakref.WeakSet()
_close = sqlite3.Cursor.close
_fetchall = sqlite3.Cursor.fetchall
_at_exit: list[bool] = []  # settle_all is registered with atexit (once, at the first pending)


def count_when_read(cursor: Any, db: Database, stmt: Statement, params: Any) -> None:
    """Count ``stmt``'s rows on ``cursor`` once its statement ends. Never raises."""
    try:
        series = stmt.series_for(db, None)
        keys = call_keys(stmt, params)
        watching = _watching_class(type(cursor))
        if watching is None or cursor.rowcount > 0:
            OPERATIONS.add_rows(series, max(cursor.rowcount, 1), keys, stmt)
            return
        # SQLite has made every change (a trigger's too) by now, and adds the statement's own
        # rows to total_changes as it ends: the count where the driver's rowcount can't tell
        # (-1 for a write behind a CTE).
        cursor._dbp_pending = (series, keys, stmt, cursor.connection.total_changes)
        cursor.__class__ = watching
        _pending.add(cursor)
        if not _at_exit:
            # Registered now, after the SDK's providers (made before the app's first
            # statement): atexit runs the newest first, so this counts before their last export.
            _at_exit.append(True)
            atexit.register(settle_all)
    except Exception:
        pass


def settle_connection(connection: Any) -> None:
    """Count the pending cursors of ``connection`` (about to close). Never raises."""
    try:
        if _pending:
            for cursor in list(_pending):
                if cursor.connection is connection:
                    _read_to_end(cursor)
    except Exception:
        pass


def settle_all() -> None:
    """Count every pending cursor: the process is exiting. Never raises; a cursor another
    thread owns keeps its count pending."""
    try:
        for cursor in list(_pending):
            _read_to_end(cursor)
    except Exception:
        pass


def _watching_class(base: type) -> type | None:
    from dbpulse.instrumentors.sqlite import _CursorMixin, named_like

    if issubclass(base, _PendingRows):
        return base
    if not issubclass(base, _CursorMixin):
        return None
    found = _classes.get(base)
    if found is None:
        watching = type("Pending", (_PendingRows, base), {"_dbp_original": base})
        found = _classes.setdefault(base, named_like(base, watching))
    return found


def _taken(cursor: Any) -> tuple[Any, ...] | None:
    """The pending count of ``cursor``, taken: its class is its own again."""
    pending = cursor.__dict__.pop("_dbp_pending", None)
    original = getattr(type(cursor), "_dbp_original", None)
    if original is not None:
        cursor.__class__ = original
    _pending.discard(cursor)
    return pending


def _add(pending: tuple[Any, ...] | None, rows: int) -> None:
    if pending is None:
        return
    series, keys, stmt, _ = pending
    try:
        OPERATIONS.add_rows(series, max(rows, 0), keys, stmt)
    except Exception:
        pass


def _settle(cursor: Any) -> None:
    """Count the pending rows now the statement has ended: the driver's ``rowcount``, or
    what the connection changed since the statement ran where that is -1."""
    pending = _taken(cursor)
    if pending is None:
        return
    rows = cursor.rowcount
    if rows < 0:
        try:
            rows = cursor.connection.total_changes - pending[3]
        except Exception:
            rows = 0
    _add(pending, rows)


def _closing(cursor: Any, close: Any) -> Any:
    """``close(cursor)``, counting the rows SQLite adds to ``total_changes`` as the statement
    is reset. What ``close`` raises is raised; the count never raises."""
    pending = _taken(cursor)
    try:
        connection = cursor.connection
        before = connection.total_changes
    except Exception:
        return close(cursor)
    try:
        return close(cursor)
    finally:
        try:
            rows = connection.total_changes - before
        except Exception:
            rows = 0
        _add(pending, rows)


def _read_to_end(cursor: Any) -> None:
    """Read the rest of ``cursor``'s rows (they are about to be discarded), with no row
    factory, so the driver's ``rowcount`` is final. Never raises."""
    if "_dbp_pending" not in cursor.__dict__:
        _taken(cursor)
        return
    try:
        factory = cursor.row_factory
        cursor.row_factory = None
        try:
            _fetchall(cursor)
        finally:
            cursor.row_factory = factory
    except Exception:
        pass
    _settle(cursor)


class _PendingRows:
    """The methods of a cursor whose write's row count is pending."""

    rowcount: int
    arraysize: int

    def fetchone(self) -> Any:
        row = super().fetchone()  # type: ignore[misc]
        if row is None or self.rowcount > 0:
            _settle(self)
        return row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        wanted = self.arraysize if size is None else size
        rows = super().fetchmany(wanted)  # type: ignore[misc]
        if self.rowcount > 0 or len(rows) < wanted:
            _settle(self)
        return rows

    def fetchall(self) -> list[Any]:
        rows = super().fetchall()  # type: ignore[misc]
        _settle(self)
        return rows

    def __next__(self) -> Any:
        try:
            row = super().__next__()  # type: ignore[misc]
        except StopIteration:
            _settle(self)
            raise
        if self.rowcount > 0:
            _settle(self)
        return row

    # Counted as the statement ends; the call then goes to the class the cursor had.
    def close(self) -> Any:
        return _closing(self, _own_close)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        _read_to_end(self)
        return self.execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        _read_to_end(self)
        return self.executemany(*args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        _read_to_end(self)
        return self.executescript(*args, **kwargs)

    def __del__(self) -> None:
        # Dropped before its statement ended: the driver resets it now; count what that adds.
        try:
            _closing(self, _close)
        except Exception:
            pass


def _own_close(cursor: Any) -> Any:
    """The close of the cursor's own class (the application's, if it has one)."""
    return cursor.close()
