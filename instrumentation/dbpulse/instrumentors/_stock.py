"""Keep the stock opentelemetry-python-contrib instrumentors out of the way.

``opentelemetry-instrument`` loads every installed ``opentelemetry_instrumentor`` entry point,
so with both dbpulse and e.g. ``opentelemetry-instrumentation-sqlite3`` installed, a query would
produce two spans. dbpulse's instrumentor takes over: it uninstruments the stock singleton if it
already ran and marks it instrumented, its ``instrument()`` a silent no-op (the base class would
skip it too, with an "Attempting to instrument while already instrumented" warning each time a
distro other than dbpulse's loads the stock entry point). ``release`` undoes that when dbpulse
is uninstrumented.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

_log = logging.getLogger(__name__)


def take_over(module_name: str, class_name: str) -> Any | None:
    """Disable the stock instrumentor ``module_name.class_name`` if it is installed."""
    try:
        module = importlib.import_module(module_name)
        instrumentor = getattr(module, class_name)()
    except Exception:  # not installed, or broken: nothing to take over
        return None
    try:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
            _log.info("dbpulse: replaced %s.%s (one span per call)", module_name, class_name)
        instrumentor._is_instrumented_by_opentelemetry = True
        # The stock instrumentors are singletons: this shadows the method for every caller.
        instrumentor.instrument = _replaced
    except Exception:
        _log.warning("dbpulse: could not disable %s.%s", module_name, class_name, exc_info=True)
        return None
    return instrumentor


def _replaced(**kwargs: Any) -> None:
    _log.debug("dbpulse: the stock instrumentor stays off while dbpulse's is on")


def release(instrumentor: Any | None) -> None:
    if instrumentor is not None:
        instrumentor._is_instrumented_by_opentelemetry = False
        vars(instrumentor).pop("instrument", None)
