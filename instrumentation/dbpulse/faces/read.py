"""The read model: one object that answers every question the faces ask, each in one place.

Usage::

    from dbpulse.faces import Endpoints, ReadModel

    with ReadModel(Endpoints.from_env()) as model:
        snapshot = model.snapshot(window="5m")  # what `dbpulse top` shows
        print(snapshot.unreachable)       # ["Prometheus at http://...: connection refused"]
        activity = model.activity("1h")   # raises Unreachable when Prometheus is down
        flow = model.flow("9c24f3f3-7886-4d2c-a54d-04dff84dac99")

The single-source methods (:meth:`ReadModel.activity`, :meth:`~ReadModel.events`,
:meth:`~ReadModel.flows`, ...) raise :class:`~dbpulse.faces.http.Unreachable`;
:meth:`ReadModel.snapshot` asks every source and reports those that did not answer as one line
each, with everything the others could answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from dbpulse.faces import activity as _activity
from dbpulse.faces import flows as _flows
from dbpulse.faces.config import Endpoints
from dbpulse.faces.http import Unreachable
from dbpulse.faces.model import Activity, Flow, Flows, Liveness, Snapshot
from dbpulse.faces.prometheus import PrometheusClient
from dbpulse.faces.status import database_status
from dbpulse.faces.traces import open_trace_store
from dbpulse.faces.vizclient import VizClient

__all__ = ["ReadModel", "matches"]


def matches(record: Mapping[str, Any], text: str) -> bool:
    """Whether ``record`` passes the filter ``text``: ``field=value`` (case-insensitive,
    several separated by spaces must all hold) or words found in any field's value."""
    for term in text.split():
        field, sep, wanted = term.partition("=")
        if sep:
            value = record.get(field.strip().lower())
            if value is None or str(value).lower() != wanted.strip().lower():
                return False
        elif not any(term.lower() in str(v).lower() for v in record.values() if v is not None):
            return False
    return True


class ReadModel:
    """The faces' one read model over Prometheus, the trace store, the viz server and the
    health checks (:class:`~dbpulse.faces.config.Endpoints` says where they are)."""

    def __init__(self, endpoints: Endpoints | None = None) -> None:
        self.endpoints = endpoints or Endpoints.from_env()
        e = self.endpoints
        self.prometheus = PrometheusClient(e.prometheus_url, e.timeout_s)
        self.traces = open_trace_store(e.trace_store_url, e.trace_store_kind, e.timeout_s)
        self.viz = VizClient(e.viz_url, e.viz_token, e.timeout_s)

    # -- one source each -----------------------------------------------------------------------

    def activity(self, window: str = "5m", service: str | None = None) -> Activity:
        return _activity.activity(self.prometheus, window, service)

    def liveness(self, service: str | None = None) -> Liveness:
        return _activity.liveness(self.prometheus, service)

    def top_isbns(self, window: str, service: str | None = None, n: int = 10) -> list[Any]:
        return _activity.top_isbns(self.prometheus, window, service, n)

    def events(self, limit: int = 50, text: str = "") -> list[dict[str, Any]]:
        """The viz server's newest ``limit`` events passing the filter, newest first."""
        if not 1 <= limit <= 10_000:
            raise ValueError(f"limit {limit!r}: expected 1..10000")
        events = self.viz.recent(limit=limit if not text else 10_000)
        chosen = [e for e in reversed(events) if not text or matches(e, text)]
        return chosen[:limit]

    def viz_stats(self) -> dict[str, Any]:
        return self.viz.stats()

    def flows(
        self,
        lookback_s: float = 3600.0,
        limit: int = 20,
        stuck_after_s: float = _flows.STUCK_AFTER_S,
        service: str | None = None,
    ) -> Flows:
        """Recent and stuck flows (trace store) and stuck counts per channel (Prometheus)."""
        recent = _flows.recent_flows(self.traces, lookback_s, limit, stuck_after_s)
        found = Flows(recent=recent, stuck=[f for f in recent if f.state == "stuck"])
        found.stuck_by_channel = _flows.stuck_by_channel(self.prometheus, service)
        return found

    def flow(self, flow_id: str, stuck_after_s: float = _flows.STUCK_AFTER_S) -> Flow | None:
        return _flows.flow_by_id(self.traces, flow_id, stuck_after_s)

    def database_status(self, targets: Sequence[str] | None = None) -> dict[str, Any]:
        return database_status(list(targets or self.endpoints.health_targets))

    # -- everything at once --------------------------------------------------------------------

    def snapshot(
        self,
        window: str = "5m",
        service: str | None = None,
        events: int = 20,
        flows: int = 10,
        stuck_after_s: float = _flows.STUCK_AFTER_S,
    ) -> Snapshot:
        """What ``dbpulse top`` shows; a source that does not answer is one line in
        ``unreachable`` and the others still answer."""
        snap = Snapshot(taken_at=time.time())
        down: dict[str, str] = {}

        def ask(source: str, question: Any) -> Any:
            if source in down:
                return None
            try:
                return question()
            except Unreachable as exc:
                down[source] = str(exc)
                return None

        snap.activity = ask("prometheus", lambda: self.activity(window, service))
        snap.liveness = ask("prometheus", lambda: self.liveness(service))
        stuck = ask("prometheus", lambda: _flows.stuck_by_channel(self.prometheus, service))
        recent = ask(
            "traces", lambda: _flows.recent_flows(self.traces, 3600.0, flows, stuck_after_s)
        )
        if recent is not None or stuck is not None:
            snap.flows = Flows(
                recent=recent or [],
                stuck=[f for f in recent or [] if f.state == "stuck"],
                stuck_by_channel=stuck or {},
            )
        snap.events = ask("viz", lambda: self.events(events)) or []
        snap.viz = ask("viz", self.viz_stats)
        snap.unreachable = list(down.values())
        return snap

    def close(self) -> None:
        for client in (self.prometheus, self.traces, self.viz):
            client.close()

    def __enter__(self) -> ReadModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
