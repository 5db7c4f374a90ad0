"""The viz server: the FastAPI app that receives write events and serves the sphere page.

Usage::

    from dbpulse.viz import VizConfig, serve
    serve(VizConfig(port=8765, token="s3cret"))          # blocks; or `dbpulse viz`

    from dbpulse.viz import VizServer                    # in-process, in a thread
    with VizServer(VizConfig(port=0)) as server:
        print(server.url)

    from dbpulse.viz import create_app                   # the ASGI app, for your own server
    app = create_app(token="s3cret")

Endpoints: ``POST /api/viz/emit`` (``{"events": [...]}``, bearer token when configured),
``WS /ws/viz``, ``GET /api/viz/recent``, ``GET /api/viz/replay``, ``GET /api/viz/isbns``,
``GET /api/viz/top``, ``GET /api/viz/stats``, ``GET /healthz``, ``GET /metrics``, the sphere
page at ``/`` and the live event log page at ``/events``. Every request passes
:class:`~dbpulse.viz.guard.Guard` first (rate limit, ``Host``, ``Origin``, viewing token).
``docs/viz.md`` has the details and the limits. Needs the ``viz`` extra (FastAPI, uvicorn,
prometheus_client).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import json
import logging
import math
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect

from dbpulse.viz.config import VizConfig
from dbpulse.viz.events import (
    EMIT_PATH,
    EVENT_TYPES,
    MAX_EVENTS_PER_REQUEST,
    PayloadError,
    parse_payload,
)
from dbpulse.viz.exposition import hub_registry
from dbpulse.viz.guard import Guard
from dbpulse.viz.hub import Client, Hub
from dbpulse.viz.slots import load_isbns

__all__ = ["PortInUse", "VizServer", "check_port", "create_app", "serve"]

_log = logging.getLogger("dbpulse.viz")

STATIC_DIR = Path(__file__).parent / "static"
WS_MAX_MESSAGE_BYTES = 1 << 20


def _error_doc(description: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# What the OpenAPI document (``create_app().openapi()``) says beyond FastAPI's own: the guard's
# refusals on every path, the emit body and its refusals. tests/viz/test_schema.py fuzzes the
# server against it.
GUARD_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error_doc("unknown Host, or a query parameter given twice"),
    401: _error_doc("missing or wrong token"),
    403: _error_doc("cross-origin request"),
    429: _error_doc("over the client's rate limit (see Retry-After)"),
}
EMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "accepted",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"accepted": {"type": "integer", "minimum": 0}},
                    "required": ["accepted"],
                }
            }
        },
    },
    400: _error_doc("not JSON, or nested too deeply"),
    408: _error_doc("body not received in time"),
    413: _error_doc("body too large"),
    415: _error_doc("not application/json"),
    422: _error_doc("not a valid events payload"),
}
_TEXT = {"type": ["string", "null"]}
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["operation"],
    "properties": {
        "type": {"enum": sorted(EVENT_TYPES)},
        "operation": {"type": "string", "minLength": 1, "maxLength": 32},
        "table": {**_TEXT, "maxLength": 256},
        "namespace": {**_TEXT, "maxLength": 256},
        "system": {**_TEXT, "maxLength": 64},
        "isbn": {**_TEXT, "maxLength": 32},
        "trace_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$"},
        "source": {**_TEXT, "maxLength": 16},
        "timestamp": {"type": "number"},
        "count": {"type": "number", "minimum": 0, "maximum": 1e12},
        "slot": {"description": "the orb the sender asks for; anything but an integer is ignored"},
    },
}
EMIT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "items": _EVENT_SCHEMA,
                            "maxItems": MAX_EVENTS_PER_REQUEST,
                        }
                    },
                }
            }
        },
    }
}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _refuse_websocket(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse a handshake with an HTTP answer where the server can send one (uvicorn can),
    else by closing it (the client then sees 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        retry = {"Retry-After": "5"} if status == 429 else None
        await websocket.send_denial_response(_error(status, message, retry))
    else:
        await websocket.close(code=1013, reason=message[:120])


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json(payload: Any) -> Response:
    """JSON that cannot fail on a stored non-finite number (it becomes ``null``)."""
    try:
        body = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except ValueError:
        body = json.dumps(_finite(payload), allow_nan=False, separators=(",", ":"))
    return Response(body, media_type="application/json")


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
        hub.upkeep_task = asyncio.create_task(hub.run_upkeep())
        task = asyncio.create_task(hub.run_redis()) if config.redis_url else None
        hub.redis_task = task
        if task is not None:
            for _ in range(50):  # give the subscription a moment so the first emits use it
                if hub.redis_listening:
                    break
                await asyncio.sleep(0.02)
        try:
            yield
        finally:
            for running in (task, hub.upkeep_task):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(BaseException):
                        await running
            if hub.redis is not None:
                with contextlib.suppress(Exception):
                    await hub.redis.aclose()

    app = FastAPI(
        title="dbpulse viz",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=GUARD_RESPONSES,
    )
    app.state.hub = hub
    app.add_middleware(Guard, config=config, counters=hub.counters)
    registry = hub_registry(hub)
    cap = max(1, config.max_response_events)

    @app.post(EMIT_PATH, status_code=202, responses=EMIT_RESPONSES, openapi_extra=EMIT_REQUEST_BODY)
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
        media_type = request.headers.get("content-type", "").split(";", 1)[0]
        if media_type.strip().lower() != "application/json":
            hub.counters["rejected_content_type"] += 1
            return _error(415, "send the events with 'Content-Type: application/json'")
        limit = config.max_body_bytes
        declared = request.headers.get("content-length")
        too_big = f"body larger than {limit} bytes: send smaller batches"
        if declared is not None and declared.isdigit() and int(declared) > limit:
            hub.counters["rejected_size"] += 1
            return _error(413, too_big)
        body = bytearray()
        try:
            async with asyncio.timeout(config.body_timeout_s):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        hub.counters["rejected_size"] += 1
                        return _error(413, too_big)
        except TimeoutError:
            hub.counters["rejected_timeout"] += 1
            return _error(
                408,
                f"body not received within {config.body_timeout_s:g} s",
                {"Connection": "close"},
            )
        except ClientDisconnect:  # a broken chunk or a dropped connection: nobody to answer
            hub.counters["rejected_payload"] += 1
            return Response(status_code=400)
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
        if len(hub.clients) >= config.max_viewers:
            hub.counters["rejected_viewers"] += 1
            await _refuse_websocket(
                websocket, 429, f"more than {config.max_viewers} viewers: retry later"
            )
            return
        await websocket.accept()
        client = Client(websocket, config.client_queue_size)
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
            while True:  # the page only sends "ping"; anything else (binary too) is ignored
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") == "ping":
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
        limit: int = Query(0, ge=0),
    ) -> Response:
        return _json({"events": hub.recent(table, operation, isbn, min(limit or cap, cap))})

    @app.get("/api/viz/replay")
    async def replay(
        seconds: float = Query(300.0, gt=0, allow_inf_nan=False),
        table: str | None = None,
        operation: str | None = None,
        isbn: str | None = None,
        limit: int = Query(0, ge=0),
    ) -> Response:
        now = time.time()
        events = hub.replay_window(seconds, table, operation, isbn, min(limit or cap, cap))
        return _json(
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
    async def top(n: int = Query(50, ge=1, le=1000)) -> Response:
        return _json({"top": hub.top(n)})

    @app.get("/api/viz/stats")
    async def stats() -> Response:
        return _json(hub.stats())

    @app.get("/healthz", responses={503: {"description": "the ingest loop or Redis is down"}})
    async def healthz() -> JSONResponse:
        status, body = hub.health()
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/events", response_class=HTMLResponse)
    async def events_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "events.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


class _QuietFrameErrors(logging.Filter):
    """uvicorn logs a traceback at ERROR for a WebSocket text frame that is not UTF-8, then
    closes the socket with 1007 as it should: that is a bad client, one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Invalid UTF-8 sequence"):
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_frame_errors() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietFrameErrors) for f in logger.filters):
        logger.addFilter(_QuietFrameErrors())


class PortInUse(OSError):
    """The viz server's port is taken; the message names the option that changes it."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"port {port} on {host} is already in use (another dbpulse?): "
            "choose another with --port",
        )


def check_port(host: str, port: int) -> None:
    """Raise :class:`PortInUse` when ``host:port`` can't be bound (uvicorn's own message is a
    log line after startup, and a traceback for the demo). Binds as uvicorn does, with
    ``SO_REUSEADDR``, so a port in TIME_WAIT is not reported."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return  # uvicorn reports what it makes of the host
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(host, port) from None


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
                ws_max_size=WS_MAX_MESSAGE_BYTES,
            )
        )
        _quiet_frame_errors()
        self._thread: threading.Thread | None = None
        self.port = self.config.port

    @property
    def url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def start(self, timeout: float = 15.0) -> VizServer:
        check_port(self.config.host, self.config.port)
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
    check_port(config.host, config.port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.host,
            port=config.port,
            log_level="info",
            access_log=False,
            ws_max_size=WS_MAX_MESSAGE_BYTES,
        )
    )
    _quiet_frame_errors()
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run does
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's startup failure status (it logged why)
