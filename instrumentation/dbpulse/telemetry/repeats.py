"""N+1 detection: the same statement shape run again and again under one parent span.

An HTTP request (or a flow checkpoint, any span) that runs ``SELECT ... WHERE id = ?`` once
per row of a list it read is the N+1 pattern. dbpulse counts, per parent span, how often each
statement shape (``db.query.fingerprint``) ran as a single call; when one reaches
``DBPULSE_N_PLUS_ONE_THRESHOLD`` (5) it reports the pattern once for that parent:

* ``dbpulse.db.n_plus_one`` (counter, ``{pattern}``) +1, by ``db.system.name``,
  ``db.query.fingerprint`` and ``db.query.summary`` (up to 500 shapes, then overflow);
* an event ``dbpulse.db.n_plus_one`` on the parent span, when it is still recording, naming
  the statement (``db.query.summary``, ``db.query.fingerprint``) and the count
  (``dbpulse.n_plus_one.count``: the calls seen when the threshold was reached). When the
  parent is not recording (ended already, or a non-recording span of an unsampled trace), the
  threshold-reaching database span carries the same attributes instead, if it is kept: it is
  in the parent's trace, so the trace still shows the pattern.

A batch (``executemany``, a pipeline) is one call, whatever its size: no alarm. Calls under
different parents count apart. Calls without a parent span are not counted. State is
bounded: the last 4096 parents (oldest forgotten first), 64 shapes per parent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.telemetry.fork import in_child_after_fork
from dbpulse.telemetry.limits import INSIGHTS

__all__ = ["EVENT", "REPEATS", "Repeats"]

EVENT = "dbpulse.db.n_plus_one"
MAX_PARENTS = 4096
MAX_SHAPES_PER_PARENT = 64
MAX_SERIES = 500
_OVERFLOW = ("", "", "")


class Repeats:
    """Per-parent counts of statement shapes, and the patterns found."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parents: dict[int, dict[str, int]] = {}
        self.found: dict[tuple[str, str, str], int] = {}

    def seen(self, parent: Any, system: str, fingerprint: str, summary: str) -> dict[str, Any]:
        """One single call of a shape under ``parent`` (a valid span). Returns the pattern's
        attributes when this call reached the threshold and the parent could not be annotated
        (for the call's own span), else an empty dict."""
        threshold = INSIGHTS.repeat_threshold
        if threshold <= 0:
            return _NOTHING
        span_id = parent.get_span_context().span_id
        with self._lock:
            counts = self._parents.get(span_id)
            if counts is None:
                if len(self._parents) >= MAX_PARENTS:
                    del self._parents[next(iter(self._parents))]
                counts = self._parents[span_id] = {}
            n = counts.get(fingerprint, 0) + 1
            if n > 1 or len(counts) < MAX_SHAPES_PER_PARENT:
                counts[fingerprint] = n
            if n != threshold:
                return _NOTHING
            key = (system, fingerprint, summary)
            if key not in self.found and len(self.found) >= MAX_SERIES:
                key = _OVERFLOW
            self.found[key] = self.found.get(key, 0) + 1
        attributes = {
            "db.system.name": system,
            "db.query.fingerprint": fingerprint,
            "db.query.summary": summary,
            "dbpulse.n_plus_one.count": n,
        }
        if parent.is_recording():
            parent.add_event(EVENT, attributes)
            return _NOTHING
        return attributes

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self.found)

    def reset(self) -> None:
        with self._lock:
            self._parents.clear()
            self.found.clear()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        for (system, fingerprint, summary), count in self.snapshot().items():
            if not system:
                yield Observation(count, {"otel.metric.overflow": True})
                continue
            yield Observation(
                count,
                {
                    "db.system.name": system,
                    "db.query.fingerprint": fingerprint,
                    "db.query.summary": summary,
                },
            )


_NOTHING: dict[str, Any] = {}

REPEATS = Repeats()
"""The process's N+1 detector."""
in_child_after_fork(REPEATS._after_fork_in_child)
