"""Pattern flows over Redis pub/sub (or any transport) as one trace per flow.

Producer::

    import redis
    from dbpulse import flow

    r = redis.Redis()
    flow_id = flow.publish(r, "tickstock.events.patterns",
                           {"symbol": "AAPL", "pattern_name": "Doji", "confidence": 0.87})

Consumer::

    subscriber = flow.Subscriber(r.pubsub(), "tickstock.events.patterns")
    subscriber.subscribe()
    with flow.Heartbeat("consumer"):
        for event in subscriber.listen():
            with event:                                   # EVENT_RECEIVED
                with event.parsed():                      # EVENT_PARSED
                    pattern = parse(event.payload)
                with event.delivered() as delivery:       # WEBSOCKET_DELIVERED
                    delivery.users_notified = broadcast(pattern)

``redis.asyncio``: :func:`publish_async` and :class:`AsyncSubscriber` (``async with event``
works too). Other transports: :func:`start_publish` builds the envelope inside the PRODUCER
span, :func:`receive` takes the envelope (dict, JSON ``str``/``bytes``) on the other side.

The trace: ``send {channel}`` (PRODUCER, a root span whose trace id *is* the flow id, with the
producer's current span, if any, as a link) → ``process {channel}`` (CONSUMER, child of the
context carried in the envelope and linked to it) → ``parse {channel}`` and
``deliver {channel}`` (INTERNAL, children of the process span). The envelope is the payload's
fields plus ``flow_id``, ``traceparent``/``tracestate`` (W3C) and ``published_at`` (unix
seconds). Metrics: ``dbpulse.flow.checkpoints``, ``dbpulse.flow.latency`` (publish →
delivered), ``dbpulse.flow.errors``, ``dbpulse.flow.malformed``, and the heartbeat and
subscription metrics of :class:`Heartbeat`. See ``docs/flows.md``.

Nothing here raises into the application because of telemetry or a malformed message; the
application's own exceptions pass through unchanged (recorded on the span and counted).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dbpulse.flow.heartbeat import STATS, Heartbeat, is_proxy, set_subscription
from dbpulse.telemetry.ids import FLOW_TRACE_ID, FlowIdGenerator
from dbpulse.telemetry.spans import DirectSpans, TracerSpans, span_recorder
from dbpulse.version import __version__

__all__ = [
    "EVENT_PARSED",
    "EVENT_RECEIVED",
    "LATENCY_BUCKETS",
    "PATTERN_PUBLISHED",
    "WEBSOCKET_DELIVERED",
    "AsyncSubscriber",
    "Checkpoint",
    "Envelope",
    "FlowEvent",
    "FlowIdGenerator",
    "Heartbeat",
    "Publication",
    "Step",
    "Subscriber",
    "extract_envelope",
    "inject_envelope",
    "new_flow_id",
    "publish",
    "publish_async",
    "receive",
    "set_subscription",
    "start_publish",
]

_log = logging.getLogger(__name__)


class Checkpoint(StrEnum):
    PATTERN_PUBLISHED = "PATTERN_PUBLISHED"
    EVENT_RECEIVED = "EVENT_RECEIVED"
    EVENT_PARSED = "EVENT_PARSED"
    WEBSOCKET_DELIVERED = "WEBSOCKET_DELIVERED"


PATTERN_PUBLISHED = Checkpoint.PATTERN_PUBLISHED
EVENT_RECEIVED = Checkpoint.EVENT_RECEIVED
EVENT_PARSED = Checkpoint.EVENT_PARSED
WEBSOCKET_DELIVERED = Checkpoint.WEBSOCKET_DELIVERED

LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""``dbpulse.flow.latency`` bucket boundaries (s): fine around the 100 ms target."""

FLOW_ID = "flow_id"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
PUBLISHED_AT = "published_at"
MESSAGE_ID = "message_id"

_STEP_VERB: dict[str, str] = {"EVENT_PARSED": "parse", "WEBSOCKET_DELIVERED": "deliver"}
_ROOT = Context()
_W3C = TraceContextTextMapPropagator()

try:  # redis is an optional extra; only its connection errors are looked at.
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    _CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
        _RedisConnectionError,
        _RedisTimeoutError,
        ConnectionError,
        TimeoutError,
    )
except ImportError:  # pragma: no cover - redis not installed
    _CONNECTION_ERRORS = (ConnectionError, TimeoutError)


# --------------------------------------------------------------------------- telemetry handles


class _Instruments:
    def __init__(self, provider: metrics.MeterProvider) -> None:
        meter = provider.get_meter("dbpulse.flow", __version__)
        self.provider = provider
        meter.create_observable_counter(
            "dbpulse.flow.checkpoints",
            callbacks=[_observe_checkpoints],
            unit="{checkpoint}",
            description="Flows that reached each checkpoint",
        )
        meter.create_observable_counter(
            "dbpulse.flow.errors",
            callbacks=[_observe_errors],
            unit="{error}",
            description="Flows that failed, by checkpoint",
        )
        meter.create_observable_counter(
            "dbpulse.flow.malformed",
            callbacks=[_observe_malformed],
            unit="{message}",
            description="Received envelopes that were malformed, by problem",
        )
        self.latency = meter.create_histogram(
            "dbpulse.flow.latency",
            unit="s",
            description="End-to-end flow latency, publish to delivered",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )


def _observe_checkpoints(_options: CallbackOptions) -> Iterable[Observation]:
    overflow = STATS.take_overflow()
    if overflow:
        _count_dropped("flow_cardinality", overflow)
    for (checkpoint, channel), value in STATS.series("checkpoints").items():
        yield Observation(
            value, {"flow.checkpoint": checkpoint, "messaging.destination.name": channel}
        )


def _observe_errors(_options: CallbackOptions) -> Iterable[Observation]:
    for (checkpoint, channel, error_type), value in STATS.series("errors").items():
        yield Observation(
            value,
            {
                "flow.checkpoint": checkpoint,
                "messaging.destination.name": channel,
                "error.type": error_type,
            },
        )


def _observe_malformed(_options: CallbackOptions) -> Iterable[Observation]:
    for (channel, problem), value in STATS.series("malformed").items():
        yield Observation(value, {"messaging.destination.name": channel, "error.type": problem})


_INSTRUMENTS: _Instruments | None = None
_TRACER: tuple[Any, DirectSpans | TracerSpans] | None = None
_WARNED: set[str] = set()


def _instruments() -> _Instruments:
    global _INSTRUMENTS
    provider = metrics.get_meter_provider()
    current = _INSTRUMENTS
    # Instruments made before the SDK was set up are proxies the SDK takes over: keep them.
    if current is None or (current.provider is not provider and not is_proxy(current.provider)):
        current = _INSTRUMENTS = _Instruments(provider)
    return current


def _tracer() -> DirectSpans | TracerSpans:
    """Checkpoint spans are recorded like database spans (:mod:`dbpulse.telemetry.spans`):
    straight into the SDK provider's processors, ~5x cheaper than ``Tracer.start_span``
    + ``end``."""
    global _TRACER
    provider = trace.get_tracer_provider()
    current = _TRACER
    if current is None or current[0] is not provider:
        current = _TRACER = (provider, span_recorder(provider, "dbpulse.flow", __version__))
    return current[1]


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        _log.warning(message, *args)


def _count_dropped(component: str, n: int = 1) -> None:
    try:
        from dbpulse.telemetry.metrics import OPERATIONS

        OPERATIONS.count_dropped(component, n)
    except Exception:
        _log.debug("dbpulse.flow: could not count a drop", exc_info=True)


def _telemetry_failed() -> None:
    """A bug or an SDK failure inside dbpulse: log it, count it, never raise."""
    _log.debug("dbpulse.flow: telemetry failed", exc_info=True)
    _count_dropped("flow")


def _error_type(exc: BaseException) -> str:
    return type(exc).__qualname__


def _count_error(checkpoint: str, channel: str, exc: BaseException) -> None:
    try:
        _instruments()
        STATS.error(checkpoint, channel, _error_type(exc), isinstance(exc, _CONNECTION_ERRORS))
    except Exception:
        _telemetry_failed()


def _fail_span(span: trace.Span, exc: BaseException) -> None:
    span.set_attribute("error.type", _error_type(exc))
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


# --------------------------------------------------------------------------------- envelopes


def _new_flow_uuid() -> uuid.UUID:
    # random.getrandbits, like the SDK's own ids: 1 µs against 4 µs for uuid4()'s urandom.
    return uuid.UUID(int=random.getrandbits(128), version=4)


def new_flow_id() -> str:
    """A new flow id: a random (version 4) UUID in canonical form."""
    return str(_new_flow_uuid())


def _parse_flow_id(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _traceparent(span_context: trace.SpanContext) -> str:
    flags = int(span_context.trace_flags) & 0xFF
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def _domain_attributes(payload: Mapping[str, Any], attributes: dict[str, Any]) -> None:
    """``pattern.symbol``/``pattern.name``/``pattern.confidence`` from the payload or its
    ``data`` object (the TickStock event shape)."""
    sources = [payload]
    nested = payload.get("data")
    if isinstance(nested, Mapping):
        sources.append(nested)
    for source in sources:
        symbol = source.get("symbol")
        if isinstance(symbol, str) and "pattern.symbol" not in attributes:
            attributes["pattern.symbol"] = symbol
        name = source.get("pattern_name", source.get("pattern"))
        if isinstance(name, str) and "pattern.name" not in attributes:
            attributes["pattern.name"] = name
        confidence = source.get("confidence")
        if (
            isinstance(confidence, int | float)
            and not isinstance(confidence, bool)
            and "pattern.confidence" not in attributes
        ):
            attributes["pattern.confidence"] = float(confidence)


def inject_envelope(
    payload: Mapping[str, Any],
    *,
    flow_id: str | uuid.UUID | None = None,
    context: Context | None = None,
) -> dict[str, Any]:
    """The envelope for ``payload``: a new dict with the payload's fields, ``flow_id`` (given or
    new), ``traceparent``/``tracestate`` of the current (or given) context's span and
    ``published_at`` (now, unix seconds). Creates no span: :func:`start_publish` does both."""
    envelope = dict(payload)
    if flow_id is None:
        envelope[FLOW_ID] = new_flow_id()
    else:
        envelope[FLOW_ID] = str(flow_id)
    try:
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            envelope[TRACEPARENT] = _traceparent(span_context)
            if span_context.trace_state:
                envelope[TRACESTATE] = span_context.trace_state.to_header()
    except Exception:
        _telemetry_failed()
    envelope[PUBLISHED_AT] = time.time()
    return envelope


@dataclass(slots=True)
class Envelope:
    """A received message as dbpulse understood it; ``problems`` lists what was malformed
    (``invalid_json``, ``not_an_object``, ``missing_flow_id``, ``invalid_flow_id``,
    ``invalid_traceparent``, ``invalid_published_at``)."""

    payload: dict[str, Any] | None
    flow_id: str | None = None
    flow_trace_id: int = 0
    parent: Context | None = None
    published_at: float | None = None
    message_id: str | None = None
    body_size: int | None = None
    problems: list[str] = field(default_factory=list)


def extract_envelope(data: Any) -> Envelope:
    """Parse an envelope (a dict, or JSON ``str``/``bytes``). Never raises."""
    try:
        return _extract(data)
    except Exception:
        _telemetry_failed()
        return Envelope(payload=None, problems=["invalid_envelope"])


def _extract(data: Any) -> Envelope:
    body_size = None
    if isinstance(data, memoryview):
        data = data.tobytes()
    if isinstance(data, bytes | bytearray | str):
        body_size = len(data)
        try:
            decoded = json.loads(data)
        except Exception:
            return Envelope(payload=None, body_size=body_size, problems=["invalid_json"])
    else:
        decoded = data
    if not isinstance(decoded, dict):
        return Envelope(payload=None, body_size=body_size, problems=["not_an_object"])
    envelope = Envelope(payload=decoded, body_size=body_size)
    problems = envelope.problems

    raw_flow_id = decoded.get(FLOW_ID)
    if raw_flow_id is None:
        problems.append("missing_flow_id")
    else:
        parsed = _parse_flow_id(raw_flow_id)
        if parsed is None:
            problems.append("invalid_flow_id")
        else:
            envelope.flow_id = str(parsed)
            envelope.flow_trace_id = parsed.int

    if TRACEPARENT in decoded:
        try:
            parent = _W3C.extract(decoded)
            if trace.get_current_span(parent).get_span_context().is_valid:
                envelope.parent = parent
            else:
                problems.append("invalid_traceparent")
        except Exception:
            problems.append("invalid_traceparent")

    published_at = decoded.get(PUBLISHED_AT)
    if published_at is not None:
        if (
            isinstance(published_at, int | float)
            and not isinstance(published_at, bool)
            and math.isfinite(published_at)
        ):
            envelope.published_at = float(published_at)
        else:
            problems.append("invalid_published_at")

    message_id = decoded.get(MESSAGE_ID)
    envelope.message_id = str(message_id) if message_id is not None else envelope.flow_id
    return envelope


# ---------------------------------------------------------------------------------- producer


class Publication:
    """One message being published: the PRODUCER span ``send {channel}`` (PATTERN_PUBLISHED)
    is open inside ``with``; :attr:`envelope` is what to send."""

    __slots__ = (
        "_flow_uuid",
        "_span",
        "_token",
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
        if not isinstance(payload, Mapping):
            raise TypeError(
                f"a flow payload must be a mapping (dict) of JSON values, got {type(payload)!r}"
            )
        self.channel = channel
        self.payload = payload
        self.system = system
        if flow_id is None:
            self._flow_uuid: uuid.UUID | None = _new_flow_uuid()
            self.flow_id = str(self._flow_uuid)
        else:
            self._flow_uuid = _parse_flow_id(flow_id)
            self.flow_id = str(flow_id)
        self.envelope: dict[str, Any] = {}
        self._span: trace.Span | None = None
        self._token: Any = None

    def __enter__(self) -> Publication:
        envelope = dict(self.payload)
        envelope[FLOW_ID] = self.flow_id
        try:
            self._start(envelope)
        except Exception:
            _telemetry_failed()
        envelope[PUBLISHED_AT] = time.time()
        self.envelope = envelope
        return self

    def _start(self, envelope: dict[str, Any]) -> None:
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
        _domain_attributes(self.payload, attributes)
        current = trace.get_current_span().get_span_context()
        links = (Link(current),) if current.is_valid else ()
        # A real root span whose trace id is the flow id (FlowIdGenerator reads FLOW_TRACE_ID).
        token = FLOW_TRACE_ID.set(flow_uuid.int if flow_uuid is not None else None)
        try:
            span = _tracer().start_span(
                f"send {self.channel}",
                context=_ROOT,
                kind=SpanKind.PRODUCER,
                attributes=attributes,
                links=links,
            )
        finally:
            FLOW_TRACE_ID.reset(token)
        self._span = span
        span_context = span.get_span_context()
        if span_context.is_valid:
            envelope[TRACEPARENT] = _traceparent(span_context)
            if span_context.trace_state:
                envelope[TRACESTATE] = span_context.trace_state.to_header()
            if flow_uuid is None:
                _warn_once(
                    "flow_id",
                    "dbpulse.flow: flow_id %r is not a UUID; the trace id is random",
                    self.flow_id,
                )
            elif span_context.trace_id != flow_uuid.int:
                _warn_once(
                    "id_generator",
                    "dbpulse.flow: the tracer provider's id generator is not "
                    "dbpulse.telemetry.ids.FlowIdGenerator, so trace ids differ from flow ids; "
                    "find flows by the flow.id attribute, or build the TracerProvider with "
                    "id_generator=FlowIdGenerator()",
                )
        self._token = context_api.attach(trace.set_span_in_context(span))

    def set_receivers(self, receivers: int) -> None:
        """Record how many subscribers the broker delivered the message to (Redis PUBLISH's
        reply) as ``flow.receivers``; 0 means the flow is stuck at PATTERN_PUBLISHED."""
        span = self._span
        if span is not None:
            span.set_attribute("flow.receivers", receivers)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._token is not None:
                context_api.detach(self._token)
                self._token = None
            span = self._span
            if exc is not None:
                _count_error("PATTERN_PUBLISHED", self.channel, exc)
                if span is not None:
                    _fail_span(span, exc)
            else:
                _instruments()
                STATS.checkpoint("PATTERN_PUBLISHED", self.channel)
            if span is not None:
                span.end()
        except Exception:
            _telemetry_failed()


def start_publish(
    channel: str,
    payload: Mapping[str, Any],
    *,
    flow_id: str | uuid.UUID | None = None,
    system: str = "redis",
) -> Publication:
    """For transports other than redis-py: open the PRODUCER span and build the envelope::

        with flow.start_publish("patterns", {"symbol": "AAPL"}) as publication:
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


# ---------------------------------------------------------------------------------- consumer


class Step:
    """A consumer checkpoint after EVENT_RECEIVED (``parse {channel}``, ``deliver {channel}``):
    an INTERNAL child span of the process span, counted when the block completes."""

    __slots__ = ("_span", "_token", "checkpoint", "event", "users")

    def __init__(self, event: FlowEvent, checkpoint: str, users: int | None = None) -> None:
        self.event = event
        self.checkpoint = str(checkpoint)
        self.users = users
        self._span: trace.Span | None = None
        self._token: Any = None

    @property
    def users_notified(self) -> int | None:
        return self.users

    @users_notified.setter
    def users_notified(self, users: int) -> None:
        """Users the event was delivered to: ``flow.users_notified`` on the span."""
        self.users = users

    def __enter__(self) -> Step:
        try:
            event = self.event
            verb = _STEP_VERB.get(self.checkpoint, self.checkpoint)
            # The flow id and messaging attributes are on the parent (and the trace id).
            attributes = {"flow.checkpoint": self.checkpoint}
            span = _tracer().start_span(
                f"{verb} {event.channel}", context=event.context, attributes=attributes
            )
            self._span = span
            self._token = context_api.attach(trace.set_span_in_context(span))
        except Exception:
            _telemetry_failed()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._token is not None:
                context_api.detach(self._token)
                self._token = None
            span = self._span
            event = self.event
            if exc is not None:
                event._error_counted = True
                _count_error(self.checkpoint, event.channel, exc)
                if span is not None:
                    _fail_span(span, exc)
            else:
                event.reached = self.checkpoint
                instruments = _instruments()
                STATS.checkpoint(self.checkpoint, event.channel)
                if self.checkpoint == WEBSOCKET_DELIVERED:
                    self._delivered(instruments, span)
            if span is not None:
                if self.users is not None:
                    span.set_attribute("flow.users_notified", self.users)
                span.end()
        except Exception:
            _telemetry_failed()

    def _delivered(self, instruments: _Instruments, span: trace.Span | None) -> None:
        published_at = self.event.envelope.published_at
        if published_at is None:
            return
        # Producer and consumer clocks: a negative latency is clock skew, recorded as 0.
        latency = max(0.0, time.time() - published_at)
        instruments.latency.record(latency, {"messaging.destination.name": self.event.channel})
        if span is not None:
            span.set_attribute("flow.latency", latency)

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class FlowEvent:
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
        "_span",
        "_token",
        "channel",
        "context",
        "data",
        "envelope",
        "reached",
        "system",
    )

    def __init__(self, channel: str, data: Any, system: str = "redis") -> None:
        self.channel = channel
        self.data = data
        self.system = system
        self.envelope = extract_envelope(data)
        self.context: Context | None = None
        self.reached: str | None = None
        self._span: trace.Span | None = None
        self._token: Any = None
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

    def __enter__(self) -> FlowEvent:
        try:
            self._start()
        except Exception:
            _telemetry_failed()
        return self

    def _start(self) -> None:
        envelope = self.envelope
        _instruments()
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
            _domain_attributes(envelope.payload, attributes)
        parent = envelope.parent
        if parent is not None:
            links: tuple[Link, ...] = (Link(trace.get_current_span(parent).get_span_context()),)
            span = _tracer().start_span(
                f"process {channel}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes=attributes,
                links=links,
            )
        else:
            # An old producer (no trace context): a root span, with the flow id as trace id.
            token = FLOW_TRACE_ID.set(envelope.flow_trace_id or None)
            try:
                span = _tracer().start_span(
                    f"process {channel}",
                    context=_ROOT,
                    kind=SpanKind.CONSUMER,
                    attributes=attributes,
                )
            finally:
                FLOW_TRACE_ID.reset(token)
        self._span = span
        self.context = trace.set_span_in_context(span)
        self._token = context_api.attach(self.context)
        self.reached = "EVENT_RECEIVED"
        STATS.checkpoint("EVENT_RECEIVED", channel)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._token is not None:
                context_api.detach(self._token)
                self._token = None
            span = self._span
            if exc is not None:
                if not self._error_counted:
                    _count_error(self.reached or "EVENT_RECEIVED", self.channel, exc)
                if span is not None:
                    _fail_span(span, exc)
            if span is not None:
                span.end()
        except Exception:
            _telemetry_failed()

    async def __aenter__(self) -> FlowEvent:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"FlowEvent(channel={self.channel!r}, flow_id={self.flow_id!r})"


def _text(value: Any) -> str:
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
            return FlowEvent(channel or _text(message["channel"]), message["data"], system)
    except Exception:
        _telemetry_failed()
    return FlowEvent(channel or "unknown", message, system)


# ------------------------------------------------------------------------------- subscribers


class _SubscriberBase:
    def __init__(self, pubsub: Any, *channels: str, patterns: tuple[str, ...] = ()) -> None:
        self.pubsub = pubsub
        self.channels = channels
        self.patterns = patterns
        self.active: dict[str, bool] = {}
        # Subscription replies confirm the subscription: the subscriber must see them.
        with contextlib.suppress(Exception):
            pubsub.ignore_subscribe_messages = False

    def _handle(self, message: Any) -> FlowEvent | None:
        """A data message becomes an event; replies update the subscription gauge."""
        if message is None:
            return None
        try:
            kind = _text(message.get("type")) if isinstance(message, dict) else ""
        except Exception:
            kind = ""
        if kind in ("message", "pmessage"):
            return receive(message)
        if kind in ("subscribe", "psubscribe", "unsubscribe", "punsubscribe"):
            name = _text(message.get("channel"))
            active = kind in ("subscribe", "psubscribe")
            self.active[name] = active
            set_subscription(name, active)
        return None

    def _connection_lost(self) -> None:
        STATS.add("connection_errors")
        for name in list(self.active):
            self.active[name] = False
            set_subscription(name, False)


class Subscriber(_SubscriberBase):
    """A redis-py ``PubSub`` whose data messages come out as :class:`FlowEvent` objects.

    ``dbpulse.subscription.active`` follows the server's subscribe/unsubscribe replies;
    connection errors are counted (``dbpulse.heartbeat.connection_errors``), mark the
    subscriptions inactive and propagate (redis-py re-subscribes on the next read)."""

    def subscribe(self) -> None:
        try:
            if self.channels:
                self.pubsub.subscribe(*self.channels)
            if self.patterns:
                self.pubsub.psubscribe(*self.patterns)
        except _CONNECTION_ERRORS:
            self._connection_lost()
            raise

    def get_event(self, timeout: float = 0.0) -> FlowEvent | None:
        """The next event, or ``None`` (no message within ``timeout``, or a reply)."""
        try:
            message = self.pubsub.get_message(ignore_subscribe_messages=False, timeout=timeout)
        except _CONNECTION_ERRORS:
            self._connection_lost()
            raise
        return self._handle(message)

    def listen(self, timeout: float = 1.0) -> Iterator[FlowEvent]:
        """Events until every channel is unsubscribed."""
        while self.pubsub.subscribed:
            event = self.get_event(timeout)
            if event is not None:
                yield event

    def close(self) -> None:
        for name in list(self.active):
            self.active[name] = False
            set_subscription(name, False)
        self.pubsub.close()


class AsyncSubscriber(_SubscriberBase):
    """:class:`Subscriber` for ``redis.asyncio`` ``PubSub``."""

    async def subscribe(self) -> None:
        try:
            if self.channels:
                await self.pubsub.subscribe(*self.channels)
            if self.patterns:
                await self.pubsub.psubscribe(*self.patterns)
        except _CONNECTION_ERRORS:
            self._connection_lost()
            raise

    async def get_event(self, timeout: float = 0.0) -> FlowEvent | None:
        try:
            message = await self.pubsub.get_message(
                ignore_subscribe_messages=False, timeout=timeout
            )
        except _CONNECTION_ERRORS:
            self._connection_lost()
            raise
        return self._handle(message)

    async def listen(self, timeout: float = 1.0) -> AsyncIterator[FlowEvent]:
        while self.pubsub.subscribed:
            event = await self.get_event(timeout)
            if event is not None:
                yield event

    async def close(self) -> None:
        for name in list(self.active):
            self.active[name] = False
            set_subscription(name, False)
        await self.pubsub.aclose()
