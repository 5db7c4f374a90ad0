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
``db.query.text`` is the command with every argument replaced by ``?`` (keys, values and
channel names are never exported; ISBNs found in them are, as ``book.isbn``). Pipelines are
one span ``BATCH {command}`` (or ``BATCH`` for mixed commands) with
``db.operation.batch.size``; a pipeline's writes are its write commands that succeeded, a
transaction's too when EXEC ran and one of them failed. Commands a pipeline runs at once
(``WATCH`` and the reads after it, ``SCRIPT EXISTS``/``LOAD``), pub/sub commands (``SUBSCRIBE``
... ``PING`` on a pubsub connection, one operation per command, never per message read) and
``MONITOR`` are one operation each, like any command.

GET-family commands also count cache hits and misses: ``dbpulse.cache.requests`` with
``dbpulse.cache.result`` = ``hit``/``miss`` (one per key for MGET, per field for HMGET).

Redis Cluster (``redis.cluster.RedisCluster``, ``redis.asyncio.cluster.RedisCluster`` and their
``ClusterPipeline``) follows the same rules: one operation per application call, whatever
redis-py does to serve it. A MOVED or ASK redirection, a retry after a connection error, a
command sent to several nodes (``target_nodes=RedisCluster.PRIMARIES``) and a pipeline
spread over several nodes are one operation each, where each server counts every attempt it
received. ``server.address``/``server.port`` are the cluster's default node (the node that
served the call is not known without routing the command twice); ``db.namespace`` is ``0``.
What redis-py sends for its own routing (``CLUSTER SLOTS``, ``COMMAND``, ``COMMAND GETKEYS``)
is not an application call and is not observed.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Collection
from contextvars import ContextVar
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap

from dbpulse.core.pipeline import traced_batch, traced_call, traced_call_async
from dbpulse.core.state import Switch, warn_once
from dbpulse.core.statements import Database, Statement, database
from dbpulse.instrumentors import _stock
from dbpulse.instrumentors.redis_commands import (
    CACHE,
    GETS,
    command_statement,
    count_replies,
    counted,
)
from dbpulse.telemetry.errors import error_type_of
from dbpulse.telemetry.metrics import OPERATIONS

__all__ = ["CACHE", "RedisInstrumentor"]

SWITCH = Switch("redis")
Wrapper = Callable[[Any, Any, Any, Any], Any]
_SYSTEM = "redis"


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


def _cluster_database(client: Any) -> Database:
    """A cluster client's (or pipeline's, or transaction strategy's) database: its default
    node, else its first startup node; cached on the client once a node is known."""
    try:
        return client._dbpulse_db  # the hot path: a client seen before
    except AttributeError:
        pass
    owner = getattr(client, "_pipe", client)  # a transaction strategy runs WATCH & co.
    found = getattr(owner, "_dbpulse_db", None)
    if found is not None:
        return found
    cluster = getattr(owner, "cluster_client", owner)  # an asyncio ClusterPipeline
    node: Any = None
    try:
        node = cluster.get_default_node() or next(
            iter(cluster.nodes_manager.startup_nodes.values()), None
        )
        db = database(_SYSTEM, "0", node.host, int(node.port))
    except Exception:
        db = database(_SYSTEM, "0")
    if node is not None:
        try:
            owner._dbpulse_db = db
        except Exception:
            pass
    return db


class _Discovery(threading.local):
    """Inside redis-py's own cluster work on this thread (how deep): topology discovery, its
    command table, the keys of a command with movable keys."""

    depth = 0


_DISCOVERY = _Discovery()
# Threads inside a cluster's topology discovery: the plain client's hot path reads this
# int only; the thread-local is read only while some thread is discovering.
_discovering = 0
_discovering_lock = threading.Lock()


def _quietly(wrapped: Any, args: Any, kwargs: Any) -> Any:
    """``wrapped(*args, **kwargs)`` with this thread's redis commands unobserved."""
    global _discovering
    with _discovering_lock:
        _discovering += 1
    _DISCOVERY.depth += 1
    try:
        return wrapped(*args, **kwargs)
    finally:
        _DISCOVERY.depth -= 1
        with _discovering_lock:
            _discovering -= 1


def _discovery_wrapper(wrapped: Any, _owner: Any, args: Any, kwargs: Any) -> Any:
    """redis-py's own work for a sync cluster client, not application calls: the ``CLUSTER
    SLOTS`` of ``NodesManager.initialize`` (sent through a node's plain client), the
    ``COMMAND`` of ``CommandsParser.initialize`` and ``COMMAND GETKEYS`` of its
    ``_get_moveable_keys`` (sent through the cluster client)."""
    return _quietly(wrapped, args, kwargs)


def _quiet_sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A sync cluster pipeline's execution: the commands redis-py sends again one by one
    after a redirection (through ``RedisCluster.execute_command``) are the pipeline's."""

    def run(*args: Any, **kwargs: Any) -> Any:
        return _quietly(fn, args, kwargs)

    return run


# An asyncio cluster pipeline's execution, under way in this context.
_QUIET_ASYNC: ContextVar[bool] = ContextVar("dbpulse_redis_cluster_pipeline", default=False)


def _quiet_async(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """An asyncio cluster pipeline's execution: what it sends again after a redirection
    (through its cluster's ``execute_command``) is the pipeline's."""

    async def run(*args: Any, **kwargs: Any) -> Any:
        token = _QUIET_ASYNC.set(True)
        try:
            return await fn(*args, **kwargs)
        finally:
            _QUIET_ASYNC.reset(token)

    return run


def _cluster_command_wrapper(awaits: bool) -> Wrapper:
    """A cluster client's ``execute_command``: one operation with its redirections and
    retries, none when a cluster pipeline sends a command again."""
    observe = _command_wrapper(awaits, _cluster_database)
    if not awaits:
        return observe  # a sync pipeline's resends are in _quietly, like discovery

    def execute_command(wrapped: Any, client: Any, args: Any, kwargs: Any) -> Any:
        if _QUIET_ASYNC.get():
            return wrapped(*args, **kwargs)
        return observe(wrapped, client, args, kwargs)

    return execute_command


async def _counted_batch(
    pipe: Any, db: Database, batch: _Batch, awaitable: Awaitable[Any], stack: Any
) -> Any:
    try:
        replies = await awaitable
    except BaseException as exc:
        _count_partial(pipe, db, batch, exc, stack)
        raise
    _take_replies(pipe)
    count_replies(batch.statements, replies)
    return replies


def _command_wrapper(awaits: bool, database_of: Callable[[Any], Database] = _database) -> Wrapper:
    """``execute_command`` of a client, ``immediate_execute_command`` of a pipeline (WATCH and
    what it runs before MULTI) and ``execute_command`` of a pubsub: one operation each. A
    cluster client's ``execute_command`` is one operation with its redirections and retries."""
    observe = traced_call_async if awaits else traced_call

    def execute_command(wrapped: Any, client: Any, args: Any, kwargs: Any) -> Any:
        if not SWITCH.on or not args or (_discovering and _DISCOVERY.depth):
            return wrapped(*args, **kwargs)
        stmt = command_statement(args[0], len(args) - 1)
        reply = observe(SWITCH, database_of(client), stmt, args[1:], wrapped, args, kwargs)
        if stmt.operation not in GETS:
            return reply
        if awaits:
            return counted([stmt], reply, one=True)
        count_replies([stmt], [reply])
        return reply

    return execute_command


def _monitor_wrapper(awaits: bool) -> Wrapper:
    """``MONITOR``, sent by a :class:`redis.client.Monitor` on entering: one operation (the
    commands it then reads are other clients', not this application's)."""
    observe = traced_call_async if awaits else traced_call

    def start(wrapped: Any, monitor: Any, args: Any, kwargs: Any) -> Any:
        if not SWITCH.on:
            return wrapped(*args, **kwargs)
        stmt = command_statement("MONITOR", 0)
        return observe(SWITCH, _database(monitor), stmt, (), wrapped, args, kwargs)

    return start


class _Batch:
    """What dbpulse knows of one pipeline shape: its statement, each command's, and which
    commands are writes."""

    __slots__ = ("statements", "stmt", "writes")

    def __init__(self, stmt: Statement, statements: list[Statement]) -> None:
        self.stmt = stmt
        self.statements = statements
        self.writes = [i for i, s in enumerate(statements) if s.is_write]

    def written(self, replies: Any) -> int:
        """Write commands whose reply is not an error: the rows the batch wrote."""
        if not isinstance(replies, list) or len(replies) != len(self.statements):
            return len(self.writes)
        return sum(1 for i in self.writes if not isinstance(replies[i], BaseException))


_PIPELINES: dict[tuple[Any, ...], _Batch] = {}
_REPLIES = "_dbpulse_replies"


def _pipeline_statement(names: tuple[Any, ...]) -> _Batch:
    """The ``BATCH`` statement of a pipeline of these commands, and each command's own."""
    found = _PIPELINES.get(names)
    if found is None:
        statements = [command_statement(n, 0) for n in names]
        operations = {s.operation for s in statements}
        operation = f"BATCH {next(iter(operations))}" if len(operations) == 1 else "BATCH"
        text = "; ".join(s.text for s in statements[:50])[:2048]
        is_write = any(s.is_write for s in statements)
        found = _Batch(Statement.of(operation, text, is_write=is_write), statements)
        if len(_PIPELINES) < 4096:
            _PIPELINES[names] = found
    return found


def _first_error_wrapper(wrapped: Any, pipe: Any, args: Any, kwargs: Any) -> Any:
    """``Pipeline.raise_first_error(commands, replies)``: redis-py calls it once every reply
    is read; the replies are kept so that a pipeline that raises still counts what ran."""
    if SWITCH.on and len(args) == 2:
        try:
            setattr(pipe, _REPLIES, args[1])
        except Exception:
            pass
    return wrapped(*args, **kwargs)


def _transaction_error_wrapper(wrapped: Any, strategy: Any, args: Any, kwargs: Any) -> Any:
    """A cluster transaction's ``_raise_first_error(responses, stack, start_time)``: the
    replies are kept on its pipeline, as for :func:`_first_error_wrapper`."""
    if SWITCH.on and args:
        try:
            setattr(strategy._pipe, _REPLIES, args[0])
        except Exception:
            pass
    return wrapped(*args, **kwargs)


def _take_replies(pipe: Any) -> Any:
    """The replies :func:`_first_error_wrapper` kept for ``pipe`` (forgotten here), or None."""
    try:
        return pipe.__dict__.pop(_REPLIES, None)
    except Exception:
        return None


def _count_partial(
    pipe: Any, db: Database, batch: _Batch, exc: BaseException, stack: Any = None
) -> None:
    """A pipeline raised after its commands ran (one of them failed; a transaction's EXEC ran):
    its successful writes are rows written, its GETs lookups, under the failed operation.
    A cluster pipeline (not a transaction) keeps each command's reply on the command."""
    try:
        replies = _take_replies(pipe)
        if replies is None and stack is not None:
            replies = [getattr(c, "result", None) for c in stack]
        if not isinstance(replies, list) or len(replies) != len(batch.statements):
            return
        rows = batch.written(replies)
        if rows:
            stmt = batch.stmt
            OPERATIONS.add_rows(stmt.series_for(db, error_type_of(exc)), rows, (), stmt)
        count_replies(batch.statements, replies)
    except Exception:
        warn_once("could not count a failed pipeline's commands")


def _plain_stack(pipe: Any) -> tuple[Any, Any]:
    """A plain pipeline's queued commands; its replies, if it raises, come from
    ``raise_first_error``."""
    return getattr(pipe, "command_stack", None), None


def _cluster_stack(pipe: Any) -> tuple[Any, Any]:
    """A cluster pipeline's queued commands, and (not a transaction) where each keeps its
    reply when the pipeline raises."""
    strategy = getattr(pipe, "_execution_strategy", None)
    stack = getattr(strategy, "_command_queue", None)
    if not stack:
        return None, None
    return stack, None if hasattr(strategy, "_pipeline_slots") else list(stack)


def _pipeline_wrapper(
    awaits: bool,
    stack_of: Callable[[Any], tuple[Any, Any]] = _plain_stack,
    database_of: Callable[[Any], Database] = _database,
    around: Callable[[Any], Any] | None = None,
) -> Wrapper:
    def execute(wrapped: Any, pipe: Any, args: Any, kwargs: Any) -> Any:
        stack, results = stack_of(pipe) if SWITCH.on else (None, None)
        if not stack:
            return wrapped(*args, **kwargs)
        commands: list[tuple[Any, ...]] = [
            item[0] if isinstance(item, tuple) else getattr(item, "args", ()) for item in stack
        ]
        commands = [c for c in commands if c]
        batch = _pipeline_statement(tuple(c[0] for c in commands))
        # Rows written: one per write command that succeeded; reads are not writes.
        writes = [commands[i][1:] for i in batch.writes]
        db = database_of(pipe)
        _take_replies(pipe)
        try:
            replies = traced_batch(
                SWITCH,
                db,
                batch.stmt,
                writes,
                wrapped if around is None else around(wrapped),
                args,
                kwargs,
                rowcount=batch.written,
                size=len(commands),
                awaits=awaits,
            )
        except BaseException as exc:
            _count_partial(pipe, db, batch, exc, results)
            raise
        if awaits:
            return _counted_batch(pipe, db, batch, replies, results)
        _take_replies(pipe)
        count_replies(batch.statements, replies)
        return replies

    return execute


_CLUSTER = (_cluster_stack, _cluster_database)
# WATCH and the commands a cluster transaction runs at once before MULTI.
_cluster_immediate = (
    _command_wrapper(False, _cluster_database),
    _command_wrapper(True, _cluster_database),
)
_PATCHES = (
    ("redis.client", "Redis.execute_command", _command_wrapper(False)),
    ("redis.client", "Pipeline.execute", _pipeline_wrapper(False)),
    ("redis.client", "Pipeline.immediate_execute_command", _command_wrapper(False)),
    ("redis.client", "Pipeline.raise_first_error", _first_error_wrapper),
    ("redis.client", "PubSub.execute_command", _command_wrapper(False)),
    ("redis.client", "Monitor._start_monitor", _monitor_wrapper(False)),
    ("redis.asyncio.client", "Redis.execute_command", _command_wrapper(True)),
    ("redis.asyncio.client", "Pipeline.execute", _pipeline_wrapper(True)),
    ("redis.asyncio.client", "Pipeline.immediate_execute_command", _command_wrapper(True)),
    ("redis.asyncio.client", "Pipeline.raise_first_error", _first_error_wrapper),
    ("redis.asyncio.client", "PubSub.execute_command", _command_wrapper(True)),
    ("redis.asyncio.client", "Monitor.__aenter__", _monitor_wrapper(True)),
    ("redis.cluster", "RedisCluster.execute_command", _cluster_command_wrapper(False)),
    ("redis.cluster", "ClusterPipeline.execute", _pipeline_wrapper(False, *_CLUSTER, _quiet_sync)),
    ("redis.cluster", "TransactionStrategy._immediate_execute_command", _cluster_immediate[0]),
    ("redis.cluster", "TransactionStrategy._raise_first_error", _transaction_error_wrapper),
    ("redis.cluster", "NodesManager.initialize", _discovery_wrapper),
    ("redis._parsers.commands", "CommandsParser.initialize", _discovery_wrapper),
    ("redis._parsers.commands", "CommandsParser._get_moveable_keys", _discovery_wrapper),
    (
        "redis.asyncio.cluster",
        "RedisCluster.execute_command",
        _cluster_command_wrapper(True),
    ),
    (
        "redis.asyncio.cluster",
        "ClusterPipeline.execute",
        _pipeline_wrapper(True, *_CLUSTER, _quiet_async),
    ),
    (
        "redis.asyncio.cluster",
        "TransactionStrategy._immediate_execute_command",
        _cluster_immediate[1],
    ),
    ("redis.asyncio.cluster", "TransactionStrategy._raise_first_error", _transaction_error_wrapper),
)


def _patchable(module: str, name: str) -> tuple[Any, str] | None:
    """The class and method of a patch, if this redis-py version has them (4.x has no
    ``Monitor._start_monitor``, for one)."""
    import importlib

    owner_name, method = name.split(".")
    try:
        owner = getattr(importlib.import_module(module), owner_name, None)
    except ImportError:  # redis-py 4.0 has no redis.cluster
        return None
    if owner is None or not callable(owner.__dict__.get(method)):
        return None
    return owner, method


class RedisInstrumentor(BaseInstrumentor):
    """Instruments redis-py commands and pipelines (sync and asyncio)."""

    _stock: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ["redis >= 4.0"]

    def _instrument(self, **kwargs: Any) -> None:

        type(self)._stock = _stock.take_over(
            "opentelemetry.instrumentation.redis", "RedisInstrumentor"
        )
        OPERATIONS.register_instruments(kwargs.get("meter_provider"))
        CACHE.register(kwargs.get("meter_provider"))
        for module, name, wrapper in _PATCHES:
            found = _patchable(module, name)
            if found is not None:
                wrapt.wrap_function_wrapper(found[0], found[1], wrapper)
        SWITCH.set_instrumented(True, kwargs.get("tracer_provider"))

    def _uninstrument(self, **kwargs: Any) -> None:
        SWITCH.set_instrumented(False)
        for module, name, _ in _PATCHES:
            found = _patchable(module, name)
            if found is not None:
                unwrap(*found)
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
