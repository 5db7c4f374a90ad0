"""The producer side: PATTERN_PUBLISHED, the ``send {channel}`` span and the envelope it sends.

:func:`publish` (redis-py) and :func:`publish_async` (``redis.asyncio``) send the JSON envelope
inside the PRODUCER span; :func:`start_publish` gives other transports the span and the
envelope (a :class:`Publication`) to send themselves. The PRODUCER span is always a new root
whose trace id is the flow id (through ``FlowIdGenerator``); the producer's current span, if
any, becomes a link of it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any, Self

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from dbpulse.flow.checkpoints import (
    STATS,
    CheckpointSpan,
    count_error,
    fail_span,
    instruments,
    start_root,
    warn_once,
)
from dbpulse.flow.envelope import (
    FLOW_ID,
    MESSAGE_ID,
    PUBLISHED_AT,
    add_payload_attributes,
    carry_trace_context,
    new_flow_uuid,
    parse_flow_id,
)

__all__ = ["Publication", "publish", "publish_async", "start_publish"]


class Publication(CheckpointSpan):
    """One message being published: the PRODUCER span ``send {channel}`` (PATTERN_PUBLISHED)
    is open inside ``with``; :attr:`envelope` is what to send."""

    __slots__ = (
        "_flow_uuid",
        "channel",
        "envelope",
        "flow_id",
        "payload",
        "system",
    )

    def __init__(
        self,
        channel: str,
        payload: Mapping[str, Any],
        flow_id: str | uuid.UUID | None = None,
        system: str = "redis",
    ) -> None:
        super().__init__()
        if not isinstance(payload, Mapping):
            raise TypeError(
                f"a flow payload must be a mapping (dict) of JSON values, got {type(payload)!r}"
            )
        self.channel = channel
        self.payload = payload
        self.system = system
        if flow_id is None:
            self._flow_uuid: uuid.UUID | None = new_flow_uuid()
            self.flow_id = str(self._flow_uuid)
        else:
            self._flow_uuid = parse_flow_id(flow_id)
            self.flow_id = str(flow_id)
        self.envelope: dict[str, Any] = {}

    def __enter__(self) -> Self:
        self.envelope = {**self.payload, FLOW_ID: self.flow_id}
        super().__enter__()
        self.envelope[PUBLISHED_AT] = time.time()
        return self

    def _start(self) -> None:
        envelope = self.envelope
        flow_uuid = self._flow_uuid
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.destination.name": self.channel,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.message.id": str(envelope.get(MESSAGE_ID, self.flow_id)),
            "flow.id": self.flow_id,
            "flow.checkpoint": "PATTERN_PUBLISHED",
        }
        add_payload_attributes(self.payload, attributes)
        current = trace.get_current_span().get_span_context()
        links = (Link(current),) if current.is_valid else ()
        # A root span whose trace id is the flow id: the flow is its own trace.
        flow_trace_id = flow_uuid.int if flow_uuid is not None else None
        span = start_root(
            f"send {self.channel}", flow_trace_id, SpanKind.PRODUCER, attributes, links
        )
        self._activate(span)
        span_context = span.get_span_context()
        if span_context.is_valid:
            carry_trace_context(envelope, span_context)
            if flow_uuid is None:
                warn_once(
                    "flow_id",
                    "dbpulse.flow: flow_id %r is not a UUID; the trace id is random",
                    self.flow_id,
                )
            elif span_context.trace_id != flow_uuid.int:
                warn_once(
                    "id_generator",
                    "dbpulse.flow: the tracer provider's id generator is not "
                    "dbpulse.telemetry.ids.FlowIdGenerator, so trace ids differ from flow ids; "
                    "find flows by the flow.id attribute, or build the TracerProvider with "
                    "id_generator=FlowIdGenerator()",
                )

    def set_receivers(self, receivers: int) -> None:
        """Record how many subscribers the broker delivered the message to (Redis PUBLISH's
        reply) as ``flow.receivers``; 0 means the flow is stuck at PATTERN_PUBLISHED."""
        span = self._span
        if span is not None:
            span.set_attribute("flow.receivers", receivers)

    def _finish(self, span: trace.Span | None, exc: BaseException | None) -> None:
        if exc is not None:
            count_error("PATTERN_PUBLISHED", self.channel, exc)
            if span is not None:
                fail_span(span, exc)
        else:
            instruments()
            STATS.checkpoint("PATTERN_PUBLISHED", self.channel)
        if span is not None:
            span.end()


def start_publish(
    channel: str,
    payload: Mapping[str, Any],
    *,
    flow_id: str | uuid.UUID | None = None,
    system: str = "redis",
) -> Publication:
    """For transports other than redis-py: open the PRODUCER span and build the envelope::

        with flow.start_publish("events", {"order_id": 1042}) as publication:
            queue.send(json.dumps(publication.envelope))

    ``system`` is the ``messaging.system`` value (``rabbitmq``, ``kafka``, ...)."""
    return Publication(channel, payload, flow_id, system)


# Values JSON cannot encode (datetime, Decimal) go as str() rather than failing the publish.
# One encoder for all: json.dumps(default=...) would build a new one per call (~5 µs).
_dumps = json.JSONEncoder(default=str).encode


def publish(
    client: Any, channel: str, payload: Mapping[str, Any], *, flow_id: str | uuid.UUID | None = None
) -> str:
    """Publish ``payload`` to ``channel`` with a redis-py client as one flow; returns its id.

    The message is the JSON envelope (payload fields, ``flow_id``, ``traceparent``,
    ``tracestate``, ``published_at``). Redis errors propagate unchanged (counted first)."""
    with Publication(channel, payload, flow_id) as publication:
        receivers = client.publish(channel, _dumps(publication.envelope))
        if isinstance(receivers, int):
            publication.set_receivers(receivers)
    return publication.flow_id


async def publish_async(
    client: Any, channel: str, payload: Mapping[str, Any], *, flow_id: str | uuid.UUID | None = None
) -> str:
    """:func:`publish` for ``redis.asyncio`` clients."""
    with Publication(channel, payload, flow_id) as publication:
        receivers = await client.publish(channel, _dumps(publication.envelope))
        if isinstance(receivers, int):
            publication.set_receivers(receivers)
    return publication.flow_id
