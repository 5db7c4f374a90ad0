"""Instrumentation of redis-py (sync and asyncio clients, pipelines).

Usage::

    import redis
    from dbpulse import RedisInstrumentor

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

import re
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.core.pipeline import traced_batch, traced_call, traced_call_async
from dbpulse.core.state import Switch, warn_once
from dbpulse.core.statements import Database, Statement, database
from dbpulse.instrumentors import _stock
from dbpulse.telemetry.fork import in_child_after_fork
from dbpulse.telemetry.instruments import Instruments
from dbpulse.telemetry.metrics import OPERATIONS

__all__ = ["RedisInstrumentor"]

SWITCH = Switch("redis")
Wrapper = Callable[[Any, Any, Any, Any], Any]
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
        self._instruments = Instruments("dbpulse.redis")

    def add(self, command: str, hits: int, misses: int) -> None:
        with self.lock:
            if hits:
                key = (command, "hit")
                self.counts[key] = self.counts.get(key, 0) + hits
            if misses:
                key = (command, "miss")
                self.counts[key] = self.counts.get(key, 0) + misses

    def register(self, meter_provider: Any = None) -> None:
        self._instruments.observe(
            meter_provider,
            (
                (
                    "counter",
                    "dbpulse.cache.requests",
                    self._observe,
                    "{request}",
                    "Redis GET-family lookups by result (hit/miss).",
                ),
            ),
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

    def _after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.counts.clear()


CACHE = _CacheCounts()
in_child_after_fork(CACHE._after_fork_in_child)
_COMMANDS: dict[Any, Statement] = {}


def _command_statement(name: Any, nargs: int) -> Statement:
    """One :class:`Statement` per command name and arity (``SET ? ?``), cached."""
    key = (name, nargs)
    found = _COMMANDS.get(key)
    if found is None:
        shown, extra = _command_words(name)
        operation = shown.split(" ", 1)[0] or "UNKNOWN"
        sanitized = " ".join([shown or "UNKNOWN", *("?" * (extra + nargs))])[:2048]
        found = Statement.of(operation, sanitized, is_write=operation in _WRITES)
        if len(_COMMANDS) < 4096:
            _COMMANDS[key] = found
    return found


# Commands whose second word is a subcommand (CONFIG SET, ACL SETUSER, CLIENT LIST, ...).
_CONTAINERS = frozenset(
    """ACL CLIENT CLUSTER COMMAND CONFIG DEBUG FUNCTION LATENCY MEMORY MODULE OBJECT PUBSUB
    SCRIPT SLOWLOG XGROUP XINFO""".split()
)
_SUBCOMMAND = re.compile(r"[A-Za-z][A-Za-z_-]{0,31}")


def _command_words(name: Any) -> tuple[str, int]:
    """The command words of ``name`` to show (``CONFIG SET``) and how many arguments it holds.

    redis-py sends ``execute_command("CONFIG SET requirepass pw")`` as ``name.split()``: the
    first word is the command, a container's second word its subcommand, the rest arguments
    (``CONFIG SET ? ?``), which are never shown."""
    text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    parts = text.split()
    if not parts:
        return "", 0
    shown = [parts[0].upper()[:64]]
    if shown[0] in _CONTAINERS and len(parts) > 1 and _SUBCOMMAND.fullmatch(parts[1]):
        shown.append(parts[1].upper())
    return " ".join(shown), len(parts) - len(shown)


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


def _count_cache(stmt: Statement, result: Any) -> None:
    """Count a GET-family command's hits and misses from its reply."""
    command = stmt.operation
    if command not in _GETS or isinstance(result, BaseException):
        return
    if command in _MULTI_KEY_GETS and isinstance(result, list | tuple):
        hits = sum(1 for value in result if value is not None)
        CACHE.add(command, hits, len(result) - hits)
    elif command == "HGETALL":
        CACHE.add(command, 1 if result else 0, 0 if result else 1)
    else:
        CACHE.add(command, 1 if result is not None else 0, 1 if result is None else 0)


def _count_replies(statements: list[Statement], replies: Any) -> None:
    """Cache hits and misses of the GETs inside a pipeline, from its list of replies."""
    try:
        if isinstance(replies, list) and len(replies) == len(statements):
            for stmt, reply in zip(statements, replies, strict=True):
                _count_cache(stmt, reply)
    except Exception:
        warn_once("could not count a pipeline's cache lookups")


async def _counted(statements: list[Statement], awaitable: Awaitable[Any], one: bool) -> Any:
    reply = await awaitable
    _count_replies(statements, [reply] if one else reply)
    return reply


def _command_wrapper(awaits: bool) -> Wrapper:
    observe = traced_call_async if awaits else traced_call

    def execute_command(wrapped: Any, client: Any, args: Any, kwargs: Any) -> Any:
        if not SWITCH.on or not args:
            return wrapped(*args, **kwargs)
        stmt = _command_statement(args[0], len(args) - 1)
        reply = observe(SWITCH, _database(client), stmt, args[1:], wrapped, args, kwargs)
        if stmt.operation not in _GETS:
            return reply
        if awaits:
            return _counted([stmt], reply, one=True)
        _count_replies([stmt], [reply])
        return reply

    return execute_command


_PIPELINES: dict[tuple[Any, ...], tuple[Statement, list[Statement]]] = {}


def _pipeline_statement(names: tuple[Any, ...]) -> tuple[Statement, list[Statement]]:
    """The ``BATCH`` statement of a pipeline of these commands, and each command's own."""
    found = _PIPELINES.get(names)
    if found is None:
        statements = [_command_statement(n, 0) for n in names]
        operations = {s.operation for s in statements}
        operation = f"BATCH {next(iter(operations))}" if len(operations) == 1 else "BATCH"
        text = "; ".join(s.text for s in statements[:50])[:2048]
        is_write = any(s.is_write for s in statements)
        found = (Statement.of(operation, text, is_write=is_write), statements)
        if len(_PIPELINES) < 4096:
            _PIPELINES[names] = found
    return found


def _pipeline_wrapper(awaits: bool) -> Wrapper:
    def execute(wrapped: Any, pipe: Any, args: Any, kwargs: Any) -> Any:
        stack = getattr(pipe, "command_stack", None) if SWITCH.on else None
        if not stack:
            return wrapped(*args, **kwargs)
        commands: list[tuple[Any, ...]] = [
            item[0] if isinstance(item, tuple) else getattr(item, "args", ()) for item in stack
        ]
        commands = [c for c in commands if c]
        stmt, statements = _pipeline_statement(tuple(c[0] for c in commands))
        # Rows written: one per write command; reads in the same pipeline are not writes.
        writes = [c[1:] for c, s in zip(commands, statements, strict=True) if s.is_write]
        replies = traced_batch(
            SWITCH,
            _database(pipe),
            stmt,
            writes,
            wrapped,
            args,
            kwargs,
            size=len(commands),
            awaits=awaits,
        )
        if awaits:
            return _counted(statements, replies, one=False)
        _count_replies(statements, replies)
        return replies

    return execute


_PATCHES = (
    ("redis.client", "Redis.execute_command", _command_wrapper(False)),
    ("redis.client", "Pipeline.execute", _pipeline_wrapper(False)),
    ("redis.asyncio.client", "Redis.execute_command", _command_wrapper(True)),
    ("redis.asyncio.client", "Pipeline.execute", _pipeline_wrapper(True)),
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
