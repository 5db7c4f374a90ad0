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

Pools created while instrumented report the ``db.client.connection.*`` metrics: connection
count by state (idle/used), max, pending requests (from the pool's own stats), timeouts and
wait time (timed around ``getconn``).
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from typing import Any

import wrapt
from opentelemetry import metrics
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.core.pipeline import Call, Database, Switch, database, statement
from dbpulse.instrumentors import _stock
from dbpulse.telemetry.metrics import OPERATIONS
from dbpulse.version import __version__

__all__ = ["PsycopgInstrumentor"]

_log = logging.getLogger(__name__)
SWITCH = Switch("postgresql")
_SYSTEM = "postgresql"
_POOL_WAIT_BUCKETS = [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0]


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


def _prepare(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call | None:
    query = args[0] if args else kwargs.get("query", kwargs.get("statement"))
    sql = _query_text(query, instance)
    if sql is None:
        return None
    return Call(_database(instance.connection), statement(_SYSTEM, sql))


def _params(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    return args[1] if len(args) > 1 else kwargs.get(name)


def _rowcount(cursor: Any) -> int:
    try:
        return int(cursor.rowcount)
    except Exception:
        return -1


def _execute(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return wrapped(*args, **kwargs)
    call = _prepare(instance, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    call.begin(SWITCH, _params(args, kwargs, "params"))
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(_rowcount(instance))
    return result


async def _execute_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return await wrapped(*args, **kwargs)
    call = _prepare(instance, args, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    call.begin(SWITCH, _params(args, kwargs, "params"))
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(_rowcount(instance))
    return result


def _batch_args(call: Call, args: Any, kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if len(args) > 1:
        rows = call.begin_batch(SWITCH, args[1])
        return (args[0], rows, *args[2:]), kwargs
    rows = call.begin_batch(SWITCH, kwargs.get("params_seq", ()))
    return args, {**kwargs, "params_seq": rows}


def _executemany(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return wrapped(*args, **kwargs)
    call = _prepare(instance, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    args, kwargs = _batch_args(call, args, kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(_rowcount(instance))
    return result


async def _executemany_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return await wrapped(*args, **kwargs)
    call = _prepare(instance, args, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    args, kwargs = _batch_args(call, args, kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(_rowcount(instance))
    return result


def _copy(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return wrapped(*args, **kwargs)
    call = _prepare(instance, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    return _observed_copy(call, instance, wrapped(*args, **kwargs))


@contextlib.contextmanager
def _observed_copy(call: Call, cursor: Any, manager: Any) -> Iterator[Any]:
    """The span of a COPY covers the whole ``with cursor.copy(...)`` block."""
    call.begin(SWITCH, None)
    try:
        with manager as copy:
            yield copy
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(_rowcount(cursor))


def _copy_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return wrapped(*args, **kwargs)
    call = _prepare(instance, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    return _observed_copy_async(call, instance, wrapped(*args, **kwargs))


@contextlib.asynccontextmanager
async def _observed_copy_async(call: Call, cursor: Any, manager: Any) -> AsyncIterator[Any]:
    call.begin(SWITCH, None)
    try:
        async with manager as copy:
            yield copy
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(_rowcount(cursor))


# -- pools ---------------------------------------------------------------------------------


class _PoolMetrics:
    """``db.client.connection.*`` for every pool created while instrumented."""

    def __init__(self) -> None:
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._registered_for: set[str] = set()
        self.wait_time: metrics.Histogram | None = None
        self.timeouts: metrics.Counter | None = None

    def register(self, meter_provider: Any = None) -> None:
        key = "global" if meter_provider is None else str(id(meter_provider))
        if key in self._registered_for:
            return
        self._registered_for.add(key)
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("dbpulse.psycopg_pool", __version__)
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._observe_count],
            unit="{connection}",
            description="Connections in the pool, by state (idle/used).",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            callbacks=[self._observe_stat("pool_max")],
            unit="{connection}",
            description="Largest number of connections the pool may open.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.pending_requests",
            callbacks=[self._observe_stat("requests_waiting")],
            unit="{request}",
            description="Requests waiting for a connection.",
        )
        self.timeouts = meter.create_counter(
            "db.client.connection.timeouts",
            unit="{timeout}",
            description="Connection requests that timed out waiting for the pool.",
        )
        self.wait_time = meter.create_histogram(
            "db.client.connection.wait_time",
            unit="s",
            description="Time it took to obtain a connection from the pool.",
            explicit_bucket_boundaries_advisory=_POOL_WAIT_BUCKETS,
        )

    def _stats(self) -> Iterable[tuple[str, dict[str, int]]]:
        for pool in list(self.pools):
            try:
                yield pool.name, pool.get_stats()
            except Exception:
                continue

    def _observe_count(self, _options: CallbackOptions) -> Iterable[Observation]:
        for name, stats in self._stats():
            size = stats.get("pool_size", 0)
            idle = stats.get("pool_available", 0)
            yield Observation(
                idle,
                {"db.client.connection.pool.name": name, "db.client.connection.state": "idle"},
            )
            yield Observation(
                max(0, size - idle),
                {"db.client.connection.pool.name": name, "db.client.connection.state": "used"},
            )

    def _observe_stat(self, key: str) -> Any:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            for name, stats in self._stats():
                yield Observation(stats.get(key, 0), {"db.client.connection.pool.name": name})

        return observe

    def waited(self, pool: Any, seconds: float, exc: BaseException | None) -> None:
        try:
            attributes = {"db.client.connection.pool.name": pool.name}
            if exc is not None and type(exc).__name__ == "PoolTimeout" and self.timeouts:
                self.timeouts.add(1, attributes)
            if exc is None and self.wait_time is not None:
                self.wait_time.record(seconds, attributes)
        except Exception:
            _log.debug("dbpulse: pool metrics failed", exc_info=True)


POOLS = _PoolMetrics()


def _pool_init(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    if SWITCH.on:
        POOLS.pools.add(instance)
    return result


def _getconn(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return wrapped(*args, **kwargs)
    start = time.perf_counter()
    try:
        conn = wrapped(*args, **kwargs)
    except BaseException as exc:
        POOLS.waited(instance, time.perf_counter() - start, exc)
        raise
    POOLS.waited(instance, time.perf_counter() - start, None)
    return conn


async def _getconn_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return await wrapped(*args, **kwargs)
    start = time.perf_counter()
    try:
        conn = await wrapped(*args, **kwargs)
    except BaseException as exc:
        POOLS.waited(instance, time.perf_counter() - start, exc)
        raise
    POOLS.waited(instance, time.perf_counter() - start, None)
    return conn


_CURSOR_PATCHES = (
    ("Cursor", "execute", _execute),
    ("Cursor", "executemany", _executemany),
    ("Cursor", "copy", _copy),
    ("ServerCursor", "execute", _execute),
    ("AsyncCursor", "execute", _execute_async),
    ("AsyncCursor", "executemany", _executemany_async),
    ("AsyncCursor", "copy", _copy_async),
    ("AsyncServerCursor", "execute", _execute_async),
)
_POOL_PATCHES = (
    ("ConnectionPool", "__init__", _pool_init),
    ("ConnectionPool", "getconn", _getconn),
    ("AsyncConnectionPool", "__init__", _pool_init),
    ("AsyncConnectionPool", "getconn", _getconn_async),
)


def _pool_module() -> Any:
    try:
        import psycopg_pool
    except ImportError:
        return None
    return psycopg_pool


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
        for class_name, method, wrapper in _CURSOR_PATCHES:
            wrapt.wrap_function_wrapper(psycopg, f"{class_name}.{method}", wrapper)
        psycopg_pool = _pool_module()
        if psycopg_pool is not None:
            POOLS.register(kwargs.get("meter_provider"))
            for class_name, method, wrapper in _POOL_PATCHES:
                wrapt.wrap_function_wrapper(psycopg_pool, f"{class_name}.{method}", wrapper)
        SWITCH.set_instrumented(True, kwargs.get("tracer_provider"))

    def _uninstrument(self, **kwargs: Any) -> None:
        import psycopg

        SWITCH.set_instrumented(False)
        for class_name, method, _ in _CURSOR_PATCHES:
            unwrap(getattr(psycopg, class_name), method)
        psycopg_pool = _pool_module()
        if psycopg_pool is not None:
            for class_name, method, _ in _POOL_PATCHES:
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
