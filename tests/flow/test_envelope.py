"""Envelopes: plain-dict transports, old producers, malformed messages (counted, never raised)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dbpulse import flow
from dbpulse.demo.flows import pattern_attributes
from dbpulse.flow import checkpoints, consumer
from tests.flow._support import unique_channel


@pytest.fixture
def payload_attributes() -> Iterator[Any]:
    """Registers a payload attributes function for one test (``register(fn)``)."""
    previous = flow.set_payload_attributes(None)
    yield flow.set_payload_attributes
    flow.set_payload_attributes(previous)


def _consume(message: Any, channel: str) -> flow.FlowEvent:
    event = flow.receive(message, channel=channel)
    with event, event.parsed(), event.delivered(users=3):
        pass
    return event


def test_plain_dict_transport(otel: Any, payload_attributes: Any) -> None:
    payload_attributes(pattern_attributes)
    channel = unique_channel("dict")
    with flow.start_publish(
        channel, {"symbol": "MSFT", "pattern": "Hammer"}, system="custom"
    ) as pub:
        envelope = dict(pub.envelope)
    flow_id = envelope["flow_id"]
    assert envelope["symbol"] == "MSFT"
    assert envelope["traceparent"].split("-")[1] == uuid.UUID(flow_id).hex
    assert isinstance(envelope["published_at"], float)

    event = _consume(envelope, channel)
    assert event.flow_id == flow_id and event.problems == []
    spans = {s.name: s for s in otel.spans()}
    send, process = spans[f"send {channel}"], spans[f"process {channel}"]
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert send.attributes["messaging.system"] == "custom"
    assert send.attributes["pattern.name"] == "Hammer"
    assert process.parent.span_id == send.context.span_id
    assert process.context.trace_id == uuid.UUID(flow_id).int
    assert spans[f"deliver {channel}"].attributes["flow.users_notified"] == 3
    assert otel.value("dbpulse.flow.latency", **{"messaging.destination.name": channel}) == 1


def test_producer_span_is_a_root_linked_to_the_current_span(otel: Any) -> None:
    channel = unique_channel("link")
    tracer = otel.telemetry.tracer_provider.get_tracer("app")
    with (
        tracer.start_as_current_span("detect patterns") as app_span,
        flow.start_publish(channel, {"symbol": "AAPL"}) as pub,
    ):
        pass
    send = next(s for s in otel.spans() if s.name == f"send {channel}")
    assert send.parent is None
    assert send.context.trace_id == uuid.UUID(pub.flow_id).int
    assert [link.context.span_id for link in send.links] == [app_span.get_span_context().span_id]


def test_old_producer_without_trace_context_still_gets_the_flow_trace(otel: Any) -> None:
    channel = unique_channel("old")
    flow_id = str(uuid.uuid4())
    event = _consume(json.dumps({"flow_id": flow_id, "symbol": "NVDA"}).encode(), channel)
    assert event.problems == []
    process = next(s for s in otel.spans() if s.name == f"process {channel}")
    assert process.parent is None
    assert process.context.trace_id == uuid.UUID(flow_id).int
    assert otel.value("dbpulse.flow.malformed", **{"messaging.destination.name": channel}) == 0


FLOW_ID = "8d3c2a8e-8d5e-4d8e-9f3c-6a1b2c3d4e5f"

MALFORMED = [
    pytest.param(b"{not json", ["invalid_json"], id="non-json"),
    pytest.param(b"\xff\xfe\x00garbage", ["invalid_json"], id="binary"),
    pytest.param("[1, 2, 3]", ["not_an_object"], id="json-array"),
    pytest.param(json.dumps({"symbol": "AAPL"}), ["missing_flow_id"], id="missing-flow-id"),
    pytest.param(json.dumps({"flow_id": "flow-42"}), ["invalid_flow_id"], id="non-uuid-flow-id"),
    pytest.param(json.dumps({"flow_id": 42}), ["invalid_flow_id"], id="numeric-flow-id"),
    pytest.param(
        json.dumps({"flow_id": FLOW_ID, "traceparent": "00-zz-not-a-traceparent"}),
        ["invalid_traceparent"],
        id="bad-traceparent",
    ),
    pytest.param(
        json.dumps({"flow_id": FLOW_ID, "traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}),
        ["invalid_traceparent"],
        id="zero-trace-id",
    ),
    pytest.param(
        json.dumps({"flow_id": FLOW_ID, "traceparent": 17, "tracestate": ["x"]}),
        ["invalid_traceparent"],
        id="traceparent-not-a-string",
    ),
    pytest.param(
        json.dumps({"flow_id": FLOW_ID, "published_at": "yesterday"}),
        ["invalid_published_at"],
        id="bad-published-at",
    ),
]


@pytest.mark.parametrize(("message", "problems"), MALFORMED)
def test_malformed_envelopes_are_counted_never_raised(
    otel: Any, message: Any, problems: list[str]
) -> None:
    channel = unique_channel("bad")
    event = flow.receive(message, channel=channel)
    assert event.problems == problems
    with event:
        pass  # EVENT_RECEIVED still happens: the bad message is visible as a trace
    for problem in problems:
        attrs = {"messaging.destination.name": channel, "error.type": problem}
        assert otel.value("dbpulse.flow.malformed", **attrs) == 1
    process = next(s for s in otel.spans() if s.name == f"process {channel}")
    assert list(process.attributes["flow.envelope.problems"]) == problems
    if event.flow_id is not None:
        # A valid flow id still names the trace when the traceparent is unusable.
        assert process.context.trace_id == uuid.UUID(FLOW_ID).int


@pytest.mark.parametrize("junk", [None, 7, 3.5, object(), {"type": "message"}, b"", ""])
def test_receive_accepts_anything(otel: Any, junk: Any) -> None:
    event = flow.receive(junk, channel=unique_channel("junk"))
    with event:
        pass
    assert event.payload is None or isinstance(event.payload, dict)
    assert event.problems


def test_the_application_s_exceptions_pass_through_and_are_counted(otel: Any) -> None:
    channel = unique_channel("boom")
    with flow.start_publish(channel, {"symbol": "TSLA"}) as pub:
        envelope = pub.envelope
    event = flow.receive(envelope, channel=channel)
    with pytest.raises(KeyError), event, event.parsed():
        raise KeyError("symbol")
    attrs = {"flow.checkpoint": "EVENT_PARSED", "error.type": "KeyError"}
    assert (
        otel.value("dbpulse.flow.errors", **{"messaging.destination.name": channel, **attrs}) == 1
    )
    # Counted once, at the step that failed, not again by the enclosing event.
    assert otel.value("dbpulse.flow.errors", **{"messaging.destination.name": channel}) == 1
    parse = next(s for s in otel.spans() if s.name == f"parse {channel}")
    assert parse.status.status_code.name == "ERROR"


def test_broken_telemetry_never_breaks_the_publish(
    otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise RuntimeError("tracer exploded")

    for module in (checkpoints, consumer):
        monkeypatch.setattr(module, "tracer", broken)
    sent: list[tuple[str, str]] = []

    class Client:
        def publish(self, channel: str, message: str) -> int:
            sent.append((channel, message))
            return 1

    channel = unique_channel("broken")
    flow_id = flow.publish(Client(), channel, {"symbol": "AMZN"})
    assert json.loads(sent[0][1])["flow_id"] == flow_id
    event = flow.receive(sent[0][1], channel=channel)
    with event, event.parsed(), event.delivered(users=1):
        pass
    assert otel.value("dbpulse.telemetry.dropped", **{"dbpulse.component": "flow"}) >= 2


def test_foreign_id_generator_falls_back_to_the_flow_id_attribute(
    otel: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()  # the user's own setup: random trace ids
    provider.add_span_processor(SimpleSpanProcessor(spans))
    for module in (checkpoints, consumer):
        monkeypatch.setattr(module, "tracer", lambda: provider.get_tracer("user"))
    monkeypatch.setattr(checkpoints, "_WARNED", set())
    channel = unique_channel("foreign")
    with caplog.at_level(logging.WARNING, logger="dbpulse.flow"):
        for _ in range(2):
            with flow.start_publish(channel, {"symbol": "AAPL"}) as pub:
                envelope = pub.envelope
    assert len([r for r in caplog.records if "FlowIdGenerator" in r.message]) == 1
    _consume(envelope, channel)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    send, process = by_name[f"send {channel}"], by_name[f"process {channel}"]
    assert send.attributes["flow.id"] == pub.flow_id
    assert send.context.trace_id != uuid.UUID(pub.flow_id).int
    # The consumer follows the producer's context, whatever its trace id.
    assert process.context.trace_id == send.context.trace_id
    assert process.attributes["flow.id"] == pub.flow_id


OWN_ATTRIBUTES = ("messaging.", "flow.")
TICKSTOCK_EVENT = {
    "symbol": "AAPL",
    "pattern_name": "Doji",
    "confidence": 0.87,
    "data": {"symbol": "MSFT", "pattern": "Hammer", "confidence": 0.5},
}


def test_no_payload_attribute_without_a_function(otel: Any) -> None:
    previous = flow.set_payload_attributes(None)
    flow.set_payload_attributes(previous)
    assert previous is None  # the default: nothing registered
    channel = unique_channel("plain")
    with flow.start_publish(channel, TICKSTOCK_EVENT) as pub:
        envelope = dict(pub.envelope)
    _consume(envelope, channel)
    spans = [s for s in otel.spans() if s.name.endswith(f" {channel}")]
    assert len(spans) == 4
    for span in spans:
        foreign = [k for k in span.attributes or {} if not k.startswith(OWN_ATTRIBUTES)]
        assert foreign == [], span.name


def test_payload_attributes_function(otel: Any, payload_attributes: Any) -> None:
    seen: list[Mapping[str, Any]] = []

    def attributes(payload: Mapping[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return {
            "order.id": str(payload["order_id"]),
            "order.tags": ["new", "paid"],
            "flow.id": "spoofed",  # dbpulse's own attributes win
            "order.none": None,  # not an attribute value: dropped
            "order.mixed": [1, "a"],
        }

    payload_attributes(attributes)
    channel = unique_channel("hook")
    with flow.start_publish(channel, {"order_id": 1042}) as pub:
        envelope = dict(pub.envelope)
    _consume(envelope, channel)
    assert seen[0] == {"order_id": 1042}
    assert seen[1]["flow_id"] == pub.flow_id  # the consumer side gets the envelope
    spans = {s.name: s for s in otel.spans()}
    for name in (f"send {channel}", f"process {channel}"):
        attrs = spans[name].attributes
        assert attrs["order.id"] == "1042"
        assert list(attrs["order.tags"]) == ["new", "paid"]
        assert attrs["flow.id"] == pub.flow_id
        assert "order.none" not in attrs and "order.mixed" not in attrs
    assert "order.id" not in spans[f"parse {channel}"].attributes


def test_payload_attributes_function_that_raises(
    otel: Any,
    payload_attributes: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def attributes(payload: Mapping[str, Any]) -> dict[str, Any]:
        raise KeyError("order_id")

    payload_attributes(attributes)
    monkeypatch.setattr(checkpoints, "_WARNED", set())
    channel = unique_channel("hook-raises")
    with caplog.at_level(logging.WARNING, logger="dbpulse.flow"):
        with flow.start_publish(channel, {"symbol": "AAPL"}) as pub:
            envelope = dict(pub.envelope)
        event = _consume(envelope, channel)
    assert event.flow_id == pub.flow_id
    assert len([r for r in caplog.records if "payload attributes" in r.message]) == 1
    spans = {s.name: s for s in otel.spans()}
    assert spans[f"send {channel}"].attributes["flow.id"] == pub.flow_id
    assert spans[f"process {channel}"].attributes["flow.checkpoint"] == "EVENT_RECEIVED"
    assert otel.value("dbpulse.telemetry.dropped", **{"dbpulse.component": "flow"}) >= 2


def test_demo_pattern_attributes() -> None:
    assert pattern_attributes(TICKSTOCK_EVENT) == {
        "pattern.symbol": "AAPL",
        "pattern.name": "Doji",
        "pattern.confidence": 0.87,
    }
    assert pattern_attributes({"data": {"symbol": "MSFT", "pattern": "Hammer"}}) == {
        "pattern.symbol": "MSFT",
        "pattern.name": "Hammer",
    }
    assert pattern_attributes({"symbol": 3, "confidence": True}) == {}
