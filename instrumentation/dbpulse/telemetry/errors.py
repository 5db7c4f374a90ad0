"""The one mapping from an exception to the ``error.type`` dbpulse exports.

Exception *messages* are never exported (PostgreSQL's ``Key (isbn)=(...)`` quotes values);
only this type is, on spans (``error.type``, status description) and metric series.
"""

from __future__ import annotations

__all__ = ["error_type_of"]


def error_type_of(exc: BaseException) -> str:
    """SQLite error name (``SQLITE_BUSY``), PostgreSQL SQLSTATE, else the exception class."""
    name = getattr(exc, "sqlite_errorname", None) or getattr(exc, "sqlstate", None)
    return str(name) if name else type(exc).__qualname__
