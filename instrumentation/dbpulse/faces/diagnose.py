"""``dbpulse diagnose``: prove each hop of the pipeline with synthetic traffic.

Usage (``dbpulse diagnose`` in :mod:`dbpulse.cli.diagnose` does this)::

    from dbpulse.faces.diagnose import Diagnosis, Endpoints

    report = Diagnosis(Endpoints.from_env(), setup, timeout=15).run()
    print(report.text()); raise SystemExit(report.exit_code)

``setup(resource, span_exporter, metric_exporter, endpoints)`` builds the global SDK
providers with dbpulse (``dbpulse.configure`` + ``instrument``) and returns an object with
``force_flush`` and ``shutdown``; this room may not import :mod:`dbpulse.setup` itself.

The hops, in order (:data:`HOPS`): the OTLP endpoint answers an empty export; the collector's
health_check and its own metrics answer; a synthetic SQLite write and a synthetic pattern flow
(a real Redis pub/sub round trip through :mod:`dbpulse.flow`) run under a resource whose
``service.instance.id`` is a unique marker; the telemetry is force-flushed and accepted; the
marker's series appear in Prometheus; the flow is in the trace store by its flow id with its four
checkpoints; the viz server received the write event. Each hop has its own time limit (a thread
that does not finish in time is a failure: the diagnosis never hangs); a hop whose inputs
failed is skipped.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource

from dbpulse.faces import probes
from dbpulse.faces.config import TRACE_STORE_KINDS
from dbpulse.faces.config import Endpoints as ReadEndpoints
from dbpulse.faces.probes import HopFailed
from dbpulse.faces.synthetic import (
    DIAGNOSE_TABLE,
    RecordingMetricExporter,
    RecordingSpanExporter,
    Traffic,
)

__all__ = ["HOPS", "Diagnosis", "Endpoints", "HopFailed", "HopResult", "Report"]

_OTLP_DEFAULT = {"grpc": "http://127.0.0.1:4317", "http/protobuf": "http://127.0.0.1:4318"}
_READ = ReadEndpoints()  # the read model's defaults (dbpulse top, dbpulse mcp) are these too
_JAEGER_DEFAULT = "http://127.0.0.1:16686"


@dataclass
class Endpoints:
    """Where each hop is, from flags, then env vars, then the compose defaults (docs/stack.md);
    Prometheus, the trace store and the viz server have the read model's defaults and
    variables (:class:`dbpulse.faces.Endpoints`)."""

    otlp: str = ""
    otlp_protocol: str = "grpc"
    collector_health: str = "http://127.0.0.1:13133/"
    collector_metrics: str = "http://127.0.0.1:8888/metrics"
    prometheus: str = _READ.prometheus_url
    trace_store: str = ""
    trace_store_kind: str = _READ.trace_store_kind
    viz: str = _READ.viz_url
    viz_token: str | None = None
    redis: str = "redis://127.0.0.1:6379/0"

    #: field → environment variable it is read from.
    ENV = {
        "otlp": "OTEL_EXPORTER_OTLP_ENDPOINT",
        "otlp_protocol": "OTEL_EXPORTER_OTLP_PROTOCOL",
        "collector_health": "DBPULSE_COLLECTOR_HEALTH_URL",
        "collector_metrics": "DBPULSE_COLLECTOR_METRICS_URL",
        "prometheus": "DBPULSE_PROMETHEUS_URL",
        "trace_store": "DBPULSE_TRACE_STORE_URL",
        "trace_store_kind": "DBPULSE_TRACE_STORE_KIND",
        "viz": "DBPULSE_VIZ_URL",
        "viz_token": "DBPULSE_VIZ_TOKEN",
        "redis": "DBPULSE_REDIS_URL",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Endpoints:
        """``overrides`` (flags; ``None`` means not given), then ``env``, then the defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for item in fields(cls):
            given = overrides.get(item.name)
            text = given if given is not None else env.get(cls.ENV[item.name], "").strip()
            if text:
                values[item.name] = text
        endpoints = cls(**values)
        endpoints.otlp_protocol = endpoints.otlp_protocol.lower()
        if endpoints.otlp_protocol not in _OTLP_DEFAULT:
            raise ValueError(
                f"OTLP protocol {endpoints.otlp_protocol!r}: use grpc or http/protobuf"
            )
        endpoints.trace_store_kind = endpoints.trace_store_kind.lower()
        if endpoints.trace_store_kind not in TRACE_STORE_KINDS:
            raise ValueError(
                f"trace store kind {endpoints.trace_store_kind!r}: use one of "
                + ", ".join(TRACE_STORE_KINDS)
            )
        endpoints.otlp = endpoints.otlp or _OTLP_DEFAULT[endpoints.otlp_protocol]
        if "://" not in endpoints.otlp:
            endpoints.otlp = "http://" + endpoints.otlp
        endpoints.trace_store = endpoints.trace_store or (
            _JAEGER_DEFAULT if endpoints.trace_store_kind == "jaeger" else _READ.trace_store_url
        )
        return endpoints

    def shown(self) -> dict[str, Any]:
        """The endpoints without the token."""
        values = asdict(self)
        values["viz_token"] = "(set)" if self.viz_token else None
        values["redis"] = _safe(self.redis)
        return values


@dataclass(frozen=True)
class HopSpec:
    name: str
    title: str
    needs: tuple[str, ...] = ()


HOPS: tuple[HopSpec, ...] = (
    HopSpec("otlp", "OTLP endpoint answers"),
    HopSpec("collector", "collector health and own metrics"),
    HopSpec("database", "synthetic SQLite write recorded"),
    HopSpec("flow", "synthetic flow over Redis pub/sub"),
    HopSpec("export", "telemetry accepted over OTLP", ("otlp",)),
    HopSpec("prometheus", "series in Prometheus", ("export", "database")),
    HopSpec("trace_store", "flow in the trace store", ("export", "flow")),
    HopSpec("viz", "write event at the viz server", ("database",)),
)


@dataclass
class HopResult:
    name: str
    title: str
    status: str  # "ok", "fail" or "skipped"
    seconds: float
    detail: str
    fix: str | None = None

    def line(self) -> str:
        mark = {"ok": "✔", "fail": "✘", "skipped": "-"}[self.status]
        text = f"{mark} {self.name:<12}{self.seconds:6.2f} s  {self.title}: {self.detail}"
        return f"{text}  → fix: {self.fix}" if self.fix else text


@dataclass
class Report:
    marker: str
    endpoints: Endpoints
    hops: list[HopResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(hop.status == "ok" for hop in self.hops)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def failed(self) -> list[str]:
        return [hop.name for hop in self.hops if hop.status == "fail"]

    def text(self) -> str:
        head = f"dbpulse diagnose (marker service.instance.id={self.marker})"
        failed = self.failed()
        tail = "all hops passed" if self.ok else f"failed: {', '.join(failed) or 'none'}"
        return "\n".join([head, *(hop.line() for hop in self.hops), tail])

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "marker": self.marker,
            "endpoints": self.endpoints.shown(),
            "hops": [asdict(hop) for hop in self.hops],
        }

    def json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


Setup = Callable[[Resource, Any, Any, Endpoints], Any]


class Diagnosis:
    """One run of the hops against ``endpoints``; ``timeout`` seconds at most per hop."""

    def __init__(self, endpoints: Endpoints, setup: Setup, timeout: float = 15.0) -> None:
        self.endpoints = endpoints
        self.setup = setup
        self.timeout = timeout
        self.marker = f"diagnose-{uuid.uuid4().hex[:12]}"
        self.workdir = Path(tempfile.mkdtemp(prefix="dbpulse-diagnose-"))
        self.results: dict[str, HopResult] = {}
        self.telemetry: Any = None
        self.spans: RecordingSpanExporter | None = None
        self.metrics: RecordingMetricExporter | None = None
        self.traffic: Traffic | None = None
        self.write_trace_id: str | None = None
        self.flow_id: str | None = None

    # -- running -----------------------------------------------------------------------------

    def run(self) -> Report:
        report = Report(self.marker, self.endpoints)
        try:
            for spec in HOPS:
                result = self._run_hop(spec)
                self.results[spec.name] = result
                report.hops.append(result)
        finally:
            self._shutdown()
        return report

    def _run_hop(self, spec: HopSpec) -> HopResult:
        missing = [n for n in spec.needs if self.results[n].status != "ok"]
        if missing:
            return HopResult(spec.name, spec.title, "skipped", 0.0, f"needs {', '.join(missing)}")
        hop: Callable[[float], str] = getattr(self, f"_hop_{spec.name}")
        box: dict[str, Any] = {}
        started = time.monotonic()
        deadline = started + self.timeout

        def target() -> None:
            try:
                box["detail"] = hop(deadline)
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"diagnose-{spec.name}", daemon=True)
        thread.start()
        thread.join(self.timeout + 1.0)
        seconds = round(time.monotonic() - started, 3)
        if thread.is_alive():
            fix = probes.FIXES[spec.name].format(e=self.endpoints)
            detail = f"no answer within {self.timeout:g} s"
            return HopResult(spec.name, spec.title, "fail", seconds, detail, fix)
        error = box.get("error")
        if isinstance(error, HopFailed):
            return HopResult(spec.name, spec.title, "fail", seconds, error.detail, error.fix)
        if error is not None:
            fix = probes.FIXES[spec.name].format(e=self.endpoints)
            detail = f"{type(error).__name__}: {error}"
            return HopResult(spec.name, spec.title, "fail", seconds, detail, fix)
        return HopResult(spec.name, spec.title, "ok", seconds, str(box.get("detail", "")))

    def _pipeline(self, deadline: float) -> Traffic:
        """The SDK pipeline of the synthetic traffic, built once (exporters offline when the
        OTLP hop failed, so nothing retries against a dead endpoint)."""
        if self.traffic is not None:
            return self.traffic
        online = self.results["otlp"].status == "ok"
        span_exporter, metric_exporter = probes.otlp_exporters(self.endpoints, self.timeout)
        self.spans = RecordingSpanExporter(span_exporter, online)
        self.metrics = RecordingMetricExporter(metric_exporter, online)
        resource = Resource.create(
            {"service.name": "dbpulse-diagnose", "service.instance.id": self.marker}
        )
        self.telemetry = self.setup(resource, self.spans, self.metrics, self.endpoints)
        self.traffic = Traffic(self.marker, self.spans)
        return self.traffic

    def _flush(self, deadline: float) -> None:
        if self.telemetry is not None:
            millis = int(max(0.1, deadline - time.monotonic()) * 1000)
            self.telemetry.force_flush(millis)

    def _shutdown(self) -> None:
        if self.telemetry is None:
            return
        thread = threading.Thread(target=self.telemetry.shutdown, daemon=True)
        thread.start()
        thread.join(min(self.timeout, 5.0))

    # -- the hops ----------------------------------------------------------------------------

    def _hop_otlp(self, deadline: float) -> str:
        return probes.otlp_answers(self.endpoints, deadline)

    def _hop_collector(self, deadline: float) -> str:
        return probes.collector(self.endpoints, deadline)

    def _hop_database(self, deadline: float) -> str:
        traffic = self._pipeline(deadline)
        self.write_trace_id = traffic.sqlite_write(self.workdir)
        self._flush(deadline)
        writes = traffic.writes_recorded(self.write_trace_id)
        if not writes:
            raise HopFailed(
                "the INSERT left no span",
                "dbpulse recorded nothing: is DBPULSE_ENABLED=false or OTEL_SDK_DISABLED=true?",
            )
        return f"INSERT {DIAGNOSE_TABLE} (trace {self.write_trace_id})"

    def _hop_flow(self, deadline: float) -> str:
        traffic = self._pipeline(deadline)
        remaining = max(0.5, deadline - time.monotonic() - 0.5)
        try:
            self.flow_id = traffic.redis_flow(self.endpoints.redis, remaining)
        except ImportError as exc:
            raise HopFailed(f"no Redis client ({exc})", "pip install 'dbpulse[redis]'") from exc
        except Exception as exc:
            raise HopFailed(
                f"Redis at {_safe(self.endpoints.redis)}: {type(exc).__name__}: {exc}",
                probes.FIXES["flow"].format(e=self.endpoints),
            ) from exc
        self._flush(deadline)
        reached = traffic.checkpoints_recorded(self.flow_id)
        if len(reached) < 4:
            raise HopFailed(
                f"flow {self.flow_id} reached only {sorted(reached)}",
                "the consumer side of dbpulse.flow recorded no span: see docs/flows.md",
            )
        return f"flow {self.flow_id}: 4 checkpoints"

    def _hop_export(self, deadline: float) -> str:
        ran = [n for n in ("database", "flow") if self.results[n].status == "ok"]
        if not ran or self.spans is None or self.metrics is None:
            raise HopFailed("no synthetic traffic to export", "see the database and flow hops")
        self._flush(deadline)
        spans, metrics = self.spans, self.metrics
        if spans.refused or not spans.accepted or not metrics.accepted:
            reason = spans.error or f"{spans.refused} spans and {metrics.refused} metric exports"
            raise HopFailed(f"refused: {reason}", probes.FIXES["export"].format(e=self.endpoints))
        return f"{spans.accepted} spans, {metrics.accepted} metric exports to {self.endpoints.otlp}"

    def _hop_prometheus(self, deadline: float) -> str:
        with_flow = self.results["flow"].status == "ok"
        return probes.prometheus_series(self.endpoints, self.marker, with_flow, deadline)

    def _hop_trace_store(self, deadline: float) -> str:
        assert self.flow_id is not None
        return probes.trace_store_flow(self.endpoints, self.flow_id, deadline)

    def _hop_viz(self, deadline: float) -> str:
        assert self.write_trace_id is not None
        return probes.viz_event(self.endpoints, self.write_trace_id, deadline)


def _safe(url: str) -> str:
    """``url`` without a password."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        netloc += f":{parts.port}" if parts.port else ""
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
