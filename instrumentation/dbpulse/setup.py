"""Turning dbpulse on: instrumentors, and the SDK pipeline they export through.

``instrument()`` patches the drivers; ``configure()`` builds the OpenTelemetry SDK providers the
way ``opentelemetry-instrument`` does with dbpulse installed (OTLP exporters from the standard
``OTEL_*`` variables, the adaptive sampler, flow-aware trace ids, the aggregated histogram, the
viz feed when ``DBPULSE_VIZ_URL`` is set).
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import metrics, trace
from opentelemetry.sdk._configuration import (
    _get_exporter_names,
    _get_sampler,
    _import_exporters,
    _import_sampler,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Sampler

from dbpulse.core.entities import EntityExtractor, IsbnExtractor
from dbpulse.core.state import STATE
from dbpulse.core.statements import set_extractor
from dbpulse.telemetry.exit import drop_unreachable, is_otlp
from dbpulse.telemetry.ids import FlowIdGenerator
from dbpulse.telemetry.metrics import OPERATIONS

__all__ = [
    "SYSTEMS",
    "Telemetry",
    "configure",
    "instrument",
    "is_enabled",
    "set_enabled",
    "uninstrument",
]

_log = logging.getLogger(__name__)

SYSTEMS = ("sqlite", "postgresql", "redis", "duckdb")
_FALSE = {"0", "false", "no", "off"}


class ConfigurationError(ValueError):
    """A dbpulse setting is invalid; the message names the variable and what it accepts."""


def _instrumentors(systems: Iterable[str]) -> list[Any]:
    found = []
    for system in systems:
        if system == "sqlite":
            from dbpulse.instrumentors.sqlite import SQLite3Instrumentor

            found.append(SQLite3Instrumentor())
        elif system == "postgresql":
            try:
                import psycopg  # noqa: F401
            except ImportError:
                continue
            from dbpulse.instrumentors.psycopg import PsycopgInstrumentor

            found.append(PsycopgInstrumentor())
        elif system == "redis":
            try:
                import redis  # noqa: F401
            except ImportError:
                continue
            from dbpulse.instrumentors.redis import RedisInstrumentor

            found.append(RedisInstrumentor())
        elif system == "duckdb":
            try:
                import duckdb  # noqa: F401
            except ImportError:
                continue
            from dbpulse.instrumentors.duckdb import DuckDBInstrumentor

            found.append(DuckDBInstrumentor())
        else:
            raise ConfigurationError(f"unknown database system {system!r}; choose from {SYSTEMS}")
    return found


_DEFAULT_EXTRACTOR: Any = object()


def instrument(
    *,
    systems: Sequence[str] = SYSTEMS,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    extractor: EntityExtractor | None = _DEFAULT_EXTRACTOR,
) -> None:
    """Instrument the installed drivers among ``systems`` (sqlite3, psycopg, redis-py, duckdb).

    Example::

        import dbpulse
        dbpulse.configure(service_name="collector")   # SDK + OTLP, or bring your own providers
        dbpulse.instrument()

    ``extractor`` chooses the entity-key extractor (default: ISBNs; ``None``: no keys).
    """
    if extractor is not _DEFAULT_EXTRACTOR:
        set_extractor(extractor)
    for instrumentor in _instrumentors(systems):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    _health_from_env(meter_provider)


def _health_from_env(meter_provider: Any) -> None:
    """The database health gauges when ``DBPULSE_HEALTH_TARGETS`` names targets."""
    if os.environ.get("DBPULSE_HEALTH_TARGETS", "").strip():
        from dbpulse.health.gauges import start_from_env

        start_from_env(meter_provider)


def uninstrument(*, systems: Sequence[str] = SYSTEMS) -> None:
    """Undo :func:`instrument`; connections already open stop being observed too."""
    for instrumentor in _instrumentors(systems):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def set_enabled(enabled: bool) -> None:
    """Switch all dbpulse observation on or off at run time (off costs one flag check)."""
    STATE.set_enabled(enabled)


def is_enabled() -> bool:
    return STATE.enabled


def enabled_from_env() -> bool:
    """``DBPULSE_ENABLED`` (default true), and off whenever ``OTEL_SDK_DISABLED=true``."""
    return not sdk_disabled() and (
        os.environ.get("DBPULSE_ENABLED", "true").strip().lower() not in _FALSE
    )


def sdk_disabled() -> bool:
    """``OTEL_SDK_DISABLED=true``: the SDK is off, so dbpulse observes nothing either."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """``BatchSpanProcessor`` that also counts spans dropped on a full queue into
    ``dbpulse.telemetry.dropped{dbpulse.component="span_queue"}``."""

    def on_end(self, span: ReadableSpan) -> None:
        try:
            processor = self._batch_processor
            if len(processor._queue) >= processor._max_queue_size:
                OPERATIONS.count_dropped("span_queue")
        except Exception:
            pass
        super().on_end(span)


@dataclass
class Telemetry:
    """The providers :func:`configure` built. ``shutdown()`` flushes and stops them."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    otlp_exporters: tuple[Any, ...] = ()  # built from the environment (see telemetry/exit.py)

    def force_flush(self, timeout_millis: int = 10_000) -> None:
        self.tracer_provider.force_flush(timeout_millis)
        self.meter_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.before_exit()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    def before_exit(self) -> None:
        """With no collector listening, drop the last batch at once instead of retrying."""
        drop_unreachable(self.otlp_exporters)


def _sampler_from_env() -> Sampler | None:
    """``OTEL_TRACES_SAMPLER`` as the SDK's configurator reads it (entry-point samplers such as
    ``dbpulse_adaptive`` included); ``None`` lets ``TracerProvider`` apply the SDK default.
    ``_import_sampler`` is private to opentelemetry-sdk, checked against 1.45."""
    return _import_sampler(_get_sampler())


def _id_generator() -> IdGenerator:
    return FlowIdGenerator()


def _viz_processor() -> SpanProcessor | None:
    if not os.environ.get("DBPULSE_VIZ_URL"):
        return None
    try:
        from dbpulse.viz import VizFeedProcessor

        return VizFeedProcessor.from_env()
    except Exception:
        _log.warning(
            "dbpulse: DBPULSE_VIZ_URL is set but the viz feed could not start", exc_info=True
        )
        return None


def _exporter_names(signal: Literal["traces", "metrics"]) -> list[str]:
    """``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``, ``otlp`` when unset (the SDK's own
    helper returns nothing then, and ``opentelemetry-instrument`` relies on a distro to set it)."""
    variable = "OTEL_TRACES_EXPORTER" if signal == "traces" else "OTEL_METRICS_EXPORTER"
    if not os.environ.get(variable, "").strip():
        return ["otlp"]
    return list(_get_exporter_names(signal))


def _metric_readers(
    names: Sequence[str], exporter: MetricExporter | None, built: list[Any]
) -> list[MetricReader]:
    """Plain SDK readers: the aggregated histogram reaches each of them at collection
    (:mod:`dbpulse.telemetry.readers`), pull readers such as Prometheus included. The exporters
    made from ``names`` are appended to ``built``."""
    if exporter is not None:
        return [PeriodicExportingMetricReader(exporter)]
    _, classes, _ = _import_exporters([], names, [])
    readers: list[MetricReader] = []
    for cls in classes.values():
        if issubclass(cls, MetricReader):
            readers.append(cls())
        else:
            made = cls()
            built.append(made)
            readers.append(PeriodicExportingMetricReader(made))
    return readers


def configure(
    *,
    service_name: str | None = None,
    resource: Resource | None = None,
    sampler: Sampler | None = None,
    span_exporter: Any = None,
    metric_exporter: MetricExporter | None = None,
    span_processors: Sequence[SpanProcessor] = (),
    set_global: bool = True,
) -> Telemetry:
    """Build the SDK providers from the ``OTEL_*`` environment (like ``opentelemetry-instrument``).

    Example::

        import dbpulse
        telemetry = dbpulse.configure(service_name="isbn-collector")
        dbpulse.instrument()
        ...
        telemetry.shutdown()

    Traces: ``OTEL_TRACES_EXPORTER`` (default ``otlp``), the application's sampler from
    ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` (default ``parentbased_always_on``;
    dbpulse's own root spans are sampled adaptively whatever it is), flow-aware trace ids,
    the viz feed when ``DBPULSE_VIZ_URL`` is set, the database health gauges when
    ``DBPULSE_HEALTH_TARGETS`` is (:mod:`dbpulse.health.gauges`). Metrics:
    ``OTEL_METRICS_EXPORTER`` (default ``otlp``; ``prometheus`` and ``console`` too), every
    reader carrying the aggregated histogram. ``span_exporter``/``metric_exporter`` replace
    the environment's choice (tests, custom backends).
    """
    if resource is None:
        # ``service_name`` is the default; OTEL_SERVICE_NAME, when set, wins.
        defaults = {}
        if service_name and not os.environ.get("OTEL_SERVICE_NAME"):
            defaults["service.name"] = service_name
        resource = Resource.create(defaults)
    built: list[Any] = []
    tracer_provider = TracerProvider(
        resource=resource,
        sampler=sampler or _sampler_from_env(),
        id_generator=_id_generator(),
    )
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    viz = _viz_processor()
    if viz is not None:
        tracer_provider.add_span_processor(viz)
    if span_exporter is not None:
        tracer_provider.add_span_processor(CountingBatchSpanProcessor(span_exporter))
    else:
        classes, _, _ = _import_exporters(_exporter_names("traces"), [], [])
        for cls in classes.values():
            exporter = cls()
            built.append(exporter)
            tracer_provider.add_span_processor(CountingBatchSpanProcessor(exporter))
    readers = _metric_readers(_exporter_names("metrics"), metric_exporter, built)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    telemetry = Telemetry(tracer_provider, meter_provider, tuple(e for e in built if is_otlp(e)))
    # After the providers' own exit hooks were registered, so it runs before them.
    atexit.register(telemetry.before_exit)
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        for switch in STATE.switches:  # instrumented before the SDK existed
            if switch.instrumented and switch.tracer_provider is None:
                switch.refresh_recorder()
    OPERATIONS.register_instruments(None if set_global else meter_provider)
    _health_from_env(None if set_global else meter_provider)
    return telemetry


__all__ += ["ConfigurationError", "CountingBatchSpanProcessor", "IsbnExtractor"]
