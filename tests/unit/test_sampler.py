"""The adaptive sampler: modes by load, consistent sampling on 56 bits, thresholds in tracestate."""

from __future__ import annotations

import random
import time
import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased

from dbpulse.telemetry.sampler import (
    DEFAULT_BANDS,
    AdaptiveSampler,
    LoadMonitor,
    SamplingConfigError,
    encode_threshold,
    parse_bands,
    threshold_for,
)


def uuid4_trace_ids(n: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4).int for _ in range(n)]


def run_at(monitor: LoadMonitor, ops_per_second: int, seconds: float = 1.0) -> None:
    """Feed ``ops_per_second`` evenly spread operations for ``seconds`` of simulated time."""
    start = monitor.window_start
    total = int(ops_per_second * seconds)
    for i in range(total):
        monitor.tick(start + (i + 1) / ops_per_second)


@pytest.mark.parametrize(
    ("rate", "mode", "probability"),
    [
        (50, "detailed", 1.0),
        (150, "sampled", 0.10),
        (300, "sampled", 0.05),
        (700, "sampled", 0.01),
        (5000, "aggregated", 0.0),
    ],
)
def test_mode_follows_the_load(rate, mode, probability):
    monitor = LoadMonitor(DEFAULT_BANDS)
    run_at(monitor, rate, seconds=2.5)
    assert monitor.mode == mode
    assert monitor.probability == probability


def test_a_burst_escalates_within_the_second_and_relaxes_after_a_quiet_one():
    monitor = LoadMonitor(DEFAULT_BANDS)
    start = monitor.window_start
    for i in range(1500):  # 1500 operations in the first 0.15 s
        monitor.tick(start + i * 1e-4)
    assert monitor.mode == "aggregated"
    monitor.tick(start + 1.2)  # the window rolls: last second saw 1500 ops
    assert monitor.mode == "aggregated"
    monitor.tick(start + 2.5)  # a quiet second
    assert monitor.mode == "detailed"


def test_uuid4_flow_ids_are_sampled_at_the_configured_rate():
    ids = uuid4_trace_ids(20_000)
    monitor = LoadMonitor(((1, 0.10),))
    run_at(monitor, 10, seconds=1.5)
    sampler = AdaptiveSampler(monitor)
    kept = sum(
        sampler.should_sample(None, trace_id, "op").decision is Decision.RECORD_AND_SAMPLE
        for trace_id in ids
    )
    assert 0.08 < kept / len(ids) < 0.12
    # The SDK's ratio sampler reads the low 64 bits, where UUIDv4 has fixed variant bits.
    stock = TraceIdRatioBased(0.10)
    stock_kept = sum(
        stock.should_sample(None, trace_id, "op").decision is Decision.RECORD_AND_SAMPLE
        for trace_id in ids
    )
    assert stock_kept == 0


def test_sampling_is_consistent_across_services():
    """Two processes deciding on the same trace id at the same rate agree."""
    ids = uuid4_trace_ids(2000, seed=3)
    a, b = LoadMonitor(((1, 0.05),)), LoadMonitor(((1, 0.05),))
    for monitor in (a, b):
        run_at(monitor, 10, seconds=1.5)
    decide_a = [AdaptiveSampler(a).should_sample(None, t, "x").decision for t in ids]
    decide_b = [AdaptiveSampler(b).should_sample(None, t, "x").decision for t in ids]
    assert decide_a == decide_b


def test_threshold_is_recorded_in_tracestate():
    monitor = LoadMonitor(((1, 0.10),))
    run_at(monitor, 10, seconds=1.5)
    result = AdaptiveSampler(monitor).should_sample(None, (1 << 56) - 1, "op")
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert result.trace_state.get("ot") == "th:e6666666666666"
    assert encode_threshold(threshold_for(0.5)) == "8"
    assert encode_threshold(threshold_for(1.0)) == "0"
    assert encode_threshold(threshold_for(0.25)) == "c"


def test_detailed_mode_samples_every_root_and_parent_based_children_follow():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(AdaptiveSampler(LoadMonitor(DEFAULT_BANDS))))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["child", "root"]
    assert spans[1].context.trace_state.get("ot") == "th:0"


def test_quiet_process_relaxes_without_new_operations():
    monitor = LoadMonitor(DEFAULT_BANDS)
    run_at(monitor, 5000, seconds=1.0)
    assert monitor.mode == "aggregated"
    monitor.window_start = time.perf_counter() - 5  # one operation in the last five seconds
    assert monitor.refresh() == 1.0


@pytest.mark.parametrize(
    "text",
    ["100", "100:2", "abc:0.1", "200:0.1,100:0.05", "100:0.01,200:0.1", "-5:0.1"],
)
def test_bad_bands_give_a_clear_error(text):
    with pytest.raises(SamplingConfigError, match="DBPULSE_SAMPLING_BANDS"):
        parse_bands(text)


def test_bands_parse():
    assert parse_bands("100:0.1, 200:0.05,1000:0") == ((100, 0.1), (200, 0.05), (1000, 0.0))
