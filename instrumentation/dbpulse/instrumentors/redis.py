"""Instrumentation of redis-py (sync and asyncio clients, pipelines).

Usage::

    import redis
    from dbpulse.instrumentors.redis import RedisInstrumentor

    RedisInstrumentor().instrument()
    r = redis.Redis()
    r.set("book:9780140449136", "...")      # span "SET", book.isbn from the key
    r.get("book:9780140449136")             # counted as a cache hit or miss

Spans follow the database conventions with ``db.system.name=redis``: name and
``db.operation.name`` are the command (``GET``), ``db.namespace`` is the database index,
``db.query.text`` is the command with every argument replaced by ``?`` (keys and values are
never exported; ISBNs found in them are, as ``book.isbn``). Pipelines are one span
``BATCH {command}`` (or ``BATCH`` for mixed commands) with ``db.operation.batch.size``.

GET-family commands also count cache hits and misses: ``dbpulse.cache.requests`` with
``dbpulse.cache.result`` = ``hit``/``miss`` (one per key for MGET/HMGET).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from typing import Any

import wrapt
from opentelemetry import metrics
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.core.pipeline import Call, Database, Statement, Switch, database
from dbpulse.instrumentors import _stock
from dbpulse.telemetry.metrics import OPERATIONS
from dbpulse.version import __version__

__all__ = ["RedisInstrumentor"]

SWITCH = Switch("redis")
_SYSTEM = "redis"

_WRITES = frozenset(
    """SET SETEX PSETEX SETNX MSET MSETNX GETSET GETDEL GETEX APPEND INCR INCRBY INCRBYFLOAT
    DECR DECRBY DEL UNLINK EXPIRE EXPIREAT PEXPIRE PEXPIREAT PERSIST RENAME RENAMENX
    HSET HSETNX HMSET HDEL HINCRBY HINCRBYFLOAT LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LSET LREM
    LTRIM LINSERT LMOVE BLMOVE RPOPLPUSH SADD SREM SPOP SMOVE ZADD ZREM ZINCRBY ZPOPMIN
    ZPOPMAX ZREMRANGEBYSCORE ZREMRANGEBYRANK XADD XDEL XTRIM SETRANGE SETBIT PFADD
    GEOADD COPY RESTORE FLUSHDB FLUSHALL""".split()
)
_GETS = frozenset({"GET", "GETEX", "GETDEL", "HGET", "MGET", "HMGET", "HGETALL", "GETRANGE"})
_MULTI_KEY_GETS = frozenset({"MGET", "HMGET"})


class _CacheCounts:
    """Hits and misses per command, counted in-process and observed by the SDK."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}
        self._registered: set[str] = set()

    def add(self, command: str, hits: int, misses: int) -> None:
        with self.lock:
            if hits:
                key = (command, "hit")
                self.counts[key] = self.counts.get(key, 0) + hits
            if misses:
                key = (command, "miss")
                self.counts[key] = self.counts.get(key, 0) + misses

    def register(self, meter_provider: Any = None) -> None:
        key = "global" if meter_provider is None else str(id(meter_provider))
        if key in self._registered:
            return
        self._registered.add(key)
        provider = meter_provider or metrics.get_meter_provider()
        provider.get_meter("dbpulse.redis", __version__).create_observable_counter(
            "dbpulse.cache.requests",
            callbacks=[self._observe],
            unit="{request}",
            description="Redis GET-family lookups by result (hit/miss).",
        )

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self.lock:
            items = list(self.counts.items())
        for (command, result), count in items:
            yield Observation(
                count,
                {
                    "db.system.name": "redis",
                    "db.operation.name": command,
                    "dbpulse.cache.result": result,
                },
            )

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()


CACHE = _CacheCounts()
_COMMANDS: dict[Any, Statement] = {}


def _command_statement(name: Any, nargs: int) -> Statement:
    """One :class:`Statement` per command name and arity (``SET ? ?``), cached."""
    key = (name, nargs)
    found = _COMMANDS.get(key)
    if found is None:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        operation = text.split(" ", 1)[0].upper()[:64] or "UNKNOWN"
        sanitized = " ".join([text.upper()[:64], *("?" * nargs)])[:2048]
        found = Statement.of(operation, sanitized, is_write=operation in _WRITES)
        if len(_COMMANDS) < 4096:
            _COMMANDS[key] = found
    return found


def _database(client: Any) -> Database:
    try:
        return client._dbpulse_db
    except AttributeError:
        pass
    try:
        kwargs = client.connection_pool.connection_kwargs
        host = kwargs.get("host")
        port = kwargs.get("port")
        db = database(
            _SYSTEM, str(kwargs.get("db", 0)), host, int(port) if port is not None else None
        )
    except Exception:
        db = database(_SYSTEM, None)
    try:
        client._dbpulse_db = db
    except Exception:
        pass
    return db


def _count_cache(stmt: Statement, args: tuple[Any, ...], result: Any) -> None:
    command = stmt.operation
    if command not in _GETS:
        return
    if command in _MULTI_KEY_GETS and isinstance(result, list | tuple):
        hits = sum(1 for value in result if value is not None)
        CACHE.add(command, hits, len(result) - hits)
    elif command == "HGETALL":
        CACHE.add(command, 1 if result else 0, 0 if result else 1)
    else:
        CACHE.add(command, 1 if result is not None else 0, 1 if result is None else 0)


def _execute_command(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on or not args:
        return wrapped(*args, **kwargs)
    stmt = _command_statement(args[0], len(args) - 1)
    call = Call(_database(instance), stmt)
    call.begin(SWITCH, args[1:])
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(-1)
    _count_cache(stmt, args, result)
    return result


async def _execute_command_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on or not args:
        return await wrapped(*args, **kwargs)
    stmt = _command_statement(args[0], len(args) - 1)
    call = Call(_database(instance), stmt)
    call.begin(SWITCH, args[1:])
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(-1)
    _count_cache(stmt, args, result)
    return result


def _pipeline_call(instance: Any) -> tuple[Call, int] | None:
    stack = getattr(instance, "command_stack", None)
    if not stack:
        return None
    names = []
    params = []
    for item in stack:
        command_args = item[0] if isinstance(item, tuple) else getattr(item, "args", ())
        if command_args:
            names.append(command_args[0])
            params.append(command_args[1:])
    statements = [_command_statement(n, 0) for n in names]
    operations = {s.operation for s in statements}
    operation = f"BATCH {next(iter(operations))}" if len(operations) == 1 else "BATCH"
    is_write = any(s.is_write for s in statements)
    text = "; ".join(s.text for s in statements[:50])
    stmt = Statement.of(operation, text[:2048], is_write=is_write)
    call = Call(_database(instance), stmt)
    call.begin_batch(SWITCH, params)
    return call, len(params)


def _pipeline_execute(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return wrapped(*args, **kwargs)
    prepared = _pipeline_call(instance)
    if prepared is None:
        return wrapped(*args, **kwargs)
    call, _ = prepared
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(-1)
    return result


async def _pipeline_execute_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not SWITCH.on:
        return await wrapped(*args, **kwargs)
    prepared = _pipeline_call(instance)
    if prepared is None:
        return await wrapped(*args, **kwargs)
    call, _ = prepared
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    call.done(-1)
    return result


_PATCHES = (
    ("redis.client", "Redis.execute_command", _execute_command),
    ("redis.client", "Pipeline.execute", _pipeline_execute),
    ("redis.asyncio.client", "Redis.execute_command", _execute_command_async),
    ("redis.asyncio.client", "Pipeline.execute", _pipeline_execute_async),
)


class RedisInstrumentor(BaseInstrumentor):
    """Instruments redis-py commands and pipelines (sync and asyncio)."""

    _stock: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ["redis >= 4.0"]

    def _instrument(self, **kwargs: Any) -> None:
        import importlib

        type(self)._stock = _stock.take_over(
            "opentelemetry.instrumentation.redis", "RedisInstrumentor"
        )
        OPERATIONS.register_instruments(kwargs.get("meter_provider"))
        CACHE.register(kwargs.get("meter_provider"))
        for module, name, wrapper in _PATCHES:
            wrapt.wrap_function_wrapper(importlib.import_module(module), name, wrapper)
        SWITCH.set_instrumented(True, kwargs.get("tracer_provider"))

    def _uninstrument(self, **kwargs: Any) -> None:
        import importlib

        SWITCH.set_instrumented(False)
        for module, name, _ in _PATCHES:
            owner_name, method = name.split(".")
            unwrap(getattr(importlib.import_module(module), owner_name), method)
        _stock.release(type(self)._stock)
        type(self)._stock = None

    @staticmethod
    def instrument_connection(client: Any, tracer_provider: Any = None) -> Any:
        """Commands are instrumented on the client classes; this makes sure the
        instrumentation is on and returns ``client`` unchanged."""
        instrumentor = RedisInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider)
        return client
