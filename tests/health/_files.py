"""Real database files for the health tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path


def _made(path: Path, fill: Callable[[sqlite3.Connection], object]) -> Path:
    conn = sqlite3.connect(path)
    fill(conn)
    conn.commit()
    conn.close()
    return path


def sqlite_file(path: Path, *, wal: bool = True, rows: int = 10, ts: str | None = "now") -> Path:
    """A SQLite file with ``events(id, payload, created_at)`` holding ``rows`` rows."""
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT, created_at TEXT)")
    stamp = "datetime('now')" if ts == "now" else "?"
    params = () if ts == "now" else (ts,)
    for _ in range(rows):
        conn.execute(f"INSERT INTO events (payload, created_at) VALUES ('x', {stamp})", params)
    conn.commit()
    conn.close()
    return path


def huge_freelist(path: Path) -> Path:
    """A rollback-journal file whose pages are mostly free: 4 MB written, then deleted."""
    return _made(
        path,
        lambda conn: conn.executescript(
            "CREATE TABLE blob (data BLOB);"
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
            "INSERT INTO blob SELECT zeroblob(4000) FROM n;"
            "DELETE FROM blob;"
        ),
    )


def _rows_and_index(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX t_v ON t (v)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"value-{i:06d}" * 3,) for i in range(5000)])


def corrupt_page(path: Path) -> Path:
    """A SQLite file whose header is fine but one b-tree page is overwritten."""
    _made(path, _rows_and_index)
    with path.open("r+b") as f:
        f.seek(4096 * 5 + 100)
        f.write(b"\xff" * 3000)
    return path
