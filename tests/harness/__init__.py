"""Test harness: the real collector, Prometheus and a trace store (Jaeger) on loopback.

``stack`` starts and queries the backends (``OtelStack``); ``processes`` finds their binaries and
runs each one; ``traceql`` answers the TraceQL subset over Jaeger; ``fixtures`` is the pytest
plugin (``pytest_plugins = ["tests.harness.fixtures"]``) that provides ``otel_stack``.
"""

from tests.harness.processes import (
    Binaries,
    StackError,
    locate_binaries,
    locate_binary,
)
from tests.harness.stack import HARNESS_CONFIGS, OtelStack, trace_spans

__all__ = [
    "HARNESS_CONFIGS",
    "Binaries",
    "OtelStack",
    "StackError",
    "locate_binaries",
    "locate_binary",
    "trace_spans",
]
