"""The viz server: receives write events, keeps the recent past, broadcasts to sphere pages.

Usage::

    from dbpulse.viz import VizConfig, serve
    serve(VizConfig(port=8765, token="s3cret"))          # blocks; or `dbpulse viz`

    from dbpulse.viz import VizServer                    # in-process, in a thread
    with VizServer(VizConfig(port=0)) as server:
        print(server.url)

Endpoints: ``POST /api/viz/emit`` (``{"events": [...]}``, bearer token when configured),
``WS /ws/viz``, ``GET /api/viz/recent``, ``GET /api/viz/replay``, ``GET /api/viz/isbns``,
``GET /api/viz/top``, ``GET /api/viz/stats``, ``GET /healthz``, ``GET /metrics`` and the sphere
page at ``/``. ``docs/viz.md`` has the details.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = [
    "Hub",
    "SlotTable",
    "VizConfig",
    "VizServer",
    "create_app",
    "load_isbns",
    "normalize_isbn",
    "serve",
]

_log = logging.getLogger("dbpulse.viz")

STATIC_DIR = Path(__file__).parent / "static"
MAX_EVENTS_PER_REQUEST = 10_000
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_EVENT_TYPES = frozenset({"db_write", "table_writes"})


@dataclass
class VizConfig:
    """Everything the viz server can be told. ``from_env`` reads ``DBPULSE_VIZ_*``."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_body_bytes: int = 2 * 1024 * 1024
    ring_size: int = 1000
    replay_seconds: float = 300.0
    replay_max_events: int = 200_000
    client_queue_size: int = 256
    slow_client_drop_limit: int = 1000
    slot_capacity: int = 65_536
    max_isbns: int = 1_000_000
    redis_url: str | None = None
    redis_channel: str = "dbpulse:viz"
    isbn_db: str | None = None
    isbn_table: str | None = None
    isbn_column: str = "isbn"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> VizConfig:
        env = os.environ
        values: dict[str, Any] = {}
        names = {f.name: f for f in fields(cls)}
        for name in names:
            if name == "extra":
                continue
            text = env.get("DBPULSE_VIZ_" + name.upper())
            if text is None or text == "":
                continue
            default = getattr(cls(), name)
            try:
                if isinstance(default, bool):
                    values[name] = text.lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    values[name] = int(text)
                elif isinstance(default, float):
                    values[name] = float(text)
                else:
                    values[name] = text
            except ValueError:
                _log.warning("dbpulse: DBPULSE_VIZ_%s=%r is not valid; ignored", name.upper(), text)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# -- ISBNs and their slots ------------------------------------------------------------------------


def normalize_isbn(value: Any) -> str | None:
    """ISBN-13 digits for an ISBN-10/13 (hyphens and spaces ignored), else ``None``."""
    if value is None:
        return None
    text = str(value).replace("-", "").replace(" ", "").strip().upper()
    if len(text) == 13 and text.isdigit():
        total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(text[:12]))
        return text if (10 - total % 10) % 10 == int(text[12]) else None
    if len(text) == 10 and text[:9].isdigit() and (text[9].isdigit() or text[9] == "X"):
        total = sum(int(d) * (10 - i) for i, d in enumerate(text[:9]))
        total += 10 if text[9] == "X" else int(text[9])
        if total % 11:
            return None
        core = "978" + text[:9]
        check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(core)) % 10) % 10
        return core + str(check)
    return None


class SlotTable:
    """A stable slot per ISBN on a fixed lattice of ``capacity`` Fibonacci-sphere points.

    The plain Fibonacci formula places point *i* of *n* depending on *n*; here *n* is fixed
    (the capacity) and an ISBN's slot comes from a hash of the ISBN (linear probing on
    collisions), so a new ISBN never moves an existing orb, and the same ISBN lands on the same
    slot on every run that sees the same set. When the lattice is 90% full, further ISBNs go to
    outer shells (slot >= capacity; shell = slot // capacity).
    """

    _PROBES = 64

    def __init__(self, capacity: int = 65_536, max_isbns: int = 1_000_000) -> None:
        self.capacity = max(16, capacity)
        self.max_isbns = max_isbns
        self.slots: dict[str, int] = {}
        self._taken = bytearray(self.capacity)
        self._in_lattice = 0
        self._next_outer = self.capacity
        self.unplaced = 0

    def __len__(self) -> int:
        return len(self.slots)

    def home(self, isbn: str) -> int:
        digest = hashlib.blake2b(isbn.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.capacity

    def get(self, isbn: str) -> int | None:
        return self.slots.get(isbn)

    def learn(self, isbn: str, hint: int | None = None) -> int | None:
        found = self.slots.get(isbn)
        if found is not None:
            return found
        if len(self.slots) >= self.max_isbns:
            self.unplaced += 1
            return None
        slot = None
        if hint is not None and 0 <= hint < self.capacity and not self._taken[hint]:
            slot = hint  # another replica placed it (Redis backbone): agree with it
        elif self._in_lattice < self.capacity * 9 // 10:
            index = self.home(isbn)
            for _ in range(self._PROBES):
                if not self._taken[index]:
                    slot = index
                    break
                index = (index + 1) % self.capacity
        if slot is None:
            slot = self._next_outer
            self._next_outer += 1
        else:
            self._taken[slot] = 1
            self._in_lattice += 1
        self.slots[isbn] = slot
        return slot


def load_isbns(dsn: str, table: str, column: str = "isbn", limit: int = 1_000_000) -> list[str]:
    """Read the ISBN column of a table a user named: a SQLite file or a PostgreSQL DSN."""
    for name in (table, column):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a plain table or column name")
    query = f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT {int(limit)}"
    if dsn.startswith(("postgres://", "postgresql://")):
        import psycopg  # the postgres extra

        with psycopg.connect(dsn) as pg:
            rows = pg.execute(query).fetchall()
    else:
        path = dsn.removeprefix("sqlite:///")
        if not Path(path).exists():
            raise FileNotFoundError(f"ISBN database {path!r} does not exist")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute(query).fetchall()
        finally:
            conn.close()
    isbns = []
    for (value,) in rows:
        isbn = normalize_isbn(value)
        if isbn is not None:
            isbns.append(isbn)
    return isbns


# -- events ---------------------------------------------------------------------------------------


class PayloadError(ValueError):
    """A request body the server refuses; the message says what is wrong."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _short_str(event: dict[str, Any], name: str, index: int, limit: int) -> str | None:
    value = event.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise PayloadError(f"events[{index}].{name} must be a string of at most {limit} chars")
    return value


def normalize_event(raw: Any, index: int, received: float) -> dict[str, Any]:
    """The server's copy of one incoming event: known fields only, types checked."""
    if not isinstance(raw, dict):
        raise PayloadError(f"events[{index}] must be an object")
    kind = raw.get("type", "db_write")
    if kind not in _EVENT_TYPES:
        raise PayloadError(f"events[{index}].type must be one of {sorted(_EVENT_TYPES)}")
    operation = _short_str(raw, "operation", index, 32)
    if not operation:
        raise PayloadError(f"events[{index}].operation is required (insert, update, delete...)")
    timestamp = raw.get("timestamp", received)
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        raise PayloadError(f"events[{index}].timestamp must be seconds since the epoch")
    count = raw.get("count", 1)
    if not isinstance(count, int | float) or isinstance(count, bool) or not 0 <= count <= 1e12:
        raise PayloadError(f"events[{index}].count must be a non-negative number")
    event: dict[str, Any] = {
        "type": kind,
        "operation": operation.lower(),
        "table": _short_str(raw, "table", index, 256),
        "timestamp": float(timestamp),
        "system": _short_str(raw, "system", index, 64),
        "count": count,
    }
    if kind == "db_write":
        isbn = _short_str(raw, "isbn", index, 32)
        trace_id = _short_str(raw, "trace_id", index, 32)
        if trace_id is not None and not _TRACE_ID.match(trace_id):
            raise PayloadError(f"events[{index}].trace_id must be 32 lowercase hex digits")
        slot = raw.get("slot")
        event["isbn"] = normalize_isbn(isbn) or (isbn or None)
        event["trace_id"] = trace_id
        event["source"] = _short_str(raw, "source", index, 16) or "span"
        event["slot"] = slot if isinstance(slot, int) and not isinstance(slot, bool) else None
    else:
        event["namespace"] = _short_str(raw, "namespace", index, 256)
    return event


def parse_payload(body: bytes, received: float) -> list[dict[str, Any]]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}", 400) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise PayloadError('body must be a JSON object {"events": [...]}')
    raw_events = payload["events"]
    if len(raw_events) > MAX_EVENTS_PER_REQUEST:
        raise PayloadError(f"at most {MAX_EVENTS_PER_REQUEST} events per request")
    return [normalize_event(raw, i, received) for i, raw in enumerate(raw_events)]


def _matches(
    event: dict[str, Any], table: str | None, operation: str | None, isbn: str | None
) -> bool:
    if table and event.get("table") != table:
        return False
    if operation and event.get("operation") != operation.lower():
        return False
    return not (isbn and isbn not in (event.get("isbn") or ""))


# -- clients and the hub --------------------------------------------------------------------------


class _Client:
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
        self.clients: set[_Client] = set()
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

    def deliver(self, events: list[dict[str, Any]], received: float | None = None) -> None:
        now = time.time() if received is None else received
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
                        for event in events:
                            slot = event.get("slot")
                            isbn = event.get("isbn")
                            if isbn:
                                event["slot"] = self.slots.learn(isbn, slot)
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


# -- the app --------------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(config: VizConfig | None = None, **overrides: Any) -> FastAPI:
    """The viz server as an ASGI app. ``overrides`` are :class:`VizConfig` fields."""
    if config is None:
        config = VizConfig(**overrides)
    elif overrides:
        config = VizConfig(**{**config.__dict__, **overrides})
    hub = Hub(config)
    token = config.token.encode() if config.token else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if config.isbn_db and config.isbn_table:
            isbns = await asyncio.to_thread(
                load_isbns, config.isbn_db, config.isbn_table, config.isbn_column, config.max_isbns
            )
            for isbn in isbns:
                hub.slots.learn(isbn)
            hub.counters["isbns_loaded"] = len(isbns)
            _log.info("dbpulse: loaded %d ISBNs from %s", len(isbns), config.isbn_table)
        task = asyncio.create_task(hub.run_redis()) if config.redis_url else None
        if task is not None:
            for _ in range(50):  # give the subscription a moment so the first emits use it
                if hub.redis_listening:
                    break
                await asyncio.sleep(0.02)
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            if hub.redis is not None:
                with contextlib.suppress(Exception):
                    await hub.redis.aclose()

    app = FastAPI(title="dbpulse viz", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.hub = hub

    @app.post("/api/viz/emit", status_code=202)
    async def emit(request: Request) -> Response:
        if token is not None:
            header = request.headers.get("authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token):
                hub.counters["rejected_auth"] += 1
                return _error(
                    401,
                    "missing or wrong bearer token: "
                    "send 'Authorization: Bearer <DBPULSE_VIZ_TOKEN>'",
                    {"WWW-Authenticate": "Bearer"},
                )
        limit = config.max_body_bytes
        declared = request.headers.get("content-length")
        too_big = f"body larger than {limit} bytes: send smaller batches"
        if declared is not None and declared.isdigit() and int(declared) > limit:
            hub.counters["rejected_size"] += 1
            return _error(413, too_big)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                hub.counters["rejected_size"] += 1
                return _error(413, too_big)
        try:
            events = parse_payload(bytes(body), time.time())
        except PayloadError as exc:
            hub.counters["rejected_payload"] += 1
            return _error(exc.status, str(exc))
        if events:
            await hub.ingest(events)
        return JSONResponse({"accepted": len(events)}, status_code=202)

    @app.websocket("/ws/viz")
    async def ws_viz(websocket: WebSocket) -> None:
        await websocket.accept()
        client = _Client(websocket, config.client_queue_size)
        hub.clients.add(client)
        hub.counters["ws_connections"] += 1
        hello = {
            "type": "hello",
            "server_id": hub.server_id,
            "server_time": time.time(),
            "capacity": hub.slots.capacity,
            "known_isbns": len(hub.slots),
            "replay_seconds": config.replay_seconds,
        }

        async def send() -> None:
            await websocket.send_text(json.dumps(hello))
            while True:
                message = await client.queue.get()
                await websocket.send_text(message)
                hub.counters["ws_messages_sent"] += 1

        async def receive() -> None:
            while True:
                text = await websocket.receive_text()
                if text == "ping":
                    client.offer(json.dumps({"type": "pong", "server_time": time.time()}))

        sender = asyncio.create_task(send())
        receiver = asyncio.create_task(receive())
        client.sender = sender
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        except WebSocketDisconnect:
            pass
        finally:
            hub.clients.discard(client)
            for task in (sender, receiver):
                task.cancel()
            for task in (sender, receiver):
                with contextlib.suppress(BaseException):
                    await task
            if client.slow:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        websocket.close(code=1013, reason="client too slow; reconnect"), 1.0
                    )

    @app.get("/api/viz/recent")
    async def recent(
        table: str | None = None,
        operation: str | None = None,
        isbn: str | None = None,
        limit: int = Query(1000, ge=0, le=100_000),
    ) -> JSONResponse:
        return JSONResponse({"events": hub.recent(table, operation, isbn, limit)})

    @app.get("/api/viz/replay")
    async def replay(
        seconds: float = Query(300.0, gt=0),
        table: str | None = None,
        operation: str | None = None,
        isbn: str | None = None,
        limit: int = Query(100_000, ge=0, le=1_000_000),
    ) -> JSONResponse:
        now = time.time()
        events = hub.replay_window(seconds, table, operation, isbn, limit)
        return JSONResponse(
            {"from": now - min(seconds, config.replay_seconds), "to": now, "events": events}
        )

    @app.get("/api/viz/isbns")
    async def isbns() -> JSONResponse:
        slots = hub.slots.slots
        return JSONResponse(
            {
                "capacity": hub.slots.capacity,
                "count": len(slots),
                "isbns": list(slots.keys()),
                "slots": list(slots.values()),
            }
        )

    @app.get("/api/viz/top")
    async def top(n: int = Query(50, ge=1, le=1000)) -> JSONResponse:
        return JSONResponse({"top": hub.top(n)})

    @app.get("/api/viz/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(hub.stats())

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        ok = hub.redis_state in ("disabled", "connected")
        return JSONResponse(
            {
                "status": "ok" if ok else "degraded",
                "clients": len(hub.clients),
                "redis": hub.redis_state,
            },
            status_code=200,
        )

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(hub.prometheus(), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


# -- running it -----------------------------------------------------------------------------------


class VizServer:
    """The viz server on uvicorn in a background thread (tests, ``dbpulse demo``)."""

    def __init__(self, config: VizConfig | None = None, **overrides: Any) -> None:
        self.config = config or VizConfig(**overrides)
        self.app = create_app(self.config)
        self.hub: Hub = self.app.state.hub
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=self.config.host,
                port=self.config.port,
                log_level="warning",
                access_log=False,
                ws_max_size=1 << 20,
            )
        )
        self._thread: threading.Thread | None = None
        self.port = self.config.port

    @property
    def url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def start(self, timeout: float = 15.0) -> VizServer:
        self._thread = threading.Thread(target=self._server.run, name="dbpulse-viz", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"viz server did not start on {self.config.host}:{self.config.port}"
                )
            time.sleep(0.01)
        servers = getattr(self._server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                self.port = sock.getsockname()[1]
                break
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> VizServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(config: VizConfig | None = None, **overrides: Any) -> None:
    """Run the viz server in the foreground until interrupted."""
    config = config or VizConfig.from_env(**overrides)
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="info",
        access_log=False,
    )
