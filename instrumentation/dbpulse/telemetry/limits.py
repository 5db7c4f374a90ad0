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


def key_limit_from_env() -> int:
    text = os.environ.get("DBPULSE_ENTITY_KEY_LIMIT", "").strip()
    try:
        return max(1, int(text)) if text else DEFAULT_KEY_LIMIT
    except ValueError:
        _log.warning("dbpulse: DBPULSE_ENTITY_KEY_LIMIT=%r is not an integer", text)
        return DEFAULT_KEY_LIMIT


def isbn_limit_from_env() -> int:
    text = os.environ.get("DBPULSE_ISBN_CARDINALITY_LIMIT", "").strip()
    try:
        return max(1, int(text)) if text else DEFAULT_CARDINALITY_LIMIT
    except ValueError:
        _log.warning("dbpulse: DBPULSE_ISBN_CARDINALITY_LIMIT=%r is not an integer", text)
        return DEFAULT_CARDINALITY_LIMIT
