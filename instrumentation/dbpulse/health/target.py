"""The target protocol: what one kind of database (SQLite, PostgreSQL, DuckDB) provides, and
the checks every kind shares (connect, schema version, row counts and newest-row age).

Adding a database is one subclass of :class:`Target`: ``open`` a read-only connection, name
its tables, and return its own checks (size, configuration, integrity) from ``own_checks``.
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from dbpulse.health.figures import age_text
from dbpulse.health.model import CheckResult, Status, TargetReport
from dbpulse.health.thresholds import TableSpec, Thresholds
from dbpulse.telemetry.errors import error_type_of

__all__ = [
    "Checks",
    "Target",
    "Unavailable",
    "first_line",
    "import_driver",
    "quote_identifier",
    "unobserved",
]


Checks = Iterator[tuple[str, Callable[[], CheckResult]]]
"""A target's own checks: ``(name, run)`` pairs, run in order."""


class Unavailable(Exception):
    """The target cannot be opened; ``status`` says how bad that is (a missing file is
    CRITICAL, a missing driver is UNKNOWN)."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def first_line(exc: BaseException) -> str:
    """An exception as one line: its error type and the first line of its message."""
    message = str(exc).strip().splitlines()
    return f"{error_type_of(exc)}: {message[0]}" if message else error_type_of(exc)


def import_driver(module: str, database: str, extra: str) -> Any:
    """The driver module, or :class:`Unavailable` (UNKNOWN: not checked) naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(
            Status.UNKNOWN, f"checking {database} needs {module}: pip install 'dbpulse[{extra}]'"
        ) from None


def unobserved(obj: Any) -> Any:
    """What an instrumentor wrapped (a ``wrapt`` proxy's or wrapper's ``__wrapped__``), else
    ``obj``: health checks run inside instrumented applications and must not observe
    themselves as the application's database work."""
    return getattr(obj, "__wrapped__", obj)


def quote_identifier(name: str) -> str:
    """``schema.table`` as ``"schema"."table"`` (names are validated by ``parse_table``)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _as_datetime(value: Any) -> datetime | None:
    """A newest-row timestamp as an aware datetime: datetime, epoch seconds/ms, or ISO text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    parsed = datetime.fromisoformat(str(value).strip().replace(" ", "T", 1))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Target(ABC):
    """One database to check. ``location`` is what the user typed (shown in reports);
    ``label`` is a short name safe to export as a metric attribute (a file's base name,
    ``host:port/dbname``: never a password, never a whole DSN)."""

    kind: ClassVar[str]

    def __init__(self, location: str, label: str | None = None) -> None:
        self.location = location
        self.label = label or location

    @abstractmethod
    def open(self, thresholds: Thresholds) -> Any:
        """A read-only DB-API connection, or raise :class:`Unavailable`. Never creates files."""

    @abstractmethod
    def table_names(self, conn: Any) -> set[str]:
        """Names of the tables the connection sees (lower case)."""

    @abstractmethod
    def own_checks(self, conn: Any, thresholds: Thresholds) -> Checks:
        """This kind's checks (size, configuration, integrity), as ``(name, run)`` pairs."""

    def close(self, conn: Any) -> None:
        conn.close()

    def user_version(self, conn: Any) -> int | None:
        """The schema version the database itself keeps (SQLite ``PRAGMA user_version``)."""
        return None

    @staticmethod
    def rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
        if not hasattr(conn, "execute"):
            conn = conn.cursor()
        return list(unobserved(conn).execute(sql).fetchall())

    # -- the run ---------------------------------------------------------------------------

    def check(self, thresholds: Thresholds | None = None) -> TargetReport:
        """Every check of this target; a failed connect is the only check reported."""
        thresholds = thresholds or Thresholds()
        started = time.perf_counter()
        try:
            conn = self.open(thresholds)
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            status, reason = (
                (exc.status, exc.reason)
                if isinstance(exc, Unavailable)
                else (Status.UNKNOWN, f"could not check: {first_line(exc)}")
            )
            result = CheckResult("connect", status, reason, duration_ms=elapsed)
            return TargetReport(self.location, self.kind, (result,))
        try:
            elapsed = (time.perf_counter() - started) * 1000
            results = [self._connect_result(elapsed, thresholds)]
            checks: list[tuple[str, Callable[[], CheckResult]]] = [
                ("schema", lambda: self._schema(conn)),
                *self.own_checks(conn, thresholds),
            ]
            for table in thresholds.tables:
                checks.append((f"rows:{table.name}", self._rows_check(conn, table, thresholds)))
            results.extend(self._run(name, run) for name, run in checks)
        finally:
            try:
                self.close(conn)
            except Exception:
                pass
        return TargetReport(self.location, self.kind, tuple(results))

    @staticmethod
    def _run(name: str, run: Callable[[], CheckResult]) -> CheckResult:
        started = time.perf_counter()
        try:
            result = run()
        except Exception as exc:
            result = CheckResult(name, Status.UNKNOWN, f"check failed: {first_line(exc)}")
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult(result.name, result.status, result.reason, result.figures, elapsed)

    def _connect_result(self, elapsed_ms: float, thresholds: Thresholds) -> CheckResult:
        level = thresholds.level("connect")
        status = level.status_of(elapsed_ms)
        reason = f"opened read-only and queried in {elapsed_ms:.1f} ms"
        if status is not Status.OK:
            reason += (
                f" (slower than {level.warning if status is Status.WARNING else level.critical} ms)"
            )
        return CheckResult(
            "connect", status, reason, {"elapsed_ms": round(elapsed_ms, 3)}, elapsed_ms
        )

    def _schema(self, conn: Any) -> CheckResult:
        tables = self.table_names(conn)
        if "alembic_version" in tables:
            versions = sorted(
                str(row[0]) for row in self.rows(conn, "SELECT version_num FROM alembic_version")
            )
            return CheckResult(
                "schema",
                Status.OK,
                f"alembic revision {', '.join(versions) or '(none)'}",
                {
                    "source": "alembic_version",
                    "version": versions[0] if len(versions) == 1 else versions,
                },
            )
        if "django_migrations" in tables:
            rows = self.rows(conn, "SELECT app, name FROM django_migrations ORDER BY id DESC")
            latest = f"{rows[0][0]}.{rows[0][1]}" if rows else None
            return CheckResult(
                "schema",
                Status.OK,
                f"{len(rows)} Django migrations applied, latest {latest}",
                {"source": "django_migrations", "applied": len(rows), "version": latest},
            )
        version = self.user_version(conn)
        if version is not None:
            return CheckResult(
                "schema",
                Status.OK,
                f"user_version {version}",
                {"source": "user_version", "version": version},
            )
        return CheckResult(
            "schema", Status.OK, "no migrations table", {"source": None, "version": None}
        )

    def _rows_check(
        self, conn: Any, table: TableSpec, thresholds: Thresholds
    ) -> Callable[[], CheckResult]:
        def run() -> CheckResult:
            name = f"rows:{table.name}"
            if table.name.lower().split(".")[-1] not in self.table_names(conn):
                return CheckResult(name, Status.ERROR, f"table {table.name} does not exist")
            quoted = quote_identifier(table.name)
            if table.timestamp_column is None:
                (count,) = self.rows(conn, f"SELECT count(*) FROM {quoted}")[0]
                return CheckResult(name, Status.OK, f"{count} rows", {"rows": count})
            column = quote_identifier(table.timestamp_column)
            count, newest = self.rows(conn, f"SELECT count(*), max({column}) FROM {quoted}")[0]
            figures: dict[str, Any] = {"rows": count, "newest": None, "newest_age_s": None}
            when = _as_datetime(newest)
            if when is None:
                return CheckResult(
                    name,
                    Status.WARNING,
                    f"{count} rows, none dated by {table.timestamp_column}",
                    figures,
                )
            age = (datetime.now(UTC) - when).total_seconds()
            figures.update(newest=when.isoformat(timespec="seconds"), newest_age_s=round(age, 1))
            level = thresholds.level("newest_row")
            status = level.status_of(age)
            reason = f"{count} rows, newest {age_text(age)} ago"
            if status is not Status.OK:
                limit = level.critical if status is Status.CRITICAL else level.warning
                reason += f": no new rows for more than {age_text(float(limit or 0))}"
            return CheckResult(name, status, reason, figures)

        return run
