"""Several viz server replicas sharing one feed over Redis pub/sub (a real Redis server)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from dbpulse.viz import VizFeedProcessor
from tests.viz._support import (
    ISBNS,
    Collector,
    SqliteWriter,
    free_port,
    require_redis,
    viz_server,
    wait_for,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_an_emit_to_one_replica_reaches_the_clients_of_all() -> None:
    url = require_redis()
    channel = f"dbpulse:viz:test:{uuid.uuid4().hex}"
    with (
        viz_server(redis_url=url, redis_channel=channel) as a,
        viz_server(redis_url=url, redis_channel=channel) as b,
    ):
        wait_for(lambda: a.hub.redis_listening and b.hub.redis_listening)
        on_a, on_b = Collector(a.url), Collector(b.url)
        wait_for(lambda: on_a.messages and on_b.messages)
        events = [
            {"operation": "insert", "table": "books", "isbn": isbn, "timestamp": time.time()}
            for isbn in ISBNS[:3]
        ]
        assert httpx.post(a.url + "/api/viz/emit", json={"events": events}).status_code == 202
        wait_for(lambda: len(on_a.events) == 3 and len(on_b.events) == 3)
        # Both replicas agree on the orbs' slots and keep the event for /recent and replay.
        assert [e["slot"] for e in on_a.events] == [e["slot"] for e in on_b.events]
        assert [e["isbn"] for e in b.hub.recent(None, None, None, 0)] == ISBNS[:3]
        health = httpx.get(b.url + "/healthz").json()
        on_a.close()
        on_b.close()
    assert health["redis"] == "connected"
    assert a.hub.counters["redis_published"] == 1


def test_an_unreachable_redis_degrades_to_local_delivery() -> None:
    with viz_server(redis_url="redis://127.0.0.1:1/0") as server:
        watcher = Collector(server.url)
        wait_for(lambda: watcher.messages)
        event = {"operation": "update", "isbn": ISBNS[0]}
        assert httpx.post(server.url + "/api/viz/emit", json={"events": [event]}).status_code == 202
        wait_for(lambda: len(watcher.events) == 1)
        health = httpx.get(server.url + "/healthz").json()
        watcher.close()
    assert health["status"] == "degraded" and health["redis"].startswith("down")


@contextmanager
def viz_process(redis_url: str, channel: str, log: Path) -> Iterator[str]:
    """``dbpulse viz`` in its own process (a replica as deployed), its base URL once its
    Redis subscription is up."""
    port = free_port()
    env = {**os.environ, "DBPULSE_VIZ_REDIS_CHANNEL": channel}
    argv = [sys.executable, "-m", "dbpulse.cli", "viz", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--redis-url", redis_url], cwd=REPO_ROOT, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"

    def connected() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        try:
            return bool(httpx.get(url + "/healthz", timeout=1).json().get("redis") == "connected")
        except httpx.HTTPError:
            return False

    try:
        wait_for(connected, timeout=30, interval=0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_write_fed_to_one_server_process_reaches_the_clients_of_both(tmp_path: Path) -> None:
    """Two ``dbpulse viz`` processes on one Redis channel; an application's SQLite writes go,
    through its feed, to the first only; WebSocket clients of each see every write once."""
    url = require_redis()
    channel = f"dbpulse:viz:test:{uuid.uuid4().hex}"
    with ExitStack() as stack:
        a = stack.enter_context(viz_process(url, channel, tmp_path / "a.log"))
        b = stack.enter_context(viz_process(url, channel, tmp_path / "b.log"))
        watchers = [Collector(a), Collector(a), Collector(b), Collector(b)]
        for watcher in watchers:
            stack.callback(watcher.close)
        wait_for(lambda: all(w.messages for w in watchers))  # hello: subscribed
        provider = TracerProvider()
        provider.add_span_processor(VizFeedProcessor(a, use_counters=False))
        writer = SqliteWriter(tmp_path / "books.db", provider)
        writer.write("INSERT", ISBNS[0])
        writer.write("UPDATE", ISBNS[0])
        writer.write("INSERT", ISBNS[1])
        provider.shutdown()
        writer.close()
        wait_for(lambda: all(len(w.events) >= 3 for w in watchers), timeout=15)
        time.sleep(0.5)  # a duplicate (an event relayed twice) would arrive by now
    expected = [(ISBNS[0], "insert"), (ISBNS[0], "update"), (ISBNS[1], "insert")]
    for watcher in watchers:
        assert [(e["isbn"], e["operation"]) for e in watcher.events] == expected
    first = watchers[0].events
    for watcher in watchers[1:]:
        # The same events: same traces, same orbs on every sphere.
        assert [e["trace_id"] for e in watcher.events] == [e["trace_id"] for e in first]
        assert [e["slot"] for e in watcher.events] == [e["slot"] for e in first]
