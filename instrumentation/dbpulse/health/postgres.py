"""PostgreSQL DSNs (``postgresql://...``), through psycopg in a read-only, autocommit session.

Checks beyond the shared ones: ``size`` (``pg_database_size``), ``connections`` (sessions
against ``max_connections``), ``long_transactions`` (transactions open longer than
``long_transactions.warning_s``, other sessions only; a role sees other roles' transactions
only with ``pg_read_all_stats``), ``locks`` (``pg_stat_database`` deadlocks and recovery
conflicts since the last stats reset, when readable) and ``configuration`` (the timeouts that
bound lock waits). Query texts of other sessions are never read: they may carry values.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from dbpulse.health.figures import mb, size_statuses
from dbpulse.health.model import CheckResult, Status, worst
from dbpulse.health.target import (
    Checks,
    Target,
    Unavailable,
    first_line,
    import_driver,
    unobserved,
)
from dbpulse.health.thresholds import Thresholds

__all__ = ["PostgresTarget"]

_SETTINGS = (
    "lock_timeout statement_timeout idle_in_transaction_session_timeout deadlock_timeout".split()
)


def _redacted(dsn: str) -> str:
    """The DSN as reports show it: the password replaced by ``***``."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _label(dsn: str) -> str:
    """``host:port/dbname`` of a URL DSN: no user, no password, no options."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "postgresql"
    database = parts.path.lstrip("/") or (parts.username or "postgres")
    return f"{host}:{port}/{database}"


def _execute(conn: Any, sql: str) -> Any:
    """``sql`` on a new cursor, through the cursor class's own ``execute`` (what dbpulse's
    psycopg wrapper wraps): the check does not observe itself inside an instrumented app."""
    cursor = conn.cursor()
    unobserved(type(cursor).execute)(cursor, sql)
    return cursor


class PostgresTarget(Target):
    kind: ClassVar[str] = "postgresql"

    def __init__(self, location: str, dsn: str) -> None:
        super().__init__(_redacted(location), _label(dsn))
        self.dsn = dsn

    def open(self, thresholds: Thresholds) -> Any:
        psycopg = import_driver("psycopg", "PostgreSQL", "postgres")
        timeout = max(1, round((thresholds.level("connect").critical or 5000) / 1000))
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=timeout, autocommit=True)
        except psycopg.Error as exc:
            raise Unavailable(Status.CRITICAL, f"cannot connect: {first_line(exc)}") from None
        # autocommit ignores conn.read_only: make the session read-only instead.
        _execute(conn, "SET default_transaction_read_only = on").close()
        return conn

    @staticmethod
    def rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
        with _execute(conn, sql) as cursor:
            return list(cursor.fetchall())

    def table_names(self, conn: Any) -> set[str]:
        rows = self.rows(
            conn,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
        )
        return {str(name).lower() for (name,) in rows}

    def own_checks(self, conn: Any, thresholds: Thresholds) -> Checks:
        yield "size", lambda: self._size(conn, thresholds)
        yield "connections", lambda: self._connections(conn, thresholds)
        yield "long_transactions", lambda: self._long_transactions(conn, thresholds)
        yield "locks", lambda: self._locks(conn, thresholds)
        yield "configuration", lambda: self._configuration(conn)

    def _size(self, conn: Any, thresholds: Thresholds) -> CheckResult:
        ((database, size),) = self.rows(
            conn, "SELECT current_database(), pg_database_size(current_database())"
        )
        status, notes = size_statuses(size, None, thresholds)
        return CheckResult(
            "size",
            status,
            "; ".join([f"database {database}: {mb(size)}", *notes]),
            {"database": database, "total_bytes": size},
        )

    def _connections(self, conn: Any, thresholds: Thresholds) -> CheckResult:
        ((used, limit),) = self.rows(
            conn,
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), "
            "current_setting('max_connections')::int",
        )
        ratio = used / limit if limit else 0.0
        status = thresholds.level("connections").status_of(ratio)
        reason = f"{used} of max_connections {limit} ({ratio:.0%})"
        if status is not Status.OK:
            reason += ": close idle sessions or pool connections (PgBouncer, psycopg_pool)"
        return CheckResult(
            "connections",
            status,
            reason,
            {"connections": used, "max_connections": limit, "ratio": round(ratio, 4)},
        )

    def _long_transactions(self, conn: Any, thresholds: Thresholds) -> CheckResult:
        level = thresholds.level("long_transactions")
        floor = min(v for v in (level.warning, level.critical, 1e12) if v is not None)
        rows = self.rows(
            conn,
            "SELECT pid, usename, state, extract(epoch FROM now() - xact_start)::float8 "
            "FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() "
            f"AND now() - xact_start > make_interval(secs => {float(floor)}) ORDER BY xact_start",
        )
        transactions = [
            {"pid": pid, "user": user, "state": state, "age_s": round(age, 1)}
            for pid, user, state, age in rows
        ]
        figures = {
            "count": len(rows),
            "oldest_s": transactions[0]["age_s"] if rows else 0.0,
            "transactions": transactions[:10],
        }
        if not rows:
            return CheckResult(
                "long_transactions",
                Status.OK,
                f"no transaction open longer than {floor:g} s",
                figures,
            )
        oldest = transactions[0]
        status = level.status_of(float(oldest["age_s"]))
        reason = (
            f"{len(rows)} transaction(s) open longer than {floor:g} s, "
            f"oldest {oldest['age_s']:.0f} s "
            f"(pid {oldest['pid']}, {oldest['state']}): they hold locks and stop VACUUM; "
            f"end them or set idle_in_transaction_session_timeout"
        )
        return CheckResult("long_transactions", status, reason, figures)

    def _locks(self, conn: Any, thresholds: Thresholds) -> CheckResult:
        rows = self.rows(
            conn,
            "SELECT deadlocks, conflicts, stats_reset FROM pg_stat_database "
            "WHERE datname = current_database()",
        )
        if not rows or rows[0][0] is None:
            return CheckResult(
                "locks", Status.OK, "pg_stat_database is not readable by this role", {}
            )
        deadlocks, conflicts, reset = rows[0]
        statuses = [
            thresholds.level("deadlocks").status_of(deadlocks),
            thresholds.level("conflicts").status_of(conflicts),
        ]
        since = f" since {reset:%Y-%m-%d %H:%M}" if reset is not None else ""
        return CheckResult(
            "locks",
            worst(statuses),
            f"{deadlocks} deadlocks, {conflicts} recovery conflicts{since}",
            {"deadlocks": deadlocks, "conflicts": conflicts},
        )

    def _configuration(self, conn: Any) -> CheckResult:
        settings = {
            name: self.rows(conn, f"SELECT current_setting('{name}')")[0][0] for name in _SETTINGS
        }
        reason = ", ".join(f"{name} {value}" for name, value in settings.items())
        return CheckResult("configuration", Status.OK, reason, settings)
