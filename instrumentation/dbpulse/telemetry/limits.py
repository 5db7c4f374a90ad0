"""The bounds of dbpulse's in-process aggregate, and the variables that set them."""

from __future__ import annotations

import logging
import os

__all__ = [
    "DEFAULT_CARDINALITY_LIMIT",
    "DEFAULT_KEY_LIMIT",
    "isbn_limit_from_env",
    "key_limit_from_env",
]

_log = logging.getLogger("dbpulse.telemetry.metrics")

DEFAULT_CARDINALITY_LIMIT = 2000
"""The OpenTelemetry metrics SDK specification's default cardinality limit per instrument.

The Python SDK (1.45) does not enforce one, so dbpulse applies it to its own series: the
operation series (duration histogram, written rows) and, separately configurable, the ISBN
series."""

DEFAULT_KEY_LIMIT = 100_000
"""Distinct (table, operation, key) kept for the viz feed (~100 bytes each)."""


def _positive_int(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    try:
        return max(1, int(text)) if text else default
    except ValueError:
        _log.warning("dbpulse: %s=%r is not an integer; using %d", variable, text, default)
        return default


def key_limit_from_env() -> int:
    return _positive_int("DBPULSE_ENTITY_KEY_LIMIT", DEFAULT_KEY_LIMIT)


def isbn_limit_from_env() -> int:
    return _positive_int("DBPULSE_ISBN_CARDINALITY_LIMIT", DEFAULT_CARDINALITY_LIMIT)
