"""psycopg_pool's ``db.client.connection.*`` metrics, for pools created while instrumented.

Connection count by state (idle/used), max and pending requests come from the pool's own
``get_stats()`` at collection time; timeouts and wait time are timed around ``getconn``.
"""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.core.state import Switch
from dbpulse.telemetry.instruments import Instruments

__all__ = ["POOLS", "pool_module", "pool_patches"]

_log = logging.getLogger(__name__)
_POOL_WAIT_BUCKETS = [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0]


class _PoolMetrics:
    """``db.client.connection.*`` for every pool created while instrumented."""

    def __init__(self) -> None:
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._instruments = Instruments("dbpulse.psycopg_pool")
        self.wait_time: metrics.Histogram | None = None
        self.timeouts: metrics.Counter | None = None

    def register(self, meter_provider: Any = None) -> None:
        meter = self._instruments.observe(
            meter_provider,
            (
                (
                    "up_down_counter",
                    "db.client.connection.count",
                    self._observe_count,
                    "{connection}",
                    "Connections in the pool, by state (idle/used).",
                ),
                (
                    "up_down_counter",
                    "db.client.connection.max",
                    self._observe_stat("pool_max"),
                    "{connection}",
                    "Largest number of connections the pool may open.",
                ),
                (
                    "up_down_counter",
                    "db.client.connection.pending_requests",
                    self._observe_stat("requests_waiting"),
                    "{request}",
                    "Requests waiting for a connection.",
                ),
            ),
        )
        if meter is None:
            return
        self.timeouts = meter.create_counter(
            "db.client.connection.timeouts",
            unit="{timeout}",
            description="Connection requests that timed out waiting for the pool.",
        )
        self.wait_time = meter.create_histogram(
            "db.client.connection.wait_time",
            unit="s",
            description="Time it took to obtain a connection from the pool.",
            explicit_bucket_boundaries_advisory=_POOL_WAIT_BUCKETS,
        )

    def _stats(self) -> Iterable[tuple[str, dict[str, int]]]:
        for pool in list(self.pools):
            try:
                yield pool.name, pool.get_stats()
            except Exception:
                continue

    def _observe_count(self, _options: CallbackOptions) -> Iterable[Observation]:
        for name, stats in self._stats():
            size = stats.get("pool_size", 0)
            idle = stats.get("pool_available", 0)
            yield Observation(
                idle,
                {"db.client.connection.pool.name": name, "db.client.connection.state": "idle"},
            )
            yield Observation(
                max(0, size - idle),
                {"db.client.connection.pool.name": name, "db.client.connection.state": "used"},
            )

    def _observe_stat(self, key: str) -> Any:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            for name, stats in self._stats():
                yield Observation(stats.get(key, 0), {"db.client.connection.pool.name": name})

        return observe

    def waited(self, pool: Any, seconds: float, exc: BaseException | None) -> None:
        try:
            attributes = {"db.client.connection.pool.name": pool.name}
            if exc is not None and type(exc).__name__ == "PoolTimeout" and self.timeouts:
                self.timeouts.add(1, attributes)
            if exc is None and self.wait_time is not None:
                self.wait_time.record(seconds, attributes)
        except Exception:
            _log.debug("dbpulse: pool metrics failed", exc_info=True)


POOLS = _PoolMetrics()


def pool_patches(switch: Switch) -> tuple[tuple[str, str, Any], ...]:
    """The wrappers of psycopg_pool's pools, active while ``switch`` is on."""

    def init(wrapped: Any, pool: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        if switch.on:
            POOLS.pools.add(pool)
        return result

    def getconn(wrapped: Any, pool: Any, args: Any, kwargs: Any) -> Any:
        """Times ``getconn`` of a sync pool, or the await of an async pool's."""
        if not switch.on:
            return wrapped(*args, **kwargs)
        start = time.perf_counter()
        try:
            conn = wrapped(*args, **kwargs)
        except BaseException as exc:
            POOLS.waited(pool, time.perf_counter() - start, exc)
            raise
        if inspect.isawaitable(conn):
            return _getconn_awaited(pool, start, conn)
        POOLS.waited(pool, time.perf_counter() - start, None)
        return conn

    return tuple(
        (class_name, method, init if method == "__init__" else getconn)
        for class_name in ("ConnectionPool", "AsyncConnectionPool")
        for method in ("__init__", "getconn")
    )


async def _getconn_awaited(pool: Any, start: float, awaitable: Any) -> Any:
    try:
        conn = await awaitable
    except BaseException as exc:
        POOLS.waited(pool, time.perf_counter() - start, exc)
        raise
    POOLS.waited(pool, time.perf_counter() - start, None)
    return conn


def pool_module() -> Any:
    try:
        import psycopg_pool
    except ImportError:
        return None
    return psycopg_pool
