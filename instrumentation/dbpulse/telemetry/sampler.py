"""Adaptive sampling: detailed below 100 ops/s, probabilistic up to 1000 ops/s, metrics only above.

The load is the number of database operations dbpulse observed in the last second. Bands map a
rate to a keep-probability; the defaults follow the predecessor system (see README):

=====================  ===========  ==========
ops/s                  probability  mode
=====================  ===========  ==========
< 100                  1.0          detailed
100 - 200              0.10         sampled
200 - 500              0.05         sampled
500 - 1000             0.01         sampled
>= 1000                0            aggregated
=====================  ===========  ==========

``DBPULSE_SAMPLING_BANDS`` overrides them: ``"100:0.1,200:0.05,500:0.01,1000:0"`` means "from
100 ops/s keep 10%, from 200 keep 5%, ...". The mode escalates within a second as soon as the
running count crosses a band, and relaxes when a full second was quieter.

Sampling is consistent probability sampling on the low 56 bits of the trace id (the W3C
"randomness"), with the rejection threshold recorded in ``tracestate`` as ``ot=th:<hex>`` so
downstream tools can compute adjusted counts. The SDK's ``TraceIdRatioBased`` reads the low
64 bits instead; a UUIDv4 flow id has fixed variant bits there and would never be sampled at
rates of 50% or less.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from fractions import Fraction

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from dbpulse.telemetry.fork import in_child_after_fork

__all__ = [
    "DEFAULT_BANDS",
    "LOAD",
    "ROOTS",
    "AdaptiveSampler",
    "LoadMonitor",
    "adaptive_sampler_from_env",
    "parse_bands",
]

DEFAULT_BANDS: tuple[tuple[float, float], ...] = (
    (100, 0.10),
    (200, 0.05),
    (500, 0.01),
    (1000, 0.0),
)
_RANDOMNESS_MASK = (1 << 56) - 1
_MAX_THRESHOLD = 1 << 56


class SamplingConfigError(ValueError):
    """``DBPULSE_SAMPLING_BANDS`` could not be parsed."""


def parse_bands(text: str) -> tuple[tuple[float, float], ...]:
    """Parse ``"100:0.1,200:0.05"`` into ``((100.0, 0.1), (200.0, 0.05))``.

    Rates must increase and probabilities must lie in [0, 1] and not increase.
    """
    bands: list[tuple[float, float]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        rate_text, sep, prob_text = part.partition(":")
        try:
            if not sep:
                raise ValueError
            rate, prob = float(rate_text), float(prob_text)
        except ValueError:
            raise SamplingConfigError(
                f"DBPULSE_SAMPLING_BANDS: {part!r} is not 'ops_per_second:probability'"
            ) from None
        if not 0.0 <= prob <= 1.0 or rate <= 0:
            raise SamplingConfigError(
                f"DBPULSE_SAMPLING_BANDS: {part!r} needs a rate > 0 and a probability in [0, 1]"
            )
        if bands and (rate <= bands[-1][0] or prob > bands[-1][1]):
            raise SamplingConfigError(
                "DBPULSE_SAMPLING_BANDS: rates must increase and probabilities must not"
            )
        bands.append((rate, prob))
    return tuple(bands)


def mode_name(probability: float) -> str:
    if probability >= 1.0:
        return "detailed"
    if probability <= 0.0:
        return "aggregated"
    return "sampled"


class LoadMonitor:
    """Counts operations per second and derives the keep-probability from the bands.

    It owns its counters and its lock. :meth:`tick` runs on every database operation (the
    metrics aggregate calls it), so its common case takes no lock: one increment and two
    comparisons under the GIL. A lost increment in a thread race only blurs a rate estimate;
    rolling the window and escalating, which change the probability, happen under the lock.
    """

    __slots__ = (
        "_bands",
        "_lock",
        "count",
        "last_rate",
        "next_threshold",
        "probability",
        "window_start",
    )

    def __init__(self, bands: Sequence[tuple[float, float]] = DEFAULT_BANDS) -> None:
        self._lock = threading.Lock()
        self.configure(bands)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self.configure(self._bands)

    def configure(self, bands: Sequence[tuple[float, float]]) -> None:
        self._bands = tuple(bands)
        self.window_start = time.perf_counter()
        self.count = 0
        self.last_rate = 0.0
        self.probability = 1.0
        self.next_threshold = self._next_stricter()

    def _next_stricter(self) -> float:
        """The rate at which the next band with a lower probability starts."""
        for band_rate, band_prob in self._bands:
            if band_prob < self.probability:
                return band_rate
        return float("inf")

    def _probability_at(self, rate: float) -> float:
        probability = 1.0
        for band_rate, band_prob in self._bands:
            if rate >= band_rate:
                probability = band_prob
        return probability

    def tick(self, now: float) -> None:
        """Count one operation finished at ``now`` (``perf_counter()``)."""
        if now - self.window_start >= 1.0:
            with self._lock:
                if now - self.window_start >= 1.0:
                    self._roll(now)
        self.count += 1
        if self.count >= self.next_threshold:
            with self._lock:
                if self.count >= self.next_threshold:
                    self.escalate()

    def escalate(self) -> None:
        """The running count crossed a band: a burst must not wait a whole window (lock held)."""
        self.probability = min(self.probability, self._probability_at(self.count))
        self.next_threshold = self._next_stricter()

    def _roll(self, now: float) -> None:
        elapsed = now - self.window_start
        self.last_rate = self.count / elapsed if elapsed > 0 else 0.0
        self.window_start = now
        self.count = 0
        self.probability = self._probability_at(self.last_rate)
        self.next_threshold = self._next_stricter()

    def refresh(self) -> float:
        """Roll the window if it expired (no operations lately) and return the probability."""
        now = time.perf_counter()
        if now - self.window_start >= 1.0:
            with self._lock:
                if now - self.window_start >= 1.0:
                    self._roll(now)
        return self.probability

    @property
    def mode(self) -> str:
        return mode_name(self.probability)


def _bands_from_env() -> tuple[tuple[float, float], ...]:
    text = os.environ.get("DBPULSE_SAMPLING_BANDS", "").strip()
    return parse_bands(text) if text else DEFAULT_BANDS


LOAD = LoadMonitor(_bands_from_env())
"""The process-wide load monitor fed by every dbpulse instrumentor."""
in_child_after_fork(LOAD._after_fork_in_child)


def threshold_for(probability: float) -> int:
    """Rejection threshold on 56-bit randomness: keep when ``randomness >= threshold``."""
    if probability >= 1.0:
        return 0
    if probability <= 0.0:
        return _MAX_THRESHOLD
    # Exact decimal arithmetic: 0.1 as a float would give ...668 instead of ...666.
    return min(_MAX_THRESHOLD, round((1 - Fraction(str(probability))) * _MAX_THRESHOLD))


def encode_threshold(threshold: int) -> str:
    """OpenTelemetry ``th`` value: 14 hex digits, trailing zeros removed, ``0`` for always."""
    if threshold <= 0:
        return "0"
    return f"{threshold:014x}".rstrip("0") or "0"


class AdaptiveSampler(Sampler):
    """Root sampler whose keep-probability follows :data:`LOAD`. Wrap it in ``ParentBased``.

    As a root sampler it never sees a parent, so the ``tracestate`` it returns is built once per
    threshold and reused (building one costs ~2 µs of regex validation).
    """

    def __init__(self, load: LoadMonitor | None = None) -> None:
        self._load = load or LOAD
        self._cache: dict[float, tuple[int, TraceState]] = {}

    def _threshold(self, probability: float) -> tuple[int, TraceState]:
        cached = self._cache.get(probability)
        if cached is None:
            threshold = threshold_for(probability)
            state = TraceState([("ot", f"th:{encode_threshold(threshold)}")])
            cached = (threshold, state)
            self._cache[probability] = cached
        return cached

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        load = self._load
        probability = load.probability
        if time.perf_counter() - load.window_start >= 1.0:
            probability = load.refresh()
        if probability > 0.0:
            threshold, state = self._threshold(probability)
            if (trace_id & _RANDOMNESS_MASK) >= threshold:
                if trace_state is not None and len(trace_state):
                    state = _with_threshold(trace_state, state["ot"])
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        return SamplingResult(Decision.DROP, None, trace_state)

    def get_description(self) -> str:
        return f"DbpulseAdaptive{{mode={self._load.mode},p={self._load.probability}}}"


def _with_threshold(state: TraceState, entry: str) -> TraceState:
    existing = state.get("ot")
    if existing:
        kept = [kv for kv in existing.split(";") if kv and not kv.startswith("th:")]
        entry = ";".join([entry, *kept])
        return state.update("ot", entry)
    return state.add("ot", entry)


def adaptive_sampler_from_env(_arg: str | None = None) -> Sampler:
    """``OTEL_TRACES_SAMPLER=dbpulse_adaptive``: ``ParentBased(AdaptiveSampler)``."""
    return ParentBased(AdaptiveSampler(LOAD))


ROOTS = AdaptiveSampler(LOAD)
"""The sampler of dbpulse's own root spans (database calls without a parent, flows): the span
recorder asks it instead of the provider's sampler, which the application's other roots keep."""
