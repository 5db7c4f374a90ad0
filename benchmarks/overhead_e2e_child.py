"""The end-to-end workload of ``overhead.py``, run as a process of its own (plainly or under
``opentelemetry-instrument``): ``python overhead_e2e_child.py ROWS.json DB [--autocommit]``.

Inserts the rows of ``ROWS.json`` into a fresh SQLite file with ``cursor.execute`` (the call the
predecessor's cursor wrapper and both instrumentations observe): one autocommit transaction per
row on a WAL file with ``--autocommit``, else all rows in one transaction. It imports neither
dbpulse nor OpenTelemetry: whatever observes it came in through ``opentelemetry-instrument``.
Prints one JSON line: the insert loop's wall and CPU seconds (CPU of all threads) and the
module that wrapped the cursor, which shows who observed the inserts.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time

INSERT = "INSERT INTO books (isbn, title, price, copies) VALUES (?, ?, ?, ?)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows")
    parser.add_argument("db")
    parser.add_argument("--autocommit", action="store_true")
    args = parser.parse_args()
    with open(args.rows, encoding="utf-8") as f:
        rows = [tuple(row) for row in json.load(f)]
    conn = sqlite3.connect(args.db, isolation_level=None if args.autocommit else "DEFERRED")
    if args.autocommit:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE books (isbn, title, price, copies)")
    cur = conn.cursor()
    start, cpu_start = time.perf_counter(), time.process_time()
    for row in rows:
        cur.execute(INSERT, row)
    conn.commit()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    conn.close()
    print(json.dumps({"wall": wall, "cpu": cpu, "observer": observer(cur)}))


def observer(cursor: object) -> str:
    """The module of the first class wrapped around the cursor (``""``: nobody's)."""
    for kind in type(cursor).__mro__:
        if kind.__module__ not in ("sqlite3", "builtins"):
            return kind.__module__
    return ""


if __name__ == "__main__":
    main()
