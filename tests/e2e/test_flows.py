"""Pattern flows through the real collector: the trace store (Jaeger here, Tempo in compose)
finds each flow by its id, Prometheus counts it.

The producer is a small application calling ``dbpulse.flow.publish`` with flow ids it chose
(``python -m tests.e2e.workload flows``);
the consumer is ``dbpulse demo consumer`` — two processes, two services, one Redis channel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.workload import app_env
from tests.harness.stack import OtelStack, trace_spans, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS = 3


def _env(stack: OtelStack, service: str) -> dict[str, str]:
    return app_env(stack.otlp_grpc_endpoint, service)


def _value(series: list[dict[str, Any]]) -> float:
    return sum(float(s["value"][1]) for s in series)


def test_flows_reach_the_trace_store_by_flow_id_and_prometheus(
    otel_stack: OtelStack, redis_url: str
) -> None:
    run = uuid.uuid4().hex[:8]
    channel = f"dbpulse.e2e.flows.{run}"
    producer_service, consumer_service = f"flow-producer-{run}", f"flow-consumer-{run}"
    flow_ids = [str(uuid.uuid4()) for _ in range(EVENTS)]

    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dbpulse.cli",
            "demo",
            "consumer",
            "--redis-url",
            redis_url,
            "--channel",
            channel,
            "--count",
            str(EVENTS),
            "--duration",
            "60",
            "--users",
            "7",
        ],
        cwd=REPO_ROOT,
        env=_env(otel_stack, consumer_service),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        produced = subprocess.run(
            [sys.executable, "-m", "tests.e2e.workload", "flows", redis_url, channel, *flow_ids],
            cwd=REPO_ROOT,
            env=_env(otel_stack, producer_service),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert produced.returncode == 0, produced.stderr[-3000:]
        assert json.loads(produced.stdout.strip().splitlines()[-1])["published"] == EVENTS
        _, err = consumer.communicate(timeout=90)
        assert consumer.returncode == 0, err[-3000:]
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.communicate()

    # The trace store: each flow is the trace whose id is the flow id, with the four checkpoints.
    for flow_id in flow_ids:
        trace_id = uuid.UUID(flow_id).hex
        found = wait_until(
            lambda trace_id=trace_id: (
                (t := otel_stack.get_trace(trace_id)) and len(trace_spans(t)) >= 4 and t
            ),
            timeout=90,
            what=f"flow {flow_id} as trace {trace_id} in the trace store",
        )
        spans = trace_spans(found)
        checkpoints = {
            a["value"]["stringValue"]
            for s in spans
            for a in s["attributes"]
            if a["key"] == "flow.checkpoint"
        }
        assert checkpoints == {
            "PATTERN_PUBLISHED",
            "EVENT_RECEIVED",
            "EVENT_PARSED",
            "WEBSOCKET_DELIVERED",
        }
        kinds = {s["name"]: s.get("kind") for s in spans}
        assert kinds[f"send {channel}"] == "SPAN_KIND_PRODUCER"
        assert kinds[f"process {channel}"] == "SPAN_KIND_CONSUMER"

    # TraceQL on the flow id attribute finds the same trace.
    query = f'{{ span.flow.id = "{flow_ids[0]}" }}'
    hits = wait_until(lambda: otel_stack.search_traceql(query), timeout=60, what=query)
    assert uuid.UUID(flow_ids[0]).hex in {h["traceID"].rjust(32, "0") for h in hits}

    # Prometheus: the checkpoint funnel and the end-to-end latency, as the dashboards read them.
    for checkpoint in ("PATTERN_PUBLISHED", "EVENT_RECEIVED", "WEBSOCKET_DELIVERED"):
        promql = (
            f'sum(dbpulse_flow_checkpoints_total{{flow_checkpoint="{checkpoint}",'
            f'messaging_destination_name="{channel}"}})'
        )
        series = otel_stack.wait_for_series(
            promql, timeout=60, predicate=lambda s: _value(s) == EVENTS
        )
        assert _value(series) == EVENTS
    latency = otel_stack.wait_for_series(
        f'sum(dbpulse_flow_latency_seconds_count{{messaging_destination_name="{channel}"}})',
        timeout=60,
        predicate=lambda s: _value(s) == EVENTS,
    )
    assert _value(latency) == EVENTS
    # Span metrics carry the checkpoint; the service graph has the producer → consumer edge.
    received = otel_stack.wait_for_series(
        f'sum(traces_span_metrics_calls_total{{service_name="{consumer_service}",'
        f'flow_checkpoint="EVENT_RECEIVED"}})',
        timeout=90,
        predicate=lambda s: _value(s) == EVENTS,
    )
    assert _value(received) == EVENTS
    otel_stack.wait_for_series(
        f'traces_service_graph_request_total{{client="{producer_service}",'
        f'server="{consumer_service}"}}',
        timeout=90,
    )
    heartbeat = otel_stack.wait_for_series(
        f'dbpulse_heartbeat_timestamp_seconds{{service_name="{consumer_service}"}}', timeout=60
    )
    assert abs(_value(heartbeat) - time.time()) < 300
