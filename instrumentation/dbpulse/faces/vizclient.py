"""The viz server's read endpoints: the ring buffer of recent events, its counters, its health.

Usage::

    from dbpulse.faces.vizclient import VizClient

    viz = VizClient("http://127.0.0.1:8765", token=None)     # DBPULSE_VIZ_TOKEN when set
    events = viz.recent(limit=50)                             # newest last, as the server keeps
    stats = viz.stats()                                       # writes_per_s, writes_by_table...

Failures are :class:`~dbpulse.faces.http.Unreachable`.
"""

from __future__ import annotations

from typing import Any

from dbpulse.faces.http import JsonSource

__all__ = ["VizClient"]


class VizClient:
    """``/api/viz/recent``, ``/api/viz/stats`` and ``/healthz`` of one viz server."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 3.0) -> None:
        self.source = JsonSource("viz server", url, timeout_s, token=token)

    @property
    def url(self) -> str:
        return self.source.url

    def recent(
        self,
        limit: int = 50,
        table: str | None = None,
        operation: str | None = None,
        isbn: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {"limit": limit, "table": table, "operation": operation, "isbn": isbn}
        payload = self.source.get(
            "/api/viz/recent", {k: v for k, v in params.items() if v is not None}
        )
        events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(events, list):
            raise self.source.unreachable("/api/viz/recent did not list events")
        return [e for e in events if isinstance(e, dict)]

    def stats(self) -> dict[str, Any]:
        payload = self.source.get("/api/viz/stats")
        if not isinstance(payload, dict):
            raise self.source.unreachable("/api/viz/stats is not an object")
        return payload

    def health(self) -> dict[str, Any]:
        payload = self.source.get("/healthz", allow=(503,))
        return payload if isinstance(payload, dict) else {"status": "degraded (HTTP 503)"}

    def close(self) -> None:
        self.source.close()
