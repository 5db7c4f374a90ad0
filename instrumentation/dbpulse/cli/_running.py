"""How the workload commands run: with the process's telemetry, until SIGTERM or Ctrl-C.

Under ``opentelemetry-instrument`` (or any SDK already set up in the process) a command uses
what is configured and flushes it on exit; otherwise it calls :func:`dbpulse.configure` with
its own ``service.name`` (OTLP from the ``OTEL_*`` variables) and shuts that down, flushed.
SIGTERM (``docker compose stop``) and SIGINT set the workload's stop event: the loop ends, the
telemetry is flushed and the command exits 0. :func:`redis_errors` are what the Redis workloads
ride out (``dbpulse.demo.running.rerun_on``): a restarted server, a killed connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from dbpulse.demo.running import stop_on_signals

__all__ = ["redis_errors", "run_until_stopped"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


def run_until_stopped(service_name: str, work: Callable[[threading.Event], _T]) -> _T:
    """``work(stop)`` with telemetry, ``stop`` set by SIGTERM/SIGINT."""
    owned: Any = None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        from dbpulse.setup import configure

        owned = configure(service_name=service_name)
    try:
        with stop_on_signals() as stop:
            return work(stop)
    finally:
        if owned is not None:
            owned.shutdown()
        else:
            _flush()


def redis_errors() -> tuple[type[BaseException], ...]:
    """redis-py's lost-connection errors (the redis extra is installed for these commands)."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError)


def _flush() -> None:
    from opentelemetry import metrics

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is None:
            continue
        try:
            flush()
        except Exception:
            _log.debug("could not flush %s", type(provider).__name__, exc_info=True)
