"""SQLite files: opened read-only (``mode=ro``), never created; a missing file is CRITICAL.

Checks beyond the shared ones: ``size`` (file + WAL + shared memory, page count, freelist
ratio), ``configuration`` (journal mode: a writer-facing file not in WAL is a WARNING with the
fix; the busy timeout is per connection, so the figure is the check's own and the reason says
what writers should set) and ``integrity`` (``PRAGMA quick_check``, interrupted after
``integrity.timeout_s`` through a progress handler).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from dbpulse.health.figures import mb, size_statuses
from dbpulse.health.model import CheckResult, Status
from dbpulse.health.target import Checks, Target, Unavailable, first_line
from dbpulse.health.thresholds import Thresholds

__all__ = ["SQLiteTarget"]

_NOT_A_DATABASE = {"SQLITE_NOTADB", "SQLITE_CORRUPT"}
_PROGRESS_STEPS = 10_000  # SQLite VM steps between deadline looks: well under 1 ms apart


class SQLiteTarget(Target):
    kind: ClassVar[str] = "sqlite"

    def __init__(self, location: str, path: str) -> None:
        super().__init__(location, Path(path).name)
        self.path = Path(path)

    def open(self, thresholds: Thresholds) -> sqlite3.Connection:
        if not self.path.exists():
            raise Unavailable(
                Status.CRITICAL, f"{self.path} does not exist (the check never creates it)"
            )
        if not self.path.is_file():
            raise Unavailable(Status.CRITICAL, f"{self.path} is not a file")
        timeout = (thresholds.level("connect").critical or 5000) / 1000
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            # The class itself, not sqlite3.connect: an instrumented application's health
            # worker must not observe its own checks (dbpulse wraps connect's factory).
            conn = sqlite3.Connection(uri, uri=True, timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise Unavailable(
                Status.CRITICAL, f"cannot open {self.path}: {first_line(exc)}"
            ) from None
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            name = getattr(exc, "sqlite_errorname", "")
            if name in _NOT_A_DATABASE:
                raise Unavailable(
                    Status.CRITICAL,
                    f"{self.path} is not a SQLite database or is corrupt ({first_line(exc)})",
                ) from None
            raise Unavailable(Status.ERROR, f"cannot read {self.path}: {first_line(exc)}") from None
        return conn

    def table_names(self, conn: Any) -> set[str]:
        rows = self.rows(conn, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        return {str(name).lower() for (name,) in rows}

    def user_version(self, conn: Any) -> int | None:
        return int(self.rows(conn, "PRAGMA user_version")[0][0])

    def own_checks(self, conn: Any, thresholds: Thresholds) -> Checks:
        yield "size", lambda: self._size(conn, thresholds)
        yield "configuration", lambda: self._configuration(conn, thresholds)
        yield "integrity", lambda: self._integrity(conn, thresholds)

    def _pragma(self, conn: Any, name: str) -> Any:
        return self.rows(conn, f"PRAGMA {name}")[0][0]

    def _size(self, conn: Any, thresholds: Thresholds) -> CheckResult:
        files = {}
        for part, suffix in (("file", ""), ("wal", "-wal"), ("shm", "-shm")):
            sidecar = self.path.with_name(self.path.name + suffix)
            files[part] = sidecar.stat().st_size if sidecar.exists() else 0
        total = sum(files.values())
        pages = int(self._pragma(conn, "page_count"))
        page_size = int(self._pragma(conn, "page_size"))
        free = int(self._pragma(conn, "freelist_count"))
        ratio = free / pages if pages else 0.0
        status, notes = size_statuses(total, files["wal"], thresholds)
        freelist = thresholds.level("freelist").status_of(ratio)
        if freelist is not Status.OK:
            notes.append(f"{ratio:.0%} of pages free: VACUUM reclaims {mb(free * page_size)}")
            status = max(status, freelist, key=lambda s: s.rank)
        reason = (
            f"{mb(total)} (file {mb(files['file'])}, WAL {mb(files['wal'])}, "
            f"shm {mb(files['shm'])}), "
            f"{pages} pages, {ratio:.0%} free"
        )
        figures = {
            "total_bytes": total,
            "file_bytes": files["file"],
            "wal_bytes": files["wal"],
            "shm_bytes": files["shm"],
            "page_count": pages,
            "page_size": page_size,
            "freelist_count": free,
            "freelist_ratio": round(ratio, 4),
        }
        return CheckResult("size", status, "; ".join([reason, *notes]), figures)

    def _configuration(self, conn: Any, thresholds: Thresholds) -> CheckResult:
        mode = str(self._pragma(conn, "journal_mode")).lower()
        figures = {
            "journal_mode": mode,
            "synchronous": int(self._pragma(conn, "synchronous")),
            "check_busy_timeout_ms": int(self._pragma(conn, "busy_timeout")),
        }
        advice = (
            "busy_timeout is per connection: writers should set one "
            "(dbpulse.sqlite_connect sets 30 s)"
        )
        if mode != "wal" and thresholds.setting("journal", "require_wal"):
            reason = (
                f"journal_mode is {mode}, not WAL: readers block the writer; run "
                f'"PRAGMA journal_mode=WAL" once (it persists) or open with '
                f"dbpulse.sqlite_connect(); {advice}"
            )
            return CheckResult("configuration", Status.WARNING, reason, figures)
        return CheckResult("configuration", Status.OK, f"journal_mode {mode}; {advice}", figures)

    def _integrity(self, conn: Any, thresholds: Thresholds) -> CheckResult:
        limit = float(thresholds.setting("integrity", "timeout_s"))
        deadline = time.monotonic() + limit
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
        try:
            rows = self.rows(conn, "PRAGMA quick_check")
            problems = [
                line
                for (text,) in rows
                for line in str(text).splitlines()
                if line.strip() and not line.startswith("*** in database")
            ]
        except sqlite3.OperationalError:
            if time.monotonic() <= deadline:
                raise
            return CheckResult(
                "integrity",
                Status.WARNING,
                f"quick_check did not finish within {limit:g} s: "
                "run it off-peak with a longer integrity.timeout_s",
                {"finished": False},
            )
        except sqlite3.DatabaseError as exc:
            return CheckResult(
                "integrity",
                Status.CRITICAL,
                f"quick_check failed: {first_line(exc)}",
                {"finished": False},
            )
        finally:
            conn.set_progress_handler(None, 0)
        if problems == ["ok"]:
            return CheckResult(
                "integrity", Status.OK, "quick_check ok", {"finished": True, "problems": 0}
            )
        return CheckResult(
            "integrity",
            Status.CRITICAL,
            f"quick_check found {len(problems)} problems, first: {problems[0]}",
            {"finished": True, "problems": len(problems), "first": problems[:5]},
        )
