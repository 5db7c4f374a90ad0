"""What the query-insight tests share."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import dbpulse.testing
from dbpulse.telemetry.sampler import LOAD

STATEMENT_DURATION = "dbpulse.db.statement.duration"


def aggregated(otel: Any, run_one: Any) -> None:
    """Put the adaptive sampler in aggregated mode (metrics only) and keep it there: from
    1 op/s on, keep nothing. ``run_one`` is a call that crosses the band (its span, kept in
    detailed mode, is cleared)."""
    LOAD.configure(((1, 0.0),))
    run_one()
    assert LOAD.mode == "aggregated"
    otel.span_exporter.clear()


def settings(monkeypatch: Any, **variables: str) -> None:
    """Set DBPULSE_* variables and have dbpulse read them again (``dbpulse.testing.reset``)."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    dbpulse.testing.reset()


def unsampled_parent() -> Any:
    """The context of a valid parent span whose trace is not sampled (another service's
    sampler said no)."""
    context = SpanContext(
        trace_id=0x5B8AA5A2D2C872E8321CF37308D69DF2,
        span_id=0x051581BF3CB55C13,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


def captured(spans: list[Any], reason: str) -> list[Any]:
    return [s for s in spans if s.attributes.get("dbpulse.sampling.reason") == reason]
