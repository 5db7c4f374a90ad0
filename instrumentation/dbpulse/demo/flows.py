"""Demo pattern flows: a producer of pattern events and a consumer that "delivers" them.

The producer publishes pattern-detection events for a handful of symbols at a steady rate;
the consumer parses each one and delivers it to a simulated number of WebSocket users. Two
switches make the failure modes visible: ``drop`` (a fraction of events is received and then
abandoned: stuck flows, EVENT_RECEIVED without EVENT_PARSED) and ``delay`` (a fraction is
delivered ``delay_seconds`` late: slow flows in ``dbpulse.flow.latency``). ``crash_after``
makes the consumer raise out of its loop right after the n-th EVENT_RECEIVED.

Both register :func:`pattern_attributes` with ``flow.set_payload_attributes`` (for the whole
process), so their ``send``/``process`` spans carry ``pattern.symbol``, ``pattern.name`` and
``pattern.confidence``.

Run through ``dbpulse demo producer`` / ``dbpulse demo consumer`` (``_flow_commands``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dbpulse import flow

__all__ = [
    "DEFAULT_CHANNEL",
    "PATTERNS",
    "SYMBOLS",
    "ConsumerOptions",
    "ConsumerReport",
    "DemoCrash",
    "ProducerOptions",
    "ProducerReport",
    "broadcast",
    "parse_pattern",
    "pattern_attributes",
    "pattern_event",
    "run_consumer",
    "run_producer",
]

_log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "tickstock.events.patterns"
SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN")
PATTERNS = ("Doji", "Hammer", "BullishEngulfing", "BearishEngulfing", "MorningStar")


class DemoCrash(RuntimeError):
    """The consumer's simulated crash (``crash_after``)."""


@dataclass
class ProducerOptions:
    redis_url: str = "redis://127.0.0.1:6379/0"
    channel: str = DEFAULT_CHANNEL
    rate: float = 5.0
    """Events per second."""
    symbols: tuple[str, ...] = SYMBOLS
    count: int | None = None
    """Stop after this many events (``None``: until ``duration`` or stopped)."""
    duration: float | None = None
    heartbeat_interval: float | None = None
    use_async: bool = False
    wait_subscribers: float = 0.0
    """Wait up to this many seconds for a subscriber on the channel before publishing."""
    seed: int | None = None


@dataclass
class ProducerReport:
    published: int = 0
    flow_ids: list[str] = field(default_factory=list)


@dataclass
class ConsumerOptions:
    redis_url: str = "redis://127.0.0.1:6379/0"
    channel: str = DEFAULT_CHANNEL
    users: int = 25
    """Simulated connected WebSocket users each event is delivered to."""
    drop: float = 0.0
    """Fraction of events abandoned after EVENT_RECEIVED (stuck flows)."""
    delay: float = 0.0
    """Fraction of events delivered ``delay_seconds`` late (slow flows)."""
    delay_seconds: float = 0.25
    count: int | None = None
    """Stop after this many received events."""
    duration: float | None = None
    heartbeat_interval: float | None = None
    use_async: bool = False
    crash_after: int | None = None
    """Raise :class:`DemoCrash` right after the n-th EVENT_RECEIVED."""
    seed: int | None = None


@dataclass
class ConsumerReport:
    received: int = 0
    delivered: int = 0
    dropped: int = 0
    delayed: int = 0
    failed: int = 0


def pattern_event(rng: random.Random, symbols: tuple[str, ...]) -> dict[str, Any]:
    """One pattern-detection event, shaped like the predecessor's."""
    return {
        "event_type": "pattern_detected",
        "source": "dbpulse-demo",
        "symbol": rng.choice(symbols),
        "pattern_name": rng.choice(PATTERNS),
        "confidence": round(rng.uniform(0.5, 0.99), 3),
        "timeframe": "1min",
        "detected_at": time.time(),
    }


def pattern_attributes(payload: Mapping[str, Any]) -> dict[str, str | float]:
    """``pattern.symbol``/``pattern.name``/``pattern.confidence`` from a pattern event or its
    ``data`` object (the TickStock event shape; the top level wins)."""
    attributes: dict[str, str | float] = {}
    sources = [payload]
    nested = payload.get("data")
    if isinstance(nested, Mapping):
        sources.append(nested)
    for source in sources:
        symbol = source.get("symbol")
        if isinstance(symbol, str):
            attributes.setdefault("pattern.symbol", symbol)
        name = source.get("pattern_name", source.get("pattern"))
        if isinstance(name, str):
            attributes.setdefault("pattern.name", name)
        confidence = source.get("confidence")
        if isinstance(confidence, int | float) and not isinstance(confidence, bool):
            attributes.setdefault("pattern.confidence", float(confidence))
    return attributes


def _deadline(duration: float | None) -> float:
    return time.monotonic() + duration if duration else float("inf")


def _wait_subscribers(client: Any, channel: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(subscribers for _, subscribers in client.pubsub_numsub(channel)):
            return
        time.sleep(0.05)
    _log.warning("no subscriber on %s after %.1f s; publishing anyway", channel, seconds)


def run_producer(options: ProducerOptions, stop: threading.Event | None = None) -> ProducerReport:
    flow.set_payload_attributes(pattern_attributes)
    if options.use_async:
        return asyncio.run(_produce_async(options, stop))
    import redis

    stop = stop or threading.Event()
    rng = random.Random(options.seed)
    report = ProducerReport()
    client = redis.Redis.from_url(options.redis_url)
    heartbeat = flow.Heartbeat("producer", options.heartbeat_interval).start()
    try:
        if options.wait_subscribers:
            _wait_subscribers(client, options.channel, options.wait_subscribers)
        period = 1.0 / options.rate if options.rate > 0 else 0.0
        deadline = _deadline(options.duration)
        next_at = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            if options.count is not None and report.published >= options.count:
                break
            flow_id = flow.publish(client, options.channel, pattern_event(rng, options.symbols))
            report.published += 1
            report.flow_ids.append(flow_id)
            next_at += period
            pause = next_at - time.monotonic()
            if pause > 0:
                stop.wait(pause)
    finally:
        heartbeat.stop()
        client.close()
    return report


async def _produce_async(options: ProducerOptions, stop: threading.Event | None) -> ProducerReport:
    import redis
    import redis.asyncio

    rng = random.Random(options.seed)
    report = ProducerReport()
    if options.wait_subscribers:
        sync_client = redis.Redis.from_url(options.redis_url)
        try:
            _wait_subscribers(sync_client, options.channel, options.wait_subscribers)
        finally:
            sync_client.close()
    client = redis.asyncio.Redis.from_url(options.redis_url)
    heartbeat = flow.Heartbeat("producer", options.heartbeat_interval).start()
    try:
        period = 1.0 / options.rate if options.rate > 0 else 0.0
        deadline = _deadline(options.duration)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not (stop and stop.is_set()) and time.monotonic() < deadline:
            if options.count is not None and report.published >= options.count:
                break
            flow_id = await flow.publish_async(
                client, options.channel, pattern_event(rng, options.symbols)
            )
            report.published += 1
            report.flow_ids.append(flow_id)
            next_at += period
            await asyncio.sleep(max(0.0, next_at - loop.time()))
    finally:
        heartbeat.stop()
        await client.aclose()
    return report


def parse_pattern(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The consumer's parsing: the fields a WebSocket client needs, validated."""
    if payload is None:
        raise ValueError("the event is not a JSON object")
    nested = payload.get("data")
    data: dict[str, Any] = nested if isinstance(nested, dict) else payload
    try:
        return {
            "symbol": str(data["symbol"]),
            "pattern": str(data.get("pattern_name") or data["pattern"]),
            "confidence": float(data["confidence"]),
            "flow_id": payload.get("flow_id"),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a pattern event: {exc}") from exc


def broadcast(pattern: dict[str, Any], users: int) -> int:
    """Simulated WebSocket fan-out: one serialisation, ``users`` sends."""
    message = json.dumps({"type": "pattern", "pattern": pattern})
    sent = 0
    for _ in range(users):
        sent += 1 if message else 0
    return sent


class _Consumer:
    def __init__(self, options: ConsumerOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.report = ConsumerReport()

    def done(self, deadline: float) -> bool:
        count = self.options.count
        if count is not None and self.report.received >= count:
            return True
        return time.monotonic() >= deadline

    def received(self) -> str:
        """What to do with the event just received: ``crash``, ``drop``, ``delay`` or ``ok``."""
        self.report.received += 1
        options = self.options
        if options.crash_after is not None and self.report.received >= options.crash_after:
            return "crash"
        if options.drop and self.rng.random() < options.drop:
            self.report.dropped += 1
            return "drop"
        if options.delay and self.rng.random() < options.delay:
            self.report.delayed += 1
            return "delay"
        return "ok"


def run_consumer(options: ConsumerOptions, stop: threading.Event | None = None) -> ConsumerReport:
    flow.set_payload_attributes(pattern_attributes)
    if options.use_async:
        return asyncio.run(_consume_async(options, stop))
    import redis

    stop = stop or threading.Event()
    consumer = _Consumer(options)
    client = redis.Redis.from_url(options.redis_url)
    subscriber = flow.Subscriber(client.pubsub(), options.channel)
    heartbeat = flow.Heartbeat("consumer", options.heartbeat_interval).start()
    try:
        subscriber.subscribe()
        deadline = _deadline(options.duration)
        while not stop.is_set() and not consumer.done(deadline):
            event = subscriber.get_event(timeout=0.5)
            if event is None:
                continue
            try:
                with event:
                    action = consumer.received()
                    if action == "crash":
                        raise DemoCrash(f"simulated crash after event {consumer.report.received}")
                    if action == "drop":
                        continue
                    with event.parsed():
                        pattern = parse_pattern(event.payload)
                    with event.delivered() as delivery:
                        if action == "delay":
                            time.sleep(options.delay_seconds)
                        delivery.users_notified = broadcast(pattern, options.users)
                    consumer.report.delivered += 1
            except DemoCrash:
                raise
            except Exception:
                consumer.report.failed += 1
                _log.warning("event %s failed", event.flow_id, exc_info=True)
    finally:
        heartbeat.stop()
        subscriber.close()
        client.close()
    return consumer.report


async def _consume_async(options: ConsumerOptions, stop: threading.Event | None) -> ConsumerReport:
    import redis.asyncio

    consumer = _Consumer(options)
    client = redis.asyncio.Redis.from_url(options.redis_url)
    subscriber = flow.AsyncSubscriber(client.pubsub(), options.channel)
    heartbeat = flow.Heartbeat("consumer", options.heartbeat_interval).start()
    try:
        await subscriber.subscribe()
        deadline = _deadline(options.duration)
        while not (stop and stop.is_set()) and not consumer.done(deadline):
            event = await subscriber.get_event(timeout=0.5)
            if event is None:
                continue
            try:
                async with event:
                    action = consumer.received()
                    if action == "crash":
                        raise DemoCrash(f"simulated crash after event {consumer.report.received}")
                    if action == "drop":
                        continue
                    async with event.parsed():
                        pattern = parse_pattern(event.payload)
                    async with event.delivered() as delivery:
                        if action == "delay":
                            await asyncio.sleep(options.delay_seconds)
                        delivery.users_notified = broadcast(pattern, options.users)
                    consumer.report.delivered += 1
            except DemoCrash:
                raise
            except Exception:
                consumer.report.failed += 1
                _log.warning("event %s failed", event.flow_id, exc_info=True)
    finally:
        heartbeat.stop()
        await subscriber.close()
        await client.aclose()
    return consumer.report
