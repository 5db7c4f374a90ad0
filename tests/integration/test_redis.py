"""Redis commands through dbpulse, against a real server."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

redis = pytest.importorskip("redis")

ISBN = "9780306406157"
OPERATIONS = pytest.importorskip("dbpulse.telemetry.metrics").OPERATIONS
CACHE = pytest.importorskip("dbpulse.instrumentors.redis").CACHE


@pytest.fixture
def client(redis_url, otel):
    import dbpulse
    from dbpulse.instrumentors.redis import CACHE

    dbpulse.instrument(systems=("redis",))
    CACHE.reset()
    r = redis.Redis.from_url(redis_url)
    prefix = f"dbpulse-test:{uuid.uuid4().hex[:8]}"
    yield r, prefix
    for key in r.scan_iter(f"{prefix}*"):
        r.delete(key)


def test_command_spans_hide_keys_and_values(client, otel):
    r, prefix = client
    otel.span_exporter.clear()
    r.set(f"{prefix}:book:{ISBN}", "secret value")
    (span,) = otel.spans()
    assert span.name == "SET"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes)
    assert attrs["db.system.name"] == "redis"
    assert attrs["db.operation.name"] == "SET"
    assert attrs["db.query.text"] == "SET ? ?"
    assert attrs["db.namespace"] == "0"
    assert attrs["book.isbn"] == ISBN
    assert "secret" not in repr(attrs) and prefix not in repr(attrs)


def test_cache_hits_and_misses_are_counted(client, otel):
    r, prefix = client
    r.set(f"{prefix}:a", "1")
    r.get(f"{prefix}:a")
    r.get(f"{prefix}:missing")
    r.mget([f"{prefix}:a", f"{prefix}:missing", f"{prefix}:nope"])
    hits = otel.value("dbpulse.cache.requests", **{"dbpulse.cache.result": "hit"})
    misses = otel.value("dbpulse.cache.requests", **{"dbpulse.cache.result": "miss"})
    assert (hits, misses) == (2, 3)


def test_pipeline_is_one_batch_span(client, otel):
    r, prefix = client
    otel.span_exporter.clear()
    with r.pipeline() as pipe:
        for i in range(3):
            pipe.set(f"{prefix}:{i}", i)
        pipe.execute()
    (span,) = otel.spans()
    assert span.name == "BATCH SET"
    assert span.attributes["db.operation.batch.size"] == 3
    assert otel.value("dbpulse.db.writes", **{"db.system.name": "redis"}) == 3


def test_a_mixed_pipeline_counts_its_writes_and_its_cache_lookups(client, otel):
    r, prefix = client
    r.set(f"{prefix}:hit", "cached")
    OPERATIONS.reset()
    CACHE.reset()
    otel.span_exporter.clear()
    for transaction in (True, False):
        with r.pipeline(transaction=transaction) as pipe:
            pipe.set(f"{prefix}:a", 1).get(f"{prefix}:hit").incr(f"{prefix}:n")
            pipe.get(f"{prefix}:missing").delete(f"{prefix}:a")
            assert pipe.execute() == [True, b"cached", 1 if transaction else 2, None, 1]
    spans = otel.spans()
    assert [s.name for s in spans] == ["BATCH", "BATCH"]
    assert all(s.attributes["db.operation.batch.size"] == 5 for s in spans)
    # Three writes (SET, INCR, DEL) per pipeline; the two GETs are reads and cache lookups.
    assert otel.value("dbpulse.db.writes", **{"db.system.name": "redis"}) == 6
    assert otel.value("dbpulse.cache.requests", **{"dbpulse.cache.result": "hit"}) == 2
    assert otel.value("dbpulse.cache.requests", **{"dbpulse.cache.result": "miss"}) == 2


def test_errors_carry_the_error_class(client, otel):
    r, prefix = client
    r.set(f"{prefix}:s", "text")
    otel.span_exporter.clear()
    with pytest.raises(redis.ResponseError):
        r.incr(f"{prefix}:s")
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ResponseError"


async def test_asyncio_client(redis_url, client, otel):
    import redis.asyncio as aioredis

    _, prefix = client
    otel.span_exporter.clear()
    r = aioredis.Redis.from_url(redis_url)
    await r.set(f"{prefix}:x", "1")
    assert await r.get(f"{prefix}:x") == b"1"
    async with r.pipeline() as pipe:
        pipe.get(f"{prefix}:x").get(f"{prefix}:y")
        await pipe.execute()
    await r.aclose()
    assert [s.name for s in otel.spans()] == ["SET", "GET", "BATCH GET"]


def test_commands_given_as_one_string_export_no_argument(client, otel):
    # redis-py splits a command name holding spaces into words (CONFIG SET requirepass pw):
    # dbpulse shows the command and a container's subcommand, never an argument.
    r, prefix = client
    marker = f"Zq{uuid.uuid4().hex}qZ"
    user = f"dbpulse-{marker}"
    otel.span_exporter.clear()
    assert r.execute_command(f"SET {prefix}:one {marker}")
    assert r.execute_command(f"ECHO {marker}") == marker.encode()
    with pytest.raises(redis.ResponseError):
        r.execute_command(f"CONFIG SET dbpulse-{marker} {marker}")  # unknown option: no change
    with pytest.raises(redis.RedisError):
        r.execute_command(f"AUTH {marker}")  # no password configured
    r.execute_command(f"ACL SETUSER {user} >{marker} off")  # a disabled user, deleted below
    assert r.execute_command(f"ACL DELUSER {user}") == 1
    assert r.execute_command("ACL", "DELUSER", user) == 0  # words given apart: the same rule
    spans = otel.spans()
    texts = [s.attributes["db.query.text"] for s in spans]
    assert texts == [
        "SET ? ?",
        "ECHO ?",
        "CONFIG SET ? ?",
        "AUTH ?",
        "ACL SETUSER ? ? ?",
        "ACL DELUSER ?",
        "ACL ? ?",
    ]
    assert [s.attributes["db.operation.name"] for s in spans] == [
        "SET",
        "ECHO",
        "CONFIG",
        "AUTH",
        "ACL",
        "ACL",
        "ACL",
    ]
    for span in spans:
        exported = repr((span.name, dict(span.attributes), span.status.description, span.events))
        assert marker not in exported and prefix not in exported


def test_pubsub_commands_are_operations_not_messages(client, otel):
    # One operation per pub/sub command (arguments hidden: channel names are values), none
    # per message read.
    r, prefix = client
    channel = f"{prefix}:book:{ISBN}"
    otel.span_exporter.clear()
    pubsub = r.pubsub()
    pubsub.subscribe(channel, f"{prefix}:other")
    pubsub.psubscribe(f"{prefix}:*")
    for i in range(3):
        r.publish(channel, f"secret {i}")
    read = [pubsub.get_message(timeout=0.1) for _ in range(12)]
    assert sum(1 for m in read if m and m["type"] in ("message", "pmessage")) == 6
    pubsub.ping()
    pubsub.unsubscribe()
    pubsub.punsubscribe()
    pubsub.close()
    spans = otel.spans()
    texts = "; ".join(s.attributes["db.query.text"] for s in spans)
    publishes = "; ".join(["PUBLISH ? ?"] * 3)
    assert texts == f"SUBSCRIBE ? ?; PSUBSCRIBE ?; {publishes}; PING; UNSUBSCRIBE; PUNSUBSCRIBE"
    assert otel.value("db.client.operation.duration", **{"db.operation.name": "SUBSCRIBE"}) == 1
    for span in spans:
        exported = repr((span.name, dict(span.attributes), span.events))
        assert prefix not in exported and "secret" not in exported


# -- the server's own account --------------------------------------------------------------
#
# Each shape runs against a private redis-server whose statistics were just reset; dbpulse's
# exported counts must equal the server's: per command (INFO commandstats calls; a pipeline's
# BATCH span lists its commands, MULTI/EXEC are the transaction's wrapping), writes (calls of
# the server's write-flagged commands that did not fail) and keyspace hits/misses. Where the
# two differ by rule, the shape says so (see the README, "What is observed").


@dataclass(frozen=True)
class Shape:
    run: Callable[[Any, str], Any]
    server_side: dict[str, int] = field(default_factory=dict)  # a script's own commands
    not_run: dict[str, int] = field(default_factory=dict)  # a failed transaction's commands
    other_reads: tuple[int, int] = (0, 0)  # server hits/misses minus dbpulse's (by rule)


def _pipelines(r: Any, url: str) -> None:
    r.set("hit", "x")
    r.set("s", "text")
    for transaction in (True, False):
        with r.pipeline(transaction=transaction) as pipe:
            pipe.set("a", 1).get("hit").incr("n").get("miss").mget("hit", "miss")
            pipe.hget("h", "f").delete("a")
            pipe.execute()
        with r.pipeline(transaction=transaction) as pipe:  # INCR fails, the others ran
            pipe.set("b", 1).incr("s").get("b").set("c", 2)
            with pytest.raises(redis.ResponseError):
                pipe.execute()
        with r.pipeline(transaction=transaction) as pipe:
            pipe.set("d", 1).incr("s").get("d").set("e", 2)
            pipe.execute(raise_on_error=False)


def _aborted(r: Any, url: str) -> None:
    with r.pipeline() as pipe, pytest.raises(redis.ResponseError):
        pipe.set("a", 1).execute_command("DBPULSENOSUCH")
        pipe.execute()


def _watch_retry(r: Any, url: str) -> None:
    r.set("w", "0")
    other = redis.Redis.from_url(url)
    with r.pipeline() as pipe:
        for attempt in range(3):
            try:
                pipe.watch("w")
                value = int(pipe.get("w"))
                if attempt == 0:
                    other.set("w", "5")  # the first EXEC finds "w" changed: WatchError
                pipe.multi()
                pipe.set("w", value + 1)
                pipe.execute()
                break
            except redis.WatchError:
                continue
    other.close()

    def bump(pipe: Any) -> None:
        value = int(pipe.get("c") or 0)
        pipe.multi()
        pipe.set("c", value + 1)

    r.transaction(bump, "c")


def _scripts(r: Any, url: str) -> None:
    r.eval("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])", 1, "k", "v")
    script = r.register_script("return redis.call('GET', KEYS[1])")
    script(keys=["k"])
    with r.pipeline() as pipe:  # SCRIPT EXISTS first, at once
        script(keys=["none"], client=pipe)
        pipe.set("x", 1)
        pipe.execute()
    lock = r.lock("lock", timeout=5)  # SET NX PX; released by a script
    assert lock.acquire(blocking=False)
    assert not r.lock("lock", timeout=5).acquire(blocking=False)
    lock.release()


def _pubsub(r: Any, url: str) -> None:
    pubsub = r.pubsub()
    pubsub.subscribe("ch1", "ch2")
    pubsub.psubscribe("p*")
    assert r.publish("ch1", "hello") == 1
    messages = [pubsub.get_message(timeout=0.05) for _ in range(8)]
    assert sum(1 for m in messages if m and m["type"] == "message") == 1
    pubsub.ping()
    pubsub.unsubscribe("ch1")
    pubsub.punsubscribe()
    pubsub.close()


def _asyncio(r: Any, url: str) -> None:
    import redis.asyncio as aioredis

    async def run() -> None:
        client = aioredis.Redis.from_url(url)
        await client.set("a", 1)
        await client.get("a")
        await client.get("none")
        async with client.pipeline() as pipe:
            pipe.incr("n").get("a").get("none")
            await pipe.execute()
        async with client.pipeline(transaction=False) as pipe:
            pipe.set("s", "text").incr("s").mget("a", "s", "none")
            await pipe.execute(raise_on_error=False)
        for transaction in (True, False):  # INCR fails, the others ran
            async with client.pipeline(transaction=transaction) as pipe:
                pipe.set("b", 1).incr("s").get("b").set("c", 2)
                with pytest.raises(redis.ResponseError):
                    await pipe.execute()
        async with client.pipeline() as pipe:
            await pipe.watch("a")
            await pipe.get("a")
            pipe.multi()
            pipe.set("a", 2)
            await pipe.execute()
        pubsub = client.pubsub()
        await pubsub.subscribe("ch")
        await client.publish("ch", "x")
        for _ in range(4):
            await pubsub.get_message(timeout=0.05)
        await pubsub.unsubscribe("ch")
        await pubsub.aclose()
        async with client.monitor() as monitor:
            await client.set("m", 1)
            await monitor.next_command()
        await client.aclose()

    asyncio.run(run())


def _resp3_and_retries(r: Any, url: str) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(url, protocol=3, retry=Retry(NoBackoff(), 3))
    client.set("a", 1)
    client.get("a")
    client.hgetall("none")
    with client.pipeline() as pipe:
        pipe.set("b", 1).get("b").get("none")
        pipe.execute()
    r.client_kill_filter(_id=client.client_id())  # the next GET reconnects and is retried
    assert client.get("a") == b"1"
    client.execute_command("SET one-string value")
    client.close()
    with r.monitor() as monitor:
        r.set("m", 1)
        monitor.next_command()


SHAPES = {
    "plain": Shape(
        lambda r, url: (
            (r.set("a", 1), r.get("a"), r.get("none"), r.mget("a", "none"), r.incr("n")),
            (r.getex("a", ex=60), r.getdel("a"), r.getrange("none", 0, 1), r.exists("none")),
        ),
        other_reads=(0, 2),  # GETRANGE and EXISTS read keys; they are not cache lookups
    ),
    "pipelines": Shape(_pipelines),
    "aborted-transaction": Shape(_aborted, not_run={"SET": 1, "DBPULSENOSUCH": 1}),
    "watch-retry-and-transaction-helper": Shape(_watch_retry, not_run={"SET": 1}),
    "scripts-and-locks": Shape(
        _scripts,
        server_side={"SET": 1, "GET": 4, "DEL": 1},
        other_reads=(3, 1),  # the scripts' own GETs
    ),
    "scan-iter": Shape(
        lambda r, url: ([r.set(f"s:{i}", i) for i in range(20)], list(r.scan_iter("s:*", count=7)))
    ),
    "pubsub": Shape(_pubsub),
    "asyncio": Shape(_asyncio),
    "resp3-retries-monitor": Shape(_resp3_and_retries),
    # Hashes: the server counts one lookup of the hash key, dbpulse one per field asked.
    "hash-fields": Shape(
        lambda r, url: (r.hset("h", "a", 1), r.hmget("h", "a", "b"), r.hget("h", "zz")),
        other_reads=(1, -2),
    ),
}
# Sent by redis-py on connecting (and by this test): not the application's commands.
_HANDSHAKE = {"HELLO", "CLIENT|SETINFO", "CONFIG|RESETSTAT", "FLUSHALL", "INFO"}


@pytest.fixture(scope="module")
def private_redis():
    from tests.clients._servers import PrivateRedis

    server = PrivateRedis()
    yield server
    server.stop()


def _commands_of(spans: list[Any]) -> Counter[str]:
    """Per command, what dbpulse's spans say was sent (a BATCH span lists its commands)."""
    found: Counter[str] = Counter()
    for span in spans:
        text = span.attributes["db.query.text"]
        for command in text.split("; ") if span.name.startswith("BATCH") else [text]:
            found["|".join(w for w in command.split(" ") if w != "?")] += 1
    return found


@pytest.mark.parametrize("name", SHAPES)
def test_counts_are_the_servers_own(name, private_redis, otel):
    import dbpulse
    from dbpulse.instrumentors.redis import CACHE

    shape = SHAPES[name]
    admin = private_redis.client
    dbpulse.instrument(systems=("redis",))
    private_redis.reset()
    dbpulse.testing.reset()
    CACHE.reset()
    otel.span_exporter.clear()
    r = redis.Redis.from_url(private_redis.url)
    shape.run(r, private_redis.url)
    r.close()
    spans = [s for s in otel.spans() if s.attributes.get("db.system.name") == "redis"]
    redis_only = {"db.system.name": "redis"}
    operations = otel.value("db.client.operation.duration", **redis_only)
    writes = otel.value("dbpulse.db.writes", **redis_only)
    hits = otel.value("dbpulse.cache.requests", **{"dbpulse.cache.result": "hit"})
    misses = otel.value("dbpulse.cache.requests", **{"dbpulse.cache.result": "miss"})

    stats = admin.info("commandstats")
    keyspace = admin.info("stats")
    calls = Counter({k.removeprefix("cmdstat_").upper(): v["calls"] for k, v in stats.items()})
    failed = {
        k.removeprefix("cmdstat_").upper(): v.get("failed_calls", 0) for k, v in stats.items()
    }
    flags = admin.execute_command("COMMAND", "INFO", *{c.split("|")[0] for c in calls})
    written = {c.upper() for c, spec in flags.items() if spec and "write" in spec["flags"]}
    server_writes = sum(
        n - failed[c] - shape.server_side.get(c, 0) for c, n in calls.items() if c in written
    )
    expected = Counter({c: n for c, n in calls.items() if c not in _HANDSHAKE | {"MULTI", "EXEC"}})
    expected.subtract(shape.server_side)
    seen = _commands_of(spans)
    seen.subtract(shape.not_run)

    assert +seen == +expected
    assert operations == len(spans)  # one operation (and one span) per call or pipeline
    assert writes == server_writes
    assert (hits + shape.other_reads[0], misses + shape.other_reads[1]) == (
        keyspace["keyspace_hits"],
        keyspace["keyspace_misses"],
    )


def test_write_commands_are_the_servers(private_redis):
    # Every command the server flags "write" counts as a write, but those that write only
    # with a STORE argument and the server's internal ones.
    from dbpulse.instrumentors.redis_commands import _WRITES

    commands = private_redis.client.execute_command("COMMAND", "INFO")
    flagged = {n.upper() for n, spec in commands.items() if spec and "write" in spec["flags"]}
    assert flagged - _WRITES == {
        "SORT",
        "GEORADIUS",
        "GEORADIUSBYMEMBER",
        "PFDEBUG",
        "RESTORE-ASKING",
    }
