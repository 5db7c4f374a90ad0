"""Run the real telemetry backends (collector, Prometheus, a trace store) for tests.

The stack starts the binaries that ``scripts/services.sh`` builds or installs, each on free
loopback ports with a temporary data directory. The collector and Prometheus run the same config
files docker-compose.yml mounts; only addresses and paths differ, and only through what each
config already reads:

* ``collector/config.yaml`` reads ``${env:...}`` variables; the stack sets them
  (:meth:`OtelStack.collector_env`), pointing the exporter that compose aims at Tempo at the
  stack's trace store.
* ``prometheus/prometheus.yml`` cannot read the environment (Prometheus 2.42), so the stack
  writes a copy whose ``static_configs`` targets point at the collector's loopback ports;
  nothing else in the file changes (:func:`prometheus_config_for`).

The trace store is Jaeger v2 (``tests/harness/jaeger.yaml``, built by
``scripts/build-jaeger.sh``), not the Tempo that compose runs: Tempo's Go module is AGPL and may
not be built on this project's machines (docs/stack.md). :meth:`OtelStack.get_trace` returns
OTLP JSON as Tempo's ``/api/v2/traces`` does, and :meth:`OtelStack.search_traceql` answers the
TraceQL subset the dashboards and tests use by a Jaeger tag search (:mod:`tests.harness.traceql`).

The processes themselves, the binaries' lookup and the HTTP helpers are in
:mod:`tests.harness.processes`; this module re-exports the names tests import from it.

Usage outside pytest::

    from tests.harness.stack import OtelStack, locate_binaries

    with OtelStack(locate_binaries()) as stack:
        print(stack.otlp_grpc_endpoint, stack.prometheus_url, stack.trace_store_url)
        stack.wait_for_series('up{job="otel-collector"}', timeout=30)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from tests.harness import traceql
from tests.harness.processes import (
    REPO_ROOT,
    Binaries,
    ManagedProcess,
    StackError,
    free_port,
    http_get,
    locate_binaries,
    locate_binary,
    missing_binaries_message,
    wait_until,
)

__all__ = [
    "COLLECTOR_CONFIG",
    "HARNESS_CONFIGS",
    "JAEGER_CONFIG",
    "PROMETHEUS_CONFIG",
    "PROMETHEUS_FLAGS",
    "PROMETHEUS_JOB_TARGETS",
    "REPO_ROOT",
    "SPAN_KINDS",
    "Binaries",
    "OtelStack",
    "StackError",
    "http_get",
    "locate_binaries",
    "locate_binary",
    "missing_binaries_message",
    "prometheus_config_for",
    "telemetry_sum",
    "trace_spans",
    "wait_until",
]

COLLECTOR_CONFIG = REPO_ROOT / "collector" / "config.yaml"
PROMETHEUS_CONFIG = REPO_ROOT / "prometheus" / "prometheus.yml"
JAEGER_CONFIG = Path(__file__).resolve().parent / "jaeger.yaml"

#: The config file each compose service mounts, as the harness runs it. The compose test
#: checks docker-compose.yml against this mapping. (Compose's Tempo has no harness twin.)
HARNESS_CONFIGS: dict[str, Path] = {
    "otel-collector": COLLECTOR_CONFIG,
    "prometheus": PROMETHEUS_CONFIG,
}

#: Prometheus flags beyond config, storage and listen address; docker-compose.yml passes the
#: same ones. Exemplar storage keeps the trace ids that come with OpenMetrics scrapes.
PROMETHEUS_FLAGS: tuple[str, ...] = ("--enable-feature=exemplar-storage",)

#: Scrape job name in prometheus/prometheus.yml → which collector ports it targets (the
#: single collector's; the two tiers' jobs have no target in this stack, see
#: :mod:`tests.harness.tiers`).
PROMETHEUS_JOB_TARGETS: dict[str, tuple[str, ...]] = {
    "otel-collector-exporter": ("prometheus_exporter",),
    "otel-collector": ("telemetry",),
    "otel-gateways-exporter": (),
    "otel-tiers": (),
}

#: OTLP JSON's span kinds by number (Jaeger writes numbers, Tempo the names).
SPAN_KINDS = {
    0: "SPAN_KIND_UNSPECIFIED",
    1: "SPAN_KIND_INTERNAL",
    2: "SPAN_KIND_SERVER",
    3: "SPAN_KIND_CLIENT",
    4: "SPAN_KIND_PRODUCER",
    5: "SPAN_KIND_CONSUMER",
}


def prometheus_config_for(source: Path, targets: Mapping[str, Sequence[str]]) -> str:
    """``source`` with each job's ``static_configs`` targets replaced by ``targets[job]``.

    Only the targets change (a job may get none: its collectors do not run in this stack); a
    job of the file that ``targets`` does not name is an error, so a new scrape job in
    prometheus.yml cannot be silently left pointing at a compose host name.
    """
    config = yaml.safe_load(source.read_text())
    for job in config.get("scrape_configs", []):
        name = job["job_name"]
        if name not in targets:
            raise StackError(f"{source}: scrape job {name!r} has no loopback target in the harness")
        for static in job.get("static_configs", []):
            static["targets"] = list(targets[name])
    rendered: str = yaml.safe_dump(config, sort_keys=False)
    return rendered


@dataclass
class OtelStack:
    """Collector → (trace store, Prometheus) on loopback, from the repository's config files.

    Endpoints: :attr:`otlp_grpc_endpoint` (``127.0.0.1:PORT``), :attr:`otlp_http_endpoint`
    (``http://127.0.0.1:PORT``), :attr:`prometheus_url`, :attr:`trace_store_url`. Queries:
    :meth:`query_prometheus`, :meth:`wait_for_series`, :meth:`get_trace`,
    :meth:`search_traceql`. Faults: :meth:`stop_trace_store`/:meth:`start_trace_store`,
    :meth:`kill_collector`/:meth:`start_collector` (the collector keeps its file_storage
    directory, so its persistent queue survives), :meth:`stop_prometheus`/:meth:`start_prometheus`.
    """

    binaries: Binaries
    workdir: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, ManagedProcess] = field(default_factory=dict)
    _own_workdir: bool = False

    def __post_init__(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="dbpulse-otel-stack-"))
            self._own_workdir = True
        for key in self._port_keys():
            self.ports.setdefault(key, free_port())
        self._procs = self._processes()

    #: Start order (the trace store first: the collectors export to it); stop goes backwards.
    START_ORDER: ClassVar[tuple[str, ...]] = ("jaeger", "otelcol", "prometheus")

    def _port_keys(self) -> tuple[str, ...]:
        return (
            "otlp_grpc",
            "otlp_http",
            "collector_health",
            "prometheus_exporter",
            "telemetry",
            *self._backend_port_keys(),
        )

    @staticmethod
    def _backend_port_keys() -> tuple[str, ...]:
        """The ports of the trace store and Prometheus, which every stack runs."""
        return (
            "prometheus",
            "jaeger_query_http",
            "jaeger_query_grpc",
            "jaeger_health",
            "jaeger_otlp_grpc",
            "jaeger_otlp_http",
        )

    def _processes(self) -> dict[str, ManagedProcess]:
        return {
            "jaeger": self._jaeger_process(),
            "otelcol": self._collector_process(),
            "prometheus": self._prometheus_process(),
        }

    def prometheus_targets(self) -> dict[str, list[str]]:
        """Scrape job → the loopback addresses it scrapes in this stack."""
        return {
            job: [f"127.0.0.1:{self.ports[key]}" for key in keys]
            for job, keys in PROMETHEUS_JOB_TARGETS.items()
        }

    # -- endpoints -------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def trace_store_url(self) -> str:
        """Jaeger's query API (``/api/v3/traces/<id>``, ``/api/traces?service=...``)."""
        return f"http://127.0.0.1:{self.ports['jaeger_query_http']}"

    @property
    def collector_telemetry_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['telemetry']}/metrics"

    # -- process definitions ---------------------------------------------------------------

    def collector_env(self) -> dict[str, str]:
        """The variables collector/config.yaml reads, pointed at this stack's ports and dirs."""
        p = self.ports
        return {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p['otlp_grpc']}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p['otlp_http']}",
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{p['collector_health']}",
            "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{p['prometheus_exporter']}",
            "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
            "OTELCOL_TELEMETRY_PORT": str(p["telemetry"]),
            "OTELCOL_STORAGE_DIR": str(self.dir / "otelcol-storage"),
            # The exporter compose points at Tempo sends to this stack's trace store.
            "TEMPO_OTLP_ENDPOINT": f"127.0.0.1:{p['jaeger_otlp_grpc']}",
        }

    def jaeger_env(self) -> dict[str, str]:
        """The variables tests/harness/jaeger.yaml reads, pointed at this stack's ports and dirs."""
        p = self.ports
        return {
            "JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{p['jaeger_health']}",
            "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{p['jaeger_query_http']}",
            "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{p['jaeger_query_grpc']}",
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p['jaeger_otlp_grpc']}",
            "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p['jaeger_otlp_http']}",
            "JAEGER_DATA_DIR": str(self.dir / "jaeger"),
        }

    def _collector_process(self) -> ManagedProcess:
        return ManagedProcess(
            name="collector",
            argv=[str(self.binaries.otelcol), f"--config={COLLECTOR_CONFIG}"],
            env=self.collector_env(),
            log_path=self.dir / "otelcol.log",
            health_url=f"http://127.0.0.1:{self.ports['collector_health']}/",
        )

    def _jaeger_process(self) -> ManagedProcess:
        return ManagedProcess(
            name="jaeger",
            argv=[str(self.binaries.jaeger), f"--config=file:{JAEGER_CONFIG}"],
            env=self.jaeger_env(),
            log_path=self.dir / "jaeger.log",
            health_url=f"http://127.0.0.1:{self.ports['jaeger_health']}/status",
        )

    def _prometheus_process(self) -> ManagedProcess:
        config = self.dir / "prometheus.yml"
        config.write_text(prometheus_config_for(PROMETHEUS_CONFIG, self.prometheus_targets()))
        return ManagedProcess(
            name="prometheus",
            argv=[
                str(self.binaries.prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
                *PROMETHEUS_FLAGS,
            ],
            env={},
            log_path=self.dir / "prometheus.log",
            health_url=f"{self.prometheus_url}/-/ready",
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OtelStack:
        """Start the trace store, then the collector (which exports to it), then Prometheus."""
        try:
            for name in self.START_ORDER:
                self._procs[name].start(timeout=90 if name == "jaeger" else 60)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything this stack started and remove its temporary directory."""
        for name in reversed(self.START_ORDER):
            self._procs[name].stop()
        if self._own_workdir and os.environ.get("DBPULSE_KEEP_STACK_DIR") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> OtelStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop_trace_store(self) -> None:
        self._procs["jaeger"].stop()

    def start_trace_store(self) -> None:
        self._procs["jaeger"].start(timeout=90)

    def stop_prometheus(self) -> None:
        self._procs["prometheus"].stop()

    def start_prometheus(self) -> None:
        self._procs["prometheus"].start()

    def kill_collector(self) -> None:
        """SIGKILL the collector: no flush, no graceful shutdown."""
        self._procs["otelcol"].kill()

    def start_collector(self) -> None:
        self._procs["otelcol"].start()

    def is_running(self, name: str) -> bool:
        """Whether a process (``otelcol``, ``jaeger``, ``prometheus``, ...) is up."""
        return self._procs[name].running

    def log_tail(self, name: str, lines: int = 30) -> str:
        """Last lines of ``otelcol``, ``jaeger`` or ``prometheus``'s log, for failure messages."""
        return self._procs[name].log_tail(lines)

    # -- Prometheus ------------------------------------------------------------------------

    def query_prometheus(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = http_get(url)
        payload = json.loads(body)
        if status != 200 or payload.get("status") != "success":
            raise StackError(f"PromQL {promql!r} failed ({status}): {payload.get('error')}")
        result: list[dict[str, Any]] = payload["data"]["result"]
        return result

    def wait_for_series(
        self,
        promql: str,
        timeout: float = 60.0,
        predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns series (and ``predicate(result)`` holds)."""

        def check() -> list[dict[str, Any]] | None:
            result = self.query_prometheus(promql)
            if result and (predicate is None or predicate(result)):
                return result
            return None

        found: list[dict[str, Any]] = wait_until(check, timeout, interval=1.0, what=promql)
        return found

    def query_exemplars(self, promql: str, since_s: float = 600.0) -> list[dict[str, Any]]:
        """Exemplars of ``promql`` over the last ``since_s`` seconds."""
        now = time.time()
        query = urllib.parse.urlencode({"query": promql, "start": now - since_s, "end": now})
        status, body = http_get(f"{self.prometheus_url}/api/v1/query_exemplars?{query}")
        payload = json.loads(body)
        if status != 200:
            raise StackError(f"exemplar query {promql!r} failed ({status}): {payload}")
        data: list[dict[str, Any]] = payload["data"]
        return data

    # -- the trace store --------------------------------------------------------------------

    def get_trace(self, trace_id_hex: str) -> dict[str, Any] | None:
        """The trace as OTLP JSON (``{"resourceSpans": [...]}``), or None while it is not stored."""
        status, body = http_get(f"{self.trace_store_url}/api/v3/traces/{trace_id_hex}")
        if status == 404:
            return None
        if status != 200:
            raise StackError(f"trace {trace_id_hex}: HTTP {status}: {body[:300]!r}")
        trace: dict[str, Any] = json.loads(body)["result"]
        return trace

    def search_traceql(self, query: str, since_s: float = 3600.0) -> list[dict[str, Any]]:
        """Traces (``[{"traceID": hex}]``, newest first) with one span that meets ``query``.

        ``query`` is TraceQL of the shape ``{ cond && cond ... }``, each ``cond`` being
        ``span.<attr>`` or ``resource.service.name`` compared by ``=``, ``!=`` or ``=~``
        (anchored regex) with a string; anything else raises :class:`StackError`.
        """
        return traceql.search(self.trace_store_url, query, since_s)

    # -- collector -------------------------------------------------------------------------

    def collector_metric(self, name_prefix: str) -> float:
        """Sum of the collector's own metric samples whose name starts with ``name_prefix``."""
        return telemetry_sum(self.collector_telemetry_url, name_prefix)


def telemetry_sum(metrics_url: str, name_prefix: str) -> float:
    """Sum of the samples at a collector's telemetry ``metrics_url`` named ``name_prefix...``."""
    _, body = http_get(metrics_url)
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name_prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def trace_spans(trace: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flatten an OTLP JSON trace into its spans (each with ``serviceName`` added)."""
    spans: list[dict[str, Any]] = []
    for rs in trace.get("resourceSpans", trace.get("batches", [])):
        service = next(
            (
                a["value"].get("stringValue")
                for a in rs.get("resource", {}).get("attributes", [])
                if a["key"] == "service.name"
            ),
            None,
        )
        for ss in rs.get("scopeSpans", rs.get("instrumentationLibrarySpans", [])):
            for span in ss.get("spans", []):
                kind = span.get("kind")
                spans.append({**span, "kind": SPAN_KINDS.get(kind, kind), "serviceName": service})
    return spans
