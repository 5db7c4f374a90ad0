"""pytest fixtures for the real telemetry backends.

Enable them in ``tests/conftest.py``::

    pytest_plugins = ["tests.harness.fixtures"]

then ask for them::

    def test_histogram_reaches_prometheus(otel_stack):
        ...  # export OTLP to otel_stack.otlp_grpc_endpoint
        otel_stack.wait_for_series('db_client_operation_duration_seconds_count', timeout=60)

A missing binary fails the test when ``CI=true`` (CI must have built it) and skips it
otherwise, naming ``scripts/services.sh``. Set ``DBPULSE_KEEP_STACK_DIR=1`` to keep the
stack's temporary directory (configs, data, logs) for a post-mortem.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.processes import (
    Binaries,
    StackError,
    locate_binary,
    missing_binaries_message,
)
from tests.harness.stack import OtelStack
from tests.services import IN_CI


def require_binary(name: str) -> Path:
    """Path of ``otelcol``, ``jaeger`` or ``prometheus``; fail (CI) or skip (locally) if absent."""
    path = locate_binary(name)
    if path is None:
        message = missing_binaries_message([name])
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def otel_binaries() -> Binaries:
    """The collector, Prometheus and trace-store (Jaeger) binaries the stack runs."""
    return Binaries(
        otelcol=require_binary("otelcol"),
        prometheus=require_binary("prometheus"),
        jaeger=require_binary("jaeger"),
    )


@pytest.fixture(scope="session")
def otel_stack(
    otel_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OtelStack]:
    """Collector + Prometheus + trace store on free loopback ports, shared by the session.

    Tests that stop or kill a component must start it again before they return (use
    try/finally), so the next test finds the stack whole.
    """
    stack = OtelStack(otel_binaries, workdir=tmp_path_factory.mktemp("otel-stack"))
    try:
        stack.start()
    except StackError as err:
        pytest.fail(f"the telemetry stack did not start: {err}", pytrace=False)
    try:
        yield stack
    finally:
        stack.stop()
