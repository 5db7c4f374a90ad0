"""Producer and consumer in separate processes against a real Redis: one trace per flow."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.flow._support import Exported, run_flow, unique_channel

pytestmark = pytest.mark.integration

COUNT = 3


def _assert_flows(producer: Exported, consumer: Exported, channel: str, users: int) -> None:
    sends = producer.spans_named(f"send {channel}")
    assert len(sends) == COUNT
    processes = {s["trace_id"]: s for s in consumer.spans_named(f"process {channel}")}
    for send in sends:
        attrs = send["attributes"]
        flow_id = attrs["flow.id"]
        # The trace id is the flow id, and the PRODUCER span is a real root.
        assert send["trace_id"] == uuid.UUID(flow_id).hex
        assert send["parent_id"] is None
        assert send["kind"] == "PRODUCER"
        assert attrs["messaging.system"] == "redis"
        assert attrs["messaging.destination.name"] == channel
        assert attrs["messaging.operation.type"] == "send"
        assert attrs["messaging.message.id"] == flow_id
        assert attrs["flow.checkpoint"] == "PATTERN_PUBLISHED"
        assert attrs["flow.receivers"] == 1
        assert {"pattern.symbol", "pattern.name", "pattern.confidence"} <= attrs.keys()

        process = processes[send["trace_id"]]
        assert process["kind"] == "CONSUMER"
        assert process["parent_id"] == send["span_id"]
        assert process["links"] == [{"trace_id": send["trace_id"], "span_id": send["span_id"]}]
        p_attrs = process["attributes"]
        assert p_attrs["messaging.operation.type"] == "process"
        assert p_attrs["messaging.destination.name"] == channel
        assert p_attrs["messaging.message.id"] == flow_id
        assert p_attrs["flow.id"] == flow_id
        assert p_attrs["flow.checkpoint"] == "EVENT_RECEIVED"
        assert p_attrs["pattern.symbol"] == attrs["pattern.symbol"]
        assert p_attrs["messaging.message.body.size"] > 0

        children = {
            s["name"]: s
            for s in consumer.spans
            if s["trace_id"] == send["trace_id"] and s["parent_id"] == process["span_id"]
        }
        parse, deliver = children[f"parse {channel}"], children[f"deliver {channel}"]
        assert parse["kind"] == deliver["kind"] == "INTERNAL"
        assert parse["attributes"]["flow.checkpoint"] == "EVENT_PARSED"
        assert deliver["attributes"]["flow.checkpoint"] == "WEBSOCKET_DELIVERED"
        assert deliver["attributes"]["flow.users_notified"] == users
        assert deliver["attributes"]["flow.latency"] >= 0

    published = producer.value(
        "dbpulse.flow.checkpoints", **{"flow.checkpoint": "PATTERN_PUBLISHED"}
    )
    assert published == COUNT
    for checkpoint in ("EVENT_RECEIVED", "EVENT_PARSED", "WEBSOCKET_DELIVERED"):
        attrs = {"flow.checkpoint": checkpoint, "messaging.destination.name": channel}
        assert consumer.value("dbpulse.flow.checkpoints", **attrs) == COUNT
    assert (
        consumer.value("dbpulse.flow.latency", **{"messaging.destination.name": channel}) == COUNT
    )
    assert consumer.value("dbpulse.flow.errors") == 0
    assert consumer.value("dbpulse.flow.malformed") == 0
    for side, exported, events in (
        ("producer", producer, ("published",)),
        ("consumer", consumer, ("received", "processed", "forwarded")),
    ):
        assert exported.value("dbpulse.heartbeat.timestamp", **{"dbpulse.component": side}) > 0
        for event in events:
            attrs = {"dbpulse.component": side, "dbpulse.event": event}
            assert exported.value("dbpulse.heartbeat.events", **attrs) == COUNT


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_flow_across_processes(tmp_path: Path, redis_url: str, mode: str) -> None:
    channel = unique_channel(mode)
    flag = ("--async",) if mode == "async" else ()
    producer, consumer = run_flow(
        tmp_path,
        redis_url,
        channel,
        producer_args=("--count", str(COUNT), "--rate", "50", *flag),
        consumer_args=("--count", str(COUNT), "--users", "7", *flag),
    )
    assert producer.returncode == 0, producer.output
    assert consumer.returncode == 0, consumer.output
    _assert_flows(producer, consumer, channel, users=7)


def test_consumer_crash_after_received_leaves_a_gap(tmp_path: Path, redis_url: str) -> None:
    channel = unique_channel("crash")
    producer, consumer = run_flow(
        tmp_path,
        redis_url,
        channel,
        producer_args=("--count", "5", "--rate", "20"),
        consumer_args=("--crash-after", "3", "--heartbeat-interval", "3600"),
    )
    assert producer.returncode == 0, producer.output
    assert consumer.returncode != 0
    assert "DemoCrash" in consumer.output

    def reached(exported: Exported, checkpoint: str) -> float:
        return exported.value("dbpulse.flow.checkpoints", **{"flow.checkpoint": checkpoint})

    # published - delivered = flows stuck somewhere; received - parsed = stuck in the consumer.
    assert reached(producer, "PATTERN_PUBLISHED") == 5
    assert reached(consumer, "EVENT_RECEIVED") == 3
    assert reached(consumer, "EVENT_PARSED") == 2
    assert reached(consumer, "WEBSOCKET_DELIVERED") == 2
    errors = {"flow.checkpoint": "EVENT_RECEIVED", "error.type": "DemoCrash"}
    assert consumer.value("dbpulse.flow.errors", **errors) == 1
    crashed = [s for s in consumer.spans_named(f"process {channel}") if s["status"] == "ERROR"]
    assert len(crashed) == 1
    assert crashed[0]["attributes"]["error.type"] == "DemoCrash"
    # The heartbeat beat once more on the way down, then stopped with the process.
    heartbeat = consumer.value("dbpulse.heartbeat.timestamp", **{"dbpulse.component": "consumer"})
    assert heartbeat > 0


def test_dropped_and_delayed_events(tmp_path: Path, redis_url: str) -> None:
    channel = unique_channel("stuck")
    _, consumer = run_flow(
        tmp_path,
        redis_url,
        channel,
        producer_args=("--count", "4", "--rate", "50"),
        consumer_args=("--count", "4", "--drop", "0.5", "--delay", "1", "--delay-seconds", "0.2"),
    )
    assert consumer.returncode == 0, consumer.output
    received = consumer.value("dbpulse.flow.checkpoints", **{"flow.checkpoint": "EVENT_RECEIVED"})
    delivered = consumer.value(
        "dbpulse.flow.checkpoints", **{"flow.checkpoint": "WEBSOCKET_DELIVERED"}
    )
    assert received == 4
    dropped = int(consumer.output.split("dropped ")[1].split(",")[0])
    assert delivered == 4 - dropped
    assert consumer.value("dbpulse.flow.errors") == 0
    # Every delivered event was delayed: each deliver span carries a latency past the delay.
    delivers = consumer.spans_named(f"deliver {channel}")
    assert len(delivers) == delivered
    assert all(s["attributes"]["flow.latency"] >= 0.2 for s in delivers)
