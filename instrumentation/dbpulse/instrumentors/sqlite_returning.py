"""Row counts of SQLite writes with ``RETURNING``, known only once their rows are read.

``INSERT ... RETURNING id`` (what Django and SQLAlchemy emit for autoincrement keys on SQLite)
reports ``rowcount == 0`` after ``execute``: SQLite steps the statement as the application
fetches, and the count is final when the last row is read. The write is recorded at execute
time with its duration; its rows (and entity keys) are added when the cursor is read to the
end, closed or executed again. Meanwhile the cursor's class is a subclass of its own that
watches the fetch methods, and it is switched back once counted, so cursors of other
statements pay nothing. A cursor that is never read counts the rows SQLite has reported by
the time it is closed or reused; one made outside dbpulse's classes (a proxied connection)
counts one row per call, as a write with an unknown count does.
"""

from __future__ import annotations

from typing import Any

from dbpulse.core.pipeline import call_keys
from dbpulse.core.statements import Database, Statement
from dbpulse.telemetry.metrics import OPERATIONS

__all__ = ["count_when_read"]

_classes: dict[type, type] = {}


def count_when_read(cursor: Any, db: Database, stmt: Statement, params: Any) -> None:
    """Count ``stmt``'s rows on ``cursor`` once they are read. Never raises."""
    try:
        series = stmt.series_for(db, None)
        keys = call_keys(stmt, params)
        watching = _watching_class(type(cursor))
        if watching is None or cursor.rowcount > 0:
            OPERATIONS.add_rows(series, max(cursor.rowcount, 1), keys, stmt)
            return
        cursor._dbp_pending = (series, keys, stmt, type(cursor))
        cursor.__class__ = watching
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
        found = _classes.setdefault(
            base, named_like(base, type("Pending", (_PendingRows, base), {}))
        )
    return found


def _settle(cursor: Any) -> None:
    pending = cursor.__dict__.pop("_dbp_pending", None)
    if pending is None:
        return
    series, keys, stmt, original = pending
    cursor.__class__ = original
    try:
        OPERATIONS.add_rows(series, max(cursor.rowcount, 0), keys, stmt)
    except Exception:
        pass


class _PendingRows:
    """The fetch methods of a cursor whose write's row count is pending."""

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

    # Counted before the cursor is reused or closed; the call then goes to the class it had.
    def close(self) -> Any:
        _settle(self)
        return self.close()

    def execute(self, *args: Any) -> Any:
        _settle(self)
        return self.execute(*args)

    def executemany(self, *args: Any) -> Any:
        _settle(self)
        return self.executemany(*args)

    def executescript(self, *args: Any) -> Any:
        _settle(self)
        return self.executescript(*args)
