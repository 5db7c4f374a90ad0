"""Exact database metrics, aggregated in-process and exported without per-call SDK work.

The SDK's ``Histogram.record`` costs ~5 µs per call on this hardware (attribute hashing, view
matching, exemplar reservoirs). dbpulse records each operation into a plain per-series bucket
array under one lock (~0.3 µs) and hands the aggregate to the SDK at collection time:

* counters and gauges through observable instruments (any ``MeterProvider`` collects them);
* the ``db.client.operation.duration`` histogram (with exemplars from sampled spans) through
  :mod:`dbpulse.telemetry.readers`, which adds it to what every reader of the providers dbpulse
  registers on collects: push (OTLP, console), pull (Prometheus) and in-memory readers alike.
  The hot path never calls the SDK's ``Histogram.record``.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics._internal.exemplar import Exemplar
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from dbpulse.telemetry.fork import in_child_after_fork
from dbpulse.telemetry.instruments import Instruments
from dbpulse.telemetry.limits import (
    DEFAULT_CARDINALITY_LIMIT,
    DURATION_BUCKETS,
    isbn_limit_from_env,
    key_limit_from_env,
)
from dbpulse.telemetry.readers import serve_meter_provider
from dbpulse.telemetry.repeats import REPEATS
from dbpulse.telemetry.sampler import LOAD
from dbpulse.telemetry.statements import OVERFLOW_KEY as STATEMENT_OVERFLOW
from dbpulse.telemetry.statements import TopStatements
from dbpulse.version import __version__

__all__ = [
    "DURATION_BUCKETS",
    "OPERATIONS",
    "OperationMetrics",
    "Series",
]

_log = logging.getLogger(__name__)

OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}
_OVERFLOW_KEY: tuple[Any, ...] = ("", None, "", None, None)
SCOPE = InstrumentationScope("dbpulse", __version__)


class Series:
    """One attribute set of the duration histogram plus its write count.

    Bucket ``i`` counts durations ``<= DURATION_BUCKETS[i]`` (upper-inclusive, as OTLP defines
    explicit buckets); the last bucket is the overflow.
    """

    __slots__ = ("attributes", "counts", "error", "exemplars", "max", "min", "rows", "sum")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.error = "error.type" in attributes
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.rows = 0
        # (value, time_ns, span_id, trace_id) per bucket; Exemplar objects are built at export.
        self.exemplars: list[tuple[float, int, int, int] | None] = [None] * (
            len(DURATION_BUCKETS) + 1
        )

    def clear(self) -> None:
        """Back to no operations, in place: statement caches keep pointing at this object."""
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.rows = 0
        self.exemplars = [None] * (len(DURATION_BUCKETS) + 1)


class OperationMetrics:
    """The process-wide aggregate every instrumentor records into."""

    def __init__(self, cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT) -> None:
        self.lock = threading.Lock()
        self.key_attribute = "book.isbn"  # the entity extractor's span_attribute
        self.start_time_ns = time.time_ns()
        self._series: dict[tuple[Any, ...], Series] = {}
        self.isbn_writes: dict[tuple[str, str, str], int] = {}
        self.isbn_overflow = 0  # writes of keys beyond key_limit (not kept at all)
        self.cardinality_limit = cardinality_limit  # metric series of dbpulse.db.isbn.writes
        # Attribute sets of the duration histogram and dbpulse.db.writes (the SDK's default).
        self.series_limit = DEFAULT_CARDINALITY_LIMIT
        # Keys kept for the viz feed and spans: far more than the metric's series (the cap
        # is for Prometheus, not for the sphere), still bounded.
        self.key_limit = max(cardinality_limit, key_limit_from_env())
        self._instruments = Instruments("dbpulse")
        self._dropped: dict[str, int] = {}
        # Exact per-statement-shape totals (top statements), under the same lock.
        self.statements = TopStatements(self.lock)
        self.statements.start_time_ns = self.start_time_ns

    # -- hot path ---------------------------------------------------------------------------

    def series(
        self,
        system: str,
        namespace: str | None,
        operation: str,
        collection: str | None,
        error_type: str | None,
    ) -> Series:
        key = (system, namespace, operation, collection, error_type)
        found = self._series.get(key)
        if found is None:
            if len(self._series) >= self.series_limit:
                # Names from the application (temporary tables, random namespaces) must not
                # grow memory or Prometheus without bound: the SDK's overflow series.
                return self._overflow_series()
            attributes: dict[str, Any] = {"db.system.name": system, "db.operation.name": operation}
            if namespace:
                attributes["db.namespace"] = namespace
            if collection:
                attributes["db.collection.name"] = collection
            if error_type:
                attributes["error.type"] = error_type
            found = self._series.setdefault(key, Series(attributes))
        return found

    def _overflow_series(self) -> Series:
        found = self._series.get(_OVERFLOW_KEY)
        if found is None:
            found = self._series.setdefault(_OVERFLOW_KEY, Series(dict(OVERFLOW_ATTRIBUTES)))
        return found

    def record(
        self,
        series: Series,
        duration: float,
        now: float,
        rows: int,
        keys: tuple[str, ...],
        stmt: Any,
    ) -> None:
        """Count one operation of ``stmt``; ``rows`` > 0 marks a write of that many rows and
        ``keys`` the entity keys it wrote (one count per key occurrence)."""
        index = bisect_left(DURATION_BUCKETS, duration)
        LOAD.tick(now)
        lock = self.lock
        lock.acquire()
        try:
            series.counts[index] += 1
            series.sum += duration
            if duration > series.max:
                series.max = duration
            if duration < series.min:
                series.min = duration
            if rows:
                series.rows += rows
                if keys:
                    self._count_keys(stmt, keys)
            stats = stmt.stats if stmt is not None else None
            if stats is not None:
                stats.counts[index] += 1
                stats.total += duration
                if duration > stats.max:
                    stats.max = duration
                if rows:
                    stats.rows += rows
                if series.error:
                    stats.errors += 1
        finally:
            lock.release()

    def _count_keys(self, stmt: Any, keys: tuple[str, ...]) -> None:
        collection = stmt.collection or ""
        operation = stmt.operation
        writes = self.isbn_writes
        for key in keys:
            slot = (collection, operation, key)
            count = writes.get(slot)
            if count is not None:
                writes[slot] = count + 1
            elif len(writes) < self.key_limit:
                writes[slot] = 1
            else:
                self.isbn_overflow += 1

    def add_exemplar(self, series: Series, duration: float, trace_id: int, span_id: int) -> None:
        """Keep the latest sampled span per bucket as that bucket's exemplar."""
        index = bisect_left(DURATION_BUCKETS, duration)
        series.exemplars[index] = (duration, time.time_ns(), span_id, trace_id)

    def add_rows(self, series: Series, rows: int, keys: tuple[str, ...], stmt: Any) -> None:
        """Rows of an operation already recorded, known only later (``INSERT ... RETURNING``
        once its rows are read)."""
        if rows <= 0:
            return
        with self.lock:
            series.rows += rows
            if keys:
                self._count_keys(stmt, keys)
            stats = getattr(stmt, "stats", None)
            if stats is not None:
                stats.rows += rows

    def count_dropped(self, component: str, n: int = 1) -> None:
        with self.lock:
            self._dropped[component] = self._dropped.get(component, 0) + n

    # -- read side --------------------------------------------------------------------------

    def isbn_writes_snapshot(self) -> dict[tuple[str, str, str], int]:
        """Cumulative writes keyed ``(collection, operation, isbn)``, up to :attr:`key_limit`
        keys (what the viz feed reads); writes of keys beyond it under isbn ``""``."""
        with self.lock:
            snapshot = dict(self.isbn_writes)
            if self.isbn_overflow:
                snapshot[("", "", "")] = self.isbn_overflow
        return snapshot

    def _isbn_series(self) -> tuple[dict[tuple[str, str, str], int], int]:
        """The metric's view: the first ``cardinality_limit`` keys (the same ones at every
        export, as keys are only ever added) and the sum of all other writes."""
        named: dict[tuple[str, str, str], int] = {}
        overflow = 0
        limit = self.cardinality_limit
        with self.lock:
            for slot, rows in self.isbn_writes.items():
                if len(named) < limit:
                    named[slot] = rows
                else:
                    overflow += rows
            overflow += self.isbn_overflow
        return named, overflow

    def writes_snapshot(self) -> dict[tuple[str, str, str, str], int]:
        """Cumulative written rows keyed ``(system, namespace, operation, collection)``."""
        totals: dict[tuple[str, str, str, str], int] = {}
        with self.lock:
            for (system, namespace, operation, collection, _), series in self._series.items():
                if series.rows:  # the overflow series' key is ("", None, "", None, None)
                    key = (system, namespace or "", operation, collection or "")
                    totals[key] = totals.get(key, 0) + series.rows
        return totals

    def dropped_snapshot(self) -> dict[str, int]:
        _, overflow = self._isbn_series()
        with self.lock:
            dropped = dict(self._dropped)
            beyond = self._series.get(_OVERFLOW_KEY)
            if beyond is not None and any(beyond.counts):
                dropped["series_cardinality"] = sum(beyond.counts)  # operations under overflow
            shapes = self.statements.table.get(STATEMENT_OVERFLOW)
            if shapes is not None and any(shapes.counts):
                dropped["statement_cardinality"] = shapes.calls  # calls of uncounted shapes
        if overflow:
            dropped["isbn_cardinality"] = overflow  # writes under the overflow series
        return dropped

    def histogram_points(self, now_ns: int) -> list[HistogramDataPoint]:
        with self.lock:
            items = [
                (s.attributes, list(s.counts), s.sum, s.min, s.max, list(s.exemplars))
                for s in self._series.values()
            ]
        points = []
        for attributes, counts, total, low, high, exemplars in items:
            if not any(counts):
                continue  # zeroed by a reset (a forked child): nothing seen in this process
            points.append(
                HistogramDataPoint(
                    attributes=attributes,
                    start_time_unix_nano=self.start_time_ns,
                    time_unix_nano=now_ns,
                    count=sum(counts),
                    sum=total,
                    bucket_counts=counts,
                    explicit_bounds=DURATION_BUCKETS,
                    min=low,
                    max=high,
                    exemplars=[Exemplar(None, *e) for e in exemplars if e is not None],
                )
            )
        return points

    def reset(self) -> None:
        """Forget every count (``dbpulse.testing.reset``; a forked child). Series are zeroed in
        place, so the statements that cache them keep recording into the aggregate."""
        with self.lock:
            for series in self._series.values():
                series.clear()
            self.isbn_writes.clear()
            self.isbn_overflow = 0
            self._dropped.clear()
            self.start_time_ns = time.time_ns()
            self.statements.reset()
            self.statements.start_time_ns = self.start_time_ns

    def _after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.statements.lock = self.lock
        self.reset()

    # -- SDK wiring -------------------------------------------------------------------------

    def register_instruments(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        """Create dbpulse's observable instruments on ``meter_provider`` (once per provider) and
        serve its readers the aggregated histogram."""
        meter = self._instruments.observe(
            meter_provider,
            (
                (
                    "counter",
                    "dbpulse.db.writes",
                    self._observe_writes,
                    "{row}",
                    "Rows written (INSERT/UPDATE/DELETE/...), by table and operation.",
                ),
                (
                    "counter",
                    "dbpulse.db.isbn.writes",
                    self._observe_isbn_writes,
                    "{row}",
                    "Rows written per ISBN, up to the cardinality limit, then overflow.",
                ),
                (
                    "counter",
                    "dbpulse.db.n_plus_one",
                    REPEATS.observe,
                    "{pattern}",
                    "N+1 patterns: parent spans that ran one statement shape at least "
                    "DBPULSE_N_PLUS_ONE_THRESHOLD times, by fingerprint and summary.",
                ),
                (
                    "counter",
                    "dbpulse.telemetry.dropped",
                    self._observe_dropped,
                    "{item}",
                    "Telemetry items dbpulse dropped to protect the application.",
                ),
                (
                    "gauge",
                    "dbpulse.sampler.mode",
                    _observe_mode,
                    "",
                    "1 for the adaptive sampler's current mode, 0 for the others.",
                ),
                (
                    "gauge",
                    "dbpulse.sampler.probability",
                    _observe_probability,
                    "",
                    "Probability with which new root spans are kept.",
                ),
                (
                    "gauge",
                    "dbpulse.db.operation.rate",
                    _observe_rate,
                    "{operation}/s",
                    "Database operations per second seen by dbpulse (last full second).",
                ),
            ),
        )
        if meter is not None:
            # The histogram: added to what this provider's readers collect.
            provider = meter_provider or metrics.get_meter_provider()
            serve_meter_provider(
                provider, meter, self.histogram_points, SCOPE, (self.statements.metrics,)
            )

    def _observe_writes(self, _options: CallbackOptions) -> Iterable[Observation]:
        for (system, namespace, operation, collection), rows in self.writes_snapshot().items():
            if not system:
                yield Observation(rows, OVERFLOW_ATTRIBUTES)
                continue
            attributes = {"db.system.name": system, "db.operation.name": operation}
            if namespace:
                attributes["db.namespace"] = namespace
            if collection:
                attributes["db.collection.name"] = collection
            yield Observation(rows, attributes)

    def _observe_isbn_writes(self, _options: CallbackOptions) -> Iterable[Observation]:
        named, overflow = self._isbn_series()
        for (collection, operation, isbn), rows in named.items():
            attributes = {self.key_attribute: isbn, "db.operation.name": operation}
            if collection:
                attributes["db.collection.name"] = collection
            yield Observation(rows, attributes)
        if overflow:
            yield Observation(overflow, OVERFLOW_ATTRIBUTES)

    def _observe_dropped(self, _options: CallbackOptions) -> Iterable[Observation]:
        for component, count in self.dropped_snapshot().items():
            yield Observation(count, {"dbpulse.component": component})


def _observe_mode(_options: CallbackOptions) -> Iterable[Observation]:
    LOAD.refresh()
    current = LOAD.mode
    for mode in ("detailed", "sampled", "aggregated"):
        yield Observation(1 if mode == current else 0, {"dbpulse.sampler.mode": mode})


def _observe_probability(_options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(LOAD.refresh())


def _observe_rate(_options: CallbackOptions) -> Iterable[Observation]:
    LOAD.refresh()
    yield Observation(LOAD.last_rate)


OPERATIONS = OperationMetrics(isbn_limit_from_env())
in_child_after_fork(OPERATIONS._after_fork_in_child)
"""The process-wide aggregate."""
