"""``dbpulse.summary_asgi`` (under uvicorn, alone and mounted in FastAPI) and
``dbpulse.summary_wsgi`` (under wsgiref) fuzzed with raw HTTP: every answer a 200, 405 or the
server's own 4xx, never a 5xx or an error logged; a WebSocket handshake is refused (403)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import uvicorn
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

import dbpulse
from tests.viz._support import FUZZ, ErrorLog, exchange, free_port, http_request

MOUNT = "/api/metrics/database"


@contextmanager
def _uvicorn(app: Any) -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def _wsgiref(app: Callable[..., Any]) -> Iterator[int]:
    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


def _mounted() -> FastAPI:
    app = FastAPI()
    app.mount(MOUNT, dbpulse.summary_asgi)
    return app


SERVERS = {
    "asgi": lambda: _uvicorn(dbpulse.summary_asgi),
    "asgi-mounted": lambda: _uvicorn(_mounted()),
    "wsgi": lambda: _wsgiref(dbpulse.summary_wsgi),
}

_requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "BREW"]),
        "path": st.sampled_from([MOUNT, MOUNT + "/", MOUNT + "/%00", MOUNT + "?x=%FF&x=1", "/"]),
        "headers": st.lists(
            st.tuples(
                st.sampled_from(["X-A", "Content-Type", "Accept", "Origin", "Cookie"]),
                st.binary(max_size=3000).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
            ),
            max_size=4,
        ),
        "body": st.binary(max_size=5000),
    }
)


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_summary_apps_never_answer_5xx(kind: str, otel: Any) -> None:
    seen: dict[int, int] = {}
    with ErrorLog("uvicorn.error", "dbpulse") as errors, SERVERS[kind]() as port:

        @settings(FUZZ, max_examples=60)
        @given(request=_requests)
        def one(request: dict[str, Any]) -> None:
            headers = [("Host", b"127.0.0.1"), *((k, v) for k, v in request["headers"])]
            headers += [("Content-Length", str(len(request["body"])).encode())]
            headers += [("Connection", b"close")]
            raw = http_request(request["method"], request["path"], headers, request["body"])
            status, _ = exchange(port, raw)
            seen[status] = seen.get(status, 0) + 1
            assert status < 500, (status, raw[:300])

        one()
        handshake = http_request(
            "GET",
            MOUNT,
            [
                ("Host", b"127.0.0.1"),
                ("Upgrade", b"websocket"),
                ("Connection", b"Upgrade"),
                ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", b"13"),
            ],
        )
        # before: 500 and "ASGI callable returned without completing handshake" (ERROR)
        status, _ = exchange(port, handshake)
        assert status in (403, 200), status  # wsgiref knows no WebSocket: a plain GET
        plain = [("Host", b"127.0.0.1"), ("Connection", b"close")]
        good = exchange(port, http_request("GET", MOUNT + "/", plain))
        assert good[0] == 200 and "total_operations" in json.loads(good[1])
    print(f"\n{kind}: statuses {dict(sorted(seen.items()))}")
    assert seen.get(200) and seen.get(405)
    assert not errors.records, errors.messages()
