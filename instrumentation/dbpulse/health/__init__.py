"""Database health checks: connect, schema version, size, configuration, integrity, row counts.

Usage::

    from dbpulse.health import Thresholds, check

    report = check(["sqlite:///app.db", "postgresql://app@db/app"],
                   Thresholds.load("thresholds.yaml"))
    print(report.status.name, report.exit_code)      # worst check's status, Nagios exit code
    for target in report.targets:
        for result in target.checks:
            print(target.target, result.name, result.status.name, result.reason)

Targets: ``sqlite:///path`` and ``duckdb:///path`` (SQLAlchemy's convention: three slashes and a
relative path, four for an absolute one), a plain path ending ``.db``, ``.sqlite``,
``.sqlite3`` (SQLite) or ``.duckdb``, and ``postgresql://...`` DSNs. Files are opened read-only
and never created. The command line face is ``dbpulse health``; the thresholds and their
defaults are in :mod:`dbpulse.health.thresholds`. Lock resilience (``dbpulse.retry``,
``dbpulse.sqlite_connect``) lives in :mod:`dbpulse.health.retry`.
"""

from __future__ import annotations

from collections.abc import Iterable

from dbpulse.health.model import CheckResult, HealthReport, Status, TargetReport, worst
from dbpulse.health.target import Target
from dbpulse.health.thresholds import TableSpec, Thresholds, ThresholdsError, parse_table

__all__ = [
    "CheckResult",
    "HealthReport",
    "Status",
    "TableSpec",
    "Target",
    "TargetError",
    "TargetReport",
    "Thresholds",
    "ThresholdsError",
    "check",
    "parse_table",
    "parse_target",
    "worst",
]

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class TargetError(ValueError):
    """A target string that names no database dbpulse can check; the message says why."""


def _url_path(target: str, scheme: str) -> str:
    rest = target[len(scheme) + len("://") :]
    if not rest.startswith("/") or rest == "/":
        raise TargetError(
            f"{target!r}: expected {scheme}:///relative/path or {scheme}:////absolute/path"
        )
    path = rest[1:].split("?", 1)[0]
    if path in ("", ":memory:"):
        raise TargetError(f"{target!r}: an in-memory database has nothing to check")
    return path


def parse_target(text: str) -> Target:
    """The :class:`Target` a command-line string names, or raise :class:`TargetError`."""
    from dbpulse.health.duckdb import DuckDBTarget
    from dbpulse.health.postgres import PostgresTarget
    from dbpulse.health.sqlite import SQLiteTarget

    scheme, sep, _ = text.partition("://")
    scheme = scheme.lower()
    if sep and scheme.split("+")[0] in ("postgresql", "postgres"):
        return PostgresTarget(text, "postgresql://" + text.split("://", 1)[1])
    if sep and scheme == "sqlite":
        return SQLiteTarget(text, _url_path(text, "sqlite"))
    if sep and scheme == "duckdb":
        return DuckDBTarget(text, _url_path(text, "duckdb"))
    if sep:
        raise TargetError(
            f"{text!r}: unsupported scheme {scheme!r} (use sqlite, postgresql or duckdb)"
        )
    lowered = text.lower()
    if lowered.endswith(_SQLITE_SUFFIXES):
        return SQLiteTarget(text, text)
    if lowered.endswith(".duckdb"):
        return DuckDBTarget(text, text)
    raise TargetError(
        f"{text!r}: not a target (sqlite:///path, duckdb:///path, postgresql://..., "
        "or a path ending .db, .sqlite, .sqlite3 or .duckdb)"
    )


def check(targets: Iterable[str | Target], thresholds: Thresholds | None = None) -> HealthReport:
    """Check every target (strings are parsed with :func:`parse_target`) in order."""
    thresholds = thresholds or Thresholds()
    parsed = [parse_target(t) if isinstance(t, str) else t for t in targets]
    return HealthReport(tuple(target.check(thresholds) for target in parsed))
