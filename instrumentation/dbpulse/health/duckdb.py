"""DuckDB files, opened with ``read_only=True``; a missing file is CRITICAL, never created.

DuckDB lets one process write a file: while a writer holds it another process cannot open it,
which this check reports as ERROR with that reason. In the process that holds it (an
application checking its own file through ``DBPULSE_HEALTH_TARGETS``) the check shares the
application's database instance instead. Checks beyond the shared ones: ``size``
(file + WAL, blocks used and free from ``PRAGMA database_size``) and ``configuration``
(version, threads, memory limit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from dbpulse.health.figures import mb, size_statuses
from dbpulse.health.model import CheckResult, Status
from dbpulse.health.target import (
    Checks,
    Target,
    Unavailable,
    first_line,
    import_driver,
    unobserved,
)
from dbpulse.health.thresholds import Thresholds

__all__ = ["DuckDBTarget"]


class DuckDBTarget(Target):
    kind: ClassVar[str] = "duckdb"

    def __init__(self, location: str, path: str) -> None:
        super().__init__(location, Path(path).name)
        self.path = Path(path)

    def open(self, thresholds: Thresholds) -> Any:
        duckdb = import_driver("duckdb", "DuckDB", "duckdb")
        if not self.path.is_file():
            what = "does not exist" if not self.path.exists() else "is not a file"
            raise Unavailable(Status.CRITICAL, f"{self.path} {what} (the check never creates it)")
        try:
            # The raw connection under dbpulse's proxy: the check does not observe itself.
            conn = unobserved(self._connect(duckdb))
            conn.execute("SELECT count(*) FROM information_schema.tables").fetchone()
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise Unavailable(
                    Status.ERROR,
                    f"{self.path} is held by a writing process (DuckDB allows one): "
                    + first_line(exc),
                ) from None
            raise Unavailable(
                Status.CRITICAL, f"cannot open {self.path}: {first_line(exc)}"
            ) from None
        except duckdb.Error as exc:
            raise Unavailable(
                Status.CRITICAL, f"cannot open {self.path}: {first_line(exc)}"
            ) from None
        return conn

    def _connect(self, duckdb: Any) -> Any:
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except duckdb.ConnectionException as exc:
            if "different configuration" not in str(exc):
                raise
            # This process has the file open already (the application's own connection, for
            # DBPULSE_HEALTH_TARGETS): a connection of the same configuration shares its
            # database; the checks only read.
            return duckdb.connect(str(self.path))

    def table_names(self, conn: Any) -> set[str]:
        rows = self.rows(conn, "SELECT table_name FROM information_schema.tables")
        return {str(name).lower() for (name,) in rows}

    def own_checks(self, conn: Any, thresholds: Thresholds) -> Checks:
        yield "size", lambda: self._size(conn, thresholds)
        yield "configuration", lambda: self._configuration(conn)

    def _size(self, conn: Any, thresholds: Thresholds) -> CheckResult:
        wal_path = self.path.with_name(self.path.name + ".wal")
        file_bytes = self.path.stat().st_size
        wal_bytes = wal_path.stat().st_size if wal_path.exists() else 0
        cursor = conn.execute("PRAGMA database_size")
        columns = [d[0] for d in cursor.description]
        info = dict(zip(columns, cursor.fetchone(), strict=True))
        total_blocks = int(info.get("total_blocks") or 0)
        free_blocks = int(info.get("free_blocks") or 0)
        ratio = free_blocks / total_blocks if total_blocks else 0.0
        status, notes = size_statuses(file_bytes + wal_bytes, wal_bytes, thresholds)
        freelist = thresholds.level("freelist").status_of(ratio)
        if freelist is not Status.OK:
            notes.append(
                f"{ratio:.0%} of blocks free (CHECKPOINT, or copy to a new file, reclaims them)"
            )
            status = max(status, freelist, key=lambda s: s.rank)
        reason = (
            f"{mb(file_bytes + wal_bytes)} (file {mb(file_bytes)}, WAL {mb(wal_bytes)}), "
            f"{total_blocks} blocks, {ratio:.0%} free"
        )
        figures = {
            "total_bytes": file_bytes + wal_bytes,
            "file_bytes": file_bytes,
            "wal_bytes": wal_bytes,
            "total_blocks": total_blocks,
            "free_blocks": free_blocks,
            "freelist_ratio": round(ratio, 4),
        }
        return CheckResult("size", status, "; ".join([reason, *notes]), figures)

    def _configuration(self, conn: Any) -> CheckResult:
        version = self.rows(conn, "SELECT version()")[0][0]
        settings = dict(
            self.rows(
                conn,
                "SELECT name, value FROM duckdb_settings() "
                "WHERE name IN ('threads', 'memory_limit')",
            )
        )
        figures = {"version": version, **settings}
        reason = f"DuckDB {version}, " + ", ".join(f"{k} {v}" for k, v in settings.items())
        return CheckResult("configuration", Status.OK, reason, figures)
