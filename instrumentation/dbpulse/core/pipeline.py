"""The observation pipeline: one path for every driver's calls, sync and async.

Every instrumentor hands one database call to :func:`traced_call` (or its ``_async`` twin),
a batch to :func:`traced_batch`:

1. the :class:`~dbpulse.core.statements.Statement` (parsed once per distinct text) is given;
2. entity keys (ISBNs) come from its cached literals and the call's parameters, for writes
   (for reads only when a span shows them);
3. a CLIENT span is started only when it would be kept: a sampled parent, or no parent and
   the adaptive sampler not in aggregated mode. Attributes are set at start;
4. the duration, rows and keys go into the exact in-process aggregate
   (:mod:`dbpulse.telemetry.metrics`), per statement shape too (top statements);
5. a single call under a parent span counts toward N+1 detection
   (:mod:`dbpulse.telemetry.repeats`); a slow or failed call without a kept span gets a
   captured root span, within a rate limit (:mod:`dbpulse.telemetry.capture`).

Nothing here may raise into the application: dbpulse's own bookkeeping is guarded, and the
application's exception is re-raised unchanged. The driver's return value is returned as is.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Status, StatusCode

from dbpulse.core.state import STATE, Switch, guarded_keys, warn_once
from dbpulse.core.statements import Database, Statement
from dbpulse.telemetry.capture import CAPTURE, REASON
from dbpulse.telemetry.errors import error_type_of
from dbpulse.telemetry.limits import INSIGHTS
from dbpulse.telemetry.metrics import OPERATIONS, Series
from dbpulse.telemetry.repeats import REPEATS
from dbpulse.telemetry.sampler import LOAD

__all__ = ["Call", "call_keys", "keys_for_rows", "traced_batch", "traced_call", "traced_call_async"]

R = TypeVar("R")
RowCount = Callable[[Any], int]
Rewrite = Callable[[tuple[Any, ...], Any], tuple[Any, ...]]
"""``rewrite(args, span)``: the driver call's arguments for a call with a sampled span
(sqlcommenter); never called for unsampled calls."""

MAX_KEYS_ON_SPAN = 100
MAX_LAZY_ROWS_WITH_KEYS = 100_000
_NO_KWARGS: dict[str, Any] = {}
_perf_counter = time.perf_counter
_SPAN_KEY = trace._SPAN_KEY  # checked against opentelemetry-api 1.45


def _context_reader() -> Callable[[], Any]:
    """Fastest way to read the current context: the runtime's ContextVar when we can see it.

    ``trace.get_current_span()`` costs 0.15 µs; reading the ContextVar directly 0.02 µs.
    """
    var = getattr(otel_context._RUNTIME_CONTEXT, "_current_context", None)
    if var is not None and hasattr(var, "get"):
        return var.get
    return otel_context.get_current


_current_context = _context_reader()


def _want_span(span: Any) -> bool:
    """Would a span under ``span`` (the current one) be kept? ParentBased: follow a valid
    parent; roots unless aggregated."""
    if span is not None:
        parent = span.get_span_context()
        if parent.is_valid:
            return bool(parent.trace_flags.sampled)
    return LOAD.probability > 0.0


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    if not second:
        return first
    if not first:
        return second
    return tuple(dict.fromkeys(first + second))


def call_keys(stmt: Statement, params: Any) -> tuple[str, ...]:
    """The keys of one call: the statement's literals plus those in its parameters."""
    extractor = STATE.extractor
    if extractor is None:
        return ()
    # Exact types before truthiness: a parameter sequence whose truth value raises (a numpy
    # array) must reach the driver, not raise here.
    if params is None or (type(params) in (tuple, list, dict) and not params):
        return stmt.literal_keys
    return _merge(stmt.literal_keys, guarded_keys(extractor.from_params, params))


def keys_for_rows(stmt: Statement, rows: Any) -> list[tuple[str, ...]]:
    """Keys per parameter row of a batch (``executemany``)."""
    return [call_keys(stmt, row) for row in rows] if STATE.extractor is not None else []


def _flatten(per_row: list[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for keys in per_row for k in keys)) if per_row else ()


def _span_attributes(
    stmt: Statement, db: Database, keys: tuple[str, ...], batch: int | None
) -> dict[str, Any]:
    attributes = stmt.attributes_for(db)
    if not keys and batch is None:
        return attributes
    attributes = dict(attributes)
    if batch is not None:
        attributes["db.operation.batch.size"] = batch
    if keys:
        name = STATE.key_attribute
        attributes[name] = keys[0]
        attributes[name + ".count"] = len(keys)
        if len(keys) > 1:
            attributes[name + "s"] = list(keys[:MAX_KEYS_ON_SPAN])
    return attributes


def _count(rowcount: RowCount | None, source: Any) -> int:
    if rowcount is None:
        return -1
    try:
        return int(rowcount(source))
    except Exception:
        return -1


class Call:
    """One observed call that may carry a span, between :meth:`start` and :meth:`done` or
    :meth:`failed`; also usable around a block (``with cursor.copy()``)."""

    __slots__ = ("counter", "db", "keys", "per_row", "rows", "span", "spans", "start", "stmt")

    def __init__(
        self, db: Database, stmt: Statement, keys: tuple[str, ...] = (), spans: Any = None
    ) -> None:
        self.spans = spans
        self.db = db
        self.stmt = stmt
        self.keys = keys
        self.per_row: list[tuple[str, ...]] | None = None
        self.rows: int | None = None  # parameter rows of a batch
        self.counter: _RowCounter | None = None
        self.span: Any = None
        self.start = 0.0

    @classmethod
    def begin(
        cls, switch: Switch, db: Database, stmt: Statement, params: Any, keys: Any = None
    ) -> Call:
        """Read the keys of a single call (unless given) and start its span if kept."""
        call = cls(db, stmt, spans=switch.spans)
        try:
            context = _current_context()
            parent = context.get(_SPAN_KEY)
            want = _want_span(parent)
            if keys is not None:
                call.keys = keys
            elif stmt.is_write or want:
                # Writes need their keys for the exact metrics; reads only when a span shows them.
                call.keys = call_keys(stmt, params)
            if want:
                call.span = switch.spans.start(
                    stmt.span_name, _span_attributes(stmt, db, call.keys, None), context
                )
            if parent is not None and parent.get_span_context().is_valid:
                pattern = REPEATS.seen(parent, db.system, stmt.fingerprint, stmt.summary)
                if pattern and call.span is not None:
                    call.span.set_attributes(pattern)
        except Exception:
            warn_once("could not start a span")
        call.start = _perf_counter()
        return call

    @classmethod
    def begin_batch(
        cls, switch: Switch, db: Database, stmt: Statement, rows_params: Any, size: int | None
    ) -> tuple[Call, Any]:
        """Like :meth:`begin` for a batch; returns the call and the parameter rows to hand to
        the driver. Lists and tuples are read before the call (their keys go on the span at
        start); any other iterable is wrapped so rows are observed as the driver consumes
        them, never copied. ``size`` overrides the batch size shown on the span."""
        call = cls(db, stmt, spans=switch.spans)
        call_params = rows_params
        try:
            if isinstance(rows_params, list | tuple):
                call.rows = len(rows_params)
                if stmt.is_write or stmt.literal_keys:
                    call.per_row = keys_for_rows(stmt, rows_params)
                    call.keys = _flatten(call.per_row)
            else:
                call.counter = _RowCounter(rows_params, stmt if stmt.is_write else None)
                call_params = call.counter
            if _want_span(_current_context().get(_SPAN_KEY)):
                shown = size if size is not None else call.rows
                call.span = switch.spans.start(
                    stmt.span_name, _span_attributes(stmt, db, call.keys, shown), _current_context()
                )
        except Exception:
            warn_once("could not start a batch span")
            call_params = rows_params
            call.counter = None
        call.start = _perf_counter()
        return call, call_params

    def done(self, rowcount: int = -1) -> None:
        """The call succeeded; ``rowcount`` is the driver's count of affected rows, if known."""
        end = _perf_counter()
        duration = end - self.start
        try:
            stmt = self.stmt
            counter = self.counter
            if counter is not None:
                self.rows = counter.rows
                self.per_row = counter.keys
                self.keys = _flatten(counter.keys)
            rows = 0
            keys = self.keys
            if stmt.is_write:
                rows = rowcount if rowcount >= 0 else (1 if self.rows is None else self.rows)
                if self.per_row is not None:
                    keys = tuple(k for row_keys in self.per_row for k in row_keys)
            else:
                keys = ()
            series = stmt.series_for(self.db, None)
            OPERATIONS.record(series, duration, end, rows, keys, stmt)
            span = self.span
            if span is not None:
                if counter is not None:
                    late = _span_attributes(stmt, self.db, self.keys, self.rows)
                    prefix = ("db.operation.batch", STATE.key_attribute)
                    span.set_attributes({k: v for k, v in late.items() if k.startswith(prefix)})
                _end_span(span, series, duration)
            if duration >= INSIGHTS.slow_seconds and not _kept(span):
                _capture(self.spans, self.db, stmt, duration, "slow", series)
        except Exception:
            warn_once("could not record an operation")

    def failed(self, exc: BaseException) -> None:
        _record_failure(self.spans, self.db, self.stmt, self.span, self.start, exc)


def _kept(span: Any) -> bool:
    return span is not None and bool(span.get_span_context().trace_flags.sampled)


def _record_failure(
    spans: Any, db: Database, stmt: Statement, span: Any, start: float, exc: BaseException
) -> None:
    end = _perf_counter()
    duration = end - start
    try:
        error_type = error_type_of(exc)
        series = stmt.series_for(db, error_type)
        OPERATIONS.record(series, duration, end, 0, (), stmt)
        if span is not None:
            # The exception message may quote parameter values, so only the type is exported.
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
            _end_span(span, series, duration)
        if INSIGHTS.capture_errors and spans is not None and not _kept(span):
            _capture(spans, db, stmt, duration, "error", series, error_type)
    except Exception:
        warn_once("could not record a failed operation")


def _capture(
    spans: Any,
    db: Database,
    stmt: Statement,
    duration: float,
    reason: str,
    series: Series,
    error_type: str | None = None,
) -> None:
    """Keep a span for a slow or failed call nothing kept (see dbpulse.telemetry.capture)."""
    if not CAPTURE.take():
        OPERATIONS.count_dropped("capture_rate_limit")
        return
    links: tuple[Link, ...] = ()
    parent = _current_context().get(_SPAN_KEY)
    if parent is not None:
        context = parent.get_span_context()
        if context.is_valid:
            links = (Link(context),)
    attributes = dict(stmt.attributes_for(db))
    attributes[REASON] = reason
    if error_type is not None:
        attributes["error.type"] = error_type
    start = time.time_ns() - int(duration * 1e9)
    span = spans.capture(stmt.span_name, attributes, start, links)
    if error_type is not None:
        span.set_status(Status(StatusCode.ERROR, error_type))
    _end_span(span, series, duration)


def _end_span(span: Any, series: Series, duration: float) -> None:
    context = span.get_span_context()
    if context.trace_flags.sampled:
        OPERATIONS.add_exemplar(series, duration, context.trace_id, context.span_id)
    span.end()


def _run(
    call: Call,
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    rowcount: RowCount | None,
    rows_from: Any,
) -> R:
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(_count(rowcount, result if rows_from is None else rows_from))
    return result


async def _awaited(
    call: Call,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    rowcount: RowCount | None,
    rows_from: Any,
) -> R:
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(_count(rowcount, result if rows_from is None else rows_from))
    return result


def traced_call(
    switch: Switch,
    db: Database,
    stmt: Statement,
    params: Any,
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] = _NO_KWARGS,
    rowcount: RowCount | None = None,
    rows_from: Any = None,
    rewrite: Rewrite | None = None,
) -> R:
    """Run ``fn(*args, **kwargs)``, one database operation of ``stmt``, and observe it.

    ``params`` are the call's parameters (read for entity keys only). ``rowcount`` reads the
    number of affected rows from ``rows_from`` (default: the result); without it a write
    counts one row. ``rewrite`` changes the arguments of a call with a sampled span.

    This is the hot path, written once and measured (benchmarks/overhead.py): with no span it
    is a context read, one key extraction for writes, two clock reads and one locked update.
    """
    keys = call_keys(stmt, params) if stmt.is_write else ()
    span = _current_context().get(_SPAN_KEY)
    if LOAD.probability > 0.0 or (span is not None and span.get_span_context().is_valid):
        call = Call.begin(switch, db, stmt, params, keys if stmt.is_write else None)
        if rewrite is not None and call.span is not None:
            args = _rewritten(rewrite, args, call.span)
        return _run(call, fn, args, kwargs, rowcount, rows_from)
    start = _perf_counter()
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        _record_failure(switch.spans, db, stmt, None, start, exc)
        raise
    end = _perf_counter()
    try:
        rows = 0
        if stmt.is_write:
            rows = _count(rowcount, result if rows_from is None else rows_from)
            if rows < 0:
                rows = 1
        series = stmt.series.get(db) or stmt.series_for(db, None)
        OPERATIONS.record(series, end - start, end, rows, keys, stmt)
        if end - start >= INSIGHTS.slow_seconds:
            _capture(switch.spans, db, stmt, end - start, "slow", series)
    except Exception:
        warn_once("could not record an operation")
    return result


def _rewritten(rewrite: Rewrite, args: tuple[Any, ...], span: Any) -> tuple[Any, ...]:
    if not span.get_span_context().trace_flags.sampled:
        return args
    try:
        return rewrite(args, span)
    except Exception:
        warn_once("could not add the sqlcommenter comment")
        return args


def traced_call_async(
    switch: Switch,
    db: Database,
    stmt: Statement,
    params: Any,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] = _NO_KWARGS,
    rowcount: RowCount | None = None,
    rows_from: Any = None,
    rewrite: Rewrite | None = None,
) -> Awaitable[R]:
    """:func:`traced_call` for a coroutine function (asyncio drivers): returns the awaitable
    the application awaits."""
    call = Call.begin(switch, db, stmt, params)
    if rewrite is not None and call.span is not None:
        args = _rewritten(rewrite, args, call.span)
    return _awaited(call, fn, args, kwargs, rowcount, rows_from)


def traced_batch(
    switch: Switch,
    db: Database,
    stmt: Statement,
    rows_params: Any,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] = _NO_KWARGS,
    *,
    rows_at: int | str | None = None,
    rowcount: RowCount | None = None,
    rows_from: Any = None,
    size: int | None = None,
    awaits: bool = False,
) -> Any:
    """:func:`traced_call` for a batch (``executemany``, a pipeline): ``rows_params`` are its
    parameter rows, handed to ``fn`` at position or keyword ``rows_at`` (possibly wrapped to
    be observed lazily; ``None`` when ``fn`` takes them from elsewhere). ``size`` overrides
    the batch size on the span; ``awaits``: ``fn`` is a coroutine function and the awaitable
    is returned."""
    call, rows = Call.begin_batch(switch, db, stmt, rows_params, size)
    if isinstance(rows_at, int):
        args = (*args[:rows_at], rows, *args[rows_at + 1 :])
    elif isinstance(rows_at, str):
        kwargs = {**kwargs, rows_at: rows}
    if awaits:
        return _awaited(call, fn, args, kwargs, rowcount, rows_from)
    return _run(call, fn, args, kwargs, rowcount, rows_from)


class _RowCounter:
    """Passes a lazy iterable of parameter rows through, counting rows and reading keys."""

    __slots__ = ("_iterable", "_stmt", "keys", "rows")

    def __init__(self, iterable: Any, stmt: Statement | None) -> None:
        self._iterable = iterable
        self._stmt = stmt
        self.rows = 0
        self.keys: list[tuple[str, ...]] = []

    def __iter__(self) -> Iterator[Any]:
        stmt = self._stmt
        for row in self._iterable:
            self.rows += 1
            if stmt is not None and len(self.keys) < MAX_LAZY_ROWS_WITH_KEYS:
                self.keys.append(call_keys(stmt, row))
            yield row
