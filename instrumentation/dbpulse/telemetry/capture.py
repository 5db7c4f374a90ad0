"""Slow and failed operations always traced: tail capture, rate limited.

dbpulse records a database span after the call, so it can decide at the end. An operation
that took at least ``DBPULSE_SLOW_QUERY_MS`` (200) or failed, and got no kept span (the
adaptive sampler dropped its root, it ran in aggregated mode, or its parent is not sampled),
gets one anyway: a new root span (a fresh trace), ``dbpulse.sampling.reason = slow | error``,
linked to the unsampled parent's context when there is one (so the trace that was not kept
can still be found from it), with the operation's real start and end.

Captured spans carry no ``ot=th:`` threshold in their ``tracestate``: they are not a
probability sample, so a backend computing adjusted counts (1/p per sampled span) leaves
them out, and the sampled spans' counts stay correct; the metrics are exact either way.

A token bucket bounds them, so an outage (every call failing) cannot flood the exporter:
``DBPULSE_CAPTURE_PER_SECOND`` (10) refill, ``DBPULSE_CAPTURE_BURST`` (20) capacity; captures
beyond it are counted in ``dbpulse.telemetry.dropped{dbpulse.component="capture_rate_limit"}``.
"""

from __future__ import annotations

import threading
import time

from dbpulse.telemetry.fork import in_child_after_fork
from dbpulse.telemetry.limits import INSIGHTS

__all__ = ["CAPTURE", "REASON", "TokenBucket"]

REASON = "dbpulse.sampling.reason"


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` is one token or ``False``."""

    __slots__ = ("_lock", "burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._lock = threading.Lock()
        self.configure(rate, burst)

    def configure(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self.configure(self.rate, self.burst)


CAPTURE = TokenBucket(INSIGHTS.per_second, INSIGHTS.burst)
"""The process's capture budget."""
in_child_after_fork(CAPTURE._after_fork_in_child)
