"""Heartbeats and subscription state as metrics."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dbpulse import flow
from tests.flow._support import unique_channel


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_heartbeat_advances_then_a_stopped_one_shows_in_the_gauge(otel: Any) -> None:
    component = unique_channel("hb")
    heartbeat = flow.Heartbeat(component, interval=0.05).start()
    first = heartbeat.last_beat
    _wait_for(lambda: heartbeat.last_beat != first, "a second beat")
    attrs = {"dbpulse.component": component}
    assert otel.value("dbpulse.heartbeat.timestamp", **attrs) >= first
    assert otel.value("dbpulse.heartbeat.uptime", **attrs) > 0

    heartbeat.stop()
    last = otel.value("dbpulse.heartbeat.timestamp", **attrs)
    stopped = threading.Event()
    stopped.wait(5 * heartbeat.interval)
    # No more beats: the gauge keeps the last one while the clock moves on.
    assert otel.value("dbpulse.heartbeat.timestamp", **attrs) == last
    assert time.time() - last > 2 * heartbeat.interval


def test_heartbeat_reports_events_and_connection_errors_since_the_last_beat(otel: Any) -> None:
    component = unique_channel("hb-events")
    with flow.Heartbeat(component, interval=3600) as heartbeat:
        channel = unique_channel("hb-flow")
        with flow.start_publish(channel, {"symbol": "AAPL"}) as pub:
            envelope = pub.envelope
        event = flow.receive(envelope, channel=channel)
        with event, event.parsed(), event.delivered(users=2):
            pass
        heartbeat.beat()
    for name in ("published", "received", "processed", "forwarded"):
        attrs = {"dbpulse.component": component, "dbpulse.event": name}
        assert otel.value("dbpulse.heartbeat.events", **attrs) >= 1
    assert otel.points("dbpulse.heartbeat.connection_errors", **{"dbpulse.component": component})


def test_heartbeat_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        flow.Heartbeat("consumer", interval=0)


def test_heartbeat_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBPULSE_HEARTBEAT_INTERVAL", "15")
    assert flow.Heartbeat("consumer").interval == 15
    monkeypatch.setenv("DBPULSE_HEARTBEAT_INTERVAL", "soon")
    assert flow.Heartbeat("consumer").interval == 60


def test_subscription_is_active_once_redis_confirms_it(otel: Any, redis_url: str) -> None:
    import redis

    channel = unique_channel("sub")
    client = redis.Redis.from_url(redis_url)
    subscriber = flow.Subscriber(client.pubsub(ignore_subscribe_messages=True), channel)
    attrs = {"messaging.destination.name": channel}
    try:
        subscriber.subscribe()
        assert not otel.points("dbpulse.subscription.active", **attrs)  # sent, not confirmed
        _wait_for(lambda: subscriber.get_event(timeout=0.1) is None and subscriber.active, "reply")
        assert otel.value("dbpulse.subscription.active", **attrs) == 1
        subscriber.pubsub.unsubscribe(channel)
        _wait_for(
            lambda: subscriber.get_event(timeout=0.1) is None and not subscriber.active[channel],
            "unsubscribe reply",
        )
        assert otel.value("dbpulse.subscription.active", **attrs) == 0
    finally:
        subscriber.close()
        client.close()


def test_lost_connection_is_counted_and_marks_the_subscription_inactive(
    otel: Any, redis_url: str
) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from dbpulse.flow.checkpoints import STATS

    channel = unique_channel("lost")
    # Without retries, so that the lost connection surfaces instead of a silent reconnect.
    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0))
    subscriber = flow.Subscriber(client.pubsub(), channel)
    attrs = {"messaging.destination.name": channel}
    try:
        subscriber.subscribe()
        _wait_for(lambda: subscriber.get_event(timeout=0.1) is None and subscriber.active, "reply")
        errors = STATS.snapshot()["connection_errors"]
        # Another client kills the subscriber's connection; the next read fails.
        killer = redis.Redis.from_url(redis_url)
        killer.client_kill_filter(_type="pubsub", skipme=True)
        killer.close()
        with pytest.raises(redis.ConnectionError):
            for _ in range(50):
                subscriber.get_event(timeout=0.1)
        assert STATS.snapshot()["connection_errors"] == errors + 1
        assert otel.value("dbpulse.subscription.active", **attrs) == 0
    finally:
        subscriber.pubsub.reset()
        client.close()
