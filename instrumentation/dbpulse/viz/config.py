"""What the viz server and the viz feed can be told, from arguments or ``DBPULSE_VIZ_*``.

Usage::

    from dbpulse.viz import VizConfig

    config = VizConfig(port=0, token="s3cret")           # arguments
    config = VizConfig.from_env(port=8765)               # DBPULSE_VIZ_PORT etc., then these

Each :class:`VizConfig` field ``name`` is read from ``DBPULSE_VIZ_<NAME>``;
:func:`feed_options_from_env` reads the feed's variables (``VizFeedProcessor.from_env``).
``docs/viz.md`` lists them all. Nothing here needs the server's dependencies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["VizConfig", "feed_options_from_env", "names"]

_log = logging.getLogger("dbpulse.viz")


@dataclass
class VizConfig:
    """Everything the viz server can be told. ``from_env`` reads ``DBPULSE_VIZ_*``.

    The limits against hostile clients: ``max_response_events`` bounds ``/api/viz/recent`` and
    ``/api/viz/replay``; ``max_label_values`` distinct tables and operations are kept in the
    counters (the rest under ``OVERFLOW_LABEL``); ``rate_limit_per_s``/``rate_limit_burst`` is
    each client address's token bucket (0 switches it off); ``allowed_hosts`` and
    ``allowed_origins`` (comma-separated) add to loopback names and same-origin requests;
    ``protect_views`` makes the viewing endpoints require the token as well; ``max_viewers``
    WebSockets are served at once (the next handshakes get ``429``); an emit body must arrive
    within ``body_timeout_s`` (``408`` otherwise).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_body_bytes: int = 2 * 1024 * 1024
    ring_size: int = 1000
    replay_seconds: float = 300.0
    replay_max_events: int = 200_000
    client_queue_size: int = 256
    slow_client_drop_limit: int = 1000
    slot_capacity: int = 65_536
    max_isbns: int = 1_000_000
    redis_url: str | None = None
    redis_channel: str = "dbpulse:viz"
    isbn_db: str | None = None
    isbn_table: str | None = None
    isbn_column: str = "isbn"
    max_response_events: int = 20_000
    max_label_values: int = 1000
    rate_limit_per_s: float = 200.0
    rate_limit_burst: int = 400
    allowed_hosts: str = ""
    allowed_origins: str = ""
    protect_views: bool = False
    max_viewers: int = 1000
    body_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, **overrides: Any) -> VizConfig:
        """The defaults, then ``DBPULSE_VIZ_*`` (invalid numbers are logged and ignored),
        then the ``overrides`` that are not ``None``."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            variable = "DBPULSE_VIZ_" + field.name.upper()
            text = os.environ.get(variable)
            if not text:
                continue
            default = field.default
            try:
                if isinstance(default, bool):
                    values[field.name] = _parse_bool(text)
                elif isinstance(default, int):
                    values[field.name] = int(text)
                elif isinstance(default, float):
                    values[field.name] = float(text)
                else:
                    values[field.name] = text
            except ValueError:
                _log.warning("dbpulse: %s=%r is not valid; ignored", variable, text)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def names(value: str | Iterable[str] | None) -> list[str]:
    """``"a, b"`` (or a sequence) as ``["a", "b"]``: how ``allowed_hosts`` and
    ``allowed_origins`` are given."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [item.strip() for item in items if item and item.strip()]


def feed_options_from_env() -> dict[str, Any]:
    """:class:`~dbpulse.viz.VizFeedProcessor` arguments from ``DBPULSE_VIZ_URL`` (required),
    ``DBPULSE_VIZ_TOKEN``, ``DBPULSE_VIZ_BATCH_SIZE``, ``DBPULSE_VIZ_BATCH_INTERVAL_MS``,
    ``DBPULSE_VIZ_QUEUE_SIZE`` and ``DBPULSE_VIZ_TIMEOUT_MS``; invalid numbers are logged and
    the default is used."""
    url = os.environ.get("DBPULSE_VIZ_URL", "").strip()
    if not url:
        raise ValueError("DBPULSE_VIZ_URL is not set (e.g. http://127.0.0.1:8765)")
    return {
        "url": url,
        "token": os.environ.get("DBPULSE_VIZ_TOKEN") or None,
        "batch_size": _env_int("DBPULSE_VIZ_BATCH_SIZE", 50),
        "batch_interval": _env_int("DBPULSE_VIZ_BATCH_INTERVAL_MS", 100) / 1000.0,
        "queue_size": _env_int("DBPULSE_VIZ_QUEUE_SIZE", 10_000),
        "timeout": _env_int("DBPULSE_VIZ_TIMEOUT_MS", 1000) / 1000.0,
    }


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return max(minimum, int(text))
    except ValueError:
        _log.warning("dbpulse: %s=%r is not an integer; using %d", name, text, default)
        return default
