"""The checks ``dbpulse diagnose`` makes against each backend, and the fix it gives for each.

Every function takes the :class:`~dbpulse.faces.diagnose.Endpoints` and a deadline
(``time.monotonic()`` seconds), returns a one-line detail when the hop holds and raises
:class:`HopFailed` (what was seen, what to do) when it does not. Prometheus, the trace store and
the viz server are read with the read model's clients (:mod:`dbpulse.faces.prometheus`,
:mod:`~dbpulse.faces.traces`, :mod:`~dbpulse.faces.vizclient`), so ``diagnose``, ``top`` and the
MCP server see a backend the same way; the OTLP receiver and the collector's own endpoints,
which are not JSON APIs, with the standard library.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from dbpulse.faces.http import Unreachable
from dbpulse.faces.prometheus import PrometheusClient, Sample
from dbpulse.faces.synthetic import CHECKPOINTS, DIAGNOSE_TABLE
from dbpulse.faces.traces import open_trace_store
from dbpulse.faces.vizclient import VizClient

if TYPE_CHECKING:
    from dbpulse.faces.diagnose import Endpoints

__all__ = [
    "FIXES",
    "HopFailed",
    "collector",
    "http_get",
    "otlp_answers",
    "otlp_exporters",
    "poll",
    "prometheus_series",
    "trace_store_flow",
    "viz_event",
]

_T = TypeVar("_T")

#: The fix shown when a hop fails for want of an answer (``{e}``: the endpoints).
FIXES = {
    "otlp": "start the collector (docker compose up -d otel-collector) or point --otlp-endpoint "
    "/ OTEL_EXPORTER_OTLP_ENDPOINT at it: gRPC on 4317, HTTP on 4318 "
    "(--otlp-protocol / OTEL_EXPORTER_OTLP_PROTOCOL)",
    "collector": "is the collector running with collector/config.yaml? Its health_check "
    "extension listens on :13133 and its own metrics on :8888 (service.telemetry); "
    "--collector-health-url / --collector-metrics-url",
    "database": "dbpulse recorded nothing: is DBPULSE_ENABLED=false or OTEL_SDK_DISABLED=true?",
    "flow": "is Redis running there? --redis-url / DBPULSE_REDIS_URL",
    "export": "the OTLP endpoint answered but refused the telemetry: see the collector's log "
    "(memory_limiter refusing data?)",
    "prometheus": "Prometheus at {e.prometheus} does not answer: is it running? "
    "--prometheus-url / DBPULSE_PROMETHEUS_URL",
    "trace_store": "the trace store ({e.trace_store_kind}) at {e.trace_store} does not answer: "
    "is it running? --trace-store-url / DBPULSE_TRACE_STORE_URL, --trace-store-kind",
    "viz": "the viz server at {e.viz} does not answer: start it (dbpulse viz) or point --viz-url "
    "/ DBPULSE_VIZ_URL at it",
}
_NO_SERIES = (
    "Prometheus has no dbpulse series: is the collector's prometheus exporter scraped? "
    "see prometheus/prometheus.yml"
)
_NO_TRACE = (
    "the collector exports traces through otlp_grpc/tempo (TEMPO_OTLP_ENDPOINT in "
    "collector/config.yaml): does it reach this trace store? see the collector's log"
)
_NO_EVENT = (
    "the viz feed's write event did not arrive: are DBPULSE_VIZ_URL and DBPULSE_VIZ_TOKEN "
    "what the server expects? see docs/viz.md"
)


class HopFailed(Exception):
    """A hop's failure: what was seen, and what to do about it."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


def _remaining(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def http_get(
    url: str, timeout: float, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, bytes]:
    """``(status, body)`` of a GET (a POST with ``data``); an HTTP error status is returned,
    a connection failure raised (``OSError``)."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=max(0.1, timeout)) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def poll(check: Callable[[float], _T | None], deadline: float, interval: float = 0.5) -> _T | None:
    """``check(remaining_seconds)`` until it returns something or ``deadline`` passes."""
    while True:
        value = check(_remaining(deadline))
        if value is not None:
            return value
        if time.monotonic() + interval > deadline:
            return None
        time.sleep(interval)


def _reach(url: str, deadline: float, hop: str, e: Endpoints, **kw: Any) -> tuple[int, bytes]:
    try:
        return http_get(url, _remaining(deadline), **kw)
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        shown = url.split("?", 1)[0]  # the endpoint, not the query
        raise HopFailed(f"{shown}: {reason}", FIXES[hop].format(e=e)) from exc


# -- OTLP ------------------------------------------------------------------------------------


def _grpc_target(endpoint: str) -> tuple[str, bool]:
    parts = urllib.parse.urlsplit(endpoint)
    return parts.netloc or parts.path, parts.scheme == "https"


def otlp_exporters(e: Endpoints, timeout: float) -> tuple[Any, Any]:
    """The OTLP span and metric exporters for ``e.otlp`` and ``e.otlp_protocol``."""
    if e.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = not e.otlp.startswith("https://")
        return (
            OTLPSpanExporter(endpoint=e.otlp, insecure=insecure, timeout=timeout),
            OTLPMetricExporter(endpoint=e.otlp, insecure=insecure, timeout=timeout),
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HTTPMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    base = e.otlp.rstrip("/")
    return (
        HTTPSpanExporter(endpoint=f"{base}/v1/traces", timeout=timeout),
        HTTPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=timeout),
    )


def otlp_answers(e: Endpoints, deadline: float) -> str:
    """An empty trace export to the OTLP receiver: it must answer success."""
    if e.otlp_protocol != "grpc":
        url = e.otlp.rstrip("/") + "/v1/traces"
        headers = {"Content-Type": "application/x-protobuf"}
        status, _ = _reach(url, deadline, "otlp", e, headers=headers, data=b"")
        if status != 200:
            raise HopFailed(f"{url} answered HTTP {status}", FIXES["otlp"])
        return f"http/protobuf {url}"
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    target, secure = _grpc_target(e.otlp)
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials())
        if secure
        else grpc.insecure_channel(target)
    )
    try:
        TraceServiceStub(channel).Export(ExportTraceServiceRequest(), timeout=_remaining(deadline))
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else exc
        raise HopFailed(f"gRPC {target}: {code}", FIXES["otlp"]) from exc
    finally:
        channel.close()
    return f"grpc {target}"


# -- the collector ---------------------------------------------------------------------------


def _sum_metric(text: str, name: str) -> float | None:
    total = None
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ", "_"):
            try:
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
    return total


def collector(e: Endpoints, deadline: float) -> str:
    status, body = _reach(e.collector_health, deadline, "collector", e)
    if status != 200:
        detail = f"health_check {e.collector_health} answered HTTP {status}: {body[:80]!r}"
        raise HopFailed(detail, "the collector is up but not ready: see its log")
    status, body = _reach(e.collector_metrics, deadline, "collector", e)
    text = body.decode("utf-8", "replace")
    if status != 200 or "otelcol_" not in text:
        raise HopFailed(
            f"{e.collector_metrics} answered HTTP {status} without otelcol_ metrics",
            "service.telemetry.metrics in collector/config.yaml serves them: is it changed?",
        )
    accepted = _sum_metric(text, "otelcol_receiver_accepted_spans")
    refused = _sum_metric(text, "otelcol_receiver_refused_spans")
    return f"healthy; otelcol_receiver_accepted_spans={accepted or 0:g}, refused={refused or 0:g}"


# -- Prometheus, the trace store, the viz server: the read model's clients ------------------


@contextmanager
def _answers(hop: str, e: Endpoints) -> Iterator[None]:
    """A read model client's :class:`Unreachable` as the hop's failure, with its fix."""
    try:
        yield
    except Unreachable as exc:
        raise HopFailed(str(exc), FIXES[hop].format(e=e)) from None


def _promql(e: Endpoints, query: str, deadline: float) -> list[Sample]:
    client = PrometheusClient(e.prometheus, _remaining(deadline))
    try:
        with _answers("prometheus", e):
            return client.query(query)
    finally:
        client.close()


def prometheus_series(e: Endpoints, marker: str, with_flow: bool, deadline: float) -> str:
    """The marker's database series (and flow series when the flow ran) in Prometheus."""
    queries = [f'db_client_operation_duration_seconds_count{{service_instance_id="{marker}"}}']
    if with_flow:
        queries.append(f'dbpulse_flow_checkpoints_total{{service_instance_id="{marker}"}}')
    missing = list(queries)

    def check(_: float) -> bool | None:
        for query in list(missing):
            if _promql(e, query, deadline):
                missing.remove(query)
        return True if not missing else None

    if poll(check, deadline, interval=1.0) is None:
        up = _promql(e, 'up{job="otel-collector-exporter"}', deadline)
        scraped = ", ".join(f"{s.labels.get('instance')}={s.value:g}" for s in up)
        raise HopFailed(
            f"no series for {' and '.join(missing)} (exporter scrape up: {scraped or 'none'})",
            _NO_SERIES,
        )
    return f"{len(queries)} series kinds for service_instance_id={marker}"


def trace_store_flow(e: Endpoints, flow_id: str, deadline: float) -> str:
    """The flow's trace (trace id = flow id) with all four checkpoints."""
    trace_id = flow_id.replace("-", "").lower()
    store = open_trace_store(e.trace_store, e.trace_store_kind, _remaining(deadline))
    seen: set[str] = set()

    def check(_: float) -> set[str] | None:
        with _answers("trace_store", e):
            trace = store.get_trace(trace_id)
        if trace is not None:
            found = (span.attributes.get("flow.checkpoint") for span in trace.spans)
            seen.update(c for c in found if isinstance(c, str))
        return seen if set(CHECKPOINTS) <= seen else None

    try:
        if poll(check, deadline, interval=0.5) is None:
            detail = f"flow {flow_id} " + (
                f"has only {sorted(seen)}" if seen else "not found by its id"
            )
            raise HopFailed(detail, _NO_TRACE)
    finally:
        store.close()
    return f"trace {trace_id}: {', '.join(CHECKPOINTS)}"


def viz_event(e: Endpoints, trace_id: str, deadline: float) -> str:
    """The synthetic write's event in the viz server's ring buffer (``/api/viz/recent``)."""
    viz = VizClient(e.viz, e.viz_token, _remaining(deadline))

    def check(_: float) -> dict[str, Any] | None:
        try:
            events = viz.recent(limit=500, table=DIAGNOSE_TABLE)
        except Unreachable as exc:
            if exc.reason.startswith("HTTP 401"):
                raise HopFailed(
                    "the viz server refused the token",
                    "pass the server's --viz-token / DBPULSE_VIZ_TOKEN",
                ) from None
            raise HopFailed(str(exc), FIXES["viz"].format(e=e)) from None
        return next((ev for ev in events if ev.get("trace_id") == trace_id), None)

    try:
        event = poll(check, deadline, interval=0.3)
    finally:
        viz.close()
    if event is None:
        raise HopFailed(f"no {DIAGNOSE_TABLE} event with trace {trace_id}", _NO_EVENT)
    return f"{event.get('operation')} {DIAGNOSE_TABLE} (seq {event.get('seq')})"
