"""Per-checkpoint overhead of ``dbpulse.flow`` against raw redis-py pub/sub, in the same run.

Run: ``python benchmarks/flow_checkpoints.py`` (``--quick`` for a short run; Redis from
``DBPULSE_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``). Target: ≤ 60 µs per
checkpoint with a span.

* producer: ``r.publish(channel, json.dumps(payload))`` against ``flow.publish(r, channel,
  payload)`` (one checkpoint, PATTERN_PUBLISHED);
* consumer: ``pubsub.get_message()`` + ``json.loads`` against ``Subscriber.get_event()`` with
  ``with event, event.parsed(), event.delivered()`` (three checkpoints: EVENT_RECEIVED,
  EVENT_PARSED, WEBSOCKET_DELIVERED); the messages are published beforehand, so the timed loop
  reads them from the socket buffer and measures the consumer alone;
* in memory: :func:`~dbpulse.flow.start_publish` + :func:`~dbpulse.flow.receive` of a dict
  envelope with no transport at all (four checkpoints), the floor of the cost.

The SDK is set up as dbpulse's configurator does (``FlowIdGenerator``, ``ParentBased``, here
keeping every span) with a ``BatchSpanProcessor`` whose exporter discards the spans and an
in-memory metric reader: the numbers are the application's cost, not the network's. Each
variant runs ``--messages`` messages per repeat; variants take turns and the table shows the
median repeat. Wall-clock time includes the Redis round trip and, on a busy machine, the
scheduling noise around it; process CPU time (all threads, the span exporter's included) is
the steadier measure of what dbpulse adds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from dbpulse import flow
from dbpulse.demo.flows import parse_pattern
from dbpulse.telemetry.ids import FlowIdGenerator

TARGET_US = 60.0
PAYLOAD = {
    "event_type": "pattern_detected",
    "symbol": "AAPL",
    "pattern_name": "Doji",
    "confidence": 0.87,
    "timeframe": "1min",
}


class _Discard(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _setup_sdk() -> TracerProvider:
    provider = TracerProvider(id_generator=FlowIdGenerator(), sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=8192))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return provider


def _timed(n: int, step: Callable[[], None]) -> tuple[float, float]:
    """(wall, CPU) µs per call; CPU is the whole process's, the span export thread included."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def _drain_raw(pubsub: Any, n: int) -> tuple[float, float]:
    def step() -> None:
        message = pubsub.get_message(timeout=5)
        while message is None or message["type"] != "message":
            message = pubsub.get_message(timeout=5)
        json.loads(message["data"])

    return _timed(n, step)


def _drain_flow(subscriber: flow.Subscriber, n: int) -> tuple[float, float]:
    def step() -> None:
        event = subscriber.get_event(timeout=5)
        while event is None:
            event = subscriber.get_event(timeout=5)
        with event:
            with event.parsed():
                pattern = parse_pattern(event.payload)
            with event.delivered(users=1):
                json.dumps(pattern)

    return _timed(n, step)


def _in_memory(n: int) -> tuple[float, float]:
    def step() -> None:
        with flow.start_publish("bench", PAYLOAD) as publication:
            envelope = publication.envelope
        event = flow.receive(envelope, channel="bench")
        with event:
            with event.parsed():
                pattern = parse_pattern(event.payload)
            with event.delivered(users=1):
                json.dumps(pattern)

    return _timed(n, step)


def _wait_subscribed(client: redis.Redis, channel: str) -> None:
    while not any(count for _, count in client.pubsub_numsub(channel)):
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 messages x 3 repeats")
    args = parser.parse_args()
    n, repeats = (500, 3) if args.quick else (args.messages, args.repeats)
    url = os.environ.get("DBPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

    provider = _setup_sdk()
    client = redis.Redis.from_url(url)
    channel = f"dbpulse.bench.{uuid.uuid4().hex[:8]}"
    raw_pubsub = client.pubsub(ignore_subscribe_messages=True)
    raw_pubsub.subscribe(channel + ".raw")
    subscriber = flow.Subscriber(client.pubsub(), channel + ".flow")
    subscriber.subscribe()
    _wait_subscribed(client, channel + ".raw")
    _wait_subscribed(client, channel + ".flow")

    results: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("raw publish", "flow publish", "raw consume", "flow consume", "memory")
    }
    _in_memory(200)  # warm up imports, instruments, caches
    for _ in range(repeats):
        results["raw publish"].append(
            _timed(n, lambda: client.publish(channel + ".raw", json.dumps(PAYLOAD)))
        )
        results["flow publish"].append(
            _timed(n, lambda: flow.publish(client, channel + ".flow", PAYLOAD))
        )
        results["raw consume"].append(_drain_raw(raw_pubsub, n))
        results["flow consume"].append(_drain_flow(subscriber, n))
        results["memory"].append(_in_memory(n))
        provider.force_flush()
    subscriber.close()
    raw_pubsub.close()
    client.close()

    wall = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
    rows = [
        ("producer: raw publish", "raw publish", None, 0),
        ("producer: flow.publish", "flow publish", "raw publish", 1),
        ("consumer: raw get_message + json.loads", "raw consume", None, 0),
        ("consumer: flow event + parsed + delivered", "flow consume", "raw consume", 3),
        ("in memory: publish + receive, no transport", "memory", "", 4),
    ]
    print(
        f"Machine: {platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"{n} messages x {repeats} repeats, median repeat"
    )
    print(
        "| variant | checkpoints | wall µs/msg | CPU µs/msg "
        "| added wall µs/checkpoint | added CPU µs/checkpoint |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for title, key, base, checkpoints in rows:
        line = f"| {title} | {checkpoints or ''} | {wall[key]:.1f} | {cpu[key]:.1f} |"
        if base is None:
            print(line + " | |")
            continue
        added_wall = (wall[key] - wall.get(base, 0.0)) / checkpoints
        added_cpu = (cpu[key] - cpu.get(base, 0.0)) / checkpoints
        print(f"{line} {added_wall:.1f} | {added_cpu:.1f} |")
    print(f"Target: ≤ {TARGET_US:.0f} µs per checkpoint with a span.")


if __name__ == "__main__":
    main()
