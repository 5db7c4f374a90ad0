"""Helpers for test suites that instrument once per process and want a clean slate per test.

Usage (pytest)::

    import dbpulse.testing

    @pytest.fixture(autouse=True)
    def clean_dbpulse():
        dbpulse.testing.reset()

OpenTelemetry's global providers can be set once per process, so a suite configures dbpulse
once and calls :func:`reset` between tests.
"""

from __future__ import annotations

from dbpulse.core.entities import IsbnExtractor
from dbpulse.core.state import STATE
from dbpulse.core.statements import set_extractor
from dbpulse.health.retry import RETRIES
from dbpulse.telemetry.capture import CAPTURE
from dbpulse.telemetry.limits import INSIGHTS
from dbpulse.telemetry.metrics import OPERATIONS
from dbpulse.telemetry.repeats import REPEATS
from dbpulse.telemetry.sampler import DEFAULT_BANDS, LOAD

__all__ = ["reset"]


def reset() -> None:
    """Forget every count (retries too), re-enable observation, restore the ISBN extractor,
    clear the statement cache and put the adaptive sampler back to its default bands (detailed
    mode). The query-insight settings (``DBPULSE_TOP_STATEMENTS``, ``DBPULSE_SLOW_QUERY_MS``,
    ...) are read again from the environment, N+1 state is forgotten, the capture budget full."""
    INSIGHTS.reload()
    CAPTURE.configure(INSIGHTS.per_second, INSIGHTS.burst)
    REPEATS.reset()
    OPERATIONS.reset()
    RETRIES.reset()
    LOAD.configure(DEFAULT_BANDS)
    set_extractor(IsbnExtractor())
    STATE.set_enabled(True)
