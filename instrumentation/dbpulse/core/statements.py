"""What one call runs against and what it runs: :class:`Database` and :class:`Statement`.

Both are computed once and cached: a :class:`Database` per distinct set of coordinates
(interned, so caches stay bounded by databases, not connections), a :class:`Statement` per
distinct statement text (parsed and sanitized once; its span attributes and metric series
cached per database).
"""

from __future__ import annotations

import re
from typing import Any

from dbpulse.core.entities import EntityExtractor
from dbpulse.core.fingerprint import fingerprint
from dbpulse.core.sql import parse_sql
from dbpulse.core.state import STATE, guarded_keys
from dbpulse.telemetry.metrics import OPERATIONS, Series
from dbpulse.telemetry.statements import StatementStats

__all__ = [
    "Database",
    "Statement",
    "clear_statement_cache",
    "database",
    "set_extractor",
    "statement",
    "statement_cache",
]

STATEMENT_CACHE_SIZE = 4096
STATEMENT_CACHE_BYTES = 16 * 1024 * 1024
MAX_CACHED_TEXT = 64 * 1024
_CACHE_BYTES: dict[str, int] = {}
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
# Texts whose every literal is a plain '...' string or an ASCII number, and nothing else the
# tokenizer reads in a way a regular expression can't (quoted names, comments, escapes,
# numbered or dollar parameters): two of them with the same text once those literals are
# replaced parse alike, since a literal is always a value (sanitized to ?), never a name.
_SHAPE_UNSAFE = re.compile(r"[\"`\[\\$]|--|/\*|[?:@][0-9]")
_LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w.])[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![\w.])")
MAX_SHAPE_TEXT = 4096
_FAIL = re.compile(r"\bFAIL\b", re.IGNORECASE)


class Database:
    """What a span and a metric need to know about one connection; computed once per database."""

    __slots__ = ("address", "attributes", "namespace", "port", "system")

    def __init__(
        self,
        system: str,
        namespace: str | None,
        address: str | None = None,
        port: int | None = None,
    ) -> None:
        self.system = system
        self.namespace = namespace
        self.address = address
        self.port = port
        attributes: dict[str, Any] = {"db.system.name": system}
        if namespace:
            attributes["db.namespace"] = namespace
        if address:
            attributes["server.address"] = address
        if port:
            attributes["server.port"] = port
        self.attributes = attributes


class Statement:
    """The parse of one distinct statement text, shared by every call that runs it."""

    __slots__ = (
        "behind_cte",
        "collection",
        "conflict_fail",
        "fingerprint",
        "is_write",
        "literal_keys",
        "operation",
        "returning",
        "series",
        "span_attributes",
        "span_name",
        "stats",
        "summary",
        "text",
    )

    def __init__(self, sql: str, extractor: EntityExtractor | None) -> None:
        info = parse_sql(sql)
        self.operation = info.operation or "UNKNOWN"
        self.collection = info.collection
        self.summary = info.summary or self.operation
        self.text = info.sanitized
        # The shape's stable id (db.query.fingerprint) and its exact totals (set by
        # statement(), which knows the system).
        self.fingerprint = fingerprint(info.sanitized or self.operation)
        self.stats: StatementStats | None = None
        self.is_write = info.is_write
        # Stable semconv: the span is named {db.query.summary} when there is one (bounded,
        # 255 characters), else {db.operation.name} {target}, else the operation.
        self.span_name = info.summary or (
            f"{self.operation} {self.collection}" if self.collection else self.operation
        )
        # A write whose rows come back (INSERT ... RETURNING): drivers know its row count only
        # once the rows are read.
        self.returning = self.is_write and _RETURNING.search(self.text) is not None
        # A write behind a CTE (WITH ... INSERT): SQLite's driver reports rowcount -1 for it.
        self.behind_cte = self.is_write and self.text[:4].upper() == "WITH"
        # SQLite's OR FAIL (or a trigger's RAISE(FAIL)): the rows changed before the failing
        # one stay changed when the statement fails.
        self.conflict_fail = self.is_write and _FAIL.search(self.text) is not None
        self.literal_keys: tuple[str, ...] = ()
        if extractor is not None:
            self.literal_keys = guarded_keys(extractor.from_sql, sql)

        # Per-database caches: the success series and the span's start attributes.
        self.series: dict[Database, Series] = {}
        self.span_attributes: dict[Database, dict[str, Any]] = {}

    def with_literal_keys(self, keys: tuple[str, ...]) -> Statement:
        """This statement (shared by every text of its shape) with another text's keys."""
        if keys == self.literal_keys:
            return self
        other = Statement.__new__(Statement)
        for name in Statement.__slots__:
            setattr(other, name, getattr(self, name))
        other.literal_keys = keys
        return other

    @classmethod
    def of(
        cls,
        operation: str,
        text: str,
        *,
        is_write: bool,
        collection: str | None = None,
    ) -> Statement:
        """A statement of a non-SQL system (a Redis command), described directly."""
        stmt = cls.__new__(cls)
        stmt.operation = operation
        stmt.collection = collection
        # The summary is {operation} {target}, so the span's name (its summary) is both.
        stmt.summary = f"{operation} {collection}" if collection else operation
        stmt.text = text
        stmt.fingerprint = fingerprint(text)
        stmt.stats = None
        stmt.is_write = is_write
        stmt.span_name = stmt.summary
        stmt.literal_keys = ()
        stmt.returning = False
        stmt.behind_cte = False
        stmt.conflict_fail = False
        stmt.series = {}
        stmt.span_attributes = {}
        return stmt

    def attributes_for(self, db: Database) -> dict[str, Any]:
        found = self.span_attributes.get(db)
        if found is None:
            found = dict(db.attributes)
            found["db.operation.name"] = self.operation
            if self.collection:
                found["db.collection.name"] = self.collection
            found["db.query.summary"] = self.summary
            # No semantic convention names a statement's shape: dbpulse's own attribute.
            found["db.query.fingerprint"] = self.fingerprint
            found["db.query.text"] = self.text
            if self.stats is None:
                self.stats = OPERATIONS.statements.stats(db.system, self.fingerprint, self.summary)
            self.span_attributes[db] = found
        return found

    def series_for(self, db: Database, error_type: str | None) -> Series:
        if self.stats is None:
            self.stats = OPERATIONS.statements.stats(db.system, self.fingerprint, self.summary)
        if error_type is None:
            found = self.series.get(db)
            if found is None:
                found = OPERATIONS.series(
                    db.system, db.namespace, self.operation, self.collection, None
                )
                self.series[db] = found
            return found
        return OPERATIONS.series(
            db.system, db.namespace, self.operation, self.collection, error_type
        )


_DATABASES: dict[tuple[str, str | None, str | None, int | None], Database] = {}


def database(
    system: str, namespace: str | None, address: str | None = None, port: int | None = None
) -> Database:
    """The interned :class:`Database` for these coordinates."""
    key = (system, namespace, address, port)
    found = _DATABASES.get(key)
    if found is None:
        found = _DATABASES.setdefault(key, Database(system, namespace, address, port))
    return found


_STATEMENTS: dict[str, dict[str, Statement]] = {}


def statement_cache(system: str) -> dict[str, Statement]:
    """The statement cache of one system; instrumentors read it directly on the hot path
    (``cache.get(sql) or statement(system, sql)``)."""
    return _STATEMENTS.setdefault(system, {})


def statement(system: str, sql: str) -> Statement:
    """The cached :class:`Statement` for ``sql``: the cache is bounded by entries and by the
    bytes of its keys (cleared when either is full); a text over 64 KiB is parsed each time
    (the parser reads only its first 64 KiB) and never kept.

    A text not seen before whose literals are plain strings and numbers (SQL built with the
    values inlined: ``WHERE id = 42``) is looked up by its shape first, its literals
    replaced: texts of one shape share one parse, and only their entity keys are read from
    each text; they are not kept by text, so they do not push out the texts that repeat."""
    cache = statement_cache(system)
    found = cache.get(sql)
    if found is not None:
        return found
    size = len(sql)
    if size <= MAX_SHAPE_TEXT and _SHAPE_UNSAFE.search(sql) is None:
        shape = _LITERAL.sub("?", sql)
        if shape != sql:
            shapes = statement_cache(system + "\x00shapes")
            known = shapes.get(shape)
            if known is None:
                known = _kept(system + "\x00shapes", shape, Statement(sql, STATE.extractor))
                return known
            extractor = STATE.extractor
            keys = guarded_keys(extractor.from_sql, sql) if extractor is not None else ()
            return known.with_literal_keys(keys)
    found = Statement(sql, STATE.extractor)
    if size > MAX_CACHED_TEXT:
        return found
    return _kept(system, sql, found)


def _kept(system: str, key: str, found: Statement) -> Statement:
    cache = statement_cache(system)
    size = len(key)
    used = _CACHE_BYTES.get(system, 0) + size
    if len(cache) >= STATEMENT_CACHE_SIZE or used > STATEMENT_CACHE_BYTES:
        cache.clear()
        used = size
    _CACHE_BYTES[system] = used
    cache[key] = found
    return found


def clear_statement_cache() -> None:
    for cache in _STATEMENTS.values():
        cache.clear()
    _CACHE_BYTES.clear()


def set_extractor(extractor: EntityExtractor | None) -> None:
    """Choose the entity-key extractor (``None`` turns key extraction off).

    Its ``span_attribute`` names the keys on spans and labels ``dbpulse.db.isbn.writes``.
    """
    STATE.extractor = extractor
    OPERATIONS.key_attribute = STATE.key_attribute
    clear_statement_cache()
