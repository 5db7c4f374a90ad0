"""Hooks for ``opentelemetry-instrument``: the dbpulse distro and configurator.

With dbpulse installed, ``opentelemetry-instrument python app.py`` loads:

* :class:`DbpulseDistro` — sets defaults (OTLP for traces and metrics) and skips the stock
  ``sqlite3``/``psycopg``/``redis`` instrumentors that dbpulse replaces, so a call yields one
  span. (dbpulse's instrumentors also disable the stock ones themselves, whichever distro runs.)
* :class:`DbpulseConfigurator` — builds the SDK with :func:`dbpulse.configure`. Choosing
  dbpulse's distro chooses its configurator too (``OTEL_PYTHON_CONFIGURATOR=dbpulse`` by
  default), whatever order the entry points come in; ``opentelemetry-distro``'s configurator,
  when installed as well, is then skipped without the loader's warning about it (dbpulse's
  builds the same providers, so the user has nothing to act on).
* dbpulse's instrumentors, through the ``opentelemetry_instrumentor`` entry points.

``DBPULSE_ENABLED=false`` starts with observation switched off (``dbpulse.set_enabled(True)``
turns it on at run time). ``OTEL_SDK_DISABLED=true`` builds no SDK and switches dbpulse off.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)
from opentelemetry.sdk._configuration import _BaseConfigurator

from dbpulse.setup import configure, enabled_from_env, sdk_disabled, set_enabled

__all__ = ["REPLACED", "STOCK_NAMES", "DbpulseConfigurator", "DbpulseDistro"]

_log = logging.getLogger(__name__)

REPLACED = frozenset({"sqlite3", "psycopg", "redis"})
"""Entry-point names of the stock instrumentors that dbpulse's own replace."""

STOCK_NAMES = {
    "dbpulse_sqlite3": "sqlite3",
    "dbpulse_psycopg": "psycopg",
    "dbpulse_redis": "redis",
    "dbpulse_duckdb": "duckdb",
}
"""dbpulse's instrumentor entry points and the stock names a user may write for the same
database in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``."""

_NAME = "dbpulse"
_STOCK_CONFIGURATOR = "configurator"  # opentelemetry-distro's entry-point name
_LOADER = "opentelemetry.instrumentation.auto_instrumentation._load"
_SKIPPED = (
    "Configuration of %s not loaded, %s already loaded",
    "Configuration of %s not loaded because %s is set by %s",
)


class _StockConfiguratorSkipped(logging.Filter):
    """Drops the loader's two warnings that opentelemetry-distro's configurator was skipped
    because dbpulse's runs (its message texts as of opentelemetry-instrumentation 0.66b1).
    Any other skip, dbpulse's own included, is still reported."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            record.msg in _SKIPPED
            and isinstance(args, tuple)
            and len(args) >= 2
            and args[0] == _STOCK_CONFIGURATOR
            and args[1] == _NAME
        )


def _quiet_stock_configurator_skip() -> None:
    logger = logging.getLogger(_LOADER)
    if not any(isinstance(f, _StockConfiguratorSkipped) for f in logger.filters):
        logger.addFilter(_StockConfiguratorSkipped())


class DbpulseDistro(BaseDistro):
    def _configure(self, **kwargs: Any) -> None:
        # The distro runs before the configurators are loaded: make the choice explicit.
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", _NAME)
        _quiet_stock_configurator_skip()
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "otlp")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        stock = STOCK_NAMES.get(entry_point.name)
        if stock is not None and stock in disabled_instrumentations():
            # The loader checked the list against "dbpulse_sqlite3"; "sqlite3" means it too.
            _log.debug("dbpulse: %s disabled by %s", entry_point.name, stock)
            return
        if entry_point.name in REPLACED:
            _log.debug("dbpulse: skipping the stock %s instrumentor", entry_point.name)
            return
        super().load_instrumentor(entry_point, **kwargs)


def disabled_instrumentations() -> set[str]:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` as the loader splits it."""
    value = os.environ.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "")
    return {name.strip() for name in value.split(",") if name.strip()}


class DbpulseConfigurator(_BaseConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        # Another distro chosen (OTEL_PYTHON_DISTRO), dbpulse's configurator first: same quiet.
        _quiet_stock_configurator_skip()
        if sdk_disabled():
            # As the SDK's own configurator does: no providers. dbpulse's wrappers then cost
            # one flag check per call.
            set_enabled(False)
            return
        configure()
        if not enabled_from_env():
            set_enabled(False)
