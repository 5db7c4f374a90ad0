"""The viz event schema: the one definition of what the feed sends and the server accepts.

Usage::

    import json
    import time

    from dbpulse.viz.events import db_write, parse_payload

    event = db_write("insert", "books", "9780140449136", time.time())   # what the feed sends
    body = json.dumps({"events": [event]}).encode()
    events = parse_payload(body, received=time.time())   # the server's checked copies

Two kinds of event travel in ``POST /api/viz/emit`` bodies, ``{"events": [...]}``:

* ``db_write``: one write (or, from the exact counters, ``count`` writes) of one ISBN or of no
  ISBN; ``source`` says whether a span (``"span"``) or the counters (``"metrics"``) reported it.
* ``table_writes``: exact writes per table and operation since the previous report.

The feed builds them with :func:`db_write` and :func:`table_writes`; the server checks incoming
ones with :func:`parse_payload`, which builds its copy with the same two functions (known
fields only, types checked, ISBN-10s normalised to ISBN-13). ``docs/viz.md`` shows the format.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from dbpulse.core.isbn import normalize_isbn

__all__ = [
    "EMIT_PATH",
    "EVENT_TYPES",
    "MAX_EVENTS_PER_REQUEST",
    "PayloadError",
    "db_write",
    "loads_strict",
    "normalize_event",
    "parse_payload",
    "table_writes",
]

EMIT_PATH = "/api/viz/emit"
"""Where the server takes event batches."""
MAX_EVENTS_PER_REQUEST = 10_000
"""Events the server accepts in one request."""
EVENT_TYPES = frozenset({"db_write", "table_writes"})

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def db_write(
    operation: str,
    table: str | None,
    isbn: str | None,
    timestamp: float,
    trace_id: str | None = None,
    system: str | None = None,
    count: float = 1,
    source: str = "span",
) -> dict[str, Any]:
    """One ``db_write`` event: ``count`` writes of ``isbn`` (or of no ISBN) to ``table``."""
    return {
        "type": "db_write",
        "operation": operation,
        "table": table,
        "isbn": isbn,
        "timestamp": timestamp,
        "trace_id": trace_id,
        "system": system,
        "count": count,
        "source": source,
    }


def table_writes(
    operation: str,
    table: str | None,
    count: float,
    timestamp: float,
    system: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """One ``table_writes`` event: ``count`` exact writes of ``operation`` to ``table``."""
    return {
        "type": "table_writes",
        "operation": operation,
        "table": table,
        "count": count,
        "timestamp": timestamp,
        "system": system,
        "namespace": namespace,
    }


class PayloadError(ValueError):
    """A request body the server refuses; the message says what is wrong."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _short_str(event: dict[str, Any], name: str, index: int, limit: int) -> str | None:
    value = event.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise PayloadError(f"events[{index}].{name} must be a string of at most {limit} chars")
    return value


def normalize_event(raw: Any, index: int, received: float) -> dict[str, Any]:
    """The server's copy of one incoming event: known fields only, types checked.

    A ``db_write`` copy also has ``slot``: the orb the sender asked for, if any (the server
    decides; see :class:`dbpulse.viz.slots.SlotTable`).
    """
    if not isinstance(raw, dict):
        raise PayloadError(f"events[{index}] must be an object")
    kind = raw.get("type", "db_write")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise PayloadError(f"events[{index}].type must be one of {sorted(EVENT_TYPES)}")
    operation = _short_str(raw, "operation", index, 32)
    if not operation:
        raise PayloadError(f"events[{index}].operation is required (insert, update, delete...)")
    timestamp = raw.get("timestamp", received)
    if not _finite_number(timestamp):
        raise PayloadError(f"events[{index}].timestamp must be finite seconds since the epoch")
    count = raw.get("count", 1)
    if not isinstance(count, int | float) or isinstance(count, bool) or not 0 <= count <= 1e12:
        raise PayloadError(f"events[{index}].count must be a non-negative number")
    operation = operation.lower()
    table = _short_str(raw, "table", index, 256)
    system = _short_str(raw, "system", index, 64)
    # Every field given is checked, whichever kind of event keeps it (the OpenAPI document
    # describes one event schema).
    namespace = _short_str(raw, "namespace", index, 256)
    isbn = _short_str(raw, "isbn", index, 32)
    trace_id = _short_str(raw, "trace_id", index, 32)
    if trace_id is not None and not _TRACE_ID.match(trace_id):
        raise PayloadError(f"events[{index}].trace_id must be 32 lowercase hex digits")
    source = _short_str(raw, "source", index, 16) or "span"
    if kind == "table_writes":
        return table_writes(operation, table, count, float(timestamp), system, namespace)
    isbn = normalize_isbn(isbn) or (isbn or None)
    event = db_write(operation, table, isbn, float(timestamp), trace_id, system, count, source)
    slot = raw.get("slot")
    event["slot"] = slot if isinstance(slot, int) and not isinstance(slot, bool) else None
    return event


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _refuse_constant(name: str) -> float:
    raise PayloadError(f"non-finite number {name} refused: JSON has no NaN or Infinity")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"number {text[:40]} is out of range (not a finite float)")
    return value


def loads_strict(body: bytes | str) -> Any:
    """``json.loads`` for untrusted bodies: bad or too deeply nested JSON is a 400, a
    non-finite number (``NaN``, ``Infinity``, ``1e999``) a 422, as :class:`PayloadError`."""
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except PayloadError:
        raise
    except RecursionError:
        raise PayloadError("body is nested too deeply", 400) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}", 400) from None


def parse_payload(body: bytes, received: float) -> list[dict[str, Any]]:
    """The events of one emit request body, checked; :class:`PayloadError` says what is off."""
    payload = loads_strict(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise PayloadError('body must be a JSON object {"events": [...]}')
    raw_events = payload["events"]
    if len(raw_events) > MAX_EVENTS_PER_REQUEST:
        raise PayloadError(f"at most {MAX_EVENTS_PER_REQUEST} events per request")
    return [normalize_event(raw, i, received) for i, raw in enumerate(raw_events)]
