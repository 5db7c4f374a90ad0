"""Flows over Redis pub/sub (or any transport) as one trace per flow.

Producer::

    import redis
    from dbpulse import flow

    r = redis.Redis()
    flow_id = flow.publish(r, "orders.events", {"order_id": 1042, "status": "paid"})

Consumer::

    subscriber = flow.Subscriber(r.pubsub(), "orders.events")
    subscriber.subscribe()
    with flow.Heartbeat("consumer"):
        for event in subscriber.listen():
            with event:                                   # EVENT_RECEIVED
                with event.parsed():                      # EVENT_PARSED
                    order = parse(event.payload)
                with event.delivered() as delivery:       # WEBSOCKET_DELIVERED
                    delivery.users_notified = broadcast(order)

``redis.asyncio``: :func:`publish_async` and :class:`AsyncSubscriber` (``async with event``
works too). Other transports: :func:`start_publish` builds the envelope inside the PRODUCER
span, :func:`receive` takes the envelope (dict, JSON ``str``/``bytes``) on the other side.

The trace: ``send {channel}`` (PRODUCER, a root span whose trace id *is* the flow id, with the
producer's current span, if any, as a link) → ``process {channel}`` (CONSUMER, child of the
context carried in the envelope and linked to it) → ``parse {channel}`` and
``deliver {channel}`` (INTERNAL, children of the process span). The envelope is the payload's
fields plus ``flow_id``, ``traceparent``/``tracestate`` (W3C) and ``published_at`` (unix
seconds). Payload fields become span attributes only through a function registered with
:func:`set_payload_attributes` (none by default). Metrics: ``dbpulse.flow.checkpoints``,
``dbpulse.flow.latency`` (publish → delivered), ``dbpulse.flow.errors``,
``dbpulse.flow.malformed``, and the heartbeat and subscription metrics of :class:`Heartbeat`.
See ``docs/flows.md``.

Nothing here raises into the application because of telemetry or a malformed message; the
application's own exceptions pass through unchanged (recorded on the span and counted).

Modules: :mod:`~dbpulse.flow.checkpoints` (names, counting, instruments),
:mod:`~dbpulse.flow.envelope`, :mod:`~dbpulse.flow.producer`, :mod:`~dbpulse.flow.consumer`,
:mod:`~dbpulse.flow.subscriber`, :mod:`~dbpulse.flow.heartbeat`.
"""

from dbpulse.flow.checkpoints import (
    EVENT_PARSED,
    EVENT_RECEIVED,
    LATENCY_BUCKETS,
    PATTERN_PUBLISHED,
    WEBSOCKET_DELIVERED,
    Checkpoint,
)
from dbpulse.flow.consumer import FlowEvent, Step, receive
from dbpulse.flow.envelope import (
    Envelope,
    PayloadAttributes,
    extract_envelope,
    inject_envelope,
    new_flow_id,
    set_payload_attributes,
)
from dbpulse.flow.heartbeat import Heartbeat, set_subscription
from dbpulse.flow.producer import Publication, publish, publish_async, start_publish
from dbpulse.flow.subscriber import AsyncSubscriber, Subscriber
from dbpulse.telemetry.ids import FlowIdGenerator

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
    "PayloadAttributes",
    "Publication",
    "Step",
    "Subscriber",
    "extract_envelope",
    "inject_envelope",
    "new_flow_id",
    "publish",
    "publish_async",
    "receive",
    "set_payload_attributes",
    "set_subscription",
    "start_publish",
]
