"""Database activity, liveness and statistics from Prometheus, on the metric names dbpulse
exports (the same ones ``grafana/gen`` queries).

Counts over a window are exact: ``counter - (counter offset W, or 0 for a series younger than
W)``, clamped at 0, instead of ``increase()``, whose extrapolation turns 7 calls into 7.4 and
misses a series' first sample. Quantiles come from the buckets' counts over the window the
same way. Usage::

    from dbpulse.faces.activity import activity
    from dbpulse.faces.prometheus import PrometheusClient

    now = activity(PrometheusClient("http://127.0.0.1:9090"), window="5m", service="books.*")
    print(now.calls, now.error_rate, [(o.operation, o.table, o.calls) for o in now.operations])
"""

from __future__ import annotations

import re
import time

from dbpulse.faces.model import (
    Activity,
    ErrorCount,
    Heartbeat,
    Liveness,
    OperationActivity,
    Subscription,
)
from dbpulse.faces.prometheus import PrometheusClient, Sample

__all__ = [
    "OPERATIONS",
    "WINDOW",
    "activity",
    "check_window",
    "counted",
    "liveness",
    "matcher",
    "quantiles",
]

OPERATIONS = "db_client_operation_duration_seconds"
WRITES = "dbpulse_db_writes_total"
ISBN_WRITES = "dbpulse_db_isbn_writes_total"
CACHE = "dbpulse_cache_requests_total"
SAMPLER_MODE = "dbpulse_sampler_mode"
HEARTBEAT = "dbpulse_heartbeat_timestamp_seconds"
SUBSCRIPTION = "dbpulse_subscription_active"
KEY = "db_system_name, db_operation_name, db_collection_name"
WINDOW = re.compile(r"^[1-9][0-9]{0,5}[smhdw]$")


def check_window(window: str) -> str:
    """``window`` if it is a Prometheus duration such as ``5m`` or ``24h``, else ValueError."""
    if not WINDOW.match(window):
        raise ValueError(f"window {window!r}: expected a duration such as 30s, 5m, 1h, 7d")
    return window


def matcher(service: str | None = None, *extra: str) -> str:
    """Label matchers: ``service_name=~"<service>"`` (anchored regex) and ``extra``."""
    parts = list(extra)
    if service:
        escaped = service.replace("\\", "\\\\").replace('"', '\\"')
        parts.insert(0, f'service_name=~"{escaped}"')
    return ", ".join(parts)


def counted(metric: str, labels: str, by: str, window: str) -> str:
    """PromQL: the exact increase of counter ``metric{labels}`` over ``window``, summed ``by``."""
    series = f"{metric}{{{labels}}}"
    return (
        f"sum by ({by}) (clamp_min({series} - (({series} offset {window}) + 0 or {series} * 0), 0))"
    )


def quantiles(metric: str, labels: str, by: str, window: str) -> dict[float, str]:
    """PromQL of p50/p95/p99 of histogram ``metric`` over ``window``, ``by`` labels."""
    buckets = counted(f"{metric}_bucket", labels, f"le, {by}" if by else "le", window)
    return {q: f"histogram_quantile({q}, {buckets})" for q in (0.5, 0.95, 0.99)}


def _key(sample: Sample) -> tuple[str | None, str, str | None]:
    labels = sample.labels
    return (
        labels.get("db_system_name") or None,
        labels.get("db_operation_name") or "?",
        labels.get("db_collection_name") or None,
    )


def _ms(value: float) -> float | None:
    return round(value * 1000, 3) if value == value else None


def activity(
    prometheus: PrometheusClient, window: str = "5m", service: str | None = None
) -> Activity:
    """Activity over ``window`` for the services matching ``service`` (all when None)."""
    check_window(window)
    labels = matcher(service)
    failed = matcher(service, 'error_type!=""')
    rows: dict[tuple[str | None, str, str | None], OperationActivity] = {}

    def row(sample: Sample) -> OperationActivity:
        key = _key(sample)
        if key not in rows:
            rows[key] = OperationActivity(*key)
        return rows[key]

    query = prometheus.query
    for sample in query(counted(f"{OPERATIONS}_count", labels, KEY, window)):
        if round(sample.value):
            row(sample).calls = round(sample.value)
    for sample in query(counted(f"{OPERATIONS}_count", failed, KEY, window)):
        if round(sample.value):
            row(sample).errors = round(sample.value)
    for sample in query(counted(f"{OPERATIONS}_sum", labels, KEY, window)):
        if sample.value and _key(sample) in rows:
            row(sample).total_time_s = sample.value
    for sample in query(f"sum by ({KEY}) (rate({OPERATIONS}_count{{{labels}}}[1m]))"):
        if _key(sample) in rows:
            row(sample).ops_per_s = sample.value
    for sample in query(counted(WRITES, labels, KEY, window)):
        if round(sample.value):
            row(sample).rows_written = round(sample.value)
    for q, promql in quantiles(OPERATIONS, labels, KEY, window).items():
        for sample in query(promql):
            if _key(sample) in rows:
                setattr(row(sample), f"p{round(q * 100)}_ms", _ms(sample.value))
    found = Activity(window=window, operations=sorted(rows.values(), key=lambda r: -r.calls))
    found.calls = sum(r.calls for r in rows.values())
    found.errors = sum(r.errors for r in rows.values())
    found.error_rate = found.errors / found.calls if found.calls else None
    found.ops_per_s = sum(r.ops_per_s for r in rows.values())
    found.rows_written = sum(r.rows_written for r in rows.values())
    for q, promql in quantiles(OPERATIONS, labels, "", window).items():
        for sample in query(promql):
            setattr(found, f"p{round(q * 100)}_ms", _ms(sample.value))
    for sample in query(
        counted(f"{OPERATIONS}_count", failed, "db_system_name, error_type", window)
    ):
        if round(sample.value):
            found.errors_by_type.append(
                ErrorCount(
                    sample.labels.get("db_system_name"),
                    sample.labels.get("error_type", "?"),
                    round(sample.value),
                )
            )
    cache = {
        s.labels.get("dbpulse_cache_result", "?"): s.value
        for s in query(counted(CACHE, labels, "dbpulse_cache_result", window))
    }
    found.cache_requests = round(sum(cache.values()))
    if found.cache_requests:
        found.cache_hit_ratio = cache.get("hit", 0.0) / sum(cache.values())
    found.sampling = sampling(prometheus, service)
    return found


def sampling(prometheus: PrometheusClient, service: str | None = None) -> dict[str, str]:
    """The adaptive sampler's current mode per service (detailed, sampled, aggregated)."""
    promql = f"max by (service_name, {SAMPLER_MODE}) ({SAMPLER_MODE}{{{matcher(service)}}}) == 1"
    return {
        s.labels.get("service_name", "?"): s.labels.get(SAMPLER_MODE, "?")
        for s in prometheus.query(promql)
    }


def liveness(prometheus: PrometheusClient, service: str | None = None) -> Liveness:
    """Heartbeats (age of the last beat) and subscription states, per service."""
    now = time.time()
    labels = matcher(service)
    beats = [
        Heartbeat(
            s.labels.get("service_name"),
            s.labels.get("dbpulse_component"),
            s.value,
            round(max(0.0, now - s.value), 1),
        )
        for s in prometheus.query(
            f"max by (service_name, dbpulse_component) ({HEARTBEAT}{{{labels}}})"
        )
    ]
    subscriptions = [
        Subscription(
            s.labels.get("service_name"),
            s.labels.get("messaging_destination_name"),
            s.value >= 1,
        )
        for s in prometheus.query(
            f"max by (service_name, messaging_destination_name) ({SUBSCRIPTION}{{{labels}}})"
        )
    ]
    return Liveness(
        sorted(beats, key=lambda b: (b.service or "", b.component or "")),
        sorted(subscriptions, key=lambda s: (s.service or "", s.channel or "")),
    )


def top_isbns(
    prometheus: PrometheusClient, window: str, service: str | None = None, n: int = 10
) -> list[tuple[str, int]]:
    """The ``n`` most-written ISBNs over ``window``."""
    labels = matcher(service, 'book_isbn!=""')
    promql = f"topk({n}, {counted(ISBN_WRITES, labels, 'book_isbn', window)})"
    found = [(s.labels.get("book_isbn", "?"), round(s.value)) for s in prometheus.query(promql)]
    return sorted((f for f in found if f[1]), key=lambda f: (-f[1], f[0]))
