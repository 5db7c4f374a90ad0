"""The consumer side: EVENT_RECEIVED, EVENT_PARSED and WEBSOCKET_DELIVERED of one message.

:func:`receive` turns a redis-py pub/sub message, or an envelope from any transport, into a
:class:`FlowEvent`; ``with event:`` is EVENT_RECEIVED (the CONSUMER span ``process {channel}``,
child of the producer's context carried in the envelope and linked to it), and
``event.parsed()``/``event.delivered()`` open the later checkpoints (:class:`Step`, INTERNAL
spans inside it). ``dbpulse.flow.latency`` is recorded at WEBSOCKET_DELIVERED.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Self

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from dbpulse.flow.checkpoints import (
    EVENT_PARSED,
    STATS,
    WEBSOCKET_DELIVERED,
    CheckpointSpan,
    FlowInstruments,
    count_error,
    fail_span,
    instruments,
    start_root,
    telemetry_failed,
    tracer,
)
from dbpulse.flow.envelope import add_payload_attributes, extract_envelope

__all__ = ["FlowEvent", "Step", "as_text", "receive"]

_STEP_VERB: dict[str, str] = {"EVENT_PARSED": "parse", "WEBSOCKET_DELIVERED": "deliver"}


class _ConsumerCheckpoint(CheckpointSpan):
    """``async with`` too: the consumer may run on ``redis.asyncio``."""

    __slots__ = ()

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class Step(_ConsumerCheckpoint):
    """A consumer checkpoint after EVENT_RECEIVED (``parse {channel}``, ``deliver {channel}``):
    an INTERNAL child span of the process span, counted when the block completes."""

    __slots__ = ("checkpoint", "event", "users")

    def __init__(self, event: FlowEvent, checkpoint: str, users: int | None = None) -> None:
        super().__init__()
        self.event = event
        self.checkpoint = str(checkpoint)
        self.users = users

    @property
    def users_notified(self) -> int | None:
        return self.users

    @users_notified.setter
    def users_notified(self, users: int) -> None:
        """Users the event was delivered to: ``flow.users_notified`` on the span."""
        self.users = users

    def _start(self) -> None:
        event = self.event
        verb = _STEP_VERB.get(self.checkpoint, self.checkpoint)
        # The flow id and messaging attributes are on the parent (and the trace id).
        attributes = {"flow.checkpoint": self.checkpoint}
        self._activate(
            tracer().start_span(
                f"{verb} {event.channel}", context=event.context, attributes=attributes
            )
        )

    def _finish(self, span: trace.Span | None, exc: BaseException | None) -> None:
        event = self.event
        if exc is not None:
            event._error_counted = True
            count_error(self.checkpoint, event.channel, exc)
            if span is not None:
                fail_span(span, exc)
        else:
            event.reached = self.checkpoint
            handles = instruments()
            STATS.checkpoint(self.checkpoint, event.channel)
            if self.checkpoint == WEBSOCKET_DELIVERED:
                self._delivered(handles, span)
        if span is not None:
            if self.users is not None:
                span.set_attribute("flow.users_notified", self.users)
            span.end()

    def _delivered(self, handles: FlowInstruments, span: trace.Span | None) -> None:
        published_at = self.event.envelope.published_at
        if published_at is None:
            return
        # Producer and consumer clocks: a negative latency is clock skew, recorded as 0.
        latency = max(0.0, time.time() - published_at)
        handles.latency.record(latency, {"messaging.destination.name": self.event.channel})
        if span is not None:
            span.set_attribute("flow.latency", latency)


class FlowEvent(_ConsumerCheckpoint):
    """One received message. ``with event:`` is EVENT_RECEIVED: the CONSUMER span
    ``process {channel}``, current for the block; :meth:`parsed` and :meth:`delivered` open the
    later checkpoints inside it.

    ``payload`` is the decoded envelope (``None`` when the message was not a JSON object),
    ``data`` the raw message, ``flow_id`` the canonical flow id or ``None``, ``problems`` what
    was malformed. An exception leaving the block is recorded and counted in
    ``dbpulse.flow.errors`` at the last checkpoint the flow reached, then propagates.
    """

    __slots__ = (
        "_error_counted",
        "channel",
        "context",
        "data",
        "envelope",
        "reached",
        "system",
    )

    def __init__(self, channel: str, data: Any, system: str = "redis") -> None:
        super().__init__()
        self.channel = channel
        self.data = data
        self.system = system
        self.envelope = extract_envelope(data)
        self.context: Context | None = None
        self.reached: str | None = None
        self._error_counted = False

    @property
    def payload(self) -> dict[str, Any] | None:
        return self.envelope.payload

    @property
    def flow_id(self) -> str | None:
        return self.envelope.flow_id

    @property
    def problems(self) -> list[str]:
        return self.envelope.problems

    @property
    def span(self) -> trace.Span:
        """The process span (a non-recording span before ``with`` or when not sampled)."""
        return self._span if self._span is not None else trace.INVALID_SPAN

    def parsed(self) -> Step:
        """EVENT_PARSED: ``with event.parsed(): ...`` around the application's parsing."""
        return Step(self, EVENT_PARSED)

    def delivered(self, users: int | None = None) -> Step:
        """WEBSOCKET_DELIVERED around the delivery; set ``users_notified`` on the step (or pass
        ``users``). Records ``dbpulse.flow.latency`` when the envelope has ``published_at``."""
        return Step(self, WEBSOCKET_DELIVERED, users)

    def checkpoint(self, checkpoint: str) -> Step:
        """Any later checkpoint by name (span ``{checkpoint} {channel}``)."""
        return Step(self, checkpoint)

    def _start(self) -> None:
        envelope = self.envelope
        instruments()
        channel = self.channel
        for problem in envelope.problems:
            STATS.bad_envelope(channel, problem)
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.destination.name": channel,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "flow.checkpoint": "EVENT_RECEIVED",
        }
        if envelope.message_id is not None:
            attributes["messaging.message.id"] = envelope.message_id
        if envelope.body_size is not None:
            attributes["messaging.message.body.size"] = envelope.body_size
        if envelope.flow_id is not None:
            attributes["flow.id"] = envelope.flow_id
        if envelope.problems:
            attributes["flow.envelope.problems"] = list(envelope.problems)
        if envelope.payload is not None:
            add_payload_attributes(envelope.payload, attributes)
        parent = envelope.parent
        if parent is not None:
            links: tuple[Link, ...] = (Link(trace.get_current_span(parent).get_span_context()),)
            span = tracer().start_span(
                f"process {channel}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes=attributes,
                links=links,
            )
        else:
            # An old producer (no trace context): a root span, with the flow id as trace id.
            span = start_root(
                f"process {channel}", envelope.flow_trace_id or None, SpanKind.CONSUMER, attributes
            )
        self.context = self._activate(span)
        self.reached = "EVENT_RECEIVED"
        STATS.checkpoint("EVENT_RECEIVED", channel)

    def _finish(self, span: trace.Span | None, exc: BaseException | None) -> None:
        if exc is not None:
            if not self._error_counted:
                count_error(self.reached or "EVENT_RECEIVED", self.channel, exc)
            if span is not None:
                fail_span(span, exc)
        if span is not None:
            span.end()

    def __repr__(self) -> str:
        return f"FlowEvent(channel={self.channel!r}, flow_id={self.flow_id!r})"


def as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _is_pubsub_message(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and len(message) == 4
        and "pattern" in message
        and "data" in message
        and "type" in message
        and "channel" in message
    )


def receive(message: Any, *, channel: str | None = None, system: str = "redis") -> FlowEvent:
    """The :class:`FlowEvent` of a redis-py pub/sub message dict or of an envelope (dict, JSON
    ``str``/``bytes``; pass ``channel``). Never raises; malformed messages become events with
    ``problems``, counted in ``dbpulse.flow.malformed`` when entered."""
    try:
        if _is_pubsub_message(message):
            return FlowEvent(channel or as_text(message["channel"]), message["data"], system)
    except Exception:
        telemetry_failed()
    return FlowEvent(channel or "unknown", message, system)
