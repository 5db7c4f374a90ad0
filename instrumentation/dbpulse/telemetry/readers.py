"""The aggregated ``db.client.operation.duration`` histogram in whatever a metric reader collects.

opentelemetry-sdk 1.45 has no extension point for externally aggregated data: no
``MetricProducer``, no ``metric_producers=`` on readers. What every ``MetricReader`` has is a
collect callback its ``MeterProvider`` gives it. dbpulse wraps that callback on each provider it
registers its instruments on (the global one, or a user's ``meter_provider=``), so the
``MetricsData`` any reader collects carries dbpulse's histogram points: a
``PeriodicExportingMetricReader`` (OTLP, console), ``PrometheusMetricReader`` on each scrape, an
``InMemoryMetricReader``. Readers added later with ``MeterProvider.add_metric_reader`` get the
wrapped callback too. Points are cumulative, converted to deltas for a reader that prefers
delta temporality for histograms.

Private names used, checked against opentelemetry-sdk/-api 1.45.1:
``MeterProvider._measurement_consumer`` (its ``collect``, the callback handed to readers, and
its ``_reader_storages``, the registered readers), ``MeterProvider._sdk_config.resource``,
``MeterProvider._disabled``, ``MetricReader._set_collect_callback``,
``MetricReader._instrument_class_temporality`` (keyed by the SDK's ``_Histogram``), and the
API's ``_ProxyMeter.on_set_meter_provider`` (a global provider set after ``instrument()``). A
provider without them (another SDK) is left alone, with a warning: it gets dbpulse's counters
and gauges but not the histogram.

The histogram is dbpulse's own aggregation: the provider's views and a reader's preferred
aggregation do not apply to it (explicit buckets, ``DURATION_BUCKETS``). The same path carries
the top-statement metrics (:mod:`dbpulse.telemetry.statements`): *producers* that build
cumulative ``Metric`` objects once per collection, converted to deltas (histograms and sums)
for a reader that prefers delta temporality for histograms.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics._internal.instrument import _Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = ["DURATION", "HistogramFeed", "Producer", "carries_histogram", "serve_meter_provider"]

_log = logging.getLogger(__name__)

DURATION = "db.client.operation.duration"

Points = Callable[[int], list[HistogramDataPoint]]
"""``histogram_points(now_ns)`` of the aggregate: cumulative points, one per series."""
Producer = Callable[[int], list[Metric]]
"""``producer(now_ns)``: more cumulative metrics of dbpulse's scope, built at each collection."""


class HistogramFeed:
    """dbpulse's histogram as one consumer (a reader, a wrapped exporter) collects it:
    cumulative, or the increments since that consumer's previous collection."""

    def __init__(
        self,
        points: Points,
        scope: InstrumentationScope,
        delta: bool,
        producers: tuple[Producer, ...] = (),
    ) -> None:
        self._points = points
        self._scope = scope
        self._delta = delta
        self._producers = producers
        self._previous: dict[tuple[str, frozenset[Any]], Any] = {}
        self._lock = threading.Lock()

    def metric(self) -> Metric | None:
        """The duration histogram (cumulative, or this consumer's delta)."""
        found = self._convert(
            Metric(
                name=DURATION,
                description="Duration of database client operations.",
                unit="s",
                data=Histogram(
                    data_points=self._points(time.time_ns()),
                    aggregation_temporality=AggregationTemporality.CUMULATIVE,
                ),
            )
        )
        return found

    def metrics(self) -> list[Metric]:
        """The histogram and every producer's metrics, as this consumer wants them."""
        found = [self.metric()]
        now = time.time_ns()
        for producer in self._producers:
            found.extend(self._convert(m) for m in producer(now))
        return [m for m in found if m is not None]

    def _convert(self, metric: Metric) -> Metric | None:
        data: Any = metric.data
        points = list(data.data_points)
        if self._delta:
            points = self._deltas(metric.name, points)
            temporality = AggregationTemporality.DELTA
        else:
            temporality = AggregationTemporality.CUMULATIVE
        if not points:
            return None
        if isinstance(data, Sum):
            data = Sum(
                data_points=points,
                aggregation_temporality=temporality,
                is_monotonic=data.is_monotonic,
            )
        else:
            data = Histogram(data_points=points, aggregation_temporality=temporality)
        return Metric(name=metric.name, description=metric.description, unit=metric.unit, data=data)

    def _deltas(self, name: str, points: list[Any]) -> list[Any]:
        deltas: list[Any] = []
        with self._lock:
            for point in points:
                attributes = (
                    frozenset(point.attributes.items()) if point.attributes else frozenset()
                )
                key = (name, attributes)
                before = self._previous.get(key)
                self._previous[key] = point
                if isinstance(point, NumberDataPoint):
                    if before is None:
                        deltas.append(point)
                    elif point.value != before.value:
                        deltas.append(
                            NumberDataPoint(
                                point.attributes,
                                before.time_unix_nano,
                                point.time_unix_nano,
                                point.value - before.value,
                            )
                        )
                    continue
                if before is None:
                    deltas.append(point)
                    continue
                counts = [
                    a - b for a, b in zip(point.bucket_counts, before.bucket_counts, strict=True)
                ]
                if not any(counts):
                    continue
                deltas.append(
                    HistogramDataPoint(
                        attributes=point.attributes,
                        start_time_unix_nano=before.time_unix_nano,
                        time_unix_nano=point.time_unix_nano,
                        count=sum(counts),
                        sum=point.sum - before.sum,
                        bucket_counts=counts,
                        explicit_bounds=point.explicit_bounds,
                        min=point.min,
                        max=point.max,
                        exemplars=point.exemplars,
                    )
                )
        return deltas

    def augment(
        self, metrics_data: MetricsData | None, resource: Resource | None
    ) -> MetricsData | None:
        """``metrics_data`` with the histogram (and the producers' metrics) joined to dbpulse's
        scope (added when absent)."""
        added = self.metrics()
        if not added:
            return metrics_data
        scope_metrics = ScopeMetrics(scope=self._scope, metrics=added, schema_url="")
        resource_metrics = list(metrics_data.resource_metrics) if metrics_data else []
        if not resource_metrics:
            resource = resource or Resource.create()
            return MetricsData(resource_metrics=[ResourceMetrics(resource, [scope_metrics], "")])
        first = resource_metrics[0]
        # Join dbpulse's own scope when the data has it: the collector's prometheus exporter
        # keeps only the last of two ScopeMetrics with the same scope, which dropped
        # dbpulse.db.writes, the sampler gauges and the drop counter.
        scopes = list(first.scope_metrics)
        for i, existing in enumerate(scopes):
            if _same_scope(existing.scope, self._scope):
                scopes[i] = ScopeMetrics(
                    scope=existing.scope,
                    metrics=[*existing.metrics, *added],
                    schema_url=existing.schema_url,
                )
                break
        else:
            scopes.append(scope_metrics)
        resource_metrics[0] = ResourceMetrics(
            resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
        )
        return MetricsData(resource_metrics=resource_metrics)


def _same_scope(a: InstrumentationScope, b: InstrumentationScope) -> bool:
    return (a.name, a.version) == (b.name, b.version)


def carries_histogram(metrics_data: MetricsData | None, scope: InstrumentationScope) -> bool:
    """Whether ``metrics_data`` already has dbpulse's histogram (a served reader collected it)."""
    if metrics_data is None:
        return False
    return any(
        metric.name == DURATION
        for resource_metrics in metrics_data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        if _same_scope(scope_metrics.scope, scope)
        for metric in scope_metrics.metrics
    )


def _prefers_delta(reader: Any) -> bool:
    temporality = getattr(reader, "_instrument_class_temporality", {}).get(_Histogram)
    return bool(temporality == AggregationTemporality.DELTA)


_SERVED = "_dbpulse_serves"
_serve_lock = threading.Lock()


def serve_meter_provider(
    provider: Any,
    meter: Any,
    points: Points,
    scope: InstrumentationScope,
    producers: tuple[Producer, ...] = (),
) -> None:
    """Have every reader of ``provider`` collect dbpulse's histogram (once per provider).

    ``meter`` is the meter dbpulse just got from ``provider``: when that is the API's proxy
    (no SDK provider set globally yet), the provider set later is served when it arrives.
    """
    if hasattr(meter, "_real_meter") and hasattr(meter, "on_set_meter_provider"):
        _serve_when_set(meter, points, scope, producers)
    elif provider is not None and not _serve(provider, points, scope, producers):
        _log.warning(
            "dbpulse: %s is not an opentelemetry-sdk MeterProvider; its readers get dbpulse's "
            "counters and gauges but not db.client.operation.duration",
            type(provider).__name__,
        )


def _serve_when_set(
    meter: Any, points: Points, scope: InstrumentationScope, producers: tuple[Producer, ...]
) -> None:
    original = meter.on_set_meter_provider

    def on_set_meter_provider(meter_provider: Any) -> None:
        original(meter_provider)
        serve_meter_provider(meter_provider, None, points, scope, producers)

    meter.on_set_meter_provider = on_set_meter_provider
    if meter._real_meter is not None:  # set before the line above ran
        from opentelemetry import metrics

        serve_meter_provider(metrics.get_meter_provider(), None, points, scope, producers)


def _serve(
    provider: Any, points: Points, scope: InstrumentationScope, producers: tuple[Producer, ...]
) -> bool:
    consumer: Any = getattr(provider, "_measurement_consumer", None)
    collect = getattr(consumer, "collect", None)
    storages = getattr(consumer, "_reader_storages", None)
    if collect is None or not isinstance(storages, dict):
        return False
    if getattr(provider, "_disabled", False):
        return True  # OTEL_SDK_DISABLED=true: the provider exports nothing, nor does dbpulse
    with _serve_lock:
        if getattr(collect, _SERVED, False):
            return True
        config = getattr(provider, "_sdk_config", None)
        resource = getattr(config, "resource", None)
        feeds: weakref.WeakKeyDictionary[Any, HistogramFeed] = weakref.WeakKeyDictionary()
        feeds_lock = threading.Lock()

        def collect_with_histogram(reader: Any, timeout_millis: float = 10_000) -> Any:
            data = collect(reader, timeout_millis=timeout_millis)
            try:
                with feeds_lock:
                    feed = feeds.get(reader)
                    if feed is None:
                        feed = feeds[reader] = HistogramFeed(
                            points, scope, _prefers_delta(reader), producers
                        )
                return feed.augment(data, resource)
            except Exception:  # never let dbpulse's part break the application's own metrics
                _log.exception("dbpulse: could not add the aggregated histogram to a collection")
                return data

        setattr(collect_with_histogram, _SERVED, True)
        consumer.collect = collect_with_histogram  # what add_metric_reader hands out from now
        for reader in list(storages):
            reader._set_collect_callback(collect_with_histogram)
    return True
