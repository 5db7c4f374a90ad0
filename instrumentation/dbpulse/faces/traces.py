"""The trace store's HTTP API: one small client per backend, the same answers from both.

Usage::

    from dbpulse.faces.traces import open_trace_store

    store = open_trace_store("http://127.0.0.1:16686", kind="auto")   # jaeger | tempo | auto
    trace = store.get_trace("8f0c...32 hex digits")                    # Trace or None
    for trace in store.flow_traces(lookback_s=3600, limit=20):         # newest first
        print(trace.trace_id, [span.name for span in trace.spans])

* :class:`JaegerClient`: ``/api/services``, ``/api/traces?service=...&tags=...`` and
  ``/api/traces/{id}`` (the tests' trace store, Jaeger v2).
* :class:`TempoClient`: ``/api/search?q=<TraceQL>`` and ``/api/traces/{id}`` (OTLP JSON; what
  compose runs).
* ``kind="auto"`` asks ``/api/echo`` once (Tempo answers ``echo``) and uses Jaeger otherwise.

A pattern flow's trace is found by its ``PATTERN_PUBLISHED`` span (``flow.checkpoint``).
Failures are :class:`~dbpulse.faces.http.Unreachable`.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dbpulse.faces.http import JsonSource

__all__ = [
    "JaegerClient",
    "TempoClient",
    "Trace",
    "TraceSpan",
    "TraceStore",
    "open_trace_store",
    "otlp_spans",
]

PUBLISHED = "PATTERN_PUBLISHED"
#: Services searched at most (Jaeger's search needs one service per request).
MAX_SERVICES = 50
_KINDS = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}


@dataclass(frozen=True)
class TraceSpan:
    """One span as the read model needs it (times in unix seconds)."""

    trace_id: str
    span_id: str
    name: str
    service: str | None
    start: float
    duration_ms: float
    kind: str = "unspecified"
    error: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: tuple[TraceSpan, ...]


class TraceStore(Protocol):
    name: str

    @property
    def url(self) -> str: ...

    def get_trace(self, trace_id: str) -> Trace | None: ...

    def flow_traces(self, lookback_s: float, limit: int) -> list[Trace]: ...

    def close(self) -> None: ...


def _hex_id(value: Any, width: int) -> str:
    text = str(value or "")
    if len(text) == width and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        return base64.b64decode(text).hex().rjust(width, "0")
    except (binascii.Error, ValueError):
        return text.lower().rjust(width, "0")


def _otlp_value(value: Mapping[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _otlp_attributes(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {a["key"]: _otlp_value(a.get("value", {})) for a in items}


def otlp_spans(trace: Mapping[str, Any]) -> list[TraceSpan]:
    """The spans of an OTLP JSON trace (``resourceSpans`` or Tempo's ``batches``)."""
    spans: list[TraceSpan] = []
    for resource_spans in trace.get("resourceSpans", trace.get("batches", [])) or []:
        resource = _otlp_attributes(resource_spans.get("resource", {}).get("attributes", []))
        service = resource.get("service.name")
        scopes = resource_spans.get("scopeSpans", resource_spans.get("instrumentationLibrarySpans"))
        for scope in scopes or []:
            for span in scope.get("spans", []):
                start = int(span.get("startTimeUnixNano", 0))
                end = int(span.get("endTimeUnixNano", start))
                raw_kind = span.get("kind", 0)
                kind = (
                    _KINDS.get(raw_kind, "unspecified")
                    if isinstance(raw_kind, int)
                    else str(raw_kind).removeprefix("SPAN_KIND_").lower()
                )
                status = span.get("status", {}).get("code", 0)
                spans.append(
                    TraceSpan(
                        trace_id=_hex_id(span.get("traceId"), 32),
                        span_id=_hex_id(span.get("spanId"), 16),
                        name=span.get("name", ""),
                        service=service,
                        start=start / 1e9,
                        duration_ms=(end - start) / 1e6,
                        kind=kind,
                        error=status in (2, "STATUS_CODE_ERROR"),
                        attributes=_otlp_attributes(span.get("attributes", [])),
                    )
                )
    return spans


def _jaeger_spans(trace: Mapping[str, Any]) -> list[TraceSpan]:
    processes = trace.get("processes", {})
    spans: list[TraceSpan] = []
    for span in trace.get("spans", []):
        tags = {t["key"]: t.get("value") for t in span.get("tags", [])}
        kind = str(tags.pop("span.kind", "unspecified"))
        status = str(tags.pop("otel.status_code", "")).upper()
        spans.append(
            TraceSpan(
                trace_id=_hex_id(span.get("traceID"), 32),
                span_id=_hex_id(span.get("spanID"), 16),
                name=span.get("operationName", ""),
                service=processes.get(span.get("processID"), {}).get("serviceName"),
                start=int(span.get("startTime", 0)) / 1e6,
                duration_ms=int(span.get("duration", 0)) / 1e3,
                kind=kind,
                error=status == "ERROR" or tags.pop("error", False) is True,
                attributes=tags,
            )
        )
    return spans


class _StoreClient:
    """What both clients share: one JSON source named after the store."""

    name = "trace store"

    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        self.source = JsonSource(f"trace store ({self.name})", url, timeout_s)

    @property
    def url(self) -> str:
        return self.source.url

    def close(self) -> None:
        self.source.close()


class JaegerClient(_StoreClient):
    """Jaeger's query API (v1 JSON)."""

    name = "Jaeger"

    def get_trace(self, trace_id: str) -> Trace | None:
        payload = self.source.get(f"/api/traces/{trace_id}", allow=(404,))
        data = (payload or {}).get("data") or []
        if not data:
            return None
        return Trace(trace_id, tuple(_jaeger_spans(data[0])))

    def services(self) -> list[str]:
        payload = self.source.get("/api/services")
        return sorted(payload.get("data") or [])[:MAX_SERVICES]

    def flow_traces(self, lookback_s: float, limit: int) -> list[Trace]:
        now_us = int(time.time() * 1e6)
        found: dict[str, Trace] = {}
        for service in self.services():
            payload = self.source.get(
                "/api/traces",
                {
                    "service": service,
                    "tags": json.dumps({"flow.checkpoint": PUBLISHED}),
                    "start": now_us - int(lookback_s * 1e6),
                    "end": now_us + 60_000_000,
                    "limit": limit,
                },
            )
            for item in payload.get("data") or []:
                trace_id = _hex_id(item.get("traceID"), 32)
                found.setdefault(trace_id, Trace(trace_id, tuple(_jaeger_spans(item))))
        return _newest(found.values(), limit)


class TempoClient(_StoreClient):
    """Tempo's HTTP API: TraceQL search, then each trace by id (OTLP JSON)."""

    name = "Tempo"

    def get_trace(self, trace_id: str) -> Trace | None:
        payload = self.source.get(f"/api/traces/{trace_id}", allow=(404,))
        if not payload:
            return None
        spans = otlp_spans(payload.get("trace", payload))
        return Trace(trace_id, tuple(spans)) if spans else None

    def flow_traces(self, lookback_s: float, limit: int) -> list[Trace]:
        now = int(time.time())
        payload = self.source.get(
            "/api/search",
            {
                "q": f'{{ span.flow.checkpoint = "{PUBLISHED}" }}',
                "limit": limit,
                "start": now - int(lookback_s),
                "end": now + 60,
            },
        )
        traces = []
        for item in (payload.get("traces") or [])[:limit]:
            trace = self.get_trace(_hex_id(item.get("traceID"), 32))
            if trace is not None:
                traces.append(trace)
        return _newest(traces, limit)


def _newest(traces: Iterable[Trace], limit: int) -> list[Trace]:
    def started(trace: Trace) -> float:
        return min((s.start for s in trace.spans), default=0.0)

    return sorted(traces, key=started, reverse=True)[:limit]


class _AutoTraceStore:
    """Tempo when ``/api/echo`` says ``echo``, else Jaeger; decided on first use."""

    name = "trace store"

    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._backend: TraceStore | None = None

    @property
    def url(self) -> str:
        return self._url

    def backend(self) -> TraceStore:
        if self._backend is None:
            probe = JsonSource("trace store", self._url, self._timeout_s)
            try:
                status, body = probe.text("/api/echo")
            finally:
                probe.close()
            is_tempo = status == 200 and body.strip() == "echo"
            self._backend = (TempoClient if is_tempo else JaegerClient)(self._url, self._timeout_s)
        return self._backend

    def get_trace(self, trace_id: str) -> Trace | None:
        return self.backend().get_trace(trace_id)

    def flow_traces(self, lookback_s: float, limit: int) -> list[Trace]:
        return self.backend().flow_traces(lookback_s, limit)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


def open_trace_store(url: str, kind: str = "auto", timeout_s: float = 3.0) -> TraceStore:
    """The client for ``kind`` (``jaeger``, ``tempo`` or ``auto``) at ``url``."""
    if kind == "jaeger":
        return JaegerClient(url, timeout_s)
    if kind == "tempo":
        return TempoClient(url, timeout_s)
    if kind == "auto":
        return _AutoTraceStore(url, timeout_s)
    raise ValueError(f"trace store kind {kind!r}: use jaeger, tempo or auto")
