"""dbpulse: database activity of Python services on OpenTelemetry.

Usage::

    import dbpulse

    dbpulse.configure(service_name="isbn-collector")   # SDK + OTLP from OTEL_* variables
    dbpulse.instrument()                                # sqlite3, psycopg, redis-py

    dbpulse.set_enabled(False)                          # pause all observation at run time

Or, with no code change: ``opentelemetry-instrument python app.py``. The public surface:

* :func:`instrument`, :func:`uninstrument`, :func:`set_enabled`, :func:`is_enabled`,
  :func:`configure`
* the instrumentors :class:`SQLite3Instrumentor`, :class:`PsycopgInstrumentor`,
  :class:`RedisInstrumentor`, :class:`DuckDBInstrumentor` (and their ``instrument_connection``)
* :class:`AdaptiveSampler`, :class:`AggregatingMetricExporter`
* :class:`IsbnExtractor` and the :class:`EntityExtractor` protocol
* :func:`retry` (retry on lock errors) and :func:`sqlite_connect` (WAL + busy timeout);
  ``dbpulse.health`` (database health checks, ``dbpulse health`` on the command line)
* ``dbpulse.flow`` (pattern flows over Redis pub/sub) and ``dbpulse.viz`` (the live sphere)
* :func:`summary` (totals, error rate, p50/p95/p99 overall and per operation) and its
  read-only web apps :func:`summary_asgi` / :func:`summary_wsgi`
* ``dbpulse.testing.reset()`` for test suites that share one process-wide pipeline
"""

from dbpulse.core.entities import EntityExtractor, IsbnExtractor
from dbpulse.core.isbn import normalize_isbn
from dbpulse.instrumentors.sqlite import SQLite3Instrumentor
from dbpulse.setup import (
    ConfigurationError,
    Telemetry,
    configure,
    instrument,
    is_enabled,
    set_enabled,
    uninstrument,
)
from dbpulse.telemetry.export import AggregatingMetricExporter
from dbpulse.telemetry.sampler import AdaptiveSampler
from dbpulse.telemetry.summary import summary, summary_asgi, summary_wsgi
from dbpulse.version import __version__

__all__ = [
    "AdaptiveSampler",
    "AggregatingMetricExporter",
    "ConfigurationError",
    "DuckDBInstrumentor",
    "EntityExtractor",
    "IsbnExtractor",
    "PsycopgInstrumentor",
    "RedisInstrumentor",
    "SQLite3Instrumentor",
    "Telemetry",
    "__version__",
    "configure",
    "instrument",
    "is_enabled",
    "normalize_isbn",
    "retry",
    "set_enabled",
    "sqlite_connect",
    "summary",
    "summary_asgi",
    "summary_wsgi",
    "uninstrument",
]


def __getattr__(name: str) -> object:
    # The drivers are optional: import their instrumentors only when asked for.
    if name == "PsycopgInstrumentor":
        from dbpulse.instrumentors.psycopg import PsycopgInstrumentor

        return PsycopgInstrumentor
    if name == "RedisInstrumentor":
        from dbpulse.instrumentors.redis import RedisInstrumentor

        return RedisInstrumentor
    if name == "DuckDBInstrumentor":
        from dbpulse.instrumentors.duckdb import DuckDBInstrumentor

        return DuckDBInstrumentor
    if name in ("retry", "sqlite_connect"):
        from dbpulse.health import retry as lock_resilience

        return getattr(lock_resilience, name)
    raise AttributeError(f"module 'dbpulse' has no attribute {name!r}")
