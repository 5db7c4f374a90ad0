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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap

from dbpulse.core.pipeline import Call, traced_batch, traced_call, traced_call_async
from dbpulse.core.sqlcommenter import comment_for, with_comment
from dbpulse.core.state import Switch
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
        return observe(
            SWITCH,
            *found,
            params,
            wrapped,
            args,
            kwargs,
            rowcount=_rowcount,
            rows_from=cursor,
            rewrite=_add_comment if COMMENTER.on else None,
        )

    return execute


def _executemany_wrapper(awaits: bool) -> Wrapper:
    def executemany(wrapped: Any, cursor: Any, args: Any, kwargs: Any) -> Any:
        found = _target(cursor, args, kwargs) if SWITCH.on else None
        if found is None:
            return wrapped(*args, **kwargs)
        rows_at: int | str = 1 if len(args) > 1 else "params_seq"
        rows = args[1] if len(args) > 1 else kwargs.get("params_seq", ())
        return traced_batch(
            SWITCH,
            *found,
            rows,
            wrapped,
            args,
            kwargs,
            rows_at=rows_at,
            rowcount=_rowcount,
            rows_from=cursor,
            awaits=awaits,
        )

    return executemany


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
