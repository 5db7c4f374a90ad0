"""The viz feed: database-write spans → batched viz events → the viz server.

Usage::

    from opentelemetry.sdk.trace import TracerProvider
    from dbpulse.viz import VizFeedProcessor

    provider = TracerProvider()
    provider.add_span_processor(VizFeedProcessor("http://127.0.0.1:8765", token="s3cret"))

or, as dbpulse's configurator does when ``DBPULSE_VIZ_URL`` is set,
``VizFeedProcessor.from_env()``.

``on_end`` only appends the ended span to a bounded deque (the oldest entry falls out when it is
full, and is counted). A daemon thread turns spans into events, merges them with the exact
write counters of :mod:`dbpulse.telemetry.metrics` and POSTs ``{"events": [...]}`` to
``/api/viz/emit`` with the standard library's ``http.client``: the application needs no
dependency beyond OpenTelemetry. A batch leaves when ``batch_size`` spans wait or every
``batch_interval`` seconds. While the server is down or hanging, sends back off exponentially
(short timeouts, so the thread never sits on a dead socket for long) and the queue keeps
dropping its oldest entries.

Truthfulness under sampling: the exact counters are the source of truth for *how many* writes
each ISBN had; spans only contribute *which trace* and *when*. See ``docs/viz.md``.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

__all__ = ["WRITE_OPERATIONS", "VizFeedProcessor", "adjusted_count"]

_log = logging.getLogger("dbpulse.viz")

WRITE_OPERATIONS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT", "MERGE", "COPY"})
"""Values of ``db.operation.name`` that the feed turns into events."""

EMIT_PATH = "/api/viz/emit"
_MAX_THRESHOLD = 1 << 56
_COUNTER_RETRY_S = 5.0
_LEDGER_GRACE_READS = 3
# The feed thread gives the GIL back every this many spans/events (~0.5 ms of work): an
# application thread that released the GIL in a driver call would otherwise wait up to the
# interpreter's 5 ms switch interval to get it back.
_YIELD_EVERY = 64

IsbnCounts = Mapping[tuple[str, str, str], int]
TableCounts = Mapping[tuple[str, str, str, str], int]


def adjusted_count(trace_state: Any) -> float:
    """How many spans one kept span stands for, from ``tracestate`` ``ot=th:<hex>``.

    ``th`` is the rejection threshold on 56 bits of randomness (OpenTelemetry consistent
    probability sampling): the keep probability is ``1 - th / 2**56``. No ``th`` means 1.
    """
    try:
        value = trace_state.get("ot") if trace_state is not None else None
        if not value:
            return 1.0
        for part in value.split(";"):
            if part.startswith("th:"):
                digits = part[3:]
                if not digits or len(digits) > 14:
                    return 1.0
                threshold = int(digits.ljust(14, "0"), 16)
                if threshold >= _MAX_THRESHOLD:
                    return 1.0
                return _MAX_THRESHOLD / (_MAX_THRESHOLD - threshold)
    except (ValueError, TypeError, AttributeError):
        pass
    return 1.0


def _default_counters() -> tuple[Callable[[], IsbnCounts] | None, Callable[[], TableCounts] | None]:
    """The exact metrics path of dbpulse, when the package provides it."""
    try:
        from dbpulse.telemetry.metrics import OPERATIONS
    except Exception:  # the metrics module is optional for the feed
        return None, None
    return (
        getattr(OPERATIONS, "isbn_writes_snapshot", None),
        getattr(OPERATIONS, "writes_snapshot", None),
    )


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return max(minimum, int(text))
    except ValueError:
        _log.warning("dbpulse: %s=%r is not an integer; using %d", name, text, default)
        return default


class _Ledger:
    """Merges span events with the exact cumulative counters without double counting.

    ``emitted[key]`` is how many writes of ``key`` = (collection, operation, isbn) the feed has
    already stood for. Each span event adds 1; each counter read emits one synthetic event for
    ``counter - emitted`` when positive. A span that arrives after the counter already covered
    its write leaves ``emitted`` ahead of the counter; the surplus is absorbed by the next
    writes, so the totals converge to the counters exactly.
    """

    def __init__(self) -> None:
        self.emitted: dict[tuple[str, str, str], int] = {}
        self.absent: dict[tuple[str, str, str], int] = {}
        self.baseline_done = False
        self.tables: dict[tuple[str, str, str, str], int] | None = None
        self.system_of: dict[str, str] = {}

    def charge(self, key: tuple[str, str, str]) -> None:
        self.emitted[key] = self.emitted.get(key, 0) + 1

    def read_isbns(self, snapshot: IsbnCounts, now: float) -> list[dict[str, Any]]:
        emitted = self.emitted
        out: list[dict[str, Any]] = []
        if not self.baseline_done:
            # Writes before the feed started are history, not live activity.
            self.baseline_done = True
            for key, value in snapshot.items():
                if value > emitted.get(key, 0):
                    emitted[key] = value
            return out
        for key, value in snapshot.items():
            done = emitted.get(key, 0)
            if value > done:
                emitted[key] = value
                collection, operation, isbn = key
                out.append(
                    {
                        "type": "db_write",
                        "operation": operation.lower() if operation else "write",
                        "table": collection or None,
                        "isbn": isbn or None,
                        "timestamp": now,
                        "trace_id": None,
                        "system": self.system_of.get(collection),
                        "count": value - done,
                        "source": "metrics",
                    }
                )
        # Keys the counter does not know: a span whose counter increment is not visible yet
        # (give it a few reads), or an ISBN beyond the cardinality limit (its writes are in the
        # overflow key, so charge it there).
        overflow = ("", "", "")
        for key in [k for k in emitted if k not in snapshot]:
            seen = self.absent.get(key, 0) + 1
            if seen < _LEDGER_GRACE_READS:
                self.absent[key] = seen
                continue
            self.absent.pop(key, None)
            charged = emitted.pop(key)
            if overflow in snapshot:
                emitted[overflow] = emitted.get(overflow, 0) + charged
        for key in [k for k in self.absent if k in snapshot]:
            del self.absent[key]
        return out

    def read_tables(self, snapshot: TableCounts, now: float) -> list[dict[str, Any]]:
        previous = self.tables
        self.tables = dict(snapshot)
        for system, _namespace, _operation, collection in snapshot:
            self.system_of.setdefault(collection, system)
        if previous is None:
            return []
        out = []
        for key, value in snapshot.items():
            delta = value - previous.get(key, 0)
            if delta > 0:
                system, namespace, operation, collection = key
                out.append(
                    {
                        "type": "table_writes",
                        "system": system,
                        "namespace": namespace or None,
                        "operation": operation.lower(),
                        "table": collection or None,
                        "count": delta,
                        "timestamp": now,
                    }
                )
        return out


class VizFeedProcessor(SpanProcessor):
    """Ships database-write spans to the dbpulse viz server as batched events.

    Args:
        url: base URL of the viz server (``http://127.0.0.1:8765``) or the full emit URL.
        token: bearer token the server expects, if any.
        batch_size: send as soon as this many spans wait (default 50).
        batch_interval: otherwise send every this many seconds (default 0.1).
        queue_size: spans kept while waiting; beyond it the oldest are dropped and counted.
        timeout: connect/read timeout of one POST in seconds (short on purpose).
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
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"viz feed URL must look like http://127.0.0.1:8765, got {url!r}")
        path = parts.path.rstrip("/")
        self._path = path if path.endswith(EMIT_PATH) else path + EMIT_PATH
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self.url = f"{parts.scheme}://{parts.netloc}{self._path}"
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.batch_size = max(1, batch_size)
        self.batch_interval = max(0.001, batch_interval)
        self.queue_size = max(1, queue_size)
        self.timeout = timeout
        self.max_backoff = max_backoff
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
        self._stopping = False
        self._flush_requests: list[threading.Event] = []
        self._flush_lock = threading.Lock()

        self._explicit_counters = isbn_counts is not None or table_counts is not None
        self._isbn_counts = isbn_counts
        self._table_counts = table_counts
        self._use_counters = use_counters
        self._counters_checked_at = -_COUNTER_RETRY_S
        self._ledger = _Ledger()

        self._conn: http.client.HTTPConnection | None = None
        self._pending: list[dict[str, Any]] = []
        self._failures = 0
        self._retry_at = 0.0
        self.sent_events = 0
        self.sent_batches = 0
        self.failed_posts = 0
        self.rejected_events = 0
        self.last_error: str | None = None
        self.connected = False

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
        self._conn = None
        self._pending = []
        if not self._closed:
            self._thread = threading.Thread(target=self._run, name="dbpulse-viz-feed", daemon=True)
            self._thread.start()

    @classmethod
    def from_env(cls, **overrides: Any) -> VizFeedProcessor:
        """Build the processor from ``DBPULSE_VIZ_*`` environment variables.

        ``DBPULSE_VIZ_URL`` (required), ``DBPULSE_VIZ_TOKEN``, ``DBPULSE_VIZ_BATCH_SIZE``
        (50), ``DBPULSE_VIZ_BATCH_INTERVAL_MS`` (100), ``DBPULSE_VIZ_QUEUE_SIZE`` (10000),
        ``DBPULSE_VIZ_TIMEOUT_MS`` (1000).
        """
        url = os.environ.get("DBPULSE_VIZ_URL", "").strip()
        if not url:
            raise ValueError("DBPULSE_VIZ_URL is not set (e.g. http://127.0.0.1:8765)")
        kwargs: dict[str, Any] = {
            "token": os.environ.get("DBPULSE_VIZ_TOKEN") or None,
            "batch_size": _env_int("DBPULSE_VIZ_BATCH_SIZE", 50),
            "batch_interval": _env_int("DBPULSE_VIZ_BATCH_INTERVAL_MS", 100) / 1000.0,
            "queue_size": _env_int("DBPULSE_VIZ_QUEUE_SIZE", 10_000),
            "timeout": _env_int("DBPULSE_VIZ_TIMEOUT_MS", 1000) / 1000.0,
        }
        kwargs.update(overrides)
        return cls(url, **kwargs)

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
            total = max(0, queue_dropped) + self._send_dropped
            # A draw can be visible before its append: never let the count go backwards.
            self._dropped_seen = max(self._dropped_seen, total)
            return self._dropped_seen

    def _observe_dropped(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.dropped(), {"dbpulse.component": "viz_feed"})

    def stats(self) -> dict[str, Any]:
        return {
            "queued": len(self._queue),
            "sent_events": self.sent_events,
            "sent_batches": self.sent_batches,
            "failed_posts": self.failed_posts,
            "rejected_events": self.rejected_events,
            "dropped": self.dropped(),
            "connected": self.connected,
            "last_error": self.last_error,
        }

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
        self._stopping = True
        self._wake.set()
        self._stop.set()
        self._thread.join(self.shutdown_timeout + self.timeout)
        conn = self._conn
        if conn is not None and not self._thread.is_alive():
            conn.close()

    # -- feed thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        deadline: float | None = None
        next_tick = time.monotonic() + self.batch_interval
        while True:
            now = time.monotonic()
            if self._stopping and deadline is None:
                deadline = now + self.shutdown_timeout
            if deadline is None:
                if now < self._retry_at:
                    # Backing off: the queue keeps filling (and dropping its oldest); on_end's
                    # wake-ups are ignored so that a full queue does not spin this thread.
                    self._answer_flushes()
                    self._stop.wait(self._retry_at - now)
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
                self.last_error = f"feed error: {exc!r}"
                _log.debug("dbpulse: viz feed cycle failed", exc_info=True)
            if tick:
                next_tick = now + self.batch_interval
            if deadline is not None and (
                (not self._queue and not self._pending)
                or time.monotonic() >= deadline
                or self._retry_at > time.monotonic()
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
            if not self._post(batch, deadline):
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
            if not taken % _YIELD_EVERY:
                time.sleep(0)  # let the application thread have the GIL back
            try:
                out.extend(_span_events(span, counters_live, ledger))
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
            self._isbn_counts, self._table_counts = _default_counters()
        out: list[dict[str, Any]] = []
        if self._table_counts is not None:
            out.extend(self._ledger.read_tables(self._table_counts(), now))
        if self._isbn_counts is not None:
            out.extend(self._ledger.read_isbns(self._isbn_counts(), now))
        return out

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=timeout)
            self._conn = conn
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn

    def _post(self, events: list[dict[str, Any]], deadline: float | None) -> bool:
        """Send one batch. False means "keep it and retry later"."""
        timeout = self.timeout
        if deadline is not None:
            timeout = min(timeout, max(0.05, deadline - time.monotonic()))
        body = _encode(events)
        try:
            conn = self._connection(timeout)
            conn.request("POST", self._path, body=body, headers=self._headers)
            response = conn.getresponse()
            status = response.status
            detail = response.read(2048)
        except (OSError, http.client.HTTPException) as exc:
            self._close_connection()
            return self._failed(f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            self._failures = 0
            self._retry_at = 0.0
            self.connected = True
            self.sent_events += len(events)
            self.sent_batches += 1
            return True
        message = f"HTTP {status}: {detail.decode('utf-8', 'replace')[:200]}"
        if 400 <= status < 500 and status not in (408, 429):
            # The server will refuse the same batch again: drop it, loudly once.
            self.rejected_events += len(events)
            self._send_dropped += len(events)
            if self.last_error != message:
                _log.warning("dbpulse: viz server refused %d events: %s", len(events), message)
            self.last_error = message
            self.connected = True
            return True
        return self._failed(message)

    def _failed(self, message: str) -> bool:
        self.failed_posts += 1
        self._failures += 1
        self.connected = False
        if self.last_error != message:
            _log.info("dbpulse: viz server unreachable (%s); backing off", message)
        self.last_error = message
        backoff = min(self.max_backoff, self.batch_interval * (2 ** min(self._failures, 16)))
        self._retry_at = time.monotonic() + backoff
        return False

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _encode(events: list[dict[str, Any]]) -> bytes:
    """``{"events": [...]}`` as JSON, encoded in slices so the GIL is released in between."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    parts = []
    for start in range(0, len(events), _YIELD_EVERY):
        parts.append(dumps(events[start : start + _YIELD_EVERY])[1:-1])
        time.sleep(0)
    return ('{"events":[' + ",".join(p for p in parts if p) + "]}").encode()


def _plain_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    # ReadableSpan.attributes wraps BoundedAttributes (a Python-level mapping) in a proxy: each
    # .get costs ~0.5 µs. Its backing dict is read directly when it is there (the feed thread's
    # work per span halves; that thread shares the GIL with the application).
    attributes = getattr(span, "_attributes", None)
    plain = getattr(attributes, "_dict", None)
    if isinstance(plain, dict):
        return plain
    return span.attributes or {}


def _span_events(span: ReadableSpan, counters_live: bool, ledger: _Ledger) -> list[dict[str, Any]]:
    get = _plain_attributes(span).get
    if get("error.type") is not None:
        return []  # a failed write wrote nothing
    operation = str(get("db.operation.name"))
    collection = get("db.collection.name")
    table = str(collection) if collection else ""
    isbns: Any = get("book.isbns")
    if not isbns:
        first = get("book.isbn")
        isbns = (first,) if first else ()
    context = span.context
    trace_id = None
    weight = 1.0
    if context is not None:
        trace_id = format(context.trace_id, "032x")
        if context.trace_state:
            weight = adjusted_count(context.trace_state)
    end_ns = span.end_time or time.time_ns()
    system = get("db.system.name")
    op = operation.lower()
    table_or_none = table or None
    timestamp = end_ns / 1e9
    system_or_none = str(system) if system else None
    if not isbns:
        isbns = (None,)
    out = []
    for isbn in isbns:
        count: float = weight
        if isbn is not None:
            isbn = str(isbn)
            if counters_live:
                ledger.charge((table, operation, isbn))
                count = 1
        out.append(
            {
                "type": "db_write",
                "operation": op,
                "table": table_or_none,
                "isbn": isbn,
                "timestamp": timestamp,
                "trace_id": trace_id,
                "system": system_or_none,
                "count": count,
                "source": "span",
            }
        )
    return out
