"""Redis commands through dbpulse, against a real server."""

from __future__ import annotations

import uuid

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
