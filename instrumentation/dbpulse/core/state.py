"""Process-wide switches every instrumentor reads on its hot path.

:data:`STATE` holds ``set_enabled`` and the entity-key extractor; one :class:`Switch` per
instrumentor folds "instrumented" and "enabled" into one attribute (``if not switch.on``) and
carries the span recorder picked for its tracer provider.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from dbpulse.core.entities import EntityExtractor, IsbnExtractor
from dbpulse.telemetry.metrics import OPERATIONS
from dbpulse.telemetry.spans import DirectSpans, TracerSpans, span_recorder
from dbpulse.version import __version__

__all__ = ["STATE", "Switch", "guarded_keys", "warn_once"]

_log = logging.getLogger("dbpulse.core")


class _State:
    """Global switches: ``set_enabled`` and the extractor, read on every call."""

    def __init__(self) -> None:
        self.enabled = True
        self.extractor: EntityExtractor | None = IsbnExtractor()
        self.switches: list[Switch] = []
        self.lock = threading.Lock()

    def set_enabled(self, enabled: bool) -> None:
        with self.lock:
            self.enabled = bool(enabled)
            for switch in self.switches:
                switch.refresh()

    @property
    def key_attribute(self) -> str:
        """The span attribute (and metric label) the extractor's keys are exported under."""
        extractor = self.extractor
        return extractor.span_attribute if extractor is not None else IsbnExtractor.span_attribute


STATE = _State()


class Switch:
    """One instrumentor's on/off flag as the hot path reads it: ``if not switch.on``."""

    __slots__ = ("instrumented", "name", "on", "spans", "tracer_provider")

    def __init__(self, name: str) -> None:
        self.name = name
        self.instrumented = False
        self.on = False
        self.tracer_provider: Any = None
        self.spans: DirectSpans | TracerSpans = TracerSpans(trace.NoOpTracer())
        STATE.switches.append(self)

    def refresh(self) -> None:
        self.on = self.instrumented and STATE.enabled

    def set_instrumented(self, instrumented: bool, tracer_provider: Any = None) -> None:
        if instrumented:
            self.tracer_provider = tracer_provider
            self.refresh_recorder()
        self.instrumented = instrumented
        self.refresh()

    def refresh_recorder(self) -> None:
        """Pick the span recorder for the provider (again after the global one changed)."""
        self.spans = span_recorder(self.tracer_provider, "dbpulse", __version__)


_warned: set[str] = set()


def warn_once(what: str) -> None:
    """Log dbpulse's own failure once per kind, with its traceback; later ones are counted."""
    if what not in _warned:
        _warned.add(what)
        _log.warning(
            "dbpulse: %s (further occurrences are counted, not logged)", what, exc_info=True
        )


def guarded_keys(method: Callable[[Any], tuple[str, ...]], value: Any) -> tuple[str, ...]:
    """``method(value)`` of the extractor; a failing extractor gives no keys and is counted."""
    try:
        keys = method(value)
        return tuple(keys) if not isinstance(keys, tuple) else keys
    except Exception:
        OPERATIONS.count_dropped("extractor_error")
        warn_once("the entity-key extractor raised; its keys are skipped")
        return ()
