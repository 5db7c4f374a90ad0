"""Where the read model finds its sources: flags first, then ``DBPULSE_*`` variables, then the
defaults of ``docker compose up`` (docs/stack.md).

Usage::

    from dbpulse.faces import Endpoints

    endpoints = Endpoints.from_env()                          # DBPULSE_PROMETHEUS_URL, ...
    endpoints = Endpoints.from_env(prometheus_url="http://127.0.0.1:19090")   # a flag wins

| field | variable | default |
|---|---|---|
| ``prometheus_url`` | ``DBPULSE_PROMETHEUS_URL`` | ``http://127.0.0.1:9090`` |
| ``trace_store_url`` | ``DBPULSE_TRACE_STORE_URL`` | ``http://127.0.0.1:3200`` (Tempo) |
| ``trace_store_kind`` | ``DBPULSE_TRACE_STORE_KIND`` | ``auto`` (``tempo``, ``jaeger``) |
| ``viz_url`` | ``DBPULSE_VIZ_URL`` | ``http://127.0.0.1:8765`` |
| ``viz_token`` | ``DBPULSE_VIZ_TOKEN`` | none |
| ``health_targets`` | ``DBPULSE_HEALTH_TARGETS`` (comma-separated) | none |
| ``timeout_s`` | ``DBPULSE_FACES_TIMEOUT`` | ``3`` seconds per request |

The test harness (``python -m tests.harness``) serves Prometheus on 9090 and Jaeger on 16686:
``DBPULSE_TRACE_STORE_URL=http://127.0.0.1:16686`` points the read model at it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dbpulse.viz.config import names

__all__ = ["TRACE_STORE_KINDS", "Endpoints"]

TRACE_STORE_KINDS = ("auto", "tempo", "jaeger")

_VARIABLES = {
    "prometheus_url": "DBPULSE_PROMETHEUS_URL",
    "trace_store_url": "DBPULSE_TRACE_STORE_URL",
    "trace_store_kind": "DBPULSE_TRACE_STORE_KIND",
    "viz_url": "DBPULSE_VIZ_URL",
    "viz_token": "DBPULSE_VIZ_TOKEN",
    "health_targets": "DBPULSE_HEALTH_TARGETS",
    "timeout_s": "DBPULSE_FACES_TIMEOUT",
}


@dataclass(frozen=True)
class Endpoints:
    """The sources of the read model; ``from_env`` fills them from flags and variables."""

    prometheus_url: str = "http://127.0.0.1:9090"
    trace_store_url: str = "http://127.0.0.1:3200"
    trace_store_kind: str = "auto"
    viz_url: str = "http://127.0.0.1:8765"
    viz_token: str | None = None
    health_targets: tuple[str, ...] = field(default_factory=tuple)
    timeout_s: float = 3.0

    def __post_init__(self) -> None:
        if self.trace_store_kind not in TRACE_STORE_KINDS:
            raise ValueError(
                f"trace store kind {self.trace_store_kind!r}: use one of "
                + ", ".join(TRACE_STORE_KINDS)
            )
        if not self.timeout_s > 0:
            raise ValueError(f"timeout must be positive seconds, got {self.timeout_s!r}")
        for name in ("prometheus_url", "trace_store_url", "viz_url"):
            url = getattr(self, name)
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{name.replace('_', ' ')} {url!r}: expected http(s)://host:port")
            object.__setattr__(self, name, url.rstrip("/"))

    @classmethod
    def from_env(cls, **overrides: Any) -> Endpoints:
        """The defaults, then the ``DBPULSE_*`` variables, then the ``overrides`` not None."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            text = os.environ.get(_VARIABLES[item.name], "").strip()
            if not text:
                continue
            if item.name == "health_targets":
                values[item.name] = tuple(names(text))
            elif item.name == "timeout_s":
                try:
                    values[item.name] = float(text)
                except ValueError:
                    raise ValueError(f"DBPULSE_FACES_TIMEOUT={text!r} is not a number") from None
            else:
                values[item.name] = text
        endpoints = cls(**values)
        given = {k: v for k, v in overrides.items() if v is not None}
        if "health_targets" in given:
            given["health_targets"] = tuple(given["health_targets"])
        return replace(endpoints, **given) if given else endpoints
