"""Spans recorded straight into the SDK's processors behave like SDK spans where users look."""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from dbpulse.telemetry.sampler import DEFAULT_BANDS, LOAD
from dbpulse.telemetry.spans import DirectSpans


def recorder(sampler=ALWAYS_ON) -> tuple[DirectSpans, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return DirectSpans(provider, InstrumentationScope("dbpulse.test", "1")), exporter


def test_a_recorded_span_can_be_current_and_annotated_by_application_code():
    spans, exporter = recorder()
    parent = spans.start_span("deliver ch", context=Context(), kind=SpanKind.INTERNAL)
    with trace.use_span(parent, end_on_exit=True):
        current = trace.get_current_span()
        current.set_attribute("app.note", "hello")
        current.add_event("step", {"n": 1})
        current.update_name("deliver renamed")
        try:
            raise ValueError("bad payload")
        except ValueError as exc:
            current.record_exception(exc)
            current.set_status(StatusCode.ERROR, "bad payload")
        child = spans.start("INSERT books", {"db.system.name": "sqlite"}, None)
        assert child is not None
        child.end()
    child_span, parent_span = exporter.get_finished_spans()
    assert parent_span.name == "deliver renamed"
    assert parent_span.attributes["app.note"] == "hello"
    assert [e.name for e in parent_span.events] == ["step", "exception"]
    assert parent_span.events[1].attributes["exception.type"] == "ValueError"
    assert parent_span.status.status_code is StatusCode.ERROR
    assert child_span.parent.span_id == parent_span.context.span_id
    assert child_span.context.trace_id == parent_span.context.trace_id
    assert parent_span.instrumentation_scope.name == "dbpulse.test"


def test_a_dropped_span_is_non_recording_and_exports_nothing():
    spans, exporter = recorder(ALWAYS_OFF)
    # A child asks the provider's sampler (the application's): ALWAYS_OFF drops it.
    parent = trace.NonRecordingSpan(
        trace.SpanContext(1, 2, is_remote=True, trace_flags=trace.TraceFlags(1))
    )
    span = spans.start_span("send ch", context=trace.set_span_in_context(parent, Context()))
    assert not span.is_recording()
    assert span.get_span_context().is_valid  # ids still propagate
    span.end()
    assert exporter.get_finished_spans() == ()


def test_a_root_is_sampled_by_dbpulse_whatever_the_application_sampler():
    spans, _ = recorder(ALWAYS_OFF)
    try:
        LOAD.configure(())  # no bands: the adaptive sampler keeps every root
        assert spans.start_span("kept root", context=Context()).is_recording()
        LOAD.configure(((0.0, 0.0),))  # aggregated from the first operation: no roots
        LOAD.tick(time.perf_counter())
        assert not spans.start_span("dropped root", context=Context()).is_recording()
    finally:
        LOAD.configure(DEFAULT_BANDS)


def test_ending_twice_exports_once_and_late_writes_are_ignored():
    spans, exporter = recorder()
    span = spans.start_span("x", context=Context())
    span.end()
    span.set_attribute("late", 1)
    span.end()
    (finished,) = exporter.get_finished_spans()
    assert "late" not in finished.attributes
