"""The viz feed: database-write spans → batched viz events → the viz server.

Usage::

    from opentelemetry.sdk.trace import TracerProvider
    from dbpulse.viz import VizFeedProcessor

    provider = TracerProvider()
    provider.add_span_processor(VizFeedProcessor("http://127.0.0.1:8765", token="s3cret"))

or, as dbpulse's configurator does when ``DBPULSE_VIZ_URL`` is set,
``VizFeedProcessor.from_env()``.

``on_end`` only appends the ended span to a bounded deque (the oldest entry falls out when it is
full, and is counted). A daemon thread turns spans into events and merges them with the exact
write counters of :mod:`dbpulse.telemetry.metrics` (:mod:`dbpulse.viz.sources`), then POSTs
``{"events": [...]}`` to ``/api/viz/emit`` with the standard library's ``http.client``
(:mod:`dbpulse.viz.transport`): the application needs no dependency beyond OpenTelemetry. A
batch leaves when ``batch_size`` spans wait or every ``batch_interval`` seconds. While the
server is down or hanging, sends back off exponentially (one post takes at most ``timeout``, so
the thread never sits on a dead socket for long) and the queue keeps dropping its oldest
entries. ``shutdown`` returns within ``shutdown_timeout + timeout`` seconds.

Truthfulness under sampling: the exact counters are the source of truth for *how many* writes
each ISBN had; spans only contribute *which trace* and *when*. See ``docs/viz.md``.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from dbpulse.viz.config import feed_options_from_env
from dbpulse.viz.sources import (
    IsbnCounts,
    Ledger,
    TableCounts,
    default_counters,
    span_events,
)
from dbpulse.viz.transport import YIELD_EVERY, EmitClient

__all__ = ["WRITE_OPERATIONS", "VizFeedProcessor"]

_log = logging.getLogger("dbpulse.viz")

WRITE_OPERATIONS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT", "MERGE", "COPY"})
"""Values of ``db.operation.name`` that the feed turns into events."""

_COUNTER_RETRY_S = 5.0


class VizFeedProcessor(SpanProcessor):
    """Ships database-write spans to the dbpulse viz server as batched events.

    Args:
        url: base URL of the viz server (``http://127.0.0.1:8765``) or the full emit URL.
        token: bearer token the server expects, if any.
        batch_size: send as soon as this many spans wait (default 50).
        batch_interval: otherwise send every this many seconds (default 0.1).
        queue_size: spans kept while waiting; beyond it the oldest are dropped and counted.
        timeout: the longest one POST may take, in seconds (short on purpose).
        max_backoff: longest pause between attempts while the server is unreachable.
        max_events_per_post: cap on one POST's size; more waiting events go in the next one.
        use_counters: merge the exact per-ISBN counters of ``dbpulse.telemetry.metrics`` (default).
        isbn_counts, table_counts: explicit counter sources (tests, other metric paths).
        shutdown_timeout: how long ``shutdown`` may take to flush, in seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        batch_size: int = 50,
        batch_interval: float = 0.1,
        queue_size: int = 10_000,
        timeout: float = 1.0,
        max_backoff: float = 5.0,
        max_events_per_post: int = 2000,
        use_counters: bool = True,
        isbn_counts: Callable[[], IsbnCounts] | None = None,
        table_counts: Callable[[], TableCounts] | None = None,
        shutdown_timeout: float = 2.0,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.batch_size = max(1, batch_size)
        self.batch_interval = max(0.001, batch_interval)
        self.queue_size = max(1, queue_size)
        self.timeout = timeout
        self._transport = EmitClient(
            url,
            token=token,
            timeout=timeout,
            base_backoff=self.batch_interval,
            max_backoff=max_backoff,
        )
        self.max_events_per_post = max(self.batch_size, max_events_per_post)
        self.shutdown_timeout = shutdown_timeout

        self._queue: deque[ReadableSpan] = deque(maxlen=self.queue_size)
        # Exact drop count without a lock on the hot path: every enqueue draws a number from
        # an atomic counter; dropped = drawn - dequeued - still queued.
        self._drawn = itertools.count()
        self._reader_draws = 0
        self._dequeued = 0
        self._send_dropped = 0
        self._dropped_seen = 0
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._deadline: float | None = None  # set by shutdown: the feed thread ends by then
        self._flush_requests: list[threading.Event] = []
        self._flush_lock = threading.Lock()

        self._explicit_counters = isbn_counts is not None or table_counts is not None
        self._isbn_counts = isbn_counts
        self._table_counts = table_counts
        self._use_counters = use_counters
        self._counters_checked_at = -_COUNTER_RETRY_S
        self._ledger = Ledger()
        self._pending: list[dict[str, Any]] = []

        provider = meter_provider or metrics.get_meter_provider()
        try:
            meter = provider.get_meter("dbpulse.viz")
            meter.create_observable_counter(
                "dbpulse.telemetry.dropped",
                callbacks=[self._observe_dropped],
                unit="{item}",
                description="Telemetry items dbpulse dropped to protect the application.",
            )
        except Exception:  # metrics are a nicety; the feed works without them
            _log.debug("dbpulse: could not register the viz feed's dropped counter")

        self._thread = threading.Thread(target=self._run, name="dbpulse-viz-feed", daemon=True)
        self._thread.start()
        if hasattr(os, "register_at_fork"):
            # A forked worker (gunicorn --preload, multiprocessing) gets its own feed thread.
            ref = weakref.WeakMethod(self._after_fork_in_child)
            os.register_at_fork(after_in_child=lambda: (method := ref()) and method())

    def _after_fork_in_child(self) -> None:
        self._queue = deque(maxlen=self.queue_size)
        self._drawn = itertools.count()
        self._reader_draws = self._dequeued = self._send_dropped = self._dropped_seen = 0
        self._count_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flush_requests = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._transport.reset()
        self._pending = []
        if not self._closed:
            self._thread = threading.Thread(target=self._run, name="dbpulse-viz-feed", daemon=True)
            self._thread.start()

    @classmethod
    def from_env(cls, **overrides: Any) -> VizFeedProcessor:
        """Build the processor from ``DBPULSE_VIZ_*`` environment variables.

        ``DBPULSE_VIZ_URL`` (required), ``DBPULSE_VIZ_TOKEN``, ``DBPULSE_VIZ_BATCH_SIZE``
        (50), ``DBPULSE_VIZ_BATCH_INTERVAL_MS`` (100), ``DBPULSE_VIZ_QUEUE_SIZE`` (10000),
        ``DBPULSE_VIZ_TIMEOUT_MS`` (1000); ``overrides`` are constructor arguments.
        """
        return cls(**{**feed_options_from_env(), **overrides})

    # -- application thread: O(1), never raises ------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            attributes = span.attributes
            if not attributes or self._closed:
                return
            operation = attributes.get("db.operation.name")
            if operation not in WRITE_OPERATIONS and (
                not isinstance(operation, str) or operation.upper() not in WRITE_OPERATIONS
            ):
                return
            next(self._drawn)
            queue = self._queue
            queue.append(span)
            if len(queue) >= self.batch_size and not self._wake.is_set():
                self._wake.set()
        except Exception:  # telemetry never raises into the application
            return

    # -- counters --------------------------------------------------------------------------------

    def dropped(self) -> int:
        """Events dropped so far: queue overflow, failed or refused sends."""
        with self._count_lock:
            drawn = next(self._drawn) - self._reader_draws
            self._reader_draws += 1
            queue_dropped = drawn - self._dequeued - len(self._queue)
            total = max(0, queue_dropped) + self._send_dropped + self._transport.rejected_events
            # A draw can be visible before its append: never let the count go backwards.
            self._dropped_seen = max(self._dropped_seen, total)
            return self._dropped_seen

    def _observe_dropped(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.dropped(), {"dbpulse.component": "viz_feed"})

    def stats(self) -> dict[str, Any]:
        """Queue length, drops and the transport's counters, for a status line."""
        return {"queued": len(self._queue), "dropped": self.dropped(), **self._transport.stats()}

    @property
    def url(self) -> str:
        """The emit URL the feed posts to."""
        return self._transport.url

    @property
    def sent_events(self) -> int:
        return self._transport.sent_events

    @property
    def sent_batches(self) -> int:
        return self._transport.sent_batches

    @property
    def failed_posts(self) -> int:
        return self._transport.failed_posts

    @property
    def rejected_events(self) -> int:
        """Events the server refused (4xx): dropped, and counted in :meth:`dropped`."""
        return self._transport.rejected_events

    @property
    def connected(self) -> bool:
        """Whether the last post reached the server."""
        return self._transport.connected

    @property
    def last_error(self) -> str | None:
        return self._transport.last_error

    # -- SpanProcessor lifecycle -----------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if not self._thread.is_alive():
            return not self._queue
        done = threading.Event()
        with self._flush_lock:
            self._flush_requests.append(done)
        self._wake.set()
        return done.wait(timeout_millis / 1000.0) and not self._queue and not self._pending

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        # The deadline counts from now, not from when the feed thread notices: a post under way
        # ends within `timeout` (its own budget), later ones are cut to the deadline, so the
        # thread ends within max(timeout, shutdown_timeout) and the join below outlasts it.
        self._deadline = time.monotonic() + self.shutdown_timeout
        self._wake.set()
        self._stop.set()
        self._thread.join(self.shutdown_timeout + self.timeout)
        if not self._thread.is_alive():
            self._transport.close()

    # -- feed thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        transport = self._transport
        next_tick = time.monotonic() + self.batch_interval
        while True:
            deadline = self._deadline
            now = time.monotonic()
            if deadline is None:
                if now < transport.retry_at:
                    # Backing off: the queue keeps filling (and dropping its oldest); on_end's
                    # wake-ups are ignored so that a full queue does not spin this thread.
                    self._answer_flushes()
                    self._stop.wait(transport.retry_at - now)
                    continue
                wait = next_tick - now
                if wait > 0 and len(self._queue) < self.batch_size and not self._flush_requests:
                    self._wake.wait(wait)
            self._wake.clear()
            now = time.monotonic()
            tick = now >= next_tick
            try:
                self._cycle(tick, deadline)
            except Exception as exc:  # keep the thread alive whatever happens
                transport.last_error = f"feed error: {exc!r}"
                _log.debug("dbpulse: viz feed cycle failed", exc_info=True)
            if tick:
                next_tick = now + self.batch_interval
            if deadline is not None and (
                (not self._queue and not self._pending)
                or time.monotonic() >= deadline
                or transport.retry_at > time.monotonic()
            ):
                self._answer_flushes()
                return

    def _cycle(self, tick: bool, deadline: float | None) -> None:
        flushing = bool(self._flush_requests)
        if not tick and len(self._queue) < self.batch_size and not flushing and deadline is None:
            return
        events = self._pending
        self._pending = []
        room = self.max_events_per_post - len(events)
        events.extend(self._drain(room))
        if tick or deadline is not None or flushing:
            events.extend(self._read_counters(time.time()))
        while events:
            batch = events[: self.max_events_per_post]
            events = events[self.max_events_per_post :]
            if not self._post(batch):
                keep = batch + events
                overflow = len(keep) - self.max_events_per_post
                if overflow > 0:
                    self._send_dropped += overflow
                    keep = keep[overflow:]
                self._pending = keep
                break
            if deadline is None and not flushing and len(self._queue) < self.batch_size:
                continue
            events.extend(self._drain(self.max_events_per_post - len(events)))
        if flushing and not self._queue:
            self._answer_flushes()

    def _answer_flushes(self) -> None:
        with self._flush_lock:
            requests, self._flush_requests = self._flush_requests, []
        for request in requests:
            request.set()

    def _drain(self, room: int) -> list[dict[str, Any]]:
        queue = self._queue
        counters_live = self._isbn_counts is not None
        ledger = self._ledger
        out: list[dict[str, Any]] = []
        taken = 0
        while taken < room:
            try:
                span = queue.popleft()
            except IndexError:
                break
            taken += 1
            self._dequeued += 1
            if not taken % YIELD_EVERY:
                time.sleep(0)  # let the application thread have the GIL back
            try:
                out.extend(span_events(span, counters_live, ledger))
            except Exception:
                _log.debug("dbpulse: could not turn a span into a viz event", exc_info=True)
        return out

    def _read_counters(self, now: float) -> list[dict[str, Any]]:
        if not self._use_counters:
            return []
        if not self._explicit_counters and self._isbn_counts is None:
            if time.monotonic() - self._counters_checked_at < _COUNTER_RETRY_S:
                return []
            self._counters_checked_at = time.monotonic()
            self._isbn_counts, self._table_counts = default_counters()
        out: list[dict[str, Any]] = []
        if self._table_counts is not None:
            out.extend(self._ledger.read_tables(self._table_counts(), now))
        if self._isbn_counts is not None:
            out.extend(self._ledger.read_isbns(self._isbn_counts(), now))
        return out

    def _post(self, batch: list[dict[str, Any]]) -> bool:
        """Send one batch (refused ones count as sent). False means "keep it, retry later"."""
        timeout = self.timeout
        deadline = self._deadline
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return False  # shutting down, out of time: what is left is not sent
        return self._transport.post(batch, timeout)
