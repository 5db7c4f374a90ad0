"""The performance summary: totals, error rate and latency percentiles from the exact aggregate.

Usage::

    import dbpulse
    dbpulse.summary()
    # {"total_operations": 1234, "error_count": 5, "error_rate": 0.004,
    #  "avg_duration": 0.012, "min_duration": 0.001, "max_duration": 0.234,
    #  "p50_duration": 0.008, "p95_duration": 0.045, "p99_duration": 0.123,
    #  "operations": [{"system": "sqlite", "operation": "INSERT", "table": "books", ...}, ...],
    #  "top_statements": [{"fingerprint": "3f2a...", "summary": "SELECT books", "calls": 900,
    #                      "total_duration": 1.9, "time_share": 0.61, "p95_duration": ...}, ...]}

The top level is the shape of the predecessor's ``GET /api/metrics/database`` (seconds);
``operations`` repeats it per system, namespace, operation and table, busiest (by total time)
first. ``top_statements`` lists the statement shapes (``db.query.fingerprint``) by total
time, up to ``DBPULSE_TOP_STATEMENTS`` (20): calls, errors, rows written, total, average,
maximum and p95 duration, and the share of all database time. Mount it read-only in a web
app with one line:

* FastAPI / Starlette (ASGI): ``app.mount("/api/metrics/database", dbpulse.summary_asgi)``
* Flask / Django / any WSGI app: serve ``dbpulse.summary_wsgi`` at a path (e.g. with
  ``werkzeug.middleware.dispatcher.DispatcherMiddleware``), or return ``dbpulse.summary()``
  as JSON from a view.

Counts, errors, sums, minimum and maximum are exact (every call, whatever the sampler). The
percentiles come from the ``db.client.operation.duration`` buckets (the semantic conventions'
0.001 … 10 s): the true percentile lies in the bucket the estimate falls in; the estimate
interpolates linearly inside it and is clamped to the observed minimum and maximum. That
costs nothing per call; the price is resolution (between 5 and 10 ms, say, the estimate can
be off by up to 5 ms).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from dbpulse.telemetry.limits import INSIGHTS
from dbpulse.telemetry.metrics import DURATION_BUCKETS, OPERATIONS, OperationMetrics

__all__ = ["percentile", "summary", "summary_asgi", "summary_wsgi", "top_statements"]

_QUANTILES = (("p50_duration", 0.50), ("p95_duration", 0.95), ("p99_duration", 0.99))


class _Totals:
    __slots__ = ("buckets", "count", "errors", "high", "low", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.count = 0
        self.errors = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")

    def add(
        self, counts: Iterable[int], total: float, low: float, high: float, error: bool
    ) -> None:
        n = 0
        for i, c in enumerate(counts):
            self.buckets[i] += c
            n += c
        self.count += n
        self.errors += n if error else 0
        self.total += total
        self.low = min(self.low, low)
        self.high = max(self.high, high)

    def shape(self) -> dict[str, Any]:
        if not self.count:
            return {"total_operations": 0, "error_count": 0, "error_rate": 0.0}
        found: dict[str, Any] = {
            "total_operations": self.count,
            "error_count": self.errors,
            "error_rate": self.errors / self.count,
            "avg_duration": self.total / self.count,
            "min_duration": self.low,
            "max_duration": self.high,
        }
        for name, q in _QUANTILES:
            found[name] = percentile(self.buckets, q, self.low, self.high)
        return found


def percentile(buckets: list[int], q: float, low: float, high: float) -> float:
    """The ``q`` quantile of a duration histogram with the aggregate's bucket bounds."""
    count = sum(buckets)
    rank = q * count
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            lower = DURATION_BUCKETS[i - 1] if i > 0 else 0.0
            upper = DURATION_BUCKETS[i] if i < len(DURATION_BUCKETS) else high
            lower, upper = max(lower, low), min(upper, high)
            return lower + (upper - lower) * ((rank - seen) / n)
        seen += n
    return high


def summary(operations: OperationMetrics | None = None) -> dict[str, Any]:
    """Totals and percentiles overall and per operation (see the module docstring)."""
    aggregate = operations or OPERATIONS
    overall = _Totals()
    groups: dict[tuple[str, str, str, str], _Totals] = {}
    for point in aggregate.histogram_points(time.time_ns()):
        attrs = point.attributes or {}
        error = "error.type" in attrs
        key = (
            str(attrs.get("db.system.name", "")),
            str(attrs.get("db.namespace", "")),
            str(attrs.get("db.operation.name", "")),
            str(attrs.get("db.collection.name", "")),
        )
        args = (point.bucket_counts, point.sum, point.min, point.max, error)
        overall.add(*args)
        groups.setdefault(key, _Totals()).add(*args)
    rows = []
    for (system, namespace, operation, table), totals in sorted(
        groups.items(), key=lambda item: -item[1].total
    ):
        row: dict[str, Any] = {"system": system, "operation": operation}
        if namespace:
            row["namespace"] = namespace
        if table:
            row["table"] = table
        row.update(totals.shape())
        rows.append(row)
    return {**overall.shape(), "operations": rows, "top_statements": top_statements(aggregate)}


def top_statements(
    operations: OperationMetrics | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Statement shapes by total time (exact, every call), the first ``limit`` (default
    ``DBPULSE_TOP_STATEMENTS``); shapes beyond the table's limit are one row, summary
    ``"(other statements)"``."""
    aggregate = operations or OPERATIONS
    ranked = aggregate.statements.ranked()
    everything = sum(s.total for s in ranked) or 1.0
    rows = []
    for stats in ranked[: limit if limit is not None else max(1, INSIGHTS.top_statements)]:
        calls = stats.calls
        rows.append(
            {
                "fingerprint": stats.fingerprint,
                "summary": stats.summary if stats.system else "(other statements)",
                "system": stats.system,
                "calls": calls,
                "errors": stats.errors,
                "rows": stats.rows,
                "total_duration": stats.total,
                "avg_duration": stats.total / calls if calls else 0.0,
                "max_duration": stats.max,
                "p95_duration": percentile(stats.counts, 0.95, 0.0, stats.max),
                "time_share": stats.total / everything,
            }
        )
    return rows


def _body() -> bytes:
    return json.dumps(summary()).encode()


def summary_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A read-only WSGI app answering every GET with :func:`summary` as JSON."""
    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
        return [b""]
    body = _body()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


async def summary_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A read-only ASGI app (mount it in FastAPI/Starlette) answering GET with the summary;
    a WebSocket handshake is refused (403), other methods get 405."""
    kind = scope.get("type")
    if kind == "lifespan":  # served on its own: nothing to start or stop
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind == "websocket":  # closing before accepting refuses the handshake
        await send({"type": "websocket.close", "code": 1008, "reason": "read-only HTTP endpoint"})
        return
    if kind != "http":
        return
    if scope.get("method", "GET") not in ("GET", "HEAD"):
        await send(
            {"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET, HEAD")]}
        )
        await send({"type": "http.response.body", "body": b""})
        return
    body = _body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send(
        {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body}
    )
