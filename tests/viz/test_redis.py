"""Several viz server replicas sharing one feed over Redis pub/sub (a real Redis server)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.viz._support import ISBNS, Collector, require_redis, viz_server, wait_for

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
