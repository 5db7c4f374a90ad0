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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dbpulse.viz.config import VizConfig
from dbpulse.viz.slots import SlotTable

if TYPE_CHECKING:
    from fastapi import WebSocket

__all__ = ["Client", "Hub"]

_log = logging.getLogger("dbpulse.viz")


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
            "ws_connections": 0,
            "ws_messages_sent": 0,
            "ws_messages_dropped": 0,
            "ws_slow_disconnects": 0,
            "redis_published": 0,
            "redis_received": 0,
            "redis_errors": 0,
            "isbns_loaded": 0,
        }
        self.redis: Any = None
        self.redis_state = "disabled" if not config.redis_url else "connecting"
        self.redis_listening = False

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
                key = (table or "", event["operation"])
                self.exact_by_table[key] = self.exact_by_table.get(key, 0) + count
                continue
            ring.append(event)
            replay.append(event)
            writes += count
            operation = event["operation"]
            self.by_operation[operation] = self.by_operation.get(operation, 0) + count
            if table:
                self.by_table[table] = self.by_table.get(table, 0) + count
                self.tables.add(table)
            isbn = event.get("isbn")
            if isbn and event.get("slot") is not None:
                self.isbn_counts[isbn] = self.isbn_counts.get(isbn, 0) + count
        self.rate.add(writes, now)
        horizon = now - self.config.replay_seconds
        while replay and replay[0]["received"] < horizon:
            replay.popleft()
        self.broadcast(json.dumps({"type": "events", "events": events}, separators=(",", ":")))

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
            "exact_writes": [
                {"table": t or None, "operation": o, "count": c}
                for (t, o), c in sorted(self.exact_by_table.items())
            ],
            "tables": sorted(self.tables),
            "redis": self.redis_state,
            **self.counters,
            "isbns_unplaced": self.slots.unplaced,
        }

    def prometheus(self) -> str:
        lines = []

        def metric(
            name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]
        ) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{labels} {value}")

        c = self.counters
        metric(
            "dbpulse_viz_events_received_total",
            "counter",
            "Events accepted by /api/viz/emit.",
            [("", c["events_received"])],
        )
        metric(
            "dbpulse_viz_batches_received_total",
            "counter",
            "Accepted emit requests.",
            [("", c["batches_received"])],
        )
        metric(
            "dbpulse_viz_emit_rejected_total",
            "counter",
            "Refused emit requests by reason.",
            [
                ('{reason="auth"}', c["rejected_auth"]),
                ('{reason="size"}', c["rejected_size"]),
                ('{reason="payload"}', c["rejected_payload"]),
            ],
        )
        metric(
            "dbpulse_viz_ws_clients",
            "gauge",
            "Connected WebSocket clients.",
            [("", len(self.clients))],
        )
        metric(
            "dbpulse_viz_ws_messages_sent_total",
            "counter",
            "Messages sent to clients.",
            [("", c["ws_messages_sent"])],
        )
        metric(
            "dbpulse_viz_ws_messages_dropped_total",
            "counter",
            "Messages skipped for clients whose queue was full.",
            [("", c["ws_messages_dropped"])],
        )
        metric(
            "dbpulse_viz_ws_slow_disconnects_total",
            "counter",
            "Clients disconnected for being too slow.",
            [("", c["ws_slow_disconnects"])],
        )
        metric(
            "dbpulse_viz_known_isbns",
            "gauge",
            "ISBNs with a slot on the sphere.",
            [("", len(self.slots))],
        )
        metric(
            "dbpulse_viz_isbns_unplaced_total",
            "counter",
            "ISBNs refused beyond max_isbns.",
            [("", self.slots.unplaced)],
        )
        metric(
            "dbpulse_viz_redis_errors_total",
            "counter",
            "Redis publish/subscribe errors.",
            [("", c["redis_errors"])],
        )
        metric(
            "dbpulse_viz_writes_total",
            "counter",
            "Writes seen, by operation.",
            [(f'{{operation="{op}"}}', n) for op, n in sorted(self.by_operation.items())],
        )
        return "\n".join(lines) + "\n"

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
                        events = json.loads(message["data"])["events"]
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
