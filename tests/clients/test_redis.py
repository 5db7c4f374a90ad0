"""redis-py: plain commands (one given as a single string), a transactional and a plain
pipeline, pub/sub; counted as the server counts them (``INFO commandstats``, its own write
flags from ``COMMAND INFO``, ``keyspace_hits``/``keyspace_misses``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.clients._servers import PrivateRedis
from tests.clients._sink import OtlpSink
from tests.clients.conftest import operations, run_both, writes

APP_OUTPUT = """get Numbers None
mget ['Numbers', 'Odyssey', None]
hget 1 {'a': '1', 'b': '2'} {}
incr 1 6
transaction [True, 1, 'a', None, 0]
pipeline [True, True, True, True, ['0', None], '2']
reads ['1', '2']
received ['story 0', 'story 1', 'story 2']
deleted 2
"""
# Sent by redis-py on connecting and subscribing, by the server's own wrapping of a
# transaction, and by the test itself: not commands dbpulse is asked to observe.
NOT_OBSERVED = {"HELLO", "CLIENT|SETINFO", "MULTI", "EXEC", "CONFIG|RESETSTAT"}


def test_redis_py_counts_are_the_servers(
    sink: OtlpSink, private_redis: tuple[PrivateRedis, PrivateRedis], tmp_path: Path
):
    plain, server = private_redis
    for each in private_redis:
        each.reset()
    run = run_both(sink, tmp_path, "redis_app.py", lambda on: [(server if on else plain).url])
    assert run.stdout.startswith(APP_OUTPUT)

    calls = {
        name.removeprefix("cmdstat_").upper(): stat["calls"]
        for name, stat in server.client.info("commandstats").items()
    }
    stats = server.client.info("stats")
    info = server.client.execute_command("COMMAND", "INFO", *calls)
    written = {name.upper() for name, spec in info.items() if spec and "write" in spec["flags"]}
    # Every write command counts one write, inside pipelines and transactions too.
    assert writes(sink, "redis") == sum(n for c, n in calls.items() if c in written) == 14
    # GETs anywhere (pipelines included) are the server's keyspace hits and misses.
    cache = sink.by("dbpulse.cache.requests", "dbpulse.cache.result")
    assert cache == {"hit": stats["keyspace_hits"], "miss": stats["keyspace_misses"]}
    assert cache == {"hit": 10, "miss": 5}
    # One operation per command, a pipeline being one BATCH operation of its commands.
    expected = Counter({c: n for c, n in calls.items() if c not in NOT_OBSERVED})
    for pipeline in run.truth["pipelined"]:
        expected.subtract(pipeline)
        expected["BATCH" if len(set(pipeline)) > 1 else f"BATCH {pipeline[0]}"] += 1
    assert operations(sink, "redis") == dict(+expected)
