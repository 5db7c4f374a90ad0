"""Pattern flows from the trace store (one trace per flow, trace id = flow id) and the stuck
count from Prometheus.

Usage::

    from dbpulse.faces.flows import flow_by_id, recent_flows, stuck_by_channel

    flows = recent_flows(store, lookback_s=3600, limit=20, stuck_after_s=30)
    for item in flows:
        print(item.flow_id, item.state, [c.checkpoint for c in item.checkpoints])
    one = flow_by_id(store, "9c24f3f3-7886-4d2c-a54d-04dff84dac99")   # None if not stored

A flow is ``delivered`` once a ``WEBSOCKET_DELIVERED`` span is stored, ``stuck`` when it is
not ``stuck_after_s`` after ``PATTERN_PUBLISHED``, ``in flight`` before that.
"""

from __future__ import annotations

import time
import uuid

from dbpulse.faces.activity import counted, matcher
from dbpulse.faces.model import CheckpointReached, Flow
from dbpulse.faces.prometheus import PrometheusClient
from dbpulse.faces.traces import Trace, TraceStore

__all__ = [
    "CHECKPOINTS",
    "STUCK_AFTER_S",
    "flow_by_id",
    "flow_of",
    "parse_flow_id",
    "recent_flows",
    "stuck_by_channel",
]

CHECKPOINTS = ("PATTERN_PUBLISHED", "EVENT_RECEIVED", "EVENT_PARSED", "WEBSOCKET_DELIVERED")
STUCK_AFTER_S = 30.0
CHECKPOINT_COUNTER = "dbpulse_flow_checkpoints_total"
_ORDER = {name: index for index, name in enumerate(CHECKPOINTS)}


def parse_flow_id(text: str) -> uuid.UUID:
    """The flow id ``text`` names (a UUID, with or without dashes), else ValueError."""
    try:
        return uuid.UUID(text.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"flow id {text!r} is not a UUID (e.g. {uuid.UUID(int=1)})") from None


def flow_of(trace: Trace, stuck_after_s: float = STUCK_AFTER_S, now: float | None = None) -> Flow:
    """The :class:`Flow` a stored trace shows."""
    now = time.time() if now is None else now
    reached: list[CheckpointReached] = []
    channel = None
    flow_id = None
    for span in trace.spans:
        checkpoint = span.attributes.get("flow.checkpoint")
        if checkpoint not in _ORDER:
            continue
        channel = channel or span.attributes.get("messaging.destination.name")
        flow_id = flow_id or span.attributes.get("flow.id")
        reached.append(
            CheckpointReached(
                str(checkpoint), span.service, span.start, round(span.duration_ms, 3), span.error
            )
        )
    reached.sort(key=lambda c: (_ORDER[c.checkpoint], c.at))
    published = next((c.at for c in reached if c.checkpoint == "PATTERN_PUBLISHED"), None)
    delivered = next((c for c in reached if c.checkpoint == "WEBSOCKET_DELIVERED"), None)
    latency = None
    if delivered is not None and published is not None:
        latency = round((delivered.at + delivered.duration_ms / 1000 - published) * 1000, 3)
    if delivered is not None:
        state = "delivered"
    elif published is not None and now - published < stuck_after_s:
        state = "in flight"
    else:
        state = "stuck"
    return Flow(
        flow_id=str(flow_id) if flow_id else str(uuid.UUID(hex=trace.trace_id)),
        trace_id=trace.trace_id,
        channel=channel,
        published_at=published,
        state=state,
        stuck_at=reached[-1].checkpoint if state != "delivered" and reached else None,
        latency_ms=latency,
        checkpoints=reached,
    )


def recent_flows(
    store: TraceStore,
    lookback_s: float = 3600.0,
    limit: int = 20,
    stuck_after_s: float = STUCK_AFTER_S,
    channel: str | None = None,
) -> list[Flow]:
    """The newest ``limit`` flows published in the last ``lookback_s`` (on ``channel``)."""
    flows = [flow_of(t, stuck_after_s) for t in store.flow_traces(lookback_s, limit)]
    return [f for f in flows if channel is None or f.channel == channel]


def flow_by_id(
    store: TraceStore, flow_id: str, stuck_after_s: float = STUCK_AFTER_S
) -> Flow | None:
    """The flow ``flow_id`` (its trace), or None while the trace store has not stored it."""
    trace = store.get_trace(parse_flow_id(flow_id).hex)
    return flow_of(trace, stuck_after_s) if trace is not None else None


def stuck_by_channel(prometheus: PrometheusClient, service: str | None = None) -> dict[str, float]:
    """Published minus delivered over the last 5 minutes per channel (the dashboard's panel)."""

    def checkpoints(name: str) -> str:
        labels = matcher(service, f'flow_checkpoint="{name}"')
        return counted(CHECKPOINT_COUNTER, labels, "messaging_destination_name", "5m")

    published = checkpoints("PATTERN_PUBLISHED")
    promql = f"{published} - ({checkpoints('WEBSOCKET_DELIVERED')} or {published} * 0)"
    return {
        s.labels.get("messaging_destination_name", "?"): round(s.value, 1)
        for s in prometheus.query(promql)
    }
