"""The bounds of dbpulse's in-process aggregate, and the variables that set them."""

from __future__ import annotations

import logging
import os

__all__ = [
    "DEFAULT_CARDINALITY_LIMIT",
    "DEFAULT_KEY_LIMIT",
    "DURATION_BUCKETS",
    "INSIGHTS",
    "Insights",
    "isbn_limit_from_env",
    "key_limit_from_env",
]

_log = logging.getLogger("dbpulse.telemetry.metrics")

DEFAULT_CARDINALITY_LIMIT = 2000
"""The OpenTelemetry metrics SDK specification's default cardinality limit per instrument.

The Python SDK (1.45) does not enforce one, so dbpulse applies it to its own series: the
operation series (duration histogram, written rows) and, separately configurable, the ISBN
series."""

DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
"""Advised bucket boundaries of ``db.client.operation.duration`` (semantic conventions)."""

DEFAULT_KEY_LIMIT = 100_000
"""Distinct (table, operation, key) kept for the viz feed (~100 bytes each)."""


def _positive_int(variable: str, default: int, minimum: int = 1) -> int:
    text = os.environ.get(variable, "").strip()
    try:
        return max(minimum, int(text)) if text else default
    except ValueError:
        _log.warning("dbpulse: %s=%r is not an integer; using %d", variable, text, default)
        return default


def _non_negative_float(variable: str, default: float) -> float:
    text = os.environ.get(variable, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        value = -1.0
    if not value >= 0.0:  # also NaN
        _log.warning("dbpulse: %s=%r is not a number >= 0; using %g", variable, text, default)
        return default
    return value


def key_limit_from_env() -> int:
    return _positive_int("DBPULSE_ENTITY_KEY_LIMIT", DEFAULT_KEY_LIMIT)


def isbn_limit_from_env() -> int:
    return _positive_int("DBPULSE_ISBN_CARDINALITY_LIMIT", DEFAULT_CARDINALITY_LIMIT)


class Insights:
    """The query-insight settings (read once at import; ``reload()`` re-reads them).

    ``DBPULSE_TOP_STATEMENTS`` (20): statements exported per collection by total time, the
    rest under one overflow series; 0 turns the per-statement aggregate off.
    ``DBPULSE_STATEMENT_LIMIT`` (5000): distinct statement shapes counted in process.
    ``DBPULSE_N_PLUS_ONE_THRESHOLD`` (5): the same statement this many times under one parent
    span is an N+1 pattern; 0 turns detection off.
    ``DBPULSE_SLOW_QUERY_MS`` (200): an operation at least this slow keeps a span whatever the
    sampler decided (``DBPULSE_CAPTURE_SLOW=false`` and ``DBPULSE_CAPTURE_ERRORS=false`` turn
    the slow and failed capture off).
    ``DBPULSE_CAPTURE_PER_SECOND`` (10) and ``DBPULSE_CAPTURE_BURST`` (20): the token bucket of
    captured spans; captures beyond it are counted as dropped (``capture_rate_limit``).
    """

    __slots__ = (
        "burst",
        "capture_errors",
        "per_second",
        "repeat_threshold",
        "slow_seconds",
        "statement_limit",
        "top_statements",
    )

    def __init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.top_statements = _positive_int("DBPULSE_TOP_STATEMENTS", 20, minimum=0)
        self.statement_limit = _positive_int("DBPULSE_STATEMENT_LIMIT", 5000)
        self.repeat_threshold = _positive_int("DBPULSE_N_PLUS_ONE_THRESHOLD", 5, minimum=0)
        slow = _flag("DBPULSE_CAPTURE_SLOW")
        self.slow_seconds = (
            _non_negative_float("DBPULSE_SLOW_QUERY_MS", 200.0) / 1000.0 if slow else float("inf")
        )
        self.capture_errors = _flag("DBPULSE_CAPTURE_ERRORS")
        self.per_second = _non_negative_float("DBPULSE_CAPTURE_PER_SECOND", 10.0)
        self.burst = float(_positive_int("DBPULSE_CAPTURE_BURST", 20, minimum=0))


def _flag(variable: str) -> bool:
    return os.environ.get(variable, "true").strip().lower() not in ("0", "false", "no", "off")


INSIGHTS = Insights()
"""The process's query-insight settings."""
