"""Hooks for ``opentelemetry-instrument``: the dbpulse distro and configurator.

With dbpulse installed, ``opentelemetry-instrument python app.py`` loads:

* :class:`DbpulseDistro` — sets defaults (OTLP for traces and metrics) and skips the stock
  ``sqlite3``/``psycopg``/``redis`` instrumentors that dbpulse replaces, so a call yields one
  span. (dbpulse's instrumentors also disable the stock ones themselves, whichever distro runs.)
* :class:`DbpulseConfigurator` — builds the SDK with :func:`dbpulse.configure`.
* dbpulse's instrumentors, through the ``opentelemetry_instrumentor`` entry points.

``DBPULSE_ENABLED=false`` starts with observation switched off (``dbpulse.set_enabled(True)``
turns it on at run time). ``OTEL_SDK_DISABLED=true`` builds no SDK and switches dbpulse off.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

from dbpulse.setup import configure, enabled_from_env, sdk_disabled, set_enabled

__all__ = ["REPLACED", "DbpulseConfigurator", "DbpulseDistro"]

_log = logging.getLogger(__name__)

REPLACED = frozenset({"sqlite3", "psycopg", "redis"})
"""Entry-point names of the stock instrumentors that dbpulse's own replace."""


class DbpulseDistro(BaseDistro):
    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "otlp")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name in REPLACED:
            _log.debug("dbpulse: skipping the stock %s instrumentor", entry_point.name)
            return
        super().load_instrumentor(entry_point, **kwargs)


class DbpulseConfigurator(_BaseConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        if sdk_disabled():
            # As the SDK's own configurator does: no providers. dbpulse's wrappers then cost
            # one flag check per call.
            set_enabled(False)
            return
        configure()
        if not enabled_from_env():
            set_enabled(False)
