"""Redis scenarios of the differential table (redis-py, sync and asyncio clients).

Every key starts with the run's prefix (``ctx.key``); :func:`forget` removes them after it.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from typing import Any

import pytest

from tests.integration.differential._runner import Ctx, scenario

redis = pytest.importorskip("redis")

rd = functools.partial(scenario, "redis")


def forget(url: str, prefix: str) -> None:
    """Remove the run's keys (on every node of the private cluster for its scenarios)."""
    from redis.cluster import RedisCluster

    clients = [redis.Redis.from_url(url)]
    if clients[0].info("cluster").get("cluster_enabled"):
        cluster = RedisCluster.from_url(url)
        clients = [node.redis_connection for node in cluster.get_primaries()]
    for client in clients:
        for key in list(client.scan_iter(match=f"{prefix}*", count=500)):
            client.delete(key)
        client.close()


def _client(ctx: Ctx, **kwargs: Any) -> Any:
    return redis.Redis.from_url(ctx.redis_url, **kwargs)


@rd()
def s_set_get_types(ctx: Ctx) -> Any:
    r = _client(ctx)
    return (
        r.set(ctx.key("a"), "1"),
        r.get(ctx.key("a")),
        r.get(ctx.key("missing")),
        r.incr(ctx.key("n")),
    )


@rd()
def s_decode_responses(ctx: Ctx) -> Any:
    r = _client(ctx, decode_responses=True)
    r.hset(ctx.key("h"), mapping={"f": "v", "g": 2})
    return r.hgetall(ctx.key("h")), r.hgetall(ctx.key("none")), r.hmget(ctx.key("h"), ["f", "z"])


@rd()
def s_mget_and_getdel(ctx: Ctx) -> Any:
    r = _client(ctx)
    r.mset({ctx.key("a"): "1", ctx.key("b"): "2"})
    return (
        r.mget([ctx.key("a"), ctx.key("x"), ctx.key("b")]),
        r.getdel(ctx.key("a")),
        r.exists(ctx.key("a")),
    )


@rd()
def s_pipeline_transaction(ctx: Ctx) -> Any:
    r = _client(ctx)
    pipe = r.pipeline()
    pipe.set(ctx.key("a"), "1").get(ctx.key("a")).incr(ctx.key("n")).get(ctx.key("none"))
    return pipe.execute(), pipe.command_stack


@rd()
def s_pipeline_without_transaction(ctx: Ctx) -> Any:
    r = _client(ctx)
    with r.pipeline(transaction=False) as pipe:
        pipe.rpush(ctx.key("l"), 1, 2, 3).lrange(ctx.key("l"), 0, -1).llen(ctx.key("l"))
        first = pipe.execute()
        pipe.lpop(ctx.key("l"))
        return first, pipe.execute()


@rd()
def s_pipeline_error_raised(ctx: Ctx) -> Any:
    r = _client(ctx)
    r.set(ctx.key("s"), "text")
    pipe = r.pipeline()
    pipe.set(ctx.key("a"), "1").incr(ctx.key("s")).get(ctx.key("a"))
    pipe.execute()


@rd()
def s_pipeline_error_returned(ctx: Ctx) -> Any:
    r = _client(ctx)
    r.set(ctx.key("s"), "text")
    pipe = r.pipeline(transaction=False)
    pipe.set(ctx.key("a"), "1").incr(ctx.key("s")).get(ctx.key("a"))
    return pipe.execute(raise_on_error=False)


@rd(observed=False)
def s_empty_pipeline(ctx: Ctx) -> Any:
    return _client(ctx).pipeline().execute()


@rd()
def s_watch_conflict(ctx: Ctx) -> Any:
    r, other = _client(ctx), _client(ctx)
    r.set(ctx.key("w"), "0")
    pipe = r.pipeline()
    pipe.watch(ctx.key("w"))
    other.set(ctx.key("w"), "changed")
    pipe.multi()
    pipe.set(ctx.key("w"), "mine")
    pipe.execute()


@rd()
def s_transaction_helper(ctx: Ctx) -> Any:
    r = _client(ctx)

    def bump(pipe: Any) -> None:
        value = int(pipe.get(ctx.key("c")) or 0)
        pipe.multi()
        pipe.set(ctx.key("c"), value + 5)

    return r.transaction(bump, ctx.key("c")), r.get(ctx.key("c"))


@rd()
def s_one_string_command(ctx: Ctx) -> Any:
    r = _client(ctx)
    return (
        r.execute_command(f"SET {ctx.key('one')} value"),
        r.execute_command(f"GET {ctx.key('one')}"),
        r.execute_command("CONFIG GET maxclients"),
    )


@rd()
def s_wrong_type(ctx: Ctx) -> Any:
    r = _client(ctx)
    r.set(ctx.key("s"), "text")
    r.lpush(ctx.key("s"), "x")


@rd()
def s_unknown_command(ctx: Ctx) -> Any:
    _client(ctx).execute_command("DBPULSENOSUCH", ctx.key("k"))


@rd()
def s_wrong_arity(ctx: Ctx) -> Any:
    _client(ctx).execute_command("GET")


@rd(observed=False)
def s_unencodable_value(ctx: Ctx) -> Any:
    _client(ctx).set(ctx.key("d"), {"a": 1})  # type: ignore[arg-type]


@rd()
def s_lua_script(ctx: Ctx) -> Any:
    r = _client(ctx)
    script = r.register_script("return {KEYS[1], ARGV[1] + 1}")
    return script(keys=[ctx.key("k")], args=[41]), r.eval("return 1 + 1", 0)


@rd()
def s_scan_and_expiry(ctx: Ctx) -> Any:
    r = _client(ctx)
    for i in range(5):
        r.set(ctx.key(f"scan:{i}"), i, ex=100)
    found = sorted(r.scan_iter(match=ctx.key("scan:*")))
    return found, r.ttl(ctx.key("scan:0")) > 0, r.persist(ctx.key("scan:0"))


@rd()
def s_pubsub(ctx: Ctx) -> Any:
    r = _client(ctx)
    channel = ctx.key("channel")
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    received = r.publish(channel, "hello")
    message = None
    for _ in range(50):
        message = pubsub.get_message(timeout=0.1)
        if message:
            break
    pubsub.close()
    return received, message


@functools.cache
def _closed_port() -> int:
    """A loopback port bound and never listened on (kept bound: connections are refused)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    _HELD.append(holder)
    return int(holder.getsockname()[1])


_HELD: list[socket.socket] = []


@rd(observed=False)
def s_connection_refused(ctx: Ctx) -> Any:
    redis.Redis(port=_closed_port(), socket_connect_timeout=1).get("k")


@rd()
def s_asyncio_client(ctx: Ctx) -> Any:
    import redis.asyncio as aioredis

    async def run() -> Any:
        r = aioredis.Redis.from_url(ctx.redis_url)
        await r.set(ctx.key("a"), "1")
        got = await r.get(ctx.key("a")), await r.get(ctx.key("none"))
        async with r.pipeline() as pipe:
            pipe.incr(ctx.key("n")).get(ctx.key("a")).get(ctx.key("none"))
            replies = await pipe.execute()
        with pytest.raises(redis.ResponseError) as caught:
            await r.execute_command("DBPULSENOSUCH")
        await r.aclose()
        return got, replies, str(caught.value)

    return asyncio.run(run())


@rd(observed=False)
def s_execute_command_without_arguments(ctx: Ctx) -> Any:
    _client(ctx).execute_command()


@rd()
def s_bytes_command_name_and_options(ctx: Ctx) -> Any:
    r = _client(ctx, decode_responses=True)
    r.execute_command(b"SET", ctx.key("b"), b"\xff\x00")
    return r.execute_command("GET", ctx.key("b"), NEVER_DECODE=True), r.strlen(ctx.key("b"))


@rd()
def s_key_and_value_types(ctx: Ctx) -> Any:
    r = _client(ctx)
    r.set(ctx.key("i"), 1)
    r.set(ctx.key("f"), 2.5)
    r.set(ctx.key("m"), memoryview(b"mv"))
    return r.mget(ctx.key("i"), ctx.key("f"), ctx.key("m")), r.incrbyfloat(ctx.key("f"), 1)


@rd()
def s_pipeline_executed_twice(ctx: Ctx) -> Any:
    pipe = _client(ctx).pipeline()
    pipe.set(ctx.key("a"), 1)
    first = pipe.execute()
    return first, pipe.execute(), len(pipe)


@rd()
def s_pipeline_immediate_mode_after_watch(ctx: Ctx) -> Any:
    r = _client(ctx)
    r.set(ctx.key("w"), "5")
    with r.pipeline() as pipe:
        pipe.watch(ctx.key("w"))
        current = pipe.get(ctx.key("w"))
        pipe.multi()
        pipe.incr(ctx.key("w")).get(ctx.key("none"))
        return current, pipe.execute()


@rd()
def s_pipeline_with_unknown_command(ctx: Ctx) -> Any:
    pipe = _client(ctx).pipeline(transaction=False)
    pipe.set(ctx.key("a"), 1)
    pipe.execute_command("DBPULSENOSUCH", ctx.key("a"))
    return pipe.execute(raise_on_error=False)


@rd()
def s_transaction_unknown_command_aborts(ctx: Ctx) -> Any:
    pipe = _client(ctx).pipeline()
    pipe.set(ctx.key("a"), 1)
    pipe.execute_command("DBPULSENOSUCH")
    pipe.execute()


@rd()
def s_lock(ctx: Ctx) -> Any:
    r = _client(ctx)
    lock = r.lock(ctx.key("lock"), timeout=5)
    got = lock.acquire(blocking=False)
    second = r.lock(ctx.key("lock"), timeout=5).acquire(blocking=False)
    lock.release()
    return got, second, r.exists(ctx.key("lock"))


@rd()
def s_hash_and_sets(ctx: Ctx) -> Any:
    r = _client(ctx)
    r.sadd(ctx.key("s"), "a", "b")
    r.zadd(ctx.key("z"), {"a": 1.5, "b": 0.5})
    r.hset(ctx.key("h"), "f", 1)
    return (
        sorted(r.smembers(ctx.key("s"))),
        r.zrange(ctx.key("z"), 0, -1, withscores=True),
        r.hget(ctx.key("h"), "f"),
        r.hget(ctx.key("h"), "g"),
        r.hincrby(ctx.key("h"), "f", 2),
    )


@rd()
def s_asyncio_pipeline_error(ctx: Ctx) -> Any:
    import redis.asyncio as aioredis

    async def run() -> Any:
        r = aioredis.Redis.from_url(ctx.redis_url)
        await r.set(ctx.key("s"), "text")
        pipe = r.pipeline(transaction=False)
        pipe.incr(ctx.key("s")).get(ctx.key("s"))
        replies = await pipe.execute(raise_on_error=False)
        try:
            async with r.pipeline() as tx:
                tx.incr(ctx.key("s"))
                await tx.execute()
        except redis.ResponseError as exc:
            error = type(exc).__name__, str(exc)
        await r.aclose()
        return replies, error

    return asyncio.run(run())


def _drain(pubsub: Any, count: int, timeout: float = 0.1) -> list[Any]:
    """The next ``count`` messages (subscribe confirmations included), waiting for each."""
    found: list[Any] = []
    for _ in range(count * 20):
        message = pubsub.get_message(timeout=timeout)
        if message is not None:
            found.append(message)
            if len(found) == count:
                break
    return found


@rd()
def s_pubsub_every_command(ctx: Ctx) -> Any:
    r = _client(ctx)
    pubsub = r.pubsub()
    first = pubsub.subscribe(ctx.key("a"), ctx.key("b"))
    second = pubsub.psubscribe(ctx.key("p*"))
    third = pubsub.ssubscribe(ctx.key("s"))
    confirmations = _drain(pubsub, 4)
    delivered = r.publish(ctx.key("a"), "to a"), r.publish(ctx.key("pz"), "to p")
    shard = r.spublish(ctx.key("s"), "to s")
    messages = _drain(pubsub, 3)
    pong = pubsub.ping("hello")
    pong_reply = _drain(pubsub, 1)
    gone = pubsub.unsubscribe(ctx.key("a")), pubsub.punsubscribe(), pubsub.sunsubscribe()
    goodbyes = _drain(pubsub, 3)
    state = pubsub.subscribed, sorted(pubsub.channels)
    pubsub.close()
    return (
        first,
        second,
        third,
        confirmations,
        delivered,
        shard,
        messages,
        pong,
        pong_reply,
        gone,
        goodbyes,
        state,
    )


@rd()
def s_pubsub_listen_with_handlers(ctx: Ctx) -> Any:
    r = _client(ctx, decode_responses=True)
    seen: list[Any] = []
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(**{ctx.key("h"): seen.append})
    pubsub.subscribe(ctx.key("plain"))
    for i in range(3):
        r.publish(ctx.key("h"), f"handled {i}")
    r.publish(ctx.key("plain"), "listened")
    listened = None
    for message in pubsub.listen():
        if message["type"] == "message":
            listened = message
            break
    pubsub.close()
    return seen, listened


@rd()
def s_pubsub_worker_thread(ctx: Ctx) -> Any:
    import threading

    r = _client(ctx)
    got: list[Any] = []
    done = threading.Event()

    def handle(message: Any) -> None:
        got.append(message["data"])
        if len(got) == 2:
            done.set()

    pubsub = r.pubsub()
    pubsub.subscribe(**{ctx.key("t"): handle})
    worker = pubsub.run_in_thread(sleep_time=0.01, daemon=True)
    for _ in range(100):
        if r.pubsub_numsub(ctx.key("t"))[0][1]:
            break
    r.publish(ctx.key("t"), "one")
    r.publish(ctx.key("t"), "two")
    done.wait(5)
    worker.stop()
    worker.join(5)
    pubsub.close()
    return got


@rd()
def s_pubsub_errors(ctx: Ctx) -> Any:
    r = _client(ctx, client_name=ctx.key("sub").replace(":", "-"))
    pubsub = r.pubsub()
    outcomes: list[Any] = []
    for call in (
        lambda: pubsub.get_message(),  # no subscription yet: nothing to read
        lambda: pubsub.listen().__next__(),
    ):
        try:
            outcomes.append(call())
        except Exception as exc:
            outcomes.append((type(exc).__name__, str(exc)))
    pubsub.subscribe(ctx.key("e"))
    _drain(pubsub, 1)
    r.execute_command("CLIENT", "KILL", "ID", _pubsub_id(r, ctx))
    try:
        outcomes.append(_drain(pubsub, 1, timeout=0.2))  # reconnects and resubscribes
    except Exception as exc:
        outcomes.append((type(exc).__name__, str(exc)))
    outcomes.append(r.publish(ctx.key("e"), "after reconnect"))
    outcomes.append(_drain(pubsub, 1))
    pubsub.close()
    pubsub.close()
    return outcomes


def _pubsub_id(r: Any, ctx: Ctx) -> int:
    """The client id of this run's subscribed connection (named by the run: no other's)."""
    for client in r.client_list():
        if client.get("name") == ctx.key("sub").replace(":", "-") and client.get("sub") == "1":
            return int(client["id"])
    raise AssertionError("no subscribed connection")


@rd(observed=False)
def s_pubsub_connection_refused(ctx: Ctx) -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(port=_closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 1))
    pubsub = client.pubsub()
    pubsub.subscribe("channel")


@rd()
def s_asyncio_pubsub(ctx: Ctx) -> Any:
    import redis.asyncio as aioredis

    async def run() -> Any:
        r = aioredis.Redis.from_url(ctx.redis_url)
        pubsub = r.pubsub()
        subscribed = await pubsub.subscribe(ctx.key("a")), await pubsub.psubscribe(ctx.key("p*"))
        got: list[Any] = []

        async def drain(count: int) -> None:
            for _ in range(60):
                message = await pubsub.get_message(timeout=0.05)
                if message:
                    got.append(message)
                if len(got) == count:
                    return

        await drain(2)
        delivered = await r.publish(ctx.key("a"), "x"), await r.publish(ctx.key("pq"), "y")
        pong = await pubsub.ping()
        await drain(5)
        await pubsub.unsubscribe()
        await pubsub.punsubscribe()
        await pubsub.aclose()
        await r.aclose()
        return subscribed, delivered, pong, got

    return asyncio.run(run())


@rd()
def s_monitor(ctx: Ctx) -> Any:
    r = _client(ctx)
    with r.monitor() as monitor:
        r.set(ctx.key("m"), "watched")
        for _ in range(10_000):  # the shared server's other clients are seen too
            seen = monitor.next_command()
            if ctx.prefix in seen["command"]:
                break
    return {k: seen[k] for k in ("command", "db")}


@rd()
def s_transaction_error_returned(ctx: Ctx) -> Any:
    r = _client(ctx)
    r.set(ctx.key("s"), "text")
    with r.pipeline() as pipe:
        pipe.set(ctx.key("a"), 1).incr(ctx.key("s")).hgetall(ctx.key("none")).get(ctx.key("a"))
        replies = pipe.execute(raise_on_error=False)
    return [(type(x).__name__, str(x)) if isinstance(x, Exception) else x for x in replies]


@rd()
def s_script_in_watched_pipeline(ctx: Ctx) -> Any:
    r = _client(ctx)
    script = r.register_script("return redis.call('INCR', KEYS[1])")
    with r.pipeline() as pipe:
        pipe.watch(ctx.key("n"))
        before = pipe.get(ctx.key("n"))
        pipe.multi()
        script(keys=[ctx.key("n")], client=pipe)
        pipe.get(ctx.key("n"))
        return before, pipe.execute(), pipe.watching


# -- Redis Cluster (a private 3-master cluster; keys of one run spread over its nodes) ------


def _cluster(ctx: Ctx) -> Any:
    from redis.cluster import RedisCluster

    return RedisCluster.from_url(ctx.cluster_url)


def _outcome(call: Any) -> Any:
    try:
        return "returned", call()
    except Exception as exc:
        return "raised", type(exc).__name__, str(exc)


@rd()
def s_cluster_a_key_on_each_node(ctx: Ctx) -> Any:
    rc = _cluster(ctx)
    keys = [ctx.key(f"k{i}") for i in range(12)]
    nodes = {rc.get_node_from_key(k).name for k in keys}
    replies = [rc.set(k, i) for i, k in enumerate(keys)], [rc.get(k) for k in keys]
    replies += (rc.incr(keys[0]), rc.getdel(keys[1]), rc.get(ctx.key("none")))
    rc.close()
    return len(nodes), replies


@rd()
def s_cluster_cross_slot_errors(ctx: Ctx) -> Any:
    rc = _cluster(ctx)
    a, b = ctx.key("a"), ctx.key("b")
    found = [
        _outcome(lambda: rc.mget(a, b)),
        _outcome(lambda: rc.execute_command("MSET", a, 1, b, 2)),
    ]
    with rc.pipeline(transaction=True) as pipe:  # CROSSSLOT in a transaction
        pipe.set(a, 1).set(b, 2)
        found.append(_outcome(pipe.execute))
    found.append(_outcome(lambda: rc.incr(ctx.key("missing"), "x")))
    node = rc.get_node_from_key(a)  # sent as is: the server's own CROSSSLOT error
    found.append(_outcome(lambda: rc.execute_command("MGET", a, b, target_nodes=node)))
    rc.close()
    return found


@rd()
def s_cluster_pipelines_over_slots(ctx: Ctx) -> Any:
    rc = _cluster(ctx)
    rc.set(ctx.key("s"), "text")
    found = []
    with rc.pipeline() as pipe:
        pipe.set(ctx.key("a"), 1).get(ctx.key("a")).incr(ctx.key("n")).get(ctx.key("none"))
        found.append(pipe.execute())
    with rc.pipeline() as pipe:
        pipe.set(ctx.key("b"), 1).incr(ctx.key("s")).get(ctx.key("b"))
        found.append(_outcome(pipe.execute))
        pipe.set(ctx.key("c"), 1).incr(ctx.key("s"))
        found.append(
            [
                (type(r).__name__, str(r)) if isinstance(r, Exception) else r
                for r in pipe.execute(raise_on_error=False)
            ]
        )
    tag = f"{{{ctx.prefix}}}"
    with rc.pipeline(transaction=True) as pipe:
        pipe.set(f"{tag}a", 1).incr(f"{tag}a").get(f"{tag}a")
        found.append(pipe.execute())
    found.append(rc.mget_nonatomic([ctx.key("a"), ctx.key("b"), ctx.key("none")]))
    found.append(rc.delete(ctx.key("a"), ctx.key("b"), ctx.key("none")))
    rc.close()
    return found


@rd()
def s_cluster_asyncio(ctx: Ctx) -> Any:
    from redis.asyncio.cluster import RedisCluster as AsyncCluster

    async def run() -> Any:
        rc = AsyncCluster.from_url(ctx.cluster_url)
        found = [await rc.set(ctx.key("a"), 1), await rc.get(ctx.key("a"))]
        found.append(await rc.get(ctx.key("none")))
        async with rc.pipeline() as pipe:
            pipe.set(ctx.key("b"), "text").incr(ctx.key("b")).get(ctx.key("a"))
            try:
                found.append(await pipe.execute())
            except redis.ResponseError as exc:
                found.append(("raised", type(exc).__name__, str(exc)))
        try:
            await rc.mget(ctx.key("a"), ctx.key("b"))
        except redis.RedisClusterException as exc:
            found.append(("raised", type(exc).__name__, str(exc)))
        await rc.aclose()
        return found

    return asyncio.run(run())
