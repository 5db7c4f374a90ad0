"""Instrumentation of psycopg 3 and psycopg_pool.

Usage::

    import psycopg
    from dbpulse import PsycopgInstrumentor

    PsycopgInstrumentor().instrument()
    with psycopg.connect("dbname=shop") as conn:
        conn.execute("INSERT INTO books(isbn) VALUES (%s)", ("9780140449136",))

Observed: ``execute``, ``executemany`` and ``copy`` of sync and async cursors (client-side,
raw and server-side) and therefore ``Connection.execute``; connections from ``psycopg_pool``
(sync and async) are ordinary psycopg connections. The methods are wrapped on the classes, so
connections already open are covered and ``uninstrument()`` really stops the work.

``DBPULSE_SQLCOMMENTER=true`` (or ``instrument(sqlcommenter=True)``) appends the sampled
calls' ``traceparent`` to the SQL sent (:mod:`dbpulse.core.sqlcommenter`).

Pools created while instrumented report the ``db.client.connection.*`` metrics: connection
count by state (idle/used), max, pending requests (from the pool's own stats), timeouts and
wait time (timed around ``getconn``).

Rows written are the command tags' (``INSERT 0 5``, ``UPDATE 3``, ``MERGE 4``, ``COPY 2``), read
from the results psycopg already holds, never by another round trip: every statement of a
multi-statement string, every result of ``executemany(returning=True)``, and in pipeline mode
each result as it comes in (``BasePipeline._process_results``), after ``execute`` returned.
"""

from __future__ import annotations

import os
import weakref
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap

from dbpulse.core.pipeline import Call, traced_batch, traced_call, traced_call_async
from dbpulse.core.sqlcommenter import comment_for, with_comment
from dbpulse.core.state import Switch, warn_once
from dbpulse.core.statements import Database, Statement, database, statement
from dbpulse.instrumentors import _stock
from dbpulse.instrumentors.psycopg_pool import POOLS, pool_module, pool_patches
from dbpulse.telemetry.metrics import OPERATIONS

__all__ = ["PsycopgInstrumentor"]

SWITCH = Switch("postgresql")
POOL_PATCHES = pool_patches(SWITCH)
_SYSTEM = "postgresql"
Wrapper = Callable[[Any, Any, Any, Any], Any]


def _database(conn: Any) -> Database:
    """The connection's :class:`Database`, cached on the connection object."""
    try:
        return conn._dbpulse_db
    except AttributeError:
        pass
    try:
        info = conn.info
        host = info.host
        address = None if not host or host.startswith("/") else host
        port = int(info.port) if info.port else None
        db = database(_SYSTEM, info.dbname, address, port)
    except Exception:
        db = database(_SYSTEM, None)
    try:
        conn._dbpulse_db = db
    except Exception:
        pass
    return db


def _query_text(query: Any, cursor: Any) -> str | None:
    if type(query) is str:
        return query
    if isinstance(query, bytes | bytearray | memoryview):
        return bytes(query).decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)  # psycopg.sql.Composable
    if as_string is not None:
        try:
            return str(as_string(cursor))
        except Exception:
            return None
    return None


def _target(cursor: Any, args: Any, kwargs: Any) -> tuple[Database, Statement] | None:
    """The call's database and statement, or ``None`` when the query can't be read."""
    try:
        query = args[0] if args else kwargs.get("query", kwargs.get("statement"))
        sql = _query_text(query, cursor)
        if sql is None:
            return None
        return _database(cursor.connection), statement(_SYSTEM, sql)
    except Exception:
        return None


def _rowcount(cursor: Any) -> int:
    return int(cursor.rowcount)


# Command tags that count the rows the statement itself changed (INSERT 0 5, UPDATE 3...).
_WRITE_TAGS = (b"INSERT", b"UPDATE", b"DELETE", b"MERGE", b"COPY")


def _tagged(results: Any) -> int:
    """Rows changed by the statements of ``results`` (PGresults), as their command tags say;
    -1 when none is a write's tag (a data-modifying CTE under a SELECT: PostgreSQL reports the
    SELECT's rows only)."""
    rows = -1
    for result in results:
        tag = result.command_status
        if tag is not None and tag.startswith(_WRITE_TAGS):
            rows = max(rows, 0) + (result.command_tuples or 0)
    return rows


def _written(cursor: Any) -> int:
    """Rows an ``execute`` changed: the write tags of all its results (several statements in
    one string each have one; the cursor's rowcount is only the current result's)."""
    results = getattr(cursor, "_results", None)
    if results is None:
        return int(cursor.rowcount)
    return _tagged(results)


def _batch_written(returning: bool) -> Any:
    """Rows an ``executemany`` changed: psycopg sums them in rowcount, except with
    ``returning=True``, where rowcount is the current result's and every result is kept."""
    return _written if returning else _rowcount


def _deferred(cursor: Any) -> bool:
    """Whether the cursor's connection is in pipeline mode: results come later (at the next
    sync or fetch), and their rows are counted then (:func:`_pipeline_results`)."""
    conn = getattr(cursor, "_conn", None)
    return conn is not None and getattr(conn, "_pipeline", None) is not None


class _Pending:
    """A call sent in pipeline mode whose results have not come yet."""

    __slots__ = ("db", "expected", "got", "stmt")

    def __init__(self, db: Database, stmt: Statement, expected: int | None) -> None:
        self.db = db
        self.stmt = stmt
        self.expected = expected  # result sets to come; None while an executemany sends
        self.got = 0


# Per cursor, its calls sent in pipeline mode, in order (psycopg hands results back in order).
_PENDING: weakref.WeakKeyDictionary[Any, deque[_Pending]] = weakref.WeakKeyDictionary()
_OK = (1, 2)  # libpq's PGRES_COMMAND_OK, PGRES_TUPLES_OK


def _pipeline_results(wrapped: Any, pipeline: Any, args: Any, kwargs: Any) -> Any:
    """``BasePipeline._process_results(queued, results)``: one result set of a call sent in
    pipeline mode has come; its rows are added to the call's series."""
    try:
        queued = args[0] if _PENDING else None
        if queued is not None:
            queue = _PENDING.get(queued[0])
            if queue:
                entry = queue[0]
                entry.got += 1
                if entry.expected is not None and entry.got >= entry.expected:
                    queue.popleft()
                results = args[1]
                if all(r.status in _OK for r in results):
                    rows = _tagged(results)
                    rows = 1 if rows < 0 else rows
                    stmt = entry.stmt
                    OPERATIONS.add_rows(stmt.series_for(entry.db, None), rows, (), stmt)
    except Exception:
        warn_once("could not count a pipeline's rows")
    return wrapped(*args, **kwargs)


def _pipeline_class() -> Any:
    """psycopg's ``BasePipeline`` (``psycopg._pipeline_base`` since 3.2, ``_pipeline`` before),
    where every result of pipeline mode comes in; ``None`` if psycopg moved it (results of
    pipeline mode then count one row per write)."""
    import importlib

    for module in ("psycopg._pipeline_base", "psycopg._pipeline"):
        try:
            found = getattr(importlib.import_module(module), "BasePipeline", None)
        except ImportError:
            continue
        if found is not None and callable(getattr(found, "_process_results", None)):
            return found
    return None


def _queued_for(cursor: Any) -> int:
    pipeline = getattr(getattr(cursor, "_conn", None), "_pipeline", None)
    queue = getattr(pipeline, "result_queue", ())
    return sum(1 for item in queue if item is not None and item[0] is cursor)


def _sent(cursor: Any, entry: _Pending) -> None:
    """The call of ``entry`` returned (or raised): the result sets it is still owed are those
    psycopg still has queued for the cursor, beyond what earlier calls are owed."""
    try:
        queue = _PENDING.get(cursor)
        if not queue:
            return
        owed = _queued_for(cursor)
        for earlier in queue:
            if earlier is entry:
                break
            owed -= max(0, (earlier.expected or 0) - earlier.got)
        entry.expected = entry.got + max(0, owed)
        if owed <= 0 and entry in queue:
            queue.remove(entry)
    except Exception:
        warn_once("could not count a pipeline's rows")


def _send(cursor: Any, db: Database, stmt: Statement, expected: int | None) -> _Pending:
    entry = _Pending(db, stmt, expected)
    queue = _PENDING.get(cursor)
    if queue is None:
        queue = _PENDING[cursor] = deque()
    queue.append(entry)
    return entry


def _none(_cursor: Any) -> int:
    return 0


def _count_partial(db: Database, stmt: Statement, cursor: Any, returning: bool) -> None:
    """A failed executemany: the rows its earlier statements changed (they succeeded, and
    stay changed until the transaction ends). Never raises."""
    try:
        rows = _batch_written(returning)(cursor)
        OPERATIONS.add_rows(stmt.series_for(db, None), rows, (), stmt)
    except Exception:
        pass


class _Commenter:
    """Whether sqlcommenter is on (``DBPULSE_SQLCOMMENTER`` or ``instrument(sqlcommenter=)``)."""

    on = False


COMMENTER = _Commenter()


def _service_name() -> str | None:
    spans: Any = SWITCH.spans
    resource = getattr(spans, "resource", None) or getattr(
        getattr(spans, "tracer", None), "resource", None
    )
    name = getattr(resource, "attributes", {}).get("service.name")
    return str(name) if name else None


def _add_comment(args: tuple[Any, ...], span: Any) -> tuple[Any, ...]:
    """The query (a ``str`` first argument) with the span's sqlcommenter comment."""
    if not args or type(args[0]) is not str:
        return args
    has_params = len(args) > 1 and args[1] is not None
    text = with_comment(args[0], comment_for(span, _service_name()), has_params)
    return (text, *args[1:])


def _execute_wrapper(awaits: bool) -> Wrapper:
    observe = traced_call_async if awaits else traced_call

    def execute(wrapped: Any, cursor: Any, args: Any, kwargs: Any) -> Any:
        found = _target(cursor, args, kwargs) if SWITCH.on else None
        if found is None:
            return wrapped(*args, **kwargs)
        params = args[1] if len(args) > 1 else kwargs.get("params")
        entry = _send(cursor, *found, 1) if found[1].is_write and _deferred(cursor) else None
        try:
            result = observe(
                SWITCH,
                *found,
                params,
                wrapped,
                args,
                kwargs,
                rowcount=_written if entry is None else _none,
                rows_from=cursor,
                rewrite=_add_comment if COMMENTER.on else None,
            )
        except BaseException:
            if entry is not None:
                _sent(cursor, entry)
            raise
        if entry is not None and awaits:
            return _settled(result, cursor, entry)
        return result

    return execute


def _executemany_wrapper(awaits: bool) -> Wrapper:
    def executemany(wrapped: Any, cursor: Any, args: Any, kwargs: Any) -> Any:
        found = _target(cursor, args, kwargs) if SWITCH.on else None
        if found is None:
            return wrapped(*args, **kwargs)
        rows_at: int | str = 1 if len(args) > 1 else "params_seq"
        rows = args[1] if len(args) > 1 else kwargs.get("params_seq", ())
        returning = bool(kwargs.get("returning"))
        entry = _send(cursor, *found, None) if found[1].is_write and _deferred(cursor) else None
        try:
            result = traced_batch(
                SWITCH,
                *found,
                rows,
                wrapped,
                args,
                kwargs,
                rows_at=rows_at,
                rowcount=_batch_written(returning) if entry is None else _none,
                rows_from=cursor,
                awaits=awaits,
            )
        except BaseException:
            _failed_batch(cursor, found, entry, returning)
            raise
        if awaits:
            return _batch_settled(result, cursor, found, entry, returning)
        if entry is not None:
            _sent(cursor, entry)
        return result

    return executemany


def _failed_batch(
    cursor: Any, found: tuple[Database, Statement], entry: _Pending | None, returning: bool
) -> None:
    if entry is not None:
        _sent(cursor, entry)
    elif found[1].is_write:
        _count_partial(*found, cursor, returning)


async def _settled(result: Any, cursor: Any, entry: _Pending) -> Any:
    try:
        return await result
    finally:
        _sent(cursor, entry)


async def _batch_settled(
    result: Any,
    cursor: Any,
    found: tuple[Database, Statement],
    entry: _Pending | None,
    returning: bool,
) -> Any:
    try:
        value = await result
    except BaseException:
        _failed_batch(cursor, found, entry, returning)
        raise
    if entry is not None:
        _sent(cursor, entry)
    return value


def _copy_wrapper(awaits: bool) -> Wrapper:
    def copy(wrapped: Any, cursor: Any, args: Any, kwargs: Any) -> Any:
        found = _target(cursor, args, kwargs) if SWITCH.on else None
        if found is None:
            return wrapped(*args, **kwargs)
        return _ObservedCopy(*found, cursor, wrapped(*args, **kwargs))

    return copy


class _ObservedCopy:
    """``cursor.copy(...)``'s context manager (sync or async) whose span covers the block."""

    __slots__ = ("_call", "_cursor", "_db", "_manager", "_stmt")

    def __init__(self, db: Database, stmt: Statement, cursor: Any, manager: Any) -> None:
        self._db = db
        self._stmt = stmt
        self._cursor = cursor
        self._manager = manager
        self._call: Call | None = None

    def _begin(self) -> Call:
        self._call = Call.begin(SWITCH, self._db, self._stmt, None)
        return self._call

    def _end(self, exc: BaseException | None, suppressed: Any) -> Any:
        if self._call is not None:
            if exc is not None and not suppressed:
                self._call.failed(exc)
            else:
                self._call.done(_rowcount_or_unknown(self._cursor))
        return suppressed

    def __enter__(self) -> Any:
        call = self._begin()
        try:
            return self._manager.__enter__()
        except BaseException as exc:
            call.failed(exc)
            self._call = None
            raise

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = self._manager.__exit__(*exc_info)
        except BaseException as exc:
            self._end(exc, False)
            raise
        return self._end(exc_info[1], suppressed)

    async def __aenter__(self) -> Any:
        call = self._begin()
        try:
            return await self._manager.__aenter__()
        except BaseException as exc:
            call.failed(exc)
            self._call = None
            raise

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = await self._manager.__aexit__(*exc_info)
        except BaseException as exc:
            self._end(exc, False)
            raise
        return self._end(exc_info[1], suppressed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def _rowcount_or_unknown(cursor: Any) -> int:
    try:
        return _rowcount(cursor)
    except Exception:
        return -1


# (class, method, wrapper factory, async): every observed method of psycopg's cursors.
_CURSOR_METHODS = (
    ("Cursor", "execute", _execute_wrapper, False),
    ("Cursor", "executemany", _executemany_wrapper, False),
    ("Cursor", "copy", _copy_wrapper, False),
    ("ServerCursor", "execute", _execute_wrapper, False),
    ("AsyncCursor", "execute", _execute_wrapper, True),
    ("AsyncCursor", "executemany", _executemany_wrapper, True),
    ("AsyncCursor", "copy", _copy_wrapper, True),
    ("AsyncServerCursor", "execute", _execute_wrapper, True),
)
_CURSOR_PATCHES = tuple(
    (class_name, method, factory(awaits)) for class_name, method, factory, awaits in _CURSOR_METHODS
)


class PsycopgInstrumentor(BaseInstrumentor):
    """Instruments psycopg 3 (sync and async) and psycopg_pool."""

    _stock: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ["psycopg >= 3.1.0"]

    def _instrument(self, **kwargs: Any) -> None:
        import psycopg

        type(self)._stock = _stock.take_over(
            "opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"
        )
        OPERATIONS.register_instruments(kwargs.get("meter_provider"))
        commenter = kwargs.get("sqlcommenter")
        if commenter is None:
            commenter = os.environ.get("DBPULSE_SQLCOMMENTER", "").strip().lower() == "true"
        COMMENTER.on = bool(commenter)
        for class_name, method, wrapper in _CURSOR_PATCHES:
            wrapt.wrap_function_wrapper(psycopg, f"{class_name}.{method}", wrapper)
        pipeline = _pipeline_class()
        if pipeline is not None:
            wrapt.wrap_function_wrapper(pipeline, "_process_results", _pipeline_results)
        psycopg_pool = pool_module()
        if psycopg_pool is not None:
            POOLS.register(kwargs.get("meter_provider"))
            for class_name, method, wrapper in POOL_PATCHES:
                wrapt.wrap_function_wrapper(psycopg_pool, f"{class_name}.{method}", wrapper)
        SWITCH.set_instrumented(True, kwargs.get("tracer_provider"))

    def _uninstrument(self, **kwargs: Any) -> None:
        import psycopg

        SWITCH.set_instrumented(False)
        for class_name, method, _ in _CURSOR_PATCHES:
            unwrap(getattr(psycopg, class_name), method)
        pipeline = _pipeline_class()
        if pipeline is not None:
            unwrap(pipeline, "_process_results")
        psycopg_pool = pool_module()
        if psycopg_pool is not None:
            for class_name, method, _ in POOL_PATCHES:
                unwrap(getattr(psycopg_pool, class_name), method)
        _stock.release(type(self)._stock)
        type(self)._stock = None

    @staticmethod
    def instrument_connection(connection: Any, tracer_provider: Any = None) -> Any:
        """psycopg methods are instrumented on their classes, so every connection already is
        while the instrumentor is on; this returns ``connection`` unchanged after making sure
        the instrumentation is on (for symmetry with the contrib API)."""
        instrumentor = PsycopgInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider)
        return connection
