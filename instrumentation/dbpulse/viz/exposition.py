"""The viz server's ``/metrics``: the hub's counters through ``prometheus_client``.

Usage::

    from dbpulse.viz.exposition import hub_registry
    from prometheus_client import generate_latest

    registry = hub_registry(hub)          # one CollectorRegistry per app, read at scrape time
    text = generate_latest(registry)

``prometheus_client`` writes the exposition format and escapes label values, so no table or
operation name can forge a line; the operations are the hub's capped labels (at most
``max_label_values``, the rest under ``OVERFLOW_LABEL``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from dbpulse.viz.hub import Hub

__all__ = ["hub_registry"]

_COUNTERS = [
    ("dbpulse_viz_events_received", "Events accepted by /api/viz/emit.", "events_received"),
    ("dbpulse_viz_batches_received", "Accepted emit requests.", "batches_received"),
    ("dbpulse_viz_ws_messages_sent", "Messages sent to clients.", "ws_messages_sent"),
    (
        "dbpulse_viz_ws_messages_dropped",
        "Messages skipped for clients whose queue was full.",
        "ws_messages_dropped",
    ),
    (
        "dbpulse_viz_ws_slow_disconnects",
        "Clients disconnected for being too slow.",
        "ws_slow_disconnects",
    ),
    ("dbpulse_viz_redis_errors", "Redis publish/subscribe errors.", "redis_errors"),
]
_EMIT_REJECTED = {
    "auth": "rejected_auth",
    "size": "rejected_size",
    "payload": "rejected_payload",
    "content_type": "rejected_content_type",
    "timeout": "rejected_timeout",
}
_REQUESTS_REJECTED = {
    "rate": "rejected_rate",
    "host": "rejected_host",
    "origin": "rejected_origin",
    "query": "rejected_query",
    "token": "rejected_view_token",
    "viewers": "rejected_viewers",
}


class _HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        c = hub.counters
        for name, help_text, key in _COUNTERS:
            yield CounterMetricFamily(name, help_text, value=c.get(key, 0))
        yield _by_reason(
            "dbpulse_viz_emit_rejected", "Refused emit requests by reason.", _EMIT_REJECTED, c
        )
        yield _by_reason(
            "dbpulse_viz_requests_rejected",
            "Requests refused before routing (rate limit, Host, Origin, viewing token).",
            _REQUESTS_REJECTED,
            c,
        )
        yield GaugeMetricFamily(
            "dbpulse_viz_ws_clients", "Connected WebSocket clients.", value=len(hub.clients)
        )
        yield GaugeMetricFamily(
            "dbpulse_viz_known_isbns", "ISBNs with a slot on the sphere.", value=len(hub.slots)
        )
        yield CounterMetricFamily(
            "dbpulse_viz_isbns_unplaced",
            "ISBNs refused beyond max_isbns.",
            value=hub.slots.unplaced,
        )
        overflow = CounterMetricFamily(
            "dbpulse_viz_label_overflow",
            "Events counted under the overflow label beyond max_label_values, by label.",
            labels=["label"],
        )
        for label, events in sorted(hub.label_overflow.items()):
            overflow.add_metric([label], events)
        yield overflow
        writes = CounterMetricFamily(
            "dbpulse_viz_writes", "Writes seen, by operation.", labels=["operation"]
        )
        for operation, count in sorted(hub.by_operation.items()):
            writes.add_metric([operation], count)
        yield writes


def _by_reason(
    name: str, help_text: str, reasons: dict[str, str], counters: dict[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=["reason"])
    for reason, key in reasons.items():
        family.add_metric([reason], counters.get(key, 0))
    return family


def hub_registry(hub: Hub) -> CollectorRegistry:
    """A registry of its own (not the process's default) that reads ``hub`` when scraped."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HubCollector(hub))
    return registry
