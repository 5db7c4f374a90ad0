"""Redis Cluster through dbpulse, against a private 3-master cluster: the counts are the
servers' own.

Each shape runs against the cluster with every node emptied and its statistics reset; what
dbpulse exported must equal the sum over the nodes of ``INFO commandstats`` (per command: the
spans' commands, a BATCH span listing its own) and ``INFO stats`` (keyspace hits and misses),
and the number of operations (and spans) must be the number of application calls. A command
redirected by MOVED or ASK is one call, executed once: the node that redirected it counts it
in ``rejected_calls``, not in ``calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

redis = pytest.importorskip("redis")
from redis.cluster import RedisCluster  # noqa: E402

from tests.integration.test_redis import _commands_of  # noqa: E402

ISBN = "9780306406157"
# Sent by redis-py on connecting or for its routing, and by this test: not the application's.
_NOT_THE_APPS = {
    "HELLO",
    "CLIENT|SETINFO",
    "CONFIG|RESETSTAT",
    "FLUSHALL",
    "INFO",
    "CLUSTER|SLOTS",
    "CLUSTER|SHARDS",
    "CLUSTER|MYID",
    "CLUSTER|SETSLOT",
    "COMMAND",
    "COMMAND|DOCS",
    "ASKING",
    "MULTI",
    "EXEC",
}


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """The test's own commands to the nodes, unobserved."""
    import dbpulse

    dbpulse.set_enabled(False)
    try:
        yield
    finally:
        dbpulse.set_enabled(True)


def _node_of(cluster: Any, rc: Any, key: str) -> int:
    """Index in ``cluster.clients`` of the node that owns ``key``'s slot now."""
    return cluster.ports.index(int(rc.get_node_from_key(key).port))


def _ids(cluster: Any) -> list[str]:
    return [c.cluster("MYID").decode() for c in cluster.clients]


def _move_slot(cluster: Any, slot: int, target: int) -> None:
    """Give an empty ``slot`` to node ``target``: the clients' slot tables are now stale."""
    ids = _ids(cluster)
    order = [target, *(i for i in range(len(ids)) if i != target)]
    for i in order:
        cluster.clients[i].execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target])


@dataclass(frozen=True)
class Shape:
    run: Callable[[Any, Any], Any]
    calls: int  # the application calls it makes: dbpulse's operations and spans
    fanned_out: dict[str, int] = field(default_factory=dict)  # extra server calls, by rule
    # The MOVED/ASK replies the nodes gave at least (rejected_calls): a command redis-py
    # sends again before its slot table is new is refused again.
    redirected: int = 0
    other_reads: tuple[int, int] = (0, 0)  # server hits/misses minus dbpulse's (by rule)


def _plain(rc: Any, cluster: Any) -> None:
    for i in range(9):  # spread over the slots, so over the three nodes
        rc.set(f"book:{i}", i)
    assert rc.get("book:1") == b"1"
    assert rc.get("none") is None
    assert rc.mget("{b}a", "{b}none") == [None, None]  # one slot: one MGET
    rc.incr("n")
    rc.hset("h", "f", 1)
    assert rc.hget("h", "f") == b"1"
    assert rc.hgetall("none") == {}
    rc.getdel("book:2")
    rc.set(f"book:{ISBN}", "x")


def _pipelines(rc: Any, cluster: Any) -> None:
    rc.set("hit", "x")
    rc.set("s", "text")
    with rc.pipeline() as pipe:  # over several nodes
        pipe.set("a", 1).get("hit").incr("n").get("miss")
        pipe.delete("a")  # a cluster pipeline's DELETE does not chain
        pipe.set("b", 2)
        assert pipe.execute() == [True, b"x", 1, None, 1, True]
    with rc.pipeline() as pipe:  # INCR fails, the others ran
        pipe.set("c", 1).incr("s").get("c").set("d", 2)
        with pytest.raises(redis.ResponseError):
            pipe.execute()
    with rc.pipeline() as pipe:
        pipe.set("e", 1).incr("s").get("e")
        replies = pipe.execute(raise_on_error=False)
        assert isinstance(replies[1], redis.ResponseError)
    with rc.pipeline(transaction=True) as pipe:  # one slot (hash tag)
        pipe.set("{t}a", 1).get("{t}a").incr("{t}n").get("{t}none")
        assert pipe.execute() == [b"OK", b"1", 1, None]  # redis-py's own: b"OK"
    rc.set("{t}s", "text")
    with rc.pipeline(transaction=True) as pipe:  # INCR fails, EXEC ran the others
        pipe.set("{t}b", 1).incr("{t}s").get("{t}b")
        with pytest.raises(redis.ResponseError):
            pipe.execute()


def _watch(rc: Any, cluster: Any) -> None:
    with rc.pipeline(transaction=True) as pipe:
        pipe.watch("{w}n")
        value = int(pipe.get("{w}n") or 0)
        pipe.multi()
        pipe.set("{w}n", value + 1)
        assert pipe.execute() == [b"OK"]


def _nonatomic(rc: Any, cluster: Any) -> None:
    rc.mset_nonatomic({"a": 1, "b": 2, "c": 3, "d": 4})
    assert rc.mget_nonatomic(["a", "b", "none", "d"]) == [b"1", b"2", None, b"4"]
    assert rc.delete("a", "b", "c") == 3
    assert rc.exists("a", "d") == 1


def _fanned_out(rc: Any, cluster: Any) -> None:
    for i in range(6):
        rc.set(f"k{i}", i)
    rc.keys("k*")  # one node (redis-py 8, Redis 7.0: a keyless command, any node)
    sizes = rc.execute_command("DBSIZE", target_nodes=RedisCluster.PRIMARIES)
    assert sizes == 6  # redis-py sums the replies
    rc.ping(target_nodes=RedisCluster.ALL_NODES)


def _redirected(rc: Any, cluster: Any) -> None:
    # MOVED: an empty slot given to another node behind the client's back.
    slot = rc.keyslot("moved")
    owner = _node_of(cluster, rc, "moved")
    with _quietly():
        _move_slot(cluster, slot, (owner + 1) % 3)
    rc.set("moved", 1)  # MOVED by the old owner, run by the new one
    assert rc.get("moved") == b"1"
    # ASK: a slot migrating, its key not on the old owner any more.
    slot = rc.keyslot("asked")
    owner = _node_of(cluster, rc, "asked")
    target = (owner + 1) % 3
    with _quietly():
        ids = _ids(cluster)
        cluster.clients[target].execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[owner])
        cluster.clients[owner].execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])
    assert rc.get("asked") is None  # ASK, then ASKING + GET on the target
    rc.set("asked", 2)  # ASK again
    with _quietly():
        _move_slot(cluster, slot, target)
    # A pipeline with a command in a moved slot: redis-py runs that one again.
    slot = rc.keyslot("piped")
    owner = _node_of(cluster, rc, "piped")
    with _quietly():
        _move_slot(cluster, slot, (owner + 1) % 3)
    with rc.pipeline() as pipe:
        pipe.set("piped", 1).get("moved").get("piped").set("other", 2)
        assert pipe.execute() == [True, b"1", b"1", True]


def _asyncio(rc: Any, cluster: Any) -> None:
    from redis.asyncio.cluster import RedisCluster as AsyncCluster

    async def run() -> None:
        client = AsyncCluster.from_url(cluster.url)
        for i in range(6):
            await client.set(f"k{i}", i)
        assert await client.get("k1") == b"1"
        assert await client.get("none") is None
        async with client.pipeline() as pipe:
            pipe.set("a", 1).get("k2").incr("n").get("miss")
            assert await pipe.execute() == [True, b"2", 1, None]
        await client.set("s", "text")
        async with client.pipeline() as pipe:  # INCR fails, the others ran
            pipe.set("b", 1).incr("s").get("b")
            with pytest.raises(redis.ResponseError):
                await pipe.execute()
        async with client.pipeline(transaction=True) as pipe:
            pipe.set("{t}a", 1).get("{t}a").get("{t}none")
            assert await pipe.execute() == [True, b"1", None]  # (sync: b"OK")
        for key in ("amoved", "apiped"):  # slots given to another node behind its back
            owner = cluster.ports.index(int(client.get_node_from_key(key).port))
            with _quietly():
                _move_slot(cluster, client.keyslot(key), (owner + 1) % 3)
        await client.set("amoved", 1)  # MOVED, then run by the new owner
        async with client.pipeline() as pipe:  # MOVED: redis-py sends it again
            pipe.set("apiped", 1).get("apiped").get("amoved")
            assert await pipe.execute() == [True, b"1", b"1"]
        await client.aclose()

    asyncio.run(run())


SHAPES = {
    # 9 SET, 2 GET, MGET, INCR, HSET, HGET, HGETALL, GETDEL, SET
    "plain": Shape(_plain, calls=18),
    "pipelines": Shape(_pipelines, calls=8),
    "watched-transaction": Shape(_watch, calls=3),  # WATCH, GET, the transaction
    # Each one BATCH over the nodes; EXISTS reads keys, it is not a cache lookup.
    "nonatomic-over-slots": Shape(_nonatomic, calls=4, other_reads=(1, 1)),
    # DBSIZE and PING sent to every node: one call each, three for the servers.
    "fanned-out": Shape(_fanned_out, calls=9, fanned_out={"DBSIZE": 2, "PING": 2}),
    "moved-and-ask": Shape(_redirected, calls=5, redirected=5),
    "asyncio": Shape(_asyncio, calls=14, redirected=2),
}


def _server_totals(cluster: Any) -> tuple[Counter[str], Counter[str], Counter[str], int, int]:
    """Summed over the nodes: calls, failed calls and rejected calls per command, keyspace
    hits and misses."""
    calls: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    hits = misses = 0
    for client in cluster.clients:
        for name, stat in client.info("commandstats").items():
            command = name.removeprefix("cmdstat_").upper()
            calls[command] += stat["calls"]
            failed[command] += stat.get("failed_calls", 0)
            rejected[command] += stat.get("rejected_calls", 0)
        stats = client.info("stats")
        hits += stats["keyspace_hits"]
        misses += stats["keyspace_misses"]
    return calls, failed, rejected, hits, misses


@pytest.fixture
def cluster(redis_cluster, otel):
    import dbpulse
    from dbpulse.instrumentors.redis import CACHE

    dbpulse.instrument(systems=("redis",))
    with _quietly():
        redis_cluster.reset()
    dbpulse.testing.reset()
    CACHE.reset()
    otel.span_exporter.clear()
    return redis_cluster


@pytest.mark.parametrize("name", SHAPES)
def test_counts_are_the_servers_own(name, cluster, otel):
    shape = SHAPES[name]
    rc = RedisCluster.from_url(cluster.url)
    try:
        shape.run(rc, cluster)
    finally:
        rc.close()
    spans = [s for s in otel.spans() if s.attributes.get("db.system.name") == "redis"]
    redis_only = {"db.system.name": "redis"}
    operations = otel.value("db.client.operation.duration", **redis_only)
    writes = otel.value("dbpulse.db.writes", **redis_only)
    hits = otel.value("dbpulse.cache.requests", **{"dbpulse.cache.result": "hit"})
    misses = otel.value("dbpulse.cache.requests", **{"dbpulse.cache.result": "miss"})

    with _quietly():
        calls, failed, rejected, server_hits, server_misses = _server_totals(cluster)
        flags = cluster.clients[0].execute_command(
            "COMMAND", "INFO", *{c.split("|")[0] for c in calls}
        )
    written = {c.upper() for c, spec in flags.items() if spec and "write" in spec["flags"]}
    expected = Counter({c: n for c, n in calls.items() if c not in _NOT_THE_APPS})
    expected.subtract(shape.fanned_out)
    server_writes = sum(n - failed[c] for c, n in calls.items() if c in written)

    assert +_commands_of(spans) == +expected
    assert operations == len(spans) == shape.calls
    assert writes == server_writes
    assert (hits + shape.other_reads[0], misses + shape.other_reads[1]) == (
        server_hits,
        server_misses,
    )
    # Each attempt a node refused is in its rejected_calls, not an operation of dbpulse's.
    assert rejected.total() >= shape.redirected, +rejected
    for span in spans:
        assert "server.address" in span.attributes and span.attributes["db.namespace"] == "0"


def test_spans_hide_keys_and_values(cluster, otel):
    rc = RedisCluster.from_url(cluster.url)
    rc.set(f"book:{ISBN}", "secret value")
    with rc.pipeline() as pipe:
        pipe.set(f"book:{ISBN}:title", "secret title").get("secret-key")
        pipe.execute()
    rc.close()
    single, batch = otel.spans()
    assert (single.name, single.attributes["db.query.text"]) == ("SET", "SET ? ?")
    assert single.attributes["book.isbn"] == ISBN
    assert single.attributes["server.port"] in cluster.ports
    assert (batch.name, batch.attributes["db.query.text"]) == ("BATCH", "SET; GET")
    assert batch.attributes["db.operation.batch.size"] == 2
    for span in (single, batch):
        assert "secret" not in repr((dict(span.attributes), span.events))


def test_errors_carry_the_error_class(cluster, otel):
    rc = RedisCluster.from_url(cluster.url)
    with pytest.raises(redis.RedisClusterException):  # refused by redis-py, never sent
        rc.mget("a", "b", "c", "d")
    with rc.pipeline(transaction=True) as pipe:
        pipe.set("a", 1).set("b", 2)
        with pytest.raises(redis.exceptions.CrossSlotTransactionError):
            pipe.execute()
    rc.close()
    spans = otel.spans()
    assert [(s.name, s.attributes["error.type"]) for s in spans] == [
        ("MGET", "RedisClusterException"),
        ("BATCH SET", "CrossSlotTransactionError"),
    ]


def test_uninstrument_stops_observing(cluster, otel):
    import dbpulse

    rc = RedisCluster.from_url(cluster.url)
    dbpulse.uninstrument(systems=("redis",))
    try:
        rc.set("a", 1)
        with rc.pipeline() as pipe:
            pipe.set("b", 1).get("a")
            assert pipe.execute() == [True, b"1"]
        assert otel.spans() == []
    finally:
        dbpulse.instrument(systems=("redis",))
    rc.get("a")
    assert [s.name for s in otel.spans()] == ["GET"]
    rc.close()
