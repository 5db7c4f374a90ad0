"""What ``docker compose up`` would run, proven without Docker.

Every service of ``docker-compose.yml`` built from ``docker/dbpulse.Dockerfile`` runs here as a
subprocess: its compose ``command`` (else the Dockerfile's ``CMD``) with its compose
``environment`` (and the Dockerfile's ``ENV``), compose hostnames mapped to the harness's
loopback services (``otel-collector`` → the harness collector, ``postgres``/``redis`` → the
local services of ``scripts/services.sh``, a published port → a free local port). Then:

* each service stays up through its first seconds and keeps running;
* each one's telemetry reaches Prometheus and the trace store under its ``OTEL_SERVICE_NAME``,
  and what it is there for shows (``PROOFS``: a service without an entry fails the test);
* with all of them running, every panel target of every provisioned dashboard returns data,
  error and fault panels excepted (``FAULT_PANELS``: a steady stack has no errors to show;
  ``tests/grafana/test_proof.py`` proves those under faults);
* SIGTERM (``docker compose stop``) ends each one with exit status 0.

``pytest -s`` prints the per-service and per-panel results. The image-only services (postgres,
redis, the collector, Prometheus, Tempo, Grafana) keep the checks of the files they mount in
``tests/e2e/test_pipeline.py``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dbpulse.cli import app
from dbpulse.demo.flows import DEFAULT_CHANNEL
from tests import services as local_services
from tests.compose._compose import (
    REPO,
    HostMap,
    Service,
    dbpulse_services,
    local_environment,
    start_order,
)
from tests.grafana._provisioning import dashboards, panel_queries, substitute
from tests.grafana.test_proof import BUILTINS, _prometheus_has_data, _traceql, recent_flow_id
from tests.harness.stack import OtelStack, StackError, free_port, http_get, wait_until

#: Seconds each service must stay up after it starts (compose would restart it otherwise).
STARTUP_S = 8.0

#: Panel targets that show errors and faults: empty in a healthy steady state.
FAULT_PANELS = {
    ("dbpulse-database.json", "Error rate", "A"): "errors",
    ("dbpulse-database.json", "Errors/s by error.type", "A"): "errors",
    ("dbpulse-database.json", "Lock errors", "A"): "lock errors",
    ("dbpulse-database.json", "Lock retries/s by outcome", "A"): "lock retries",
    ("dbpulse-database.json", "Pool wait p95 and timeouts", "B"): "pool timeouts",
    ("dbpulse-flows.json", "Flow errors and malformed messages", "A"): "flow errors",
    ("dbpulse-insights.json", "N+1 patterns: worst offenders", "A"): "N+1 patterns",
    ("dbpulse-flows.json", "Flow errors and malformed messages", "B"): "malformed messages",
    ("dbpulse-flows.json", "Heartbeat events/s", "B"): "heartbeat connection errors",
    ("dbpulse-flows.json", "Service graph", "A:map2"): "failed requests between services",
    ("dbpulse-pipeline.json", "dbpulse: telemetry dropped in the application", "A"): "drops",
}


@dataclass(frozen=True)
class Proof:
    """What a service is there for: series of ``metric`` with ``labels`` (and its service name)."""

    what: str
    metric: str
    labels: tuple[tuple[str, str], ...] = ()

    def promql(self, service_name: str) -> str:
        matchers = [f'service_name="{service_name}"']
        matchers += [
            f'{k}="{v}"' if not v.startswith("!") else f'{k}!="{v[1:]}"' for k, v in self.labels
        ]
        return f"{self.metric}{{{', '.join(matchers)}}}"


def _proof(what: str, metric: str, **labels: str) -> Proof:
    return Proof(what, metric, tuple(labels.items()))


WRITES, CHECKPOINTS, CACHE = (
    "dbpulse_db_writes_total",
    "dbpulse_flow_checkpoints_total",
    "dbpulse_cache_requests_total",
)
HEARTBEAT = _proof("a heartbeat", "dbpulse_heartbeat_timestamp_seconds")

#: Per compose service: what its telemetry must show besides reaching both stores.
PROOFS: dict[str, list[Proof]] = {
    "isbn-collector": [
        _proof("SQLite writes", WRITES, db_system_name="sqlite"),
        _proof("PostgreSQL writes", WRITES, db_system_name="postgresql"),
        _proof("ISBNs written", "dbpulse_db_isbn_writes_total", book_isbn="!"),
        _proof("a psycopg_pool pool", "db_client_connection_count"),
    ],
    "producer": [
        _proof("flows published", CHECKPOINTS, flow_checkpoint="PATTERN_PUBLISHED"),
        HEARTBEAT,
    ],
    "consumer": [
        _proof("flows delivered", CHECKPOINTS, flow_checkpoint="WEBSOCKET_DELIVERED"),
        HEARTBEAT,
    ],
    "cache": [
        _proof("cache hits", CACHE, dbpulse_cache_result="hit"),
        _proof("cache misses", CACHE, dbpulse_cache_result="miss"),
    ],
    "executions": [
        _proof(
            "DuckDB executions writes",
            WRITES,
            db_system_name="duckdb",
            db_collection_name="executions",
        ),
        _proof(
            "DuckDB relation reads",
            "db_client_operation_duration_seconds_count",
            db_system_name="duckdb",
            db_operation_name="SELECT",
        ),
    ],
    "viz": [
        _proof(
            "its Redis feed backbone",
            "db_client_operation_duration_seconds_count",
            db_system_name="redis",
        ),
    ],
}


@dataclass
class Running:
    services: dict[str, Service]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    early_exits: dict[str, int] = field(default_factory=dict)
    ports: dict[str, dict[int, int]] = field(default_factory=dict)

    def log_tail(self, name: str, lines: int = 15) -> str:
        text = self.logs[name].read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def url(self, name: str, container_port: int) -> str:
        return f"http://127.0.0.1:{self.ports[name][container_port]}"


def _argv(argv: list[str]) -> list[str]:
    """The image's programs are this interpreter's (its bin directory holds the scripts)."""
    program, *rest = argv
    if program in {"python", "python3"}:
        return [sys.executable, *rest]
    beside = Path(sys.executable).parent / program
    return [str(beside) if beside.exists() else shutil.which(program) or program, *rest]


def _environment(service: Service, hosts: HostMap, ports: dict[int, int]) -> dict[str, str]:
    """A container's environment: compose's (mapped) and the Dockerfile's, nothing of ours."""
    bindir = str(Path(sys.executable).parent)
    return {
        "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")]),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        # The checkout's code, whatever copy of dbpulse is installed.
        "PYTHONPATH": str(REPO / "instrumentation"),
        **local_environment(service, hosts, ports),
    }


def _postgres_tables(dsn: str) -> set[str]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows.fetchall()}


@pytest.fixture(scope="module")
def running(otel_stack: OtelStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    dsn, redis_url = local_services.postgres_dsn(), local_services.redis_url()
    tables_before = _postgres_tables(dsn)
    run = Running(dbpulse_services())
    grpc, http = otel_stack.otlp_grpc_endpoint, otel_stack.otlp_http_endpoint
    hosts = HostMap(
        urls={"postgres": dsn, "redis": redis_url},
        netlocs={"otel-collector:4317": grpc, "otel-collector:4318": http.split("://", 1)[1]},
    )
    for name, service in run.services.items():
        run.ports[name] = {container: free_port() for container in service.published}
        for container, port in run.ports[name].items():
            hosts.netlocs[f"{name}:{container}"] = f"127.0.0.1:{port}"
    tmp = tmp_path_factory.mktemp("compose")
    try:
        for name in start_order(run.services):
            service = run.services[name]
            workdir = tmp / name
            workdir.mkdir()
            run.logs[name] = tmp / f"{name}.log"
            with run.logs[name].open("wb") as log:
                run.processes[name] = subprocess.Popen(
                    _argv(service.argv),
                    env=_environment(service, hosts, run.ports[name]),
                    cwd=workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            print(f"started {name}: {' '.join(service.argv)}")
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            for name, process in run.processes.items():
                if name not in run.early_exits and process.poll() is not None:
                    run.early_exits[name] = process.returncode
            time.sleep(0.2)
        yield run
    finally:
        for process in run.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        created = _postgres_tables(dsn) - tables_before
        if created:
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS " + ", ".join(sorted(created)))


def test_every_dbpulse_service_command_exists() -> None:
    """Each service's ``dbpulse`` command parses (``--help``), without any backend."""
    runner = CliRunner()
    for name, service in dbpulse_services().items():
        argv = service.argv[1:] if service.argv[0] == "opentelemetry-instrument" else service.argv
        assert argv[0] == "dbpulse", f"{name}: runs {argv[0]!r}, not the dbpulse CLI"
        args = argv[1:]
        first_option = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
        words, options = args[:first_option], [a for a in args if a.startswith("--")]
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, f"{name}: {' '.join(argv)}: {result.output}"
        for option in options:
            assert option in result.output, f"{name}: {option} is not an option of {words}"


def _check(check: Callable[[], Any], timeout: float, what: str) -> str:
    try:
        wait_until(check, timeout=timeout, interval=2, what=what)
    except StackError as err:
        return f"NO ({err})"
    return "yes"


def _viz_received_events(run: Running) -> bool:
    status, body = http_get(run.url("viz", 8765) + "/api/viz/stats")
    return status == 200 and json.loads(body).get("events_received", 0) > 0


def test_every_service_stays_up_and_its_telemetry_arrives(
    otel_stack: OtelStack, running: Running
) -> None:
    rows: list[tuple[str, str, str]] = []
    for name, service in running.services.items():
        svc = service.service_name
        process = running.processes[name]
        up = "yes" if name not in running.early_exits and process.poll() is None else "NO"
        if up == "NO":
            rows.append(
                (name, "stays up", f"NO: exited {process.returncode}\n{running.log_tail(name)}")
            )
            continue
        rows.append((name, f"up after {STARTUP_S:.0f} s", up))
        rows.append(
            (
                name,
                "in Prometheus",
                _check(
                    lambda svc=svc: otel_stack.query_prometheus(f'group({{service_name="{svc}"}})'),
                    90,
                    f"series of {svc}",
                ),
            )
        )
        rows.append(
            (
                name,
                "in the trace store",
                _check(
                    lambda svc=svc: otel_stack.search_traceql(
                        f'{{ resource.service.name = "{svc}" }}', since_s=600
                    ),
                    90,
                    f"traces of {svc}",
                ),
            )
        )
        proofs = PROOFS.get(name)
        if not proofs:
            rows.append((name, "proof", "NO: no entry in PROOFS (what does it show?)"))
            continue
        for proof in proofs:
            query = proof.promql(svc)
            rows.append(
                (
                    name,
                    proof.what,
                    _check(lambda q=query: otel_stack.query_prometheus(q), 60, query),
                )
            )
    if "viz" in running.services:
        rows.append(
            (
                "viz",
                "events from the apps' feed",
                _check(functools.partial(_viz_received_events, running), 60, "viz events"),
            )
        )
    width = max(len(what) for _, what, _ in rows)
    print("\nservice         " + "check".ljust(width) + "  result")
    for name, what, result in rows:
        print(f"{name:15} {what.ljust(width)}  {result}")
    failed = [f"{name}: {what}: {result}" for name, what, result in rows if result != "yes"]
    up = sum(1 for _, what, result in rows if what.startswith("up after") and result == "yes")
    passed = len(rows) - len(failed)
    print(f"summary: {up}/{len(running.services)} services up, {passed}/{len(rows)} checks passed")
    assert not failed, "\n".join(failed)


def test_every_dashboard_panel_has_data_in_steady_state(
    otel_stack: OtelStack, running: Running
) -> None:
    names = [s.service_name for s in running.services.values()]
    variables = {
        **BUILTINS,
        "service": "(" + "|".join(names) + ")",
        "system": "(sqlite|postgresql|redis|duckdb)",
        "table": ".*",
        "target": ".*",
        "channel": DEFAULT_CHANNEL,
    }
    queries = [q for name, board in dashboards().items() for q in panel_queries(name, board)]
    known = {(q.dashboard, q.panel, q.ref_id) for q in queries}
    stale = set(FAULT_PANELS) - known
    assert not stale, f"FAULT_PANELS names targets no dashboard has: {stale}"

    traceql = [q for q in queries if q.language == "traceql"]
    variables["flow_id"] = recent_flow_id(otel_stack, traceql, variables)

    results: list[tuple[str, str]] = []
    for query in queries:
        text = substitute(query.query, variables)
        fault = FAULT_PANELS.get((query.dashboard, query.panel, query.ref_id))
        if query.language == "promql":
            check = functools.partial(_prometheus_has_data, otel_stack, text, query.instant)
        else:
            check = functools.partial(_traceql, otel_stack, text)
        try:
            wait_until(check, timeout=5 if fault else 60, interval=2, what=query.name)
            verdict = "data" + (f" (fault panel: {fault})" if fault else "")
        except StackError as err:
            if "failed (" in str(err) or "HTTP" in str(err):
                verdict = f"FAILED: {err}"
            else:
                verdict = f"no data, excepted ({fault})" if fault else "NO DATA"
        results.append((query.name, verdict))
    print()
    for name, verdict in results:
        print(f"{verdict[:40]:40}  {name}")
    bad = [
        f"{name}: {verdict}" for name, verdict in results if verdict.startswith(("NO", "FAILED"))
    ]
    with_data = sum(1 for _, verdict in results if verdict.startswith("data"))
    print(
        f"summary: {with_data}/{len(results)} panel targets with data, "
        f"{sum(1 for _, v in results if v.startswith('no data, excepted'))} fault targets empty, "
        f"{len(bad)} failing"
    )
    assert not bad, "panel targets without data in steady state:\n" + "\n".join(bad)


def test_every_service_exits_0_on_sigterm(running: Running) -> None:
    """``docker compose stop`` sends SIGTERM, dependents first: each service ends its loop,
    flushes its telemetry and exits 0."""
    codes: dict[str, int | str] = {}
    for name in reversed(start_order(running.services)):
        process = running.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            codes[name] = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            codes[name] = "none: still running 20 s after SIGTERM"
    print("\n" + "\n".join(f"{name:15} SIGTERM -> exit {code}" for name, code in codes.items()))
    bad = {n: c for n, c in codes.items() if c != 0}
    assert not bad, "\n".join(f"{n}: {c}\n{running.log_tail(n)}" for n, c in bad.items())
