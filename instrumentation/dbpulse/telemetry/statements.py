"""Top statements: exact per-fingerprint totals, exported with bounded cardinality.

Every call of a statement shape (one :func:`~dbpulse.core.fingerprint.fingerprint`) is
counted, under the aggregate's lock it already takes for the call, into that shape's
:class:`StatementStats`: calls (duration buckets), total and maximum duration, rows, errors.
The table holds up to ``DBPULSE_STATEMENT_LIMIT`` shapes (5000); calls of shapes beyond it
are counted under one overflow entry and in ``dbpulse.telemetry.dropped
{dbpulse.component="statement_cardinality"}``.

At each collection (every reader's, see :mod:`dbpulse.telemetry.readers`) :meth:`TopStatements.
metrics` ranks the shapes by the time they took *since the previous collection* and exports
the ``DBPULSE_TOP_STATEMENTS`` (20) first; what the others did in that interval goes to one
series with ``otel.metric.overflow=true``. Each exported series is cumulative and only ever
grows (it adds the intervals in which its shape made the top N), so a shape entering or
leaving the top N is never a counter reset, and the series sum to the exact totals. A
collection carries at most N + 1 series per metric, however many shapes run:

* ``dbpulse.db.statement.duration`` (histogram, s; ``_count`` is calls, ``_sum`` total time,
  buckets for p95), by ``db.system.name``, ``db.query.fingerprint``, ``db.query.summary``;
* ``dbpulse.db.statement.errors`` and ``dbpulse.db.statement.rows`` (counters), same labels.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

from dbpulse.telemetry.limits import DURATION_BUCKETS, INSIGHTS

__all__ = ["OVERFLOW_KEY", "StatementStats", "TopStatements"]

OVERFLOW_KEY = ("", "")
_OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}
_NO_CALLS = [0] * (len(DURATION_BUCKETS) + 1)


class StatementStats:
    """What every call of one statement shape added up to (written under the aggregate's lock)."""

    __slots__ = ("counts", "errors", "fingerprint", "max", "rows", "summary", "system", "total")

    def __init__(self, system: str, fingerprint: str, summary: str) -> None:
        self.system = system
        self.fingerprint = fingerprint
        self.summary = summary
        self.clear()

    def clear(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0
        self.max = 0.0
        self.rows = 0
        self.errors = 0

    @property
    def calls(self) -> int:
        return sum(self.counts)

    def attributes(self) -> dict[str, Any]:
        if not self.system:
            return dict(_OVERFLOW_ATTRIBUTES)
        return {
            "db.system.name": self.system,
            "db.query.fingerprint": self.fingerprint,
            "db.query.summary": self.summary,
        }


class _Exported:
    """One exported series: the intervals its shape was in the top N, added up."""

    __slots__ = ("attributes", "counts", "errors", "max", "rows", "total")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0
        self.max = 0.0
        self.rows = 0
        self.errors = 0


# (counts, total, max, rows, errors) of one shape at one collection.
_Snapshot = tuple[list[int], float, float, int, int]


class TopStatements:
    """The per-shape table (read and written under ``lock``, the aggregate's) and its export."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.table: dict[tuple[str, str], StatementStats] = {}
        self.overflow_calls = 0  # calls of shapes beyond the table's limit
        self.start_time_ns = 0
        self._roll_lock = threading.Lock()
        self._seen: dict[tuple[str, str], _Snapshot] = {}
        self._exported: dict[tuple[str, str], _Exported] = {}

    def stats(self, system: str, fingerprint: str, summary: str) -> StatementStats | None:
        """The interned entry of this shape (``None``: per-statement counting is off)."""
        if INSIGHTS.top_statements <= 0:
            return None
        key = (system, fingerprint)
        with self.lock:
            found = self.table.get(key)
            if found is None:
                if len(self.table) >= INSIGHTS.statement_limit:
                    key = OVERFLOW_KEY
                    found = self.table.get(key)
                if found is None:
                    found = StatementStats(*key, summary if key != OVERFLOW_KEY else "")
                    self.table[key] = found
        return found

    def reset(self) -> None:
        """Zero every entry in place (lock held by the caller); exports start over."""
        for stats in self.table.values():
            stats.clear()
        self.overflow_calls = 0
        with self._roll_lock:
            self._seen.clear()
            self._exported.clear()

    def ranked(self) -> list[StatementStats]:
        """Copies of every entry with calls, by total time (largest first)."""
        with self.lock:
            items = [_copy(s) for s in self.table.values() if s.total or any(s.counts)]
        items.sort(key=lambda s: -s.total)
        return items

    # -- export ---------------------------------------------------------------------------

    def _roll(self) -> list[_Exported]:
        """Give this interval's top N their increments, the rest to the overflow series."""
        with self.lock:
            now = {
                key: (list(s.counts), s.total, s.max, s.rows, s.errors)
                for key, s in self.table.items()
            }
        limit = INSIGHTS.top_statements
        with self._roll_lock:
            increments = []
            for key, current in now.items():
                before = self._seen.get(key)
                if before is None or before[0] != current[0] or before[4] != current[4]:
                    increments.append((current[1] - (before[1] if before else 0.0), key, current))
            increments.sort(key=lambda item: -item[0])
            shown: list[_Exported] = []
            overflow = self._exported.get(OVERFLOW_KEY)
            for rank, (_, key, current) in enumerate(increments):
                before = self._seen.get(key) or (_NO_CALLS, 0.0, 0.0, 0, 0)
                self._seen[key] = current
                if rank < limit and key != OVERFLOW_KEY:
                    target = self._exported.get(key)
                    if target is None:
                        target = self._exported[key] = _Exported(self._attributes(key))
                    shown.append(target)
                else:
                    if overflow is None:
                        overflow = self._exported[OVERFLOW_KEY] = _Exported(
                            dict(_OVERFLOW_ATTRIBUTES)
                        )
                    target = overflow
                _add(target, current, before)
            if overflow is not None:
                shown.append(overflow)
            self._forget_quiet(shown)
        return shown

    def _attributes(self, key: tuple[str, str]) -> dict[str, Any]:
        with self.lock:
            stats = self.table.get(key)
        return stats.attributes() if stats is not None else dict(_OVERFLOW_ATTRIBUTES)

    def _forget_quiet(self, shown: list[_Exported]) -> None:
        """Keep at most 4 N exported series in memory: the quietest are forgotten (and start
        from zero, a counter reset to every backend, should they return)."""
        cap = 4 * max(1, INSIGHTS.top_statements) + 1
        if len(self._exported) <= cap:
            return
        keep = {id(e) for e in shown}
        for key in list(self._exported):
            if len(self._exported) <= cap:
                break
            if key != OVERFLOW_KEY and id(self._exported[key]) not in keep:
                del self._exported[key]

    def metrics(self, now_ns: int) -> list[Metric]:
        """This collection's top-statement metrics (cumulative); empty when nothing ran."""
        if INSIGHTS.top_statements <= 0:
            return []
        shown = self._roll()
        if not shown:
            return []
        start = self.start_time_ns
        histogram = []
        errors = []
        rows = []
        for series in shown:
            calls = sum(series.counts)
            histogram.append(
                HistogramDataPoint(
                    attributes=series.attributes,
                    start_time_unix_nano=start,
                    time_unix_nano=now_ns,
                    count=calls,
                    sum=series.total,
                    bucket_counts=list(series.counts),
                    explicit_bounds=DURATION_BUCKETS,
                    min=0.0,
                    max=series.max,
                    exemplars=[],
                )
            )
            errors.append(NumberDataPoint(series.attributes, start, now_ns, series.errors))
            rows.append(NumberDataPoint(series.attributes, start, now_ns, series.rows))
        cumulative = AggregationTemporality.CUMULATIVE
        return [
            Metric(
                name="dbpulse.db.statement.duration",
                description="Duration of database operations per statement shape (top N by "
                "total time, then overflow).",
                unit="s",
                data=Histogram(data_points=histogram, aggregation_temporality=cumulative),
            ),
            Metric(
                name="dbpulse.db.statement.errors",
                description="Failed operations per statement shape (top N, then overflow).",
                unit="{error}",
                data=Sum(data_points=errors, aggregation_temporality=cumulative, is_monotonic=True),
            ),
            Metric(
                name="dbpulse.db.statement.rows",
                description="Rows written per statement shape (top N, then overflow).",
                unit="{row}",
                data=Sum(data_points=rows, aggregation_temporality=cumulative, is_monotonic=True),
            ),
        ]


def _copy(stats: StatementStats) -> StatementStats:
    found = StatementStats(stats.system, stats.fingerprint, stats.summary)
    found.counts = list(stats.counts)
    found.total = stats.total
    found.max = stats.max
    found.rows = stats.rows
    found.errors = stats.errors
    return found


def _add(target: _Exported, current: _Snapshot, before: _Snapshot) -> None:
    counts, total, high, rows, errors = current
    for i, (now, then) in enumerate(zip(counts, before[0], strict=True)):
        target.counts[i] += max(0, now - then)
    target.total += max(0.0, total - before[1])
    target.max = max(target.max, high)
    target.rows += max(0, rows - before[3])
    target.errors += max(0, errors - before[4])
