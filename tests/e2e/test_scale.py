"""The two collector tiers on real binaries: 2 agents (load_balancing by trace id) → 2 gateways
(span metrics, service graph) → Jaeger + Prometheus (``tests/harness/tiers.py``).

Producer processes (replicas of one service, ``python -m tests.e2e.workload flows``) publish
pattern flows over Redis, each flow its own trace (trace id = flow id), alternately through
each agent; the consumer (``dbpulse demo consumer``) sends through the second agent. The spans
of one trace thus reach the tier through both agents, and only trace-id routing brings them to
one gateway, where the service graph pairs PRODUCER with CONSUMER.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.workload import app_env
from tests.harness.processes import Binaries, StackError, http_get
from tests.harness.stack import trace_spans, wait_until
from tests.harness.tiers import AGENTS, GATEWAYS, TwoTierStack

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCERS = 3
FLOWS_PER_PRODUCER = 8
CHECKPOINTS = {"PATTERN_PUBLISHED", "EVENT_RECEIVED", "EVENT_PARSED", "WEBSOCKET_DELIVERED"}
#: A flow's spans: send + PUBLISH (producer), process + parse + deliver (consumer, one user).
SPANS_PER_FLOW = 5


@pytest.fixture(scope="module")
def tiers(
    otel_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoTierStack]:
    stack = TwoTierStack(otel_binaries, workdir=tmp_path_factory.mktemp("tiers"))
    try:
        stack.start()
    except StackError as err:
        pytest.fail(f"the two-tier stack did not start: {err}", pytrace=False)
    try:
        yield stack
    finally:
        stack.stop()


def _value(series: list[dict[str, Any]]) -> float:
    return sum(float(s["value"][1]) for s in series)


def _popen(argv: list[str], endpoint: str, service: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=REPO_ROOT,
        env=app_env(endpoint, service),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _consumer(endpoint: str, service: str, redis_url: str, channel: str, count: int) -> Any:
    argv = ["dbpulse.cli", "demo", "consumer", "--redis-url", redis_url, "--channel", channel]
    return _popen(
        [*argv, "--count", str(count), "--duration", "90", "--users", "1"], endpoint, service
    )


def _producer(
    endpoint: str, service: str, redis_url: str, channel: str, ids: list[str], interval: float = 0
) -> subprocess.Popen[str]:
    argv = ["tests.e2e.workload", "flows", redis_url, channel, *ids, "--interval", str(interval)]
    return _popen(argv, endpoint, service)


def _finish(proc: subprocess.Popen[str], what: str) -> str:
    """Wait for an application process; it must exit 0 (telemetry never fails the app)."""
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"{what} failed:\n{err[-3000:]}"
    return out


def _report(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(_finish(proc, what).strip().splitlines()[-1])
    return report


def _checkpoints(spans: list[dict[str, Any]]) -> set[str]:
    return {
        a["value"]["stringValue"]
        for s in spans
        for a in s["attributes"]
        if a["key"] == "flow.checkpoint"
    }


def _flow_spans(tiers: TwoTierStack, flow_id: str) -> list[dict[str, Any]]:
    trace = tiers.get_trace(uuid.UUID(flow_id).hex)
    return trace_spans(trace) if trace else []


def _whole(tiers: TwoTierStack, flow_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    def whole() -> list[dict[str, Any]] | None:
        spans = _flow_spans(tiers, flow_id)
        return (
            spans if len(spans) >= SPANS_PER_FLOW and _checkpoints(spans) == CHECKPOINTS else None
        )

    spans: list[dict[str, Any]] = wait_until(whole, timeout, what=f"flow {flow_id} whole")
    return spans


def _stored_span_ids(tiers: TwoTierStack, services: list[str]) -> set[str]:
    """Every span Jaeger holds in traces that touch ``services`` (one search per service)."""
    now_us = int(time.time() * 1e6)
    ids: set[str] = set()
    for service in services:
        query = {"service": service, "start": now_us - 600_000_000, "end": now_us + 60_000_000}
        url = f"{tiers.trace_store_url}/api/traces?" + urllib.parse.urlencode(
            {**query, "limit": 2000}
        )
        status, body = http_get(url)
        assert status == 200, body[:300]
        ids |= {s["spanID"] for t in json.loads(body)["data"] for s in t["spans"]}
    return ids


def test_traces_whole_and_counted_once_across_gateways(tiers: TwoTierStack, redis_url: str) -> None:
    run = uuid.uuid4().hex[:8]
    channel = f"dbpulse.e2e.scale.{run}"
    producer, consumer = f"scale-producer-{run}", f"scale-consumer-{run}"
    flows = [[str(uuid.uuid4()) for _ in range(FLOWS_PER_PRODUCER)] for _ in range(PRODUCERS)]
    total = PRODUCERS * FLOWS_PER_PRODUCER
    agents = tiers.otlp_grpc_endpoints
    consuming = _consumer(agents[1], consumer, redis_url, channel, total)
    producing = [
        _producer(agents[i % 2], producer, redis_url, channel, ids) for i, ids in enumerate(flows)
    ]
    for proc in producing:
        assert _report(proc, "a producer")["published"] == FLOWS_PER_PRODUCER
    _finish(consuming, "the consumer")

    # Jaeger: every flow is one trace (its id), whole: every span, the four checkpoints.
    for ids in flows:
        for flow_id in ids:
            spans = _whole(tiers, flow_id)
            assert len(spans) == SPANS_PER_FLOW, [s["name"] for s in spans]
            assert {s["traceId"] for s in spans} == {uuid.UUID(flow_id).hex}
            assert {s["serviceName"] for s in spans} == {producer, consumer}

    # What the apps sent is what the tiers stored and counted, once: the agents accepted N
    # spans, the gateways together N (not 2N), Jaeger holds N, span metrics sum to N.
    stored = len(_stored_span_ids(tiers, [producer, consumer]))
    assert stored >= total * SPANS_PER_FLOW  # the flows plus the producers' PUBSUB polls
    accepted_by = {
        name: tiers.telemetry(name, "otelcol_receiver_accepted_spans")
        for name in (*AGENTS, *GATEWAYS)
    }
    assert sum(accepted_by[a] for a in AGENTS) == stored, accepted_by
    assert sum(accepted_by[g] for g in GATEWAYS) == stored, accepted_by
    assert all(accepted_by[g] > 0 for g in GATEWAYS), f"one gateway got nothing: {accepted_by}"
    services = f'service_name=~"{producer}|{consumer}"'
    calls = tiers.wait_for_series(
        f"sum by (otelcol_gateway) (traces_span_metrics_calls_total{{{services}}})",
        timeout=60,
        predicate=lambda s: _value(s) >= stored,
    )
    assert _value(calls) == stored
    assert {s["metric"]["otelcol_gateway"] for s in calls} == set(GATEWAYS)
    # Each checkpoint counted once per flow, summed over the gateways.
    for checkpoint in CHECKPOINTS:
        series = tiers.query_prometheus(
            f'sum(traces_span_metrics_calls_total{{{services}, flow_checkpoint="{checkpoint}"}})'
        )
        assert _value(series) == total, checkpoint
    # The producer → consumer edge: one per flow. A flow whose PRODUCER and CONSUMER spans
    # reached different gateways would pair with nothing and be missing here.
    edges = tiers.wait_for_series(
        f'sum by (otelcol_gateway) (traces_service_graph_request_total{{client="{producer}",'
        f'server="{consumer}"}})',
        timeout=60,
        predicate=lambda s: _value(s) >= total,
    )
    assert _value(edges) == total
    print(
        f"\n{total} flows, {stored} spans: agents {[accepted_by[a] for a in AGENTS]}, gateways "
        f"{[accepted_by[g] for g in GATEWAYS]}; span-metric calls by gateway "
        f"{ {s['metric']['otelcol_gateway']: s['value'][1] for s in calls} }; edges by gateway "
        f"{ {s['metric']['otelcol_gateway']: s['value'][1] for s in edges} }"
    )


def test_a_gateway_killed_mid_run_is_routed_around(tiers: TwoTierStack, redis_url: str) -> None:
    run = uuid.uuid4().hex[:8]
    channel = f"dbpulse.e2e.scale.kill.{run}"
    producer, consumer = f"scale-kill-producer-{run}", f"scale-kill-consumer-{run}"
    flow_ids = [str(uuid.uuid4()) for _ in range(60)]
    agents = tiers.otlp_grpc_endpoints
    failed_before_reroute: dict[str, float] = {}
    consuming = _consumer(agents[1], consumer, redis_url, channel, len(flow_ids))
    producing = _producer(agents[0], producer, redis_url, channel, flow_ids, interval=0.2)
    try:
        time.sleep(4)
        killed_at = time.time()
        tiers.kill_gateway("gateway-2")
        time.sleep(2)
        # What the agents counted while gateway-2 was dead, read before they restart.
        for agent in AGENTS:
            failed_before_reroute[agent] = tiers.telemetry(
                agent, "otelcol_exporter_send_failed_spans"
            )
        tiers.reroute(["gateway-1"])
        rerouted_at = time.time()
        published = _report(producing, "the producer")
        _finish(consuming, "the consumer")
    finally:
        tiers.start_gateway("gateway-2")
        tiers.reroute(GATEWAYS)
    # The application saw nothing: both processes exited 0, every flow was published.
    assert published["published"] == len(flow_ids)

    # After the reroute every flow arrives whole through gateway-1; before the kill, every
    # flow too (both gateways were up). Only flows in flight around the kill may lack spans.
    found = {f: _flow_spans(tiers, f) for f in flow_ids}
    for flow_id, at in zip(flow_ids, published["published_at"], strict=True):
        if at > rerouted_at + 1 or at < killed_at - 3:
            found[flow_id] = _whole(tiers, flow_id)
    lost = {f: SPANS_PER_FLOW - len(s) for f, s in found.items() if len(s) < SPANS_PER_FLOW}
    window = [
        f
        for f, at in zip(flow_ids, published["published_at"], strict=True)
        if killed_at - 3 <= at <= rerouted_at + 1
    ]
    assert set(lost) <= set(window)
    logged = {agent: tiers.dropped_spans_logged(agent) for agent in AGENTS}
    print(
        f"\ngateway-2 killed: {len(window)} of {len(flow_ids)} flows in flight around the kill; "
        f"{len(lost)} flows lost {sum(lost.values())} spans; the agents counted "
        f"{failed_before_reroute} failed spans (otelcol_exporter_send_failed_spans) before the "
        f"reroute and logged {logged} spans dropped; the rest died in gateway-2's memory"
    )
    # Counted loss never exceeds the loss seen in Jaeger (a drop is a real drop).
    assert sum(logged.values()) <= sum(lost.values())
