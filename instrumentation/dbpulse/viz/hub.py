"""The viz server's state: ring buffer, replay window, slots, counters and client fan-out.

Usage (the app in :mod:`dbpulse.viz.app` drives it; tests read it as ``server.hub``)::

    hub = Hub(VizConfig())
    await hub.ingest(parse_payload(body, time.time()))   # place, maybe publish, deliver
    hub.recent(table="books", operation=None, isbn=None, limit=100)

An accepted batch is serialized once and offered to every WebSocket client's bounded queue
(``put_nowait`` only): a slow client misses messages, is told with a ``gap`` message, and is
disconnected after ``slow_client_drop_limit`` consecutive misses. With ``redis_url`` set, a
batch is published on ``redis_channel`` and every replica, this one included, delivers it from
its subscription (the Redis backbone); without Redis, or while it is down, it is delivered here.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from dbpulse.viz.config import VizConfig
from dbpulse.viz.events import loads_strict, normalize_event
from dbpulse.viz.slots import SlotTable

if TYPE_CHECKING:
    from fastapi import WebSocket

__all__ = ["OVERFLOW_LABEL", "Client", "Hub"]

_log = logging.getLogger("dbpulse.viz")

OVERFLOW_LABEL = "__overflow__"
"""The table or operation counted for names beyond ``max_label_values``."""
_STALE_BEAT_S = 10.0


class Client:
    """One WebSocket: a bounded queue of serialized messages and a sender task."""

    def __init__(self, websocket: WebSocket, queue_size: int) -> None:
        self.websocket = websocket
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.skipped = 0
        self.consecutive_drops = 0
        self.slow = False
        self.sender: asyncio.Task[None] | None = None

    def offer(self, message: str) -> bool:
        queue = self.queue
        if self.skipped and queue.maxsize - queue.qsize() >= 2:
            queue.put_nowait(json.dumps({"type": "gap", "skipped": self.skipped}))
            self.skipped = 0
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            self.skipped += 1
            self.consecutive_drops += 1
            return False
        self.consecutive_drops = 0
        return True


class _Rate:
    """Events per second over the last full second."""

    def __init__(self) -> None:
        self.second = int(time.time())
        self.current = 0.0
        self.last = 0.0

    def add(self, n: float, now: float) -> None:
        second = int(now)
        if second != self.second:
            self.last = self.current if second == self.second + 1 else 0.0
            self.current = 0.0
            self.second = second
        self.current += n

    def value(self, now: float) -> float:
        second = int(now)
        if second == self.second + 1:
            return self.current
        if second == self.second:
            return self.last
        return 0.0


class Hub:
    """The server's state: ring buffer, replay window, slots, counters, clients."""

    def __init__(self, config: VizConfig) -> None:
        self.config = config
        self.server_id = uuid.uuid4().hex
        self.slots = SlotTable(config.slot_capacity, config.max_isbns)
        self.ring: deque[dict[str, Any]] = deque(maxlen=config.ring_size)
        self.replay: deque[dict[str, Any]] = deque(maxlen=config.replay_max_events)
        self.clients: set[Client] = set()
        self.isbn_counts: dict[str, float] = {}
        self.by_operation: dict[str, float] = {}
        self.by_table: dict[str, float] = {}
        self.exact_by_table: dict[tuple[str, str], float] = {}
        self.tables: set[str] = set()
        self.rate = _Rate()
        self.seq = 0
        self.started = time.time()
        self.counters: dict[str, int] = {
            "events_received": 0,
            "batches_received": 0,
            "rejected_auth": 0,
            "rejected_size": 0,
            "rejected_payload": 0,
            "rejected_content_type": 0,
            "rejected_timeout": 0,
            "rejected_rate": 0,
            "rejected_host": 0,
            "rejected_origin": 0,
            "rejected_query": 0,
            "rejected_view_token": 0,
            "rejected_viewers": 0,
            "ws_connections": 0,
            "ws_messages_sent": 0,
            "ws_messages_dropped": 0,
            "ws_slow_disconnects": 0,
            "redis_published": 0,
            "redis_received": 0,
            "redis_errors": 0,
            "isbns_loaded": 0,
        }
        self.label_overflow: dict[str, int] = {"table": 0, "operation": 0, "table_writes": 0}
        self.redis: Any = None
        self.redis_state = "disabled" if not config.redis_url else "connecting"
        self.redis_listening = False
        self.redis_task: asyncio.Task[None] | None = None
        self.upkeep_task: asyncio.Task[None] | None = None
        self.beat = time.monotonic()

    # ingest: from POST (then maybe Redis) -------------------------------------------------------

    def place(self, events: list[dict[str, Any]]) -> None:
        learn = self.slots.learn
        for event in events:
            isbn = event.get("isbn")
            if isbn:
                event["slot"] = learn(isbn, event.get("slot"))

    async def ingest(self, events: list[dict[str, Any]]) -> None:
        self.counters["events_received"] += len(events)
        self.counters["batches_received"] += 1
        self.place(events)
        if self.redis is not None and self.redis_listening:
            payload = json.dumps({"origin": self.server_id, "events": events})
            try:
                await self.redis.publish(self.config.redis_channel, payload)
                self.counters["redis_published"] += 1
                return  # every replica, this one included, delivers from the subscription
            except Exception as exc:
                self.counters["redis_errors"] += 1
                self.redis_state = f"publish failed: {type(exc).__name__}"
        self.deliver(events)

    def deliver(self, events: list[dict[str, Any]]) -> None:
        now = time.time()
        ring = self.ring
        replay = self.replay
        writes = 0.0
        for event in events:
            self.seq += 1
            event["seq"] = self.seq
            event["received"] = now
            table = event.get("table")
            count = event.get("count", 1)
            if event["type"] == "table_writes":
                self._count_exact(table or "", event["operation"], count)
                continue
            ring.append(event)
            replay.append(event)
            writes += count
            operation = self._label("operation", event["operation"], self.by_operation)
            self.by_operation[operation] = self.by_operation.get(operation, 0) + count
            if table:
                table = self._label("table", table, self.by_table)
                self.by_table[table] = self.by_table.get(table, 0) + count
                if table != OVERFLOW_LABEL:
                    self.tables.add(table)
            isbn = event.get("isbn")
            if isbn and event.get("slot") is not None:
                self.isbn_counts[isbn] = self.isbn_counts.get(isbn, 0) + count
        self.rate.add(writes, now)
        self.prune(now)
        self.broadcast(json.dumps({"type": "events", "events": events}, separators=(",", ":")))

    def _label(self, label: str, value: str, known: dict[str, float]) -> str:
        if value in known or len(known) < self.config.max_label_values:
            return value
        self.label_overflow[label] += 1
        return OVERFLOW_LABEL

    def _count_exact(self, table: str, operation: str, count: float) -> None:
        key = (table, operation)
        exact = self.exact_by_table
        if key not in exact and len(exact) >= self.config.max_label_values:
            self.label_overflow["table_writes"] += 1
            key = (OVERFLOW_LABEL, OVERFLOW_LABEL)
        exact[key] = exact.get(key, 0) + count

    def prune(self, now: float) -> None:
        """Forget replay events older than ``replay_seconds``."""
        replay = self.replay
        horizon = now - self.config.replay_seconds
        while replay and replay[0]["received"] < horizon:
            replay.popleft()

    async def run_upkeep(self, interval: float = 1.0) -> None:
        """The ingest loop's heartbeat (``/healthz``): prunes the replay window each tick."""
        while True:
            self.beat = time.monotonic()
            self.prune(time.time())
            await asyncio.sleep(interval)

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: 503 when the ingest loop stopped or a configured Redis is down."""
        upkeep = self.upkeep_task
        ingest_ok = (
            upkeep is not None
            and not upkeep.done()
            and time.monotonic() - self.beat < _STALE_BEAT_S
        )
        redis_task = self.redis_task
        redis_ok = self.redis_state in ("disabled", "connected") and not (
            self.config.redis_url and (redis_task is None or redis_task.done())
        )
        status = "ok" if ingest_ok and redis_ok else "degraded" if ingest_ok else "down"
        body = {"status": status, "clients": len(self.clients), "redis": self.redis_state}
        return (200 if status == "ok" else 503), body

    def broadcast(self, message: str) -> None:
        limit = self.config.slow_client_drop_limit
        for client in list(self.clients):
            if client.offer(message):
                continue
            self.counters["ws_messages_dropped"] += 1
            if client.consecutive_drops >= limit and not client.slow:
                client.slow = True
                self.counters["ws_slow_disconnects"] += 1
                self.clients.discard(client)
                if client.sender is not None:
                    client.sender.cancel()  # its handler then closes the socket

    # read side ----------------------------------------------------------------------------------

    def recent(
        self, table: str | None, operation: str | None, isbn: str | None, limit: int
    ) -> list[dict[str, Any]]:
        out = [e for e in self.ring if _matches(e, table, operation, isbn)]
        return out[-limit:] if limit else out

    def replay_window(
        self,
        seconds: float,
        table: str | None,
        operation: str | None,
        isbn: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        since = time.time() - min(seconds, self.config.replay_seconds)
        out = [
            e for e in self.replay if e["received"] >= since and _matches(e, table, operation, isbn)
        ]
        return out[-limit:] if limit else out

    def top(self, n: int) -> list[dict[str, Any]]:
        best = heapq.nlargest(n, self.isbn_counts.items(), key=lambda item: item[1])
        return [
            {"isbn": isbn, "count": count, "slot": self.slots.get(isbn)} for isbn, count in best
        ]

    def stats(self) -> dict[str, Any]:
        now = time.time()
        return {
            "server_id": self.server_id,
            "uptime_s": round(now - self.started, 3),
            "clients": len(self.clients),
            "known_isbns": len(self.slots),
            "capacity": self.slots.capacity,
            "writes_per_s": self.rate.value(now),
            "writes_by_operation": self.by_operation,
            "writes_by_table": self.by_table,
            "label_overflow": dict(self.label_overflow),
            "exact_writes": [
                {"table": t or None, "operation": o, "count": c}
                for (t, o), c in sorted(self.exact_by_table.items())
            ],
            "tables": sorted(self.tables),
            "redis": self.redis_state,
            **self.counters,
            "isbns_unplaced": self.slots.unplaced,
        }

    # Redis backbone -----------------------------------------------------------------------------

    async def run_redis(self) -> None:
        import redis.asyncio as aioredis  # the redis extra

        backoff = 0.2
        while True:
            try:
                self.redis = aioredis.from_url(str(self.config.redis_url))
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self.config.redis_channel)
                self.redis_listening = True
                self.redis_state = "connected"
                backoff = 0.2
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self.counters["redis_received"] += 1
                    try:
                        # A replica's checked events, checked again: Redis is another door.
                        now = time.time()
                        raw = loads_strict(message["data"])["events"]
                        events = [normalize_event(e, i, now) for i, e in enumerate(raw)]
                        self.place(events)  # adopt the publisher's slots where they are free
                        self.deliver(events)
                    except Exception:
                        self.counters["redis_errors"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters["redis_errors"] += 1
                self.redis_state = f"down: {type(exc).__name__}"
                _log.warning("dbpulse: viz Redis backbone unavailable (%s); retrying", exc)
            self.redis_listening = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def _matches(
    event: dict[str, Any], table: str | None, operation: str | None, isbn: str | None
) -> bool:
    if table and event.get("table") != table:
        return False
    if operation and event.get("operation") != operation.lower():
        return False
    return not (isbn and isbn not in (event.get("isbn") or ""))
