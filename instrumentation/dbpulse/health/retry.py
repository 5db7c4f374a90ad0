"""Lock resilience: :func:`retry` on "database is locked" and :func:`sqlite_connect`.

Usage::

    import dbpulse

    conn = dbpulse.sqlite_connect("app.db")          # WAL + busy_timeout 30 s, traced

    @dbpulse.retry                                   # or @dbpulse.retry(max_attempts=6)
    def save(row): ...                               # async def works the same way

    dbpulse.retry(deadline=5).call(save, row)        # call wrapper; await ....acall(...)

    for attempt in dbpulse.retry():                  # context-manager loop
        with attempt:                                # (async for ... in dbpulse.retry())
            with conn:
                conn.execute("INSERT ...")

Only lock errors are retried: SQLite ``SQLITE_BUSY``/``SQLITE_LOCKED`` (and their extended
codes, read from ``sqlite_errorname``), PostgreSQL SQLSTATE ``40001`` (serialization failure)
and ``40P01`` (deadlock), also when wrapped as SQLAlchemy's ``.orig``. Retry the whole
transaction, not one statement of it. Delays double from ``initial_delay`` (0.1, 0.2, 0.4 s
by default), each scaled by a random factor in ``1 ± jitter``, within ``max_attempts`` and an
overall ``deadline`` (seconds). Other errors fail fast; after the last attempt the original
exception is re-raised unchanged.

Each retry adds a ``dbpulse.retry`` event to the current span (``attempt``, ``error.type``,
``delay_s``) and counts in ``dbpulse.db.retries`` by ``outcome``: ``retried`` per retry,
``succeeded_after_retry`` or ``gave_up`` once per call that retried.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.telemetry.errors import error_type_of
from dbpulse.telemetry.instruments import Instruments

__all__ = ["RETRIES", "Attempt", "Retry", "is_lock_error", "retry", "sqlite_connect"]

F = TypeVar("F", bound=Callable[..., Any])
_PG_LOCK_STATES = frozenset({"40001", "40P01"})
_SQLITE_LOCK_NAMES = ("SQLITE_BUSY", "SQLITE_LOCKED")


def is_lock_error(exc: BaseException) -> bool:
    """True for the errors a retry can cure: SQLite busy/locked, PostgreSQL 40001/40P01."""
    for candidate in (exc, getattr(exc, "orig", None)):
        if candidate is None:
            continue
        name = getattr(candidate, "sqlite_errorname", None)
        if name and any(name == n or name.startswith(n + "_") for n in _SQLITE_LOCK_NAMES):
            return True
        if getattr(candidate, "sqlstate", None) in _PG_LOCK_STATES:
            return True
    return False


class RetryCounts:
    """``dbpulse.db.retries`` counted in-process by (outcome, error.type), observed by the SDK."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}
        self._instruments = Instruments("dbpulse.retry")

    def add(self, outcome: str, error_type: str) -> None:
        with self.lock:
            key = (outcome, error_type)
            self.counts[key] = self.counts.get(key, 0) + 1

    def total(self, outcome: str) -> int:
        with self.lock:
            return sum(n for (o, _), n in self.counts.items() if o == outcome)

    def register(self, meter_provider: Any = None) -> None:
        self._instruments.observe(
            meter_provider,
            (
                (
                    "counter",
                    "dbpulse.db.retries",
                    self._observe,
                    "{retry}",
                    "Lock-error retries by dbpulse.retry, by outcome "
                    "(retried, succeeded_after_retry, gave_up).",
                ),
            ),
        )

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self.lock:
            items = list(self.counts.items())
        for (outcome, error_type), count in items:
            yield Observation(count, {"outcome": outcome, "error.type": error_type})

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()


RETRIES = RetryCounts()


class Attempt:
    """One try in a retry loop; ``with attempt:`` swallows a lock error that will be retried."""

    def __init__(self, loop: _Loop, number: int) -> None:
        self.loop = loop
        self.number = number
        self.delay: float | None = None  # set when the block failed and will be retried

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None:
            self.loop.policy._succeeded(self.loop, self.number)
            return False
        self.delay = self.loop.policy._after_failure(self.loop, self.number, exc)
        return self.delay is not None


class _Loop:
    """The attempts of one call: sync or async iteration, sleeping between attempts."""

    def __init__(self, policy: Retry) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.last_error = ""
        self.current: Attempt | None = None

    def _next(self) -> Attempt | None:
        if self.current is not None and self.current.delay is None:
            return None  # succeeded (a failure that is not retried propagated out of the with)
        number = 1 if self.current is None else self.current.number + 1
        self.current = Attempt(self, number)
        return self.current

    def __iter__(self) -> Iterator[Attempt]:
        while True:
            if self.current is not None and self.current.delay:
                time.sleep(self.current.delay)
            attempt = self._next()
            if attempt is None:
                return
            yield attempt

    def __aiter__(self) -> _Loop:
        return self

    async def __anext__(self) -> Attempt:
        if self.current is not None and self.current.delay:
            await asyncio.sleep(self.current.delay)
        attempt = self._next()
        if attempt is None:
            raise StopAsyncIteration
        return attempt


@dataclass(frozen=True, kw_only=True)
class Retry:
    """A retry policy; see the module docstring. Reusable: each call's state is its own loop."""

    max_attempts: int = 4
    initial_delay: float = 0.1
    max_delay: float = 5.0
    deadline: float | None = None
    jitter: float = 0.25
    retry_on: Callable[[BaseException], bool] = is_lock_error

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        RETRIES.register()

    # -- the loop's bookkeeping ------------------------------------------------------------

    def _after_failure(self, loop: _Loop, number: int, exc: BaseException) -> float | None:
        """The delay before the next attempt, or None to let ``exc`` propagate."""
        if not self.retry_on(exc):
            return None
        error_type = error_type_of(exc)
        delay = min(self.max_delay, self.initial_delay * 2 ** (number - 1))
        delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        elapsed = time.monotonic() - loop.started
        out_of_time = self.deadline is not None and elapsed + delay > self.deadline
        if number >= self.max_attempts or out_of_time:
            if number > 1:
                RETRIES.add("gave_up", error_type)
            return None
        RETRIES.add("retried", error_type)
        loop.last_error = error_type
        trace.get_current_span().add_event(
            "dbpulse.retry",
            {"attempt": number, "error.type": error_type, "delay_s": round(delay, 4)},
        )
        return delay

    def _succeeded(self, loop: _Loop, number: int) -> None:
        if number > 1:
            RETRIES.add("succeeded_after_retry", loop.last_error)

    # -- the three faces -------------------------------------------------------------------

    def __iter__(self) -> Iterator[Attempt]:
        return iter(_Loop(self))

    def __aiter__(self) -> _Loop:
        return _Loop(self)

    def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)``, retried on lock errors."""
        for attempt in self:
            with attempt:
                return func(*args, **kwargs)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def acall(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await func(*args, **kwargs)``, retried on lock errors."""
        async for attempt in self:
            with attempt:
                return await func(*args, **kwargs)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def __call__(self, func: F) -> F:
        """Decorate a function or a coroutine function."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(func, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call(func, *args, **kwargs)

        return wrapper  # type: ignore[return-value]


def retry(func: F | None = None, /, **options: Any) -> Any:
    """``@retry``, ``@retry(**options)``, ``retry(**options).call(f)`` or ``for a in retry():``."""
    policy = Retry(**options)
    return policy(func) if func is not None else policy


def sqlite_connect(
    path: str, wal: bool = True, busy_timeout_ms: int = 30_000, **kwargs: Any
) -> sqlite3.Connection:
    """``sqlite3.connect`` plus ``journal_mode=WAL`` and ``busy_timeout``; traced like any
    connection (the instrumentor patches ``sqlite3.connect``)."""
    kwargs.setdefault("timeout", busy_timeout_ms / 1000)
    conn = sqlite3.connect(path, **kwargs)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    return conn
