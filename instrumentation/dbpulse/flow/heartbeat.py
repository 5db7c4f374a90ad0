"""Liveness of each side of a flow as metrics: heartbeats and subscription state.

A :class:`Heartbeat` reports every ``interval`` seconds (default 60, or
``DBPULSE_HEARTBEAT_INTERVAL``) from a daemon thread: the time of the beat, the uptime, and the
events counted since the previous beat. Between beats nothing is exported that would hide a
stall: when the beats stop (a hung or dead process), ``dbpulse.heartbeat.timestamp`` stops
advancing and ``time() - dbpulse_heartbeat_timestamp_seconds`` grows. No span per heartbeat.

Subscription state is a 0/1 gauge per channel, set to 1 only by the server's confirmation of
the subscription (the ``subscribe`` reply) and back to 0 on unsubscribe or a connection error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType

from opentelemetry import metrics

from dbpulse.flow.checkpoints import EVENTS, STATS, PerMeterProvider
from dbpulse.telemetry.fork import in_child_after_fork
from dbpulse.version import __version__

__all__ = ["DEFAULT_INTERVAL", "Heartbeat", "interval_from_env", "set_subscription"]

_log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0


class _Instruments:
    def __init__(self, provider: metrics.MeterProvider) -> None:
        meter = provider.get_meter("dbpulse.flow", __version__)
        self.timestamp = meter.create_gauge(
            "dbpulse.heartbeat.timestamp", unit="s", description="Unix time of the last heartbeat"
        )
        self.uptime = meter.create_gauge(
            "dbpulse.heartbeat.uptime", unit="s", description="Uptime at the last heartbeat"
        )
        self.events = meter.create_counter(
            "dbpulse.heartbeat.events",
            unit="{event}",
            description="Flow events counted by the heartbeats",
        )
        self.connection_errors = meter.create_counter(
            "dbpulse.heartbeat.connection_errors",
            unit="{error}",
            description="Connection errors to the message broker, counted by the heartbeats",
        )
        # No unit: "1" would become a "_ratio" suffix in Prometheus.
        self.subscription = meter.create_gauge(
            "dbpulse.subscription.active",
            description="1 while the broker has confirmed the subscription to the channel",
        )


_instruments = PerMeterProvider(_Instruments).get


def set_subscription(channel: str, active: bool) -> None:
    """Record whether the subscription to ``channel`` is confirmed by the broker
    (``dbpulse.subscription.active``).

    :class:`dbpulse.flow.Subscriber` calls it on the broker's replies; call it yourself for
    other transports. Never raises.
    """
    try:
        _instruments().subscription.set(1 if active else 0, {"messaging.destination.name": channel})
    except Exception:
        _log.debug("dbpulse: could not record the subscription state", exc_info=True)


def interval_from_env() -> float:
    text = os.environ.get("DBPULSE_HEARTBEAT_INTERVAL", "")
    try:
        value = float(text) if text.strip() else DEFAULT_INTERVAL
    except ValueError:
        _log.warning("dbpulse: DBPULSE_HEARTBEAT_INTERVAL=%r is not a number; using 60", text)
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


class Heartbeat:
    """Reports the liveness of one side (``component``: ``producer``, ``consumer``, ...).

    Example::

        from dbpulse import flow

        heartbeat = flow.Heartbeat("consumer", interval=60).start()
        ...
        heartbeat.stop()

    or ``with flow.Heartbeat("consumer"):``. Each beat sets ``dbpulse.heartbeat.timestamp``
    and ``dbpulse.heartbeat.uptime`` and adds the events and connection errors the flow API
    counted in this process since the previous beat to ``dbpulse.heartbeat.events`` and
    ``dbpulse.heartbeat.connection_errors``; the first beat is at :meth:`start`.
    ``service.name`` comes from the resource.
    """

    def __init__(self, component: str, interval: float | None = None) -> None:
        if interval is not None and interval <= 0:
            raise ValueError(f"heartbeat interval must be positive seconds, got {interval!r}")
        self.component = component
        self.interval = interval if interval is not None else interval_from_env()
        self.started_at = time.time()
        self.last_beat: float | None = None
        self._reported = dict.fromkeys((*EVENTS, "connection_errors"), 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._attributes = {"dbpulse.component": component}
        self._event_attributes = {
            event: {"dbpulse.component": component, "dbpulse.event": event} for event in EVENTS
        }
        in_child_after_fork(self._after_fork_in_child, weak=True)

    def _after_fork_in_child(self) -> None:
        """A forked child inherits no thread: a running heartbeat starts again there, with its
        own uptime and the child's own (zeroed) event counts."""
        running = self._thread is not None and not self._stop.is_set()
        self._thread = None
        self._stop = threading.Event()
        self.started_at = time.time()
        self.last_beat = None
        self._reported = dict.fromkeys(self._reported, 0)
        if running:
            self.start()

    def start(self) -> Heartbeat:
        """Beat now, then every ``interval`` seconds from a daemon thread. Returns ``self``."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self.beat()
        self._thread = threading.Thread(
            target=self._run, name=f"dbpulse-heartbeat-{self.component}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Beat a last time and stop; from then on the gauge keeps that beat's time, which is
        what a stall looks like too."""
        if self._thread is not None:
            self.beat()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def beat(self) -> None:
        """Report once now. Never raises."""
        try:
            now = time.time()
            snapshot = STATS.snapshot()
            instruments = _instruments()
            instruments.timestamp.set(now, self._attributes)
            instruments.uptime.set(now - self.started_at, self._attributes)
            for event in EVENTS:
                delta = snapshot[event] - self._reported[event]
                if delta:
                    instruments.events.add(delta, self._event_attributes[event])
            errors = snapshot["connection_errors"] - self._reported["connection_errors"]
            # Add 0 once so the series exists (and alerts can use increase()) before any error.
            if errors or self.last_beat is None:
                instruments.connection_errors.add(errors, self._attributes)
            self._reported = snapshot
            self.last_beat = now
        except Exception:
            _log.debug("dbpulse: heartbeat could not be recorded", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Heartbeat({self.component!r}, interval={self.interval!r})"
