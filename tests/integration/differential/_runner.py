"""One runner for the differential scenarios: each runs raw, then instrumented, and the two
outcomes must be equal.

An outcome is what the application sees: the returned value, compared by value *and* type
(recursively: a ``tuple`` of ``int`` is not a ``list`` of ``str``), or the exception, compared
by type, message and, for drivers that carry them, the error code attributes; and the warnings
given on the way (category and message; garbage is collected at the end of each run, so
``ResourceWarning: unclosed database`` shows that nothing kept a connection alive). Two differences
are not the application's business and are normalised away:

- dbpulse's SQLite connection and cursor classes are subclasses of the application's own
  (under its names): a value's type is the first class of its MRO that is not dbpulse's;
- thread ids in sqlite3's "created in a thread" message differ from run to run, and so do the
  file descriptor and addresses of an unclosed socket in a ``ResourceWarning``.
"""

from __future__ import annotations

import datetime
import decimal
import gc
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dbpulse

# Scenario results per driver, for the terminal summary (conftest.py): driver -> [passed, total]
RESULTS: dict[str, list[int]] = {}


@dataclass
class Ctx:
    """What a scenario may use: a fresh directory, the services, a unique key prefix, and
    whether this run is the instrumented one (only :meth:`proxy` looks at it)."""

    instrumented: bool
    tmp: Path
    dsn: str = ""
    redis_url: str = ""
    cluster_url: str = ""  # the private Redis Cluster of the ``cluster_*`` redis scenarios
    prefix: str = field(default_factory=lambda: f"dbpulse-diff:{uuid.uuid4().hex[:10]}:")

    def proxy(self, connection: Any) -> Any:
        """``instrument_connection(connection)`` when instrumented, ``connection`` when raw."""
        if not self.instrumented:
            return connection
        from dbpulse import SQLite3Instrumentor

        return SQLite3Instrumentor.instrument_connection(connection)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"


@dataclass(frozen=True)
class Scenario:
    driver: str  # "sqlite", "postgresql", "redis"
    name: str
    run: Callable[[Ctx], Any]
    observed: bool  # the instrumented run must record at least one span

    @property
    def id(self) -> str:
        return f"{self.driver}-{self.name}"


SCENARIOS: list[Scenario] = []


def scenario(driver: str, *, observed: bool = True) -> Callable[[Callable[[Ctx], Any]], Any]:
    """Register a scenario function (its name without the ``s_`` prefix is its id)."""

    def register(fn: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
        name = fn.__name__.removeprefix("s_")
        assert all(s.name != name or s.driver != driver for s in SCENARIOS), name
        SCENARIOS.append(Scenario(driver, name, fn, observed))
        return fn

    return register


def visible_type(value: Any) -> str:
    """The type the application would name: dbpulse's own subclasses skipped."""
    for cls in value.__class__.__mro__:  # __class__: what a proxy says it is
        if not cls.__module__.startswith("dbpulse"):
            return f"{cls.__module__}.{cls.__qualname__}"
    return "object"  # pragma: no cover


_PLAIN = (type(None), bool, int, float, str, bytes, decimal.Decimal, datetime.date, uuid.UUID)
_THREAD_IDS = re.compile(r"thread id \d+")
_OBJECT_AT = re.compile(r" at 0x[0-9a-f]+")
_SOCKET = re.compile(r"<socket\.socket [^>]*>")
_CODES = ("sqlite_errorcode", "sqlite_errorname", "sqlstate")


def message(exc: BaseException | Warning | str) -> str:
    """The exception's message with what differs from run to run (thread ids, addresses,
    sockets) replaced."""
    text = _THREAD_IDS.sub("thread id N", str(exc))
    text = _SOCKET.sub("<socket.socket ...>", text)
    return _OBJECT_AT.sub(" at 0x...", text)


def shape(value: Any, depth: int = 0) -> Any:
    """``value`` as a comparable tree of (type, content)."""
    kind = visible_type(value)
    if depth > 20:
        return kind, "..."
    if isinstance(value, _PLAIN):
        return kind, value
    if isinstance(value, BaseException):
        return kind, message(value), tuple(getattr(value, c, None) for c in _CODES)
    if isinstance(value, dict):
        return kind, [(shape(k, depth + 1), shape(v, depth + 1)) for k, v in value.items()]
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return kind, [shape(v, depth + 1) for v in items]
    keys = getattr(value, "keys", None)
    if callable(keys) and hasattr(value, "__getitem__"):  # sqlite3.Row and the like
        return kind, [(k, shape(value[k], depth + 1)) for k in keys()]
    return (kind,)  # a connection, a cursor: its type is what can be compared


def outcome(fn: Callable[[Ctx], Any], ctx: Ctx) -> tuple[str, Any, list[tuple[str, str]]]:
    """What ``fn`` returned or raised, and the warnings it gave (category and message)."""
    # Garbage is collected at the end of the run, so ResourceWarning "unclosed database" shows
    # that nothing kept the run's connections alive; what existed before is frozen out of the
    # collection (it is not this run's, and collecting it all each time would take seconds).
    gc.freeze()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result: tuple[str, Any] = "returned", shape(fn(ctx))
            except Exception as exc:
                result = "raised", shape(exc)
            gc.collect()
    finally:
        gc.unfreeze()
    given = [(w.category.__name__, message(w.message)) for w in caught]
    return (*result, given)


def set_instrumented(driver: str, on: bool) -> None:
    if on:
        dbpulse.instrument(systems=(driver,))
    else:
        dbpulse.uninstrument(systems=(driver,))
