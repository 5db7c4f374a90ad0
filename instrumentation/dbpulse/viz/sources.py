"""Where the feed's events come from: ended write spans, and the exact write counters.

Usage (the feed thread of :class:`dbpulse.viz.VizFeedProcessor` does this)::

    ledger = Ledger()
    events = span_events(span, counters_live=True, ledger=ledger)     # per ended span
    events += ledger.read_tables(OPERATIONS.writes_snapshot(), time.time())
    events += ledger.read_isbns(OPERATIONS.isbn_writes_snapshot(), time.time())

Truthfulness under sampling: the exact counters of :mod:`dbpulse.telemetry.metrics` are the
source of truth for *how many* writes each ISBN had; spans only contribute *which trace* and
*when*. The :class:`Ledger` merges the two without counting a write twice. Without the counters
(another instrumentation producing the spans), a span event carries its adjusted count from
``tracestate`` instead. See ``docs/viz.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from dbpulse.viz.events import db_write, table_writes

__all__ = [
    "IsbnCounts",
    "Ledger",
    "TableCounts",
    "adjusted_count",
    "default_counters",
    "span_events",
]

IsbnCounts = Mapping[tuple[str, str, str], int]
"""Cumulative writes by (collection, operation, isbn)."""
TableCounts = Mapping[tuple[str, str, str, str], int]
"""Cumulative writes by (system, namespace, operation, collection)."""

_MAX_THRESHOLD = 1 << 56
_LEDGER_GRACE_READS = 3


def adjusted_count(trace_state: Any) -> float:
    """How many spans one kept span stands for, from ``tracestate`` ``ot=th:<hex>``.

    ``th`` is the rejection threshold on 56 bits of randomness (OpenTelemetry consistent
    probability sampling): the keep probability is ``1 - th / 2**56``. No ``th`` means 1.
    """
    try:
        value = trace_state.get("ot") if trace_state is not None else None
        if not value:
            return 1.0
        for part in value.split(";"):
            if part.startswith("th:"):
                digits = part[3:]
                if not digits or len(digits) > 14:
                    return 1.0
                threshold = int(digits.ljust(14, "0"), 16)
                if threshold >= _MAX_THRESHOLD:
                    return 1.0
                return _MAX_THRESHOLD / (_MAX_THRESHOLD - threshold)
    except (ValueError, TypeError, AttributeError):
        pass
    return 1.0


def default_counters() -> tuple[Callable[[], IsbnCounts] | None, Callable[[], TableCounts] | None]:
    """The exact metrics path of dbpulse, when the package provides it."""
    try:
        from dbpulse.telemetry.metrics import OPERATIONS
    except Exception:  # the metrics module is optional for the feed
        return None, None
    return (
        getattr(OPERATIONS, "isbn_writes_snapshot", None),
        getattr(OPERATIONS, "writes_snapshot", None),
    )


class Ledger:
    """Merges span events with the exact cumulative counters without double counting.

    ``emitted[key]`` is how many writes of ``key`` = (collection, operation, isbn) the feed has
    already stood for. Each span event adds 1; each counter read emits one synthetic event for
    ``counter - emitted`` when positive. A span that arrives after the counter already covered
    its write leaves ``emitted`` ahead of the counter; the surplus is absorbed by the next
    writes, so the totals converge to the counters exactly.
    """

    def __init__(self) -> None:
        self.emitted: dict[tuple[str, str, str], int] = {}
        self.absent: dict[tuple[str, str, str], int] = {}
        self.baseline_done = False
        self.tables: dict[tuple[str, str, str, str], int] | None = None
        self.system_of: dict[str, str] = {}

    def charge(self, key: tuple[str, str, str]) -> None:
        self.emitted[key] = self.emitted.get(key, 0) + 1

    def read_isbns(self, snapshot: IsbnCounts, now: float) -> list[dict[str, Any]]:
        emitted = self.emitted
        out: list[dict[str, Any]] = []
        if not self.baseline_done:
            # Writes before the feed started are history, not live activity.
            self.baseline_done = True
            for key, value in snapshot.items():
                if value > emitted.get(key, 0):
                    emitted[key] = value
            return out
        for key, value in snapshot.items():
            done = emitted.get(key, 0)
            if value > done:
                emitted[key] = value
                collection, operation, isbn = key
                out.append(
                    db_write(
                        operation.lower() if operation else "write",
                        collection or None,
                        isbn or None,
                        now,
                        system=self.system_of.get(collection),
                        count=value - done,
                        source="metrics",
                    )
                )
        # Keys the counter does not know: a span whose counter increment is not visible yet
        # (give it a few reads), or an ISBN beyond the cardinality limit (its writes are in the
        # overflow key, so charge it there).
        overflow = ("", "", "")
        for key in [k for k in emitted if k not in snapshot]:
            seen = self.absent.get(key, 0) + 1
            if seen < _LEDGER_GRACE_READS:
                self.absent[key] = seen
                continue
            self.absent.pop(key, None)
            charged = emitted.pop(key)
            if overflow in snapshot:
                emitted[overflow] = emitted.get(overflow, 0) + charged
        for key in [k for k in self.absent if k in snapshot]:
            del self.absent[key]
        return out

    def read_tables(self, snapshot: TableCounts, now: float) -> list[dict[str, Any]]:
        previous = self.tables
        self.tables = dict(snapshot)
        for system, _namespace, _operation, collection in snapshot:
            self.system_of.setdefault(collection, system)
        if previous is None:
            return []
        out = []
        for key, value in snapshot.items():
            delta = value - previous.get(key, 0)
            if delta > 0:
                system, namespace, operation, collection = key
                out.append(
                    table_writes(
                        operation.lower(), collection or None, delta, now, system, namespace or None
                    )
                )
        return out


def _plain_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    # ReadableSpan.attributes wraps BoundedAttributes (a Python-level mapping) in a proxy: each
    # .get costs ~0.5 µs. Its backing dict is read directly when it is there (the feed thread's
    # work per span halves; that thread shares the GIL with the application).
    attributes = getattr(span, "_attributes", None)
    plain = getattr(attributes, "_dict", None)
    if isinstance(plain, dict):
        return plain
    return span.attributes or {}


def span_events(span: ReadableSpan, counters_live: bool, ledger: Ledger) -> list[dict[str, Any]]:
    """The ``db_write`` events of one ended write span: one per ISBN it names, or one.

    With ``counters_live`` each ISBN's event counts 1 and is charged to ``ledger`` (the counters
    tell how many writes there really were); otherwise it carries the span's adjusted count.
    """
    get = _plain_attributes(span).get
    if get("error.type") is not None:
        return []  # a failed write wrote nothing
    operation = str(get("db.operation.name"))
    collection = get("db.collection.name")
    table = str(collection) if collection else ""
    isbns: Any = get("book.isbns")
    if not isbns:
        first = get("book.isbn")
        isbns = (first,) if first else (None,)
    context = span.context
    trace_id = None
    weight = 1.0
    if context is not None:
        trace_id = format(context.trace_id, "032x")
        if context.trace_state:
            weight = adjusted_count(context.trace_state)
    timestamp = (span.end_time or time.time_ns()) / 1e9
    system = get("db.system.name")
    op = operation.lower()
    table_or_none = table or None
    system_or_none = str(system) if system else None
    out = []
    for isbn in isbns:
        count: float = weight
        if isbn is not None:
            isbn = str(isbn)
            if counters_live:
                ledger.charge((table, operation, isbn))
                count = 1
        out.append(db_write(op, table_or_none, isbn, timestamp, trace_id, system_or_none, count))
    return out
