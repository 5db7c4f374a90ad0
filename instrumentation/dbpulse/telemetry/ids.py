"""Trace ids that can be chosen by the caller: a flow's UUID becomes its trace id.

``dbpulse.flow`` sets :data:`FLOW_TRACE_ID` around the start of a flow's root span; the
SDK asks the provider's id generator for a trace id only for root spans, so the span becomes
a real root whose trace id *is* the flow id (a fake remote parent would show as a missing span
in Tempo). Everywhere else the generator behaves like the SDK's ``RandomIdGenerator``.

Installed by ``dbpulse.configure()`` and the ``opentelemetry-instrument`` configurator::

    TracerProvider(id_generator=FlowIdGenerator(), sampler=ParentBased(...))

UUIDv4 flow ids carry fixed version/variant bits, but their low 56 bits are random, which is
what dbpulse's adaptive sampler (and W3C "random trace id" consumers) rely on.
"""

from __future__ import annotations

import random
from contextvars import ContextVar

from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID

__all__ = ["FLOW_TRACE_ID", "FlowIdGenerator"]

FLOW_TRACE_ID: ContextVar[int | None] = ContextVar("dbpulse_flow_trace_id", default=None)
"""The trace id the next root span should get, or ``None`` for a random one."""


class FlowIdGenerator(IdGenerator):
    """Random ids, except the trace id set in :data:`FLOW_TRACE_ID` while it is set."""

    def generate_span_id(self) -> int:
        span_id = random.getrandbits(64)
        while span_id == INVALID_SPAN_ID:
            span_id = random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        chosen = FLOW_TRACE_ID.get()
        if chosen:
            return chosen
        trace_id = random.getrandbits(128)
        while trace_id == INVALID_TRACE_ID:
            trace_id = random.getrandbits(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        # Asked right after generate_trace_id() for the same root span. A UUIDv4 flow id has
        # random low 56 bits (the W3C "random trace id" flag holds); other UUID versions don't.
        chosen = FLOW_TRACE_ID.get()
        return not chosen or (chosen >> 76) & 0xF == 4
