"""End to end: an instrumented workload → the real collector → Prometheus and the trace store.

Everything runs for real on loopback: the collector built from collector/manifest.yaml,
Debian's Prometheus, Jaeger built from its Go module as the trace store (compose runs Tempo,
whose Go module may not be built here: docs/stack.md), SQLite, PostgreSQL and Redis
(``scripts/services.sh`` provisions them all). What is asserted is what a user sees:
PromQL answers, traces by id, attribute (TraceQL-subset) searches, and an application that does
not notice the backends failing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import services
from tests.e2e.workload import ISBNS, QUEUE_DESTINATION, OtlpProviders, run_workload
from tests.harness.stack import (
    HARNESS_CONFIGS,
    PROMETHEUS_FLAGS,
    REPO_ROOT,
    OtelStack,
    StackError,
    trace_spans,
    wait_until,
)

pytestmark = pytest.mark.integration

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
TEMPO_CONFIG = REPO_ROOT / "tempo" / "tempo.yaml"
#: tempo/tempo.yaml reads ${VAR:-default}s, so compose must start Tempo with expansion on.
TEMPO_FLAGS = ("-config.expand-env=true",)
OPS_PER_SYSTEM = 12


@pytest.fixture(scope="module")
def e2e_postgres_dsn() -> str:
    return services.postgres_dsn()


@pytest.fixture(scope="module")
def e2e_redis_url() -> str:
    return services.redis_url()


def _service(prefix: str) -> str:
    """A service name no other test (or earlier run) shares, so series are this test's own."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _value(series: list[dict[str, Any]]) -> float:
    return sum(float(s["value"][1]) for s in series)


def _totals(expected: float) -> Callable[[list[dict[str, Any]]], bool]:
    """Predicate for wait_for_series: the series add up to ``expected``."""
    return lambda series: _value(series) == expected


@pytest.fixture
def telemetry(otel_stack: OtelStack) -> Iterator[tuple[OtlpProviders, OtlpProviders, str, str]]:
    app_service, consumer_service = _service("e2e-app"), _service("e2e-consumer")
    app = OtlpProviders.otlp(otel_stack.otlp_grpc_endpoint, app_service)
    consumer = OtlpProviders.otlp(otel_stack.otlp_grpc_endpoint, consumer_service)
    yield app, consumer, app_service, consumer_service
    app.shutdown()
    consumer.shutdown()


def test_workload_reaches_prometheus_and_the_trace_store(
    otel_stack: OtelStack,
    telemetry: tuple[OtlpProviders, OtlpProviders, str, str],
    e2e_postgres_dsn: str,
    e2e_redis_url: str,
    tmp_path: Path,
) -> None:
    app, consumer, service, consumer_service = telemetry
    result = run_workload(
        app,
        consumer,
        ops_per_system=OPS_PER_SYSTEM,
        sqlite_path=tmp_path / "books.db",
        postgres_dsn=e2e_postgres_dsn,
        redis_url=e2e_redis_url,
    )
    assert result.ops_by_system == {"sqlite": OPS_PER_SYSTEM, "postgresql": OPS_PER_SYSTEM}

    # The application's histogram, as Prometheus names it, with one count per operation.
    for system, ops in result.ops_by_system.items():
        promql = (
            f'db_client_operation_duration_seconds_count{{service_name="{service}",'
            f'db_system_name="{system}",db_operation_name="INSERT",'
            f'db_collection_name="e2e_books"}}'
        )
        series = otel_stack.wait_for_series(promql, timeout=60, predicate=_totals(ops))
        assert _value(series) == ops
        assert series[0]["metric"]["job"] == service
    # dbpulse's counters travel in the same scope as the histogram and survive the exporter.
    writes = otel_stack.wait_for_series(
        f'sum(dbpulse_db_writes_total{{service_name="{service}",db_operation_name="INSERT"}})',
        timeout=60,
        predicate=_totals(sum(result.ops_by_system.values())),
    )
    assert _value(writes) == sum(result.ops_by_system.values())
    isbn_writes = otel_stack.query_prometheus(
        f'dbpulse_db_isbn_writes_total{{service_name="{service}",book_isbn="{ISBNS[0]}"}}'
    )
    assert _value(isbn_writes) == result.isbns.count(ISBNS[0])
    buckets = otel_stack.query_prometheus(
        f'db_client_operation_duration_seconds_bucket{{service_name="{service}",'
        f'db_operation_name="INSERT",le="+Inf"}}'
    )
    assert _value(buckets) == sum(result.ops_by_system.values())

    # Span metrics from the collector's connector: calls per database, with its dimensions.
    for system, ops in result.ops_by_system.items():
        calls = otel_stack.wait_for_series(
            f'traces_span_metrics_calls_total{{service_name="{service}",'
            f'span_name="INSERT e2e_books",db_system_name="{system}"}}',
            timeout=60,
            predicate=_totals(ops),
        )
        labels = calls[0]["metric"]
        assert labels["span_kind"] == "SPAN_KIND_CLIENT"
        assert labels["db_operation_name"] == "INSERT"
        assert labels["db_collection_name"] == "e2e_books"
    otel_stack.wait_for_series(
        f'traces_span_metrics_duration_seconds_count{{service_name="{service}"}}', timeout=30
    )

    # Exemplars: latency buckets link back to the workload's trace, both the span metrics'
    # and dbpulse's own histogram (exemplars from sampled spans).
    def exemplar_trace_ids(metric: str) -> set[str]:
        return {
            ex["labels"].get("trace_id")
            for group in otel_stack.query_exemplars(f'{metric}{{service_name="{service}"}}')
            for ex in group["exemplars"]
        }

    for metric in (
        "traces_span_metrics_duration_seconds_bucket",
        "db_client_operation_duration_seconds_bucket",
    ):
        wait_until(
            lambda metric=metric: result.trace_id in exemplar_trace_ids(metric),
            timeout=60,
            what=f"an exemplar of {metric} with trace_id {result.trace_id}",
        )

    # Service graph: producer → Redis → consumer is an edge between the two services.
    edge = otel_stack.wait_for_series(
        f'traces_service_graph_request_total{{client="{service}",server="{consumer_service}"}}',
        timeout=90,
    )
    assert edge[0]["metric"]["connection_type"] == "messaging_system"
    # The connector prefixes each dimension with the side it came from.
    assert edge[0]["metric"]["client_messaging_destination_name"] == QUEUE_DESTINATION
    assert edge[0]["metric"]["server_messaging_destination_name"] == QUEUE_DESTINATION

    # The trace store: the workload's trace by id, whole, with the ISBNs on the database spans.
    expected_spans = result.spans
    trace = wait_until(
        lambda: (
            (t := otel_stack.get_trace(result.trace_id))
            and len(trace_spans(t)) == expected_spans
            and t
        ),
        timeout=90,
        what=f"trace {result.trace_id} with {expected_spans} spans in the trace store",
    )
    db_spans = [s for s in trace_spans(trace) if s["name"] == "INSERT e2e_books"]
    isbns = sorted(
        a["value"]["stringValue"]
        for s in db_spans
        for a in s["attributes"]
        if a["key"] == "book.isbn"
    )
    assert isbns == sorted(result.isbns)

    # TraceQL on the ISBN attribute finds it.
    query = f'{{ span.book.isbn = "{ISBNS[1]}" && resource.service.name = "{service}" }}'
    hits = wait_until(
        lambda: otel_stack.search_traceql(query),
        timeout=90,
        what=f"TraceQL {query}",
    )
    assert result.trace_id in {h["traceID"].rjust(32, "0") for h in hits}
    # The search is TraceQL's: one span must meet every condition, so an ISBN of this trace with
    # an operation no span of it has, or with another service, finds nothing.
    misses = (
        f'{{ span.book.isbn = "{ISBNS[1]}" && span.db.operation.name = "DELETE" '
        f'&& resource.service.name = "{service}" }}',
        f'{{ span.book.isbn = "{ISBNS[1]}" && resource.service.name =~ "{consumer_service}" }}',
    )
    for miss in misses:
        assert result.trace_id not in {h["traceID"] for h in otel_stack.search_traceql(miss)}
    with pytest.raises(StackError, match="supported"):
        otel_stack.search_traceql('{ span.book.isbn = "x" } | count() > 1')


def _send_traces(app: OtlpProviders, count: int, spans_per_trace: int) -> list[str]:
    tracer = app.tracer_provider.get_tracer("dbpulse.e2e")
    trace_ids = []
    for i in range(count):
        with tracer.start_as_current_span(f"outage batch {i}") as root:
            for j in range(spans_per_trace - 1):
                with tracer.start_as_current_span(
                    "INSERT books", attributes={"db.system.name": "sqlite", "seq": j}
                ):
                    pass
        trace_ids.append(format(root.get_span_context().trace_id, "032x"))
    app.tracer_provider.force_flush()
    return trace_ids


def test_trace_store_outage_and_collector_crash_lose_no_spans(otel_stack: OtelStack) -> None:
    """Trace store down ~30 s (and the collector killed meanwhile): every span arrives afterwards.

    The collector's sending queue lives in file_storage, so the spans it holds when it is
    SIGKILLed are still sent when it comes back.
    """
    service = _service("e2e-outage")
    app = OtlpProviders.otlp(otel_stack.otlp_grpc_endpoint, service)
    traces, spans_per_trace = 20, 5
    stopped_at = time.monotonic()
    otel_stack.stop_trace_store()
    try:
        trace_ids = _send_traces(app, traces, spans_per_trace)
        # The spans wait in the exporter's queue (batch → queue takes about a second).
        wait_until(
            lambda: otel_stack.collector_metric("otelcol_exporter_queue_size") > 0,
            timeout=30,
            what="the collector's trace exporter queue to hold the spans",
        )
        otel_stack.kill_collector()
        otel_stack.start_collector()
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
    finally:
        otel_stack.start_trace_store()
        if not otel_stack.is_running("otelcol"):
            otel_stack.start_collector()
    app.shutdown()

    def all_arrived() -> bool:
        return all(
            (t := otel_stack.get_trace(tid)) is not None and len(trace_spans(t)) == spans_per_trace
            for tid in trace_ids
        )

    wait_until(all_arrived, timeout=120, interval=2, what="every queued trace in the trace store")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise StackError(f"no VmRSS for pid {pid}")


def test_collector_killed_app_keeps_running(otel_stack: OtelStack, tmp_path: Path) -> None:
    """The collector dies under a writing app: no exception, bounded memory, export resumes."""
    service = _service("e2e-crash")
    stop_file = tmp_path / "stop"
    app = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.e2e.workload",
            "--otlp",
            otel_stack.otlp_grpc_endpoint,
            "--service",
            service,
            "--stop-file",
            str(stop_file),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    count_promql = f'db_client_operation_duration_seconds_count{{service_name="{service}"}}'
    try:
        before = _value(otel_stack.wait_for_series(count_promql, timeout=60))
        rss_before = _rss_kib(app.pid)
        otel_stack.kill_collector()
        rss_during = []
        try:
            for _ in range(20):
                time.sleep(1)
                assert app.poll() is None, "the application died while the collector was down"
                rss_during.append(_rss_kib(app.pid))
        finally:
            otel_stack.start_collector()
        # Export resumes: the app's cumulative count, as Prometheus sees it, moves past the
        # value it had before the collector died.
        otel_stack.wait_for_series(count_promql, timeout=90, predicate=lambda s: _value(s) > before)
    finally:
        stop_file.touch()
        try:
            out, err = app.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
            out, err = app.communicate()
    assert app.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["errors"] == 0
    assert summary["ops"] > 0
    # Bounded: the SDK's span queue is capped (2048) and metrics aggregate in place, so 20 s
    # of writes against a dead collector must not grow the process by more than 64 MiB.
    assert max(rss_during) - rss_before < 64 * 1024, (rss_before, rss_during)


# -- the compose file ------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def test_compose_file_is_valid() -> None:
    """A Compose validator accepts docker-compose.yml (no daemon needed for `config`)."""
    if shutil.which("docker") and (
        subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        argv = ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"]
    elif shutil.which("docker-compose"):
        argv = ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"]
    else:
        services.require_service("A Compose validator (docker-compose)", "not installed")
    checked = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT)
    assert checked.returncode == 0, checked.stderr


def test_compose_stack_structure() -> None:
    """Pinned images, healthchecks, depends_on conditions, loopback ports, no default secret."""
    compose = _compose()
    services = compose["services"]
    assert set(services) >= {
        "isbn-collector",
        "producer",
        "consumer",
        "cache",
        "viz",
        "otel-collector",
        "tempo",
        "prometheus",
        "grafana",
        "postgres",
        "redis",
    }
    for name, svc in services.items():
        if "image" in svc:
            tag = svc["image"].rsplit(":", 1)
            assert len(tag) == 2 and tag[1] not in {"latest", ""}, f"{name}: unpinned image"
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} not on loopback"
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services
            assert cond["condition"] in {"service_healthy", "service_started"}
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}'s missing check"
    assert set(compose["volumes"]) >= {"tempo-data", "prometheus-data", "otelcol-queue"}
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GF_SECURITY_ADMIN_PASSWORD"), "admin password must come from env"
    # Backends get the flags the harness passes.
    assert set(PROMETHEUS_FLAGS) <= set(services["prometheus"]["command"])
    assert set(TEMPO_FLAGS) <= set(services["tempo"]["command"])


def _mounted_file(service: dict[str, Any]) -> Path | None:
    for volume in service.get("volumes", []):
        source = str(volume).split(":", 1)[0]
        if source.startswith("./"):
            path = (REPO_ROOT / source).resolve()
            if path.is_file():
                return path
    return None


def test_compose_mounts_the_configs_the_harness_runs() -> None:
    """Each backend's config in compose is the very file the test harness starts it with."""
    services = _compose()["services"]
    for name, harness_path in HARNESS_CONFIGS.items():
        mounted = _mounted_file(services[name])
        assert mounted == harness_path.resolve(), f"{name}: compose mounts {mounted}"
    # Tempo is compose's alone (the harness runs Jaeger): its file is checked for what the
    # collector and Grafana rely on, and that every address it reads has a compose default.
    assert _mounted_file(services["tempo"]) == TEMPO_CONFIG.resolve()
    tempo = yaml.safe_load(TEMPO_CONFIG.read_text())
    otlp = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    assert otlp["grpc"]["endpoint"] == "${TEMPO_OTLP_GRPC_ENDPOINT:-0.0.0.0:4317}"
    assert tempo["storage"]["trace"]["backend"] == "local"
    assert tempo["server"]["http_listen_port"] == "${TEMPO_HTTP_PORT:-3200}"
    assert "metrics_generator" not in tempo, "span metrics come from the collector (one source)"
    grafana_mounts = [str(v).split(":", 1)[0] for v in services["grafana"]["volumes"]]
    assert "./grafana/provisioning" in grafana_mounts
    assert (REPO_ROOT / "grafana/provisioning/datasources/datasources.yaml").is_file()
