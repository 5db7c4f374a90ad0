"""``AggregatingMetricExporter``: kept for applications that wrap their exporter in it.

No longer needed: dbpulse adds its aggregated ``db.client.operation.duration`` histogram to what
every reader of the providers it registers on collects (:mod:`dbpulse.telemetry.readers`). The
wrapper now adds the histogram only to data that lacks it (a provider dbpulse does not serve),
so a point is never exported twice.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.resources import Resource

from dbpulse.telemetry.metrics import OPERATIONS, SCOPE, OperationMetrics
from dbpulse.telemetry.readers import HistogramFeed, carries_histogram

__all__ = ["AggregatingMetricExporter"]

_log = logging.getLogger(__name__)


class AggregatingMetricExporter(MetricExporter):
    """Wraps a metric exporter and adds dbpulse's aggregated histogram to exports that lack it.

    No longer needed (every reader of a provider dbpulse registers on collects the histogram);
    kept so that code written for earlier versions works unchanged::

        reader = PeriodicExportingMetricReader(AggregatingMetricExporter(OTLPMetricExporter()))

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
        self._resource = resource
        preferred = getattr(exporter, "_preferred_temporality", None) or {}
        delta = preferred.get(SdkHistogram) == AggregationTemporality.DELTA
        self._feed = HistogramFeed((operations or OPERATIONS).histogram_points, SCOPE, delta)

    def augment(self, metrics_data: MetricsData) -> MetricsData:
        if carries_histogram(metrics_data, SCOPE):
            return metrics_data  # the reader collected it already
        return self._feed.augment(metrics_data, self._resource) or metrics_data

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
