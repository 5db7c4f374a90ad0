"""Instruments created once per meter provider, from tables of what they observe.

Every room that exports observable metrics (the aggregate, the pool, the cache counts, flows)
registers them through :class:`Instruments`, so the "once per provider" rule and the
instrument-creation calls are written once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.version import __version__

__all__ = ["Instruments", "Observable", "create_observables"]

Callback = Callable[[CallbackOptions], Iterable[Observation]]
Observable = tuple[str, str, Callback, str, str]
"""``(kind, name, callback, unit, description)``; kind: counter, up_down_counter or gauge."""


class Instruments:
    """The instruments of one meter scope (``dbpulse``, ``dbpulse.redis``, ...)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self._global = False
        # Weakly, so a later provider at a dead one's address is not taken for it.
        self._providers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._ids: set[int] = set()  # providers without weak references

    def meter(self, meter_provider: Any = None) -> metrics.Meter | None:
        """The scope's meter on ``meter_provider`` the first time it is asked for, else
        ``None`` (already registered there)."""
        # The global provider may still be a proxy that is replaced later: key it as "global".
        if meter_provider is None:
            if self._global:
                return None
            self._global = True
        elif not self._first_time(meter_provider):
            return None
        provider = meter_provider or metrics.get_meter_provider()
        return provider.get_meter(self.scope, __version__)

    def _first_time(self, meter_provider: Any) -> bool:
        try:
            if meter_provider in self._providers:
                return False
            self._providers.add(meter_provider)
        except TypeError:
            if id(meter_provider) in self._ids:
                return False
            self._ids.add(id(meter_provider))
        return True

    def observe(
        self, meter_provider: Any, observables: Sequence[Observable]
    ) -> metrics.Meter | None:
        """Register ``observables`` once on ``meter_provider``; returns the meter when it did."""
        meter = self.meter(meter_provider)
        if meter is not None:
            create_observables(meter, observables)
        return meter


def create_observables(meter: metrics.Meter, observables: Sequence[Observable]) -> None:
    """Create one observable instrument per row of ``observables`` on ``meter``."""
    for kind, name, callback, unit, description in observables:
        create = getattr(meter, f"create_observable_{kind}")
        create(name, callbacks=[callback], unit=unit, description=description)
