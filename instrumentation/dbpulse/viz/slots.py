"""Where each ISBN's orb sits: a stable slot on a fixed Fibonacci-sphere lattice.

Usage::

    from dbpulse.viz.slots import SlotTable, load_isbns

    slots = SlotTable(capacity=65_536)
    for isbn in load_isbns("books.db", "books", "isbn"):   # optional: known ISBNs up front
        slots.learn(isbn)
    slots.learn("9780140449136")                           # -> its slot, the same every run

``docs/viz.md`` ("Layout") says why slots never move.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

from dbpulse.core.isbn import normalize_isbn

__all__ = ["SlotTable", "load_isbns"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class SlotTable:
    """A stable slot per ISBN on a fixed lattice of ``capacity`` Fibonacci-sphere points.

    The plain Fibonacci formula places point *i* of *n* depending on *n*; here *n* is fixed
    (the capacity) and an ISBN's slot comes from a hash of the ISBN (linear probing on
    collisions), so a new ISBN never moves an existing orb, and the same ISBN lands on the same
    slot on every run that sees the same set. When the lattice is 90% full, further ISBNs go to
    outer shells (slot >= capacity; shell = slot // capacity).
    """

    _PROBES = 64

    def __init__(self, capacity: int = 65_536, max_isbns: int = 1_000_000) -> None:
        self.capacity = max(16, capacity)
        self.max_isbns = max_isbns
        self.slots: dict[str, int] = {}
        self._taken = bytearray(self.capacity)
        self._in_lattice = 0
        self._next_outer = self.capacity
        self.unplaced = 0

    def __len__(self) -> int:
        return len(self.slots)

    def home(self, isbn: str) -> int:
        digest = hashlib.blake2b(isbn.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.capacity

    def get(self, isbn: str) -> int | None:
        return self.slots.get(isbn)

    def learn(self, isbn: str, hint: int | None = None) -> int | None:
        found = self.slots.get(isbn)
        if found is not None:
            return found
        if len(self.slots) >= self.max_isbns:
            self.unplaced += 1
            return None
        slot = None
        if hint is not None and 0 <= hint < self.capacity and not self._taken[hint]:
            slot = hint  # another replica placed it (Redis backbone): agree with it
        elif self._in_lattice < self.capacity * 9 // 10:
            index = self.home(isbn)
            for _ in range(self._PROBES):
                if not self._taken[index]:
                    slot = index
                    break
                index = (index + 1) % self.capacity
        if slot is None:
            slot = self._next_outer
            self._next_outer += 1
        else:
            self._taken[slot] = 1
            self._in_lattice += 1
        self.slots[isbn] = slot
        return slot


def load_isbns(dsn: str, table: str, column: str = "isbn", limit: int = 1_000_000) -> list[str]:
    """Read the ISBN column of a table a user named: a SQLite file or a PostgreSQL DSN."""
    for name in (table, column):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a plain table or column name")
    query = f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT {int(limit)}"
    if dsn.startswith(("postgres://", "postgresql://")):
        import psycopg  # the postgres extra

        with psycopg.connect(dsn) as pg:
            rows = pg.execute(query).fetchall()
    else:
        path = dsn.removeprefix("sqlite:///")
        if not Path(path).exists():
            raise FileNotFoundError(f"ISBN database {path!r} does not exist")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute(query).fetchall()
        finally:
            conn.close()
    isbns = []
    for (value,) in rows:
        isbn = normalize_isbn(value)
        if isbn is not None:
            isbns.append(isbn)
    return isbns
