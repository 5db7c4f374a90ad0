"""The command table of the redis instrumentor: one statement per command name and arity
(``SET ? ?``, never an argument), which commands write, and the GET family's cache hits and
misses counted from replies."""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.core.state import warn_once
from dbpulse.core.statements import Statement
from dbpulse.telemetry.fork import in_child_after_fork
from dbpulse.telemetry.instruments import Instruments

__all__ = ["CACHE", "GETS", "command_statement", "count_replies", "counted"]

# The server's write commands (COMMAND INFO flags, Redis 7/8) but SORT, GEORADIUS and
# GEORADIUSBYMEMBER, which write only with a STORE argument.
_WRITES = frozenset(
    """SET SETEX PSETEX SETNX MSET MSETNX GETSET GETDEL GETEX APPEND INCR INCRBY INCRBYFLOAT
    DECR DECRBY DEL UNLINK EXPIRE EXPIREAT PEXPIRE PEXPIREAT PERSIST RENAME RENAMENX
    HSET HSETNX HMSET HDEL HINCRBY HINCRBYFLOAT LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LSET LREM
    LTRIM LINSERT LMOVE BLMOVE RPOPLPUSH SADD SREM SPOP SMOVE ZADD ZREM ZINCRBY ZPOPMIN
    ZPOPMAX ZREMRANGEBYSCORE ZREMRANGEBYRANK XADD XDEL XTRIM SETRANGE SETBIT PFADD
    GEOADD COPY RESTORE FLUSHDB FLUSHALL BITFIELD BITOP BLMPOP BLPOP BRPOP BRPOPLPUSH BZMPOP
    BZPOPMAX BZPOPMIN GEOSEARCHSTORE LMPOP MIGRATE MOVE PFMERGE SDIFFSTORE SINTERSTORE
    SUNIONSTORE SWAPDB XACK XAUTOCLAIM XCLAIM XREADGROUP XSETID ZDIFFSTORE ZINTERSTORE ZMPOP
    ZRANGESTORE ZREMRANGEBYLEX ZUNIONSTORE HEXPIRE HPEXPIRE HEXPIREAT HPEXPIREAT HPERSIST
    HGETDEL HGETEX HSETEX""".split()
)
# GETRANGE is a range read, not a lookup: its empty reply cannot tell a missing key (a
# keyspace miss) from an empty range (a hit).
GETS = frozenset({"GET", "GETEX", "GETDEL", "HGET", "MGET", "HMGET", "HGETALL"})
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


def command_statement(name: Any, nargs: int) -> Statement:
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


def _count_cache(stmt: Statement, result: Any) -> None:
    """Count a GET-family command's hits and misses from its reply."""
    command = stmt.operation
    if command not in GETS or isinstance(result, BaseException):
        return
    if command in _MULTI_KEY_GETS and isinstance(result, list | tuple):
        hits = sum(1 for value in result if value is not None)
        CACHE.add(command, hits, len(result) - hits)
    elif command == "HGETALL":
        CACHE.add(command, 1 if result else 0, 0 if result else 1)
    else:
        CACHE.add(command, 1 if result is not None else 0, 1 if result is None else 0)


def count_replies(statements: list[Statement], replies: Any) -> None:
    """Cache hits and misses of the GETs inside a pipeline, from its list of replies."""
    try:
        if isinstance(replies, list) and len(replies) == len(statements):
            for stmt, reply in zip(statements, replies, strict=True):
                _count_cache(stmt, reply)
    except Exception:
        warn_once("could not count a pipeline's cache lookups")


async def counted(statements: list[Statement], awaitable: Awaitable[Any], one: bool) -> Any:
    reply = await awaitable
    count_replies(statements, [reply] if one else reply)
    return reply
