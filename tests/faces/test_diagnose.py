"""``dbpulse diagnose`` against the real stack: collector, Prometheus, Jaeger, Redis, viz server.

Every hop passes on a healthy stack; with each component stopped in turn, diagnose names that
hop, skips the hops that need it, exits non-zero and gives each hop no more than its timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dbpulse.viz import VizConfig, VizServer
from tests.harness.processes import Binaries, StackError, free_port
from tests.harness.stack import OtelStack, wait_until
from tests.services import require_service

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOP_TIMEOUT = 8.0
HOPS = ["otlp", "collector", "database", "flow", "export", "prometheus", "trace_store", "viz"]
TOKEN = "diagnose-test-token"


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free loopback port (never the shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        require_service("redis-server (binary)", "not on PATH")
    import redis

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="dbpulse-diagnose-redis-")
    argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    raise RuntimeError("redis-server exited") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(otel_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtelStack]:
    """This module's own stack: its tests stop components, other modules' stack stays whole."""
    own = OtelStack(otel_binaries, workdir=tmp_path_factory.mktemp("diagnose-stack"))
    try:
        own.start()
        # A healthy stack: Prometheus has scraped the collector's exporter at least once (its
        # first scrape can come late on a loaded machine, after the hop's time limit).
        own.wait_for_series('up{job="otel-collector-exporter"} == 1', timeout=90)
    except StackError as err:
        pytest.fail(f"the telemetry stack did not start: {err}", pytrace=False)
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="module")
def viz() -> Iterator[VizServer]:
    with VizServer(VizConfig(port=0, token=TOKEN)) as server:
        yield server


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with private_redis() as url:
        yield url


def endpoints(stack: OtelStack, viz_url: str, redis_url: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{stack.otlp_grpc_endpoint}",
        "DBPULSE_COLLECTOR_HEALTH_URL": f"http://127.0.0.1:{stack.ports['collector_health']}/",
        "DBPULSE_COLLECTOR_METRICS_URL": stack.collector_telemetry_url,
        "DBPULSE_PROMETHEUS_URL": stack.prometheus_url,
        "DBPULSE_TRACE_STORE_URL": stack.trace_store_url,
        "DBPULSE_TRACE_STORE_KIND": "jaeger",
        "DBPULSE_VIZ_URL": viz_url,
        "DBPULSE_VIZ_TOKEN": TOKEN,
        "DBPULSE_REDIS_URL": redis_url,
    }


def diagnose(env: dict[str, str], *args: str) -> tuple[int, str]:
    """``dbpulse diagnose`` in its own process (it sets up global providers, as an app does)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DBPULSE_"))}
    full.update(env)
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT / "instrumentation"), str(ROOT)])
    done = subprocess.run(
        [sys.executable, "-m", "dbpulse.cli", "diagnose", "--timeout", str(HOP_TIMEOUT), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=HOP_TIMEOUT * len(HOPS) + 30,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def report_of(env: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    code, output = diagnose(env, "--json")
    start = output.index("{")
    report = json.loads(output[start : output.rindex("}") + 1])
    hops = {hop["name"]: hop for hop in report["hops"]}
    assert list(hops) == HOPS, output
    for hop in hops.values():  # each hop keeps to its timeout (plus the thread's grace)
        assert hop["seconds"] <= HOP_TIMEOUT + 1.5, hop
    return code, report, hops


def test_every_hop_passes_on_a_healthy_stack(
    stack: OtelStack, viz: VizServer, redis_url: str
) -> None:
    env = endpoints(stack, viz.url, redis_url)
    code, report, hops = report_of(env)
    assert code == 0, json.dumps(report, indent=1)
    assert all(hop["status"] == "ok" for hop in hops.values()), report
    assert report["endpoints"]["viz_token"] == "(set)"  # never the token itself
    # What each hop proved is in the real backends, under the run's marker.
    marker = report["marker"]
    query = f'db_client_operation_duration_seconds_count{{service_instance_id="{marker}"}}'
    series = stack.query_prometheus(query)
    assert {s["metric"]["db_collection_name"] for s in series} >= {"dbpulse_diagnose"}
    flow_id = hops["flow"]["detail"].split()[1].rstrip(":")
    trace = stack.get_trace(flow_id.replace("-", ""))
    assert trace is not None and trace["resourceSpans"]
    events = viz.hub.recent("dbpulse_diagnose", None, None, 100)
    assert any(e["trace_id"] in hops["database"]["detail"] for e in events)

    # The text form: one line per hop, a ✔ on each.
    code, text = diagnose(env)
    assert code == 0, text
    lines = [line for line in text.splitlines() if line[:1] in "✔✘-"]
    assert [line.split()[1] for line in lines] == HOPS
    assert all(line.startswith("✔") for line in lines), text


@contextmanager
def stopped(component: str, stack: OtelStack, env: dict[str, str]) -> Iterator[None]:
    """``component`` stopped for the block (and started again after it)."""
    if component == "collector":
        stack.kill_collector()
        try:
            yield
        finally:
            stack.start_collector()
    elif component == "prometheus":
        stack.stop_prometheus()
        try:
            yield
        finally:
            stack.start_prometheus()
    elif component == "jaeger":
        stack.stop_trace_store()
        try:
            yield
        finally:
            stack.start_trace_store()
    elif component == "viz":
        server = VizServer(VizConfig(port=0, token=TOKEN)).start()
        server.stop()  # a viz server that was there and is gone
        env["DBPULSE_VIZ_URL"] = server.url
        yield
    else:
        with private_redis() as url:
            env["DBPULSE_REDIS_URL"] = url
        yield  # that private Redis is stopped now


# component stopped → (hops that fail, hops skipped because they need it)
CASES = {
    "viz": ({"viz"}, set()),
    "redis": ({"flow"}, {"trace_store"}),
    "prometheus": ({"prometheus"}, set()),
    "jaeger": ({"trace_store"}, set()),
    "collector": ({"otlp", "collector"}, {"export", "prometheus", "trace_store"}),
}


@pytest.mark.parametrize("component", list(CASES))
def test_a_stopped_component_is_named(
    component: str, stack: OtelStack, viz: VizServer, redis_url: str
) -> None:
    env = endpoints(stack, viz.url, redis_url)
    failing, skipped = CASES[component]
    with stopped(component, stack, env):
        code, report, hops = report_of(env)
    assert code != 0
    assert set(report_failed(hops)) == failing, json.dumps(report, indent=1)
    assert {n for n, h in hops.items() if h["status"] == "skipped"} == skipped, report
    for name in failing:
        assert hops[name]["fix"], hops[name]  # each failure says what to do
    assert all(hops[n]["status"] == "ok" for n in set(HOPS) - failing - skipped), report
    if component == "jaeger":
        # Back up, the trace store gets the flow from the collector's queue (after its retry
        # backoff); waiting for it leaves the stack drained for the next test.
        flow_id = hops["flow"]["detail"].split()[1].rstrip(":").replace("-", "")
        wait_until(lambda: stack.get_trace(flow_id), 60, interval=1.0, what="queued flow")


def report_failed(hops: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name, hop in hops.items() if hop["status"] == "fail"]
