"""The aggregated ``db.client.operation.duration`` histogram, added to a push exporter's data.

See :mod:`dbpulse.telemetry.metrics` for why the histogram is aggregated in-process.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource

from dbpulse.telemetry.metrics import OPERATIONS, SCOPE, OperationMetrics

__all__ = ["AggregatingMetricExporter"]

_log = logging.getLogger(__name__)


class AggregatingMetricExporter(MetricExporter):
    """Wraps a metric exporter and adds dbpulse's aggregated histogram to every export.

    Example::

        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        exporter = AggregatingMetricExporter(OTLPMetricExporter())
        reader = PeriodicExportingMetricReader(exporter)

    Points are cumulative; with an exporter that prefers delta temporality for histograms they
    are converted to deltas here.
    """

    def __init__(
        self,
        exporter: MetricExporter,
        operations: OperationMetrics | None = None,
        resource: Resource | None = None,
    ) -> None:
        super().__init__(
            preferred_temporality=getattr(exporter, "_preferred_temporality", None),
            preferred_aggregation=getattr(exporter, "_preferred_aggregation", None),
        )
        self._exporter = exporter
        self._operations = operations or OPERATIONS
        self._operations.exporter_attached = True
        self._resource = resource
        preferred = getattr(exporter, "_preferred_temporality", None) or {}
        self._delta = preferred.get(SdkHistogram) == AggregationTemporality.DELTA
        self._previous: dict[frozenset[Any], HistogramDataPoint] = {}
        self._lock = threading.Lock()

    def _points(self) -> tuple[list[HistogramDataPoint], AggregationTemporality]:
        points = self._operations.histogram_points(time.time_ns())
        if not self._delta:
            return points, AggregationTemporality.CUMULATIVE
        deltas = []
        with self._lock:
            for point in points:
                key = frozenset(point.attributes.items()) if point.attributes else frozenset()
                before = self._previous.get(key)
                self._previous[key] = point
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
        return deltas, AggregationTemporality.DELTA

    def augment(self, metrics_data: MetricsData) -> MetricsData:
        points, temporality = self._points()
        if not points:
            return metrics_data
        metric = Metric(
            name="db.client.operation.duration",
            description="Duration of database client operations.",
            unit="s",
            data=Histogram(data_points=points, aggregation_temporality=temporality),
        )
        scope_metrics = ScopeMetrics(scope=SCOPE, metrics=[metric], schema_url="")
        resource_metrics = list(metrics_data.resource_metrics)
        if resource_metrics:
            first = resource_metrics[0]
            # Join dbpulse's own scope when the export has it: the collector's prometheus
            # exporter keeps only the last of two ScopeMetrics with the same scope, which
            # dropped dbpulse.db.writes, the sampler gauges and the drop counter.
            scopes = list(first.scope_metrics)
            for i, existing in enumerate(scopes):
                if (existing.scope.name, existing.scope.version) == (SCOPE.name, SCOPE.version):
                    scopes[i] = ScopeMetrics(
                        scope=existing.scope,
                        metrics=[*existing.metrics, metric],
                        schema_url=existing.schema_url,
                    )
                    break
            else:
                scopes.append(scope_metrics)
            resource_metrics[0] = ResourceMetrics(
                resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
            )
        else:
            resource = self._resource or Resource.create()
            resource_metrics = [ResourceMetrics(resource, [scope_metrics], "")]
        return MetricsData(resource_metrics=resource_metrics)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            metrics_data = self.augment(metrics_data)
        except Exception:  # never let dbpulse's part break the application's own metrics
            _log.exception("dbpulse: could not add the aggregated histogram to this export")
        return self._exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._exporter.shutdown(timeout_millis=timeout_millis, **kwargs)
