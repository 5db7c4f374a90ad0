"""FlowIdGenerator: the flow id becomes the trace id of a real root span."""

from __future__ import annotations

import uuid

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from dbpulse.telemetry.ids import FLOW_TRACE_ID, FlowIdGenerator


def test_random_ids_without_a_flow() -> None:
    ids = FlowIdGenerator()
    trace_ids = {ids.generate_trace_id() for _ in range(100)}
    assert len(trace_ids) == 100
    assert all(0 < t < 1 << 128 for t in trace_ids)
    assert all(0 < ids.generate_span_id() < 1 << 64 for _ in range(100))
    assert ids.is_trace_id_random()


def test_flow_id_from_the_context_variable() -> None:
    ids = FlowIdGenerator()
    flow_id = uuid.uuid4()
    token = FLOW_TRACE_ID.set(flow_id.int)
    try:
        assert ids.generate_trace_id() == flow_id.int
        assert ids.is_trace_id_random()
    finally:
        FLOW_TRACE_ID.reset(token)
    assert ids.generate_trace_id() != flow_id.int


def test_non_random_uuid_versions_are_not_flagged_random() -> None:
    token = FLOW_TRACE_ID.set(uuid.uuid1().int)
    try:
        assert not FlowIdGenerator().is_trace_id_random()
    finally:
        FLOW_TRACE_ID.reset(token)


def test_root_span_gets_the_flow_id_and_children_inherit_it() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider(id_generator=FlowIdGenerator(), sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    flow_id = uuid.uuid4()
    token = FLOW_TRACE_ID.set(flow_id.int)
    try:
        with tracer.start_as_current_span("root") as root:
            FLOW_TRACE_ID.set(None)  # children never ask the generator for a trace id anyway
            with tracer.start_as_current_span("child"):
                pass
    finally:
        FLOW_TRACE_ID.reset(token)
    child, root_span = spans.get_finished_spans()
    assert root_span.parent is None
    assert root.get_span_context().trace_id == flow_id.int
    assert child.context.trace_id == flow_id.int
    assert root_span.context.trace_flags.random_trace_id
