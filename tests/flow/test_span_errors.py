"""Flow spans export an exception's type, never its message (the rule of database spans)."""

from __future__ import annotations

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import StatusCode

from dbpulse.flow.checkpoints import fail_span
from dbpulse.telemetry.spans import DirectSpans, TracerSpans

MARKER = "Zq-alice@example.com-hunter2-qZ"


class PaymentDeclined(Exception):
    pass


def _exported(span) -> str:
    events = [(e.name, dict(e.attributes)) for e in span.events]
    return repr((span.name, dict(span.attributes), span.status.description, events))


@pytest.mark.parametrize("recorder", [DirectSpans, TracerSpans])
def test_a_failed_flow_span_carries_the_error_type_only(recorder) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if recorder is DirectSpans:
        spans = DirectSpans(provider, InstrumentationScope("dbpulse.flow", "1"))
    else:
        spans = TracerSpans(provider.get_tracer("dbpulse.flow"))
    span = spans.start_span("process orders", context=Context())
    try:
        raise PaymentDeclined(f"card of {MARKER} declined")
    except PaymentDeclined as exc:
        fail_span(span, exc)
        span.record_exception(exc)  # what application code may call on a current flow span
    span.end()
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "PaymentDeclined"
    assert finished.attributes["error.type"] == "PaymentDeclined"
    assert finished.events[0].name == "exception"
    assert finished.events[0].attributes["exception.type"] == "PaymentDeclined"
    if recorder is DirectSpans:  # the SDK's own span records what the application gives it
        assert MARKER not in _exported(finished)
    else:
        assert MARKER not in repr(dict(finished.events[0].attributes))
        assert MARKER not in (finished.status.description or "")
