"""The viz server fuzzed over raw sockets and WebSockets with hypothesis, and the regressions
the fuzzing found (issue 17: bad input gets a 4xx or is ignored, never a 5xx or a traceback).

Requests are built byte by byte: odd methods, paths with NUL and bad percent-encoding, bad and
repeated query parameters, hostile Host/Origin/Authorization/Content-Type, huge headers,
bodies of every shape (deep, huge, not JSON, not UTF-8) sent with Content-Length or chunked
(well or badly framed). Every answer must come within seconds with a status below 500, the
server must log no error, and ``/healthz`` must say ``ok`` at the end.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from dbpulse.viz import VizServer
from tests.viz._support import FUZZ, ErrorLog, exchange, http_request, viz_server

TOKEN = "raw-fuzz-token"
PATHS = [
    "/api/viz/emit",
    "/api/viz/recent",
    "/api/viz/replay",
    "/api/viz/isbns",
    "/api/viz/top",
    "/api/viz/stats",
    "/healthz",
    "/metrics",
    "/",
    "/events",
    "/static/app.js",
    "/ws/viz",
    "/nope",
]


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorLog]:
    with ErrorLog("uvicorn.error", "dbpulse.viz") as log:
        yield log


@pytest.fixture(scope="module")
def server(errors: ErrorLog) -> Iterator[VizServer]:
    with viz_server(token=TOKEN, rate_limit_per_s=0, body_timeout_s=1.0) as running:
        yield running
        assert_healthy(running)
    assert not errors.records, errors.messages()


def assert_healthy(server: VizServer) -> None:
    health = httpx.get(server.url + "/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text


# strategies ---------------------------------------------------------------------------------

_odd_bytes = st.binary(min_size=0, max_size=12)
_path_suffix = st.one_of(
    st.just(""),
    st.sampled_from(["/", "%00", "%ZZ", "%", "/..%2f..%2f", "%C0%AF", ";x", "//", "%FF%FE"]),
    _odd_bytes.map(lambda b: quote_from_bytes(b, safe="")),
)
_query_value = st.one_of(
    st.sampled_from(["-1", "0", "1e9", "abc", "", "1e308", "nan", "inf", "%FF", "%00", "1.5"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=20).map(lambda t: quote_from_bytes(t.encode("utf-8", "surrogatepass"))),
)
_query = st.lists(
    st.tuples(
        st.sampled_from(["limit", "seconds", "n", "table", "operation", "isbn", "token", "x"]),
        _query_value,
    ),
    max_size=4,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))

_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_event = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.sampled_from(["db_write", "table_writes", "other"]), _json_value),
        "operation": st.one_of(st.sampled_from(["insert", "UPDATE", "x" * 40]), _json_value),
        "table": st.one_of(st.text(max_size=300), _json_value),
        "isbn": st.one_of(st.sampled_from(["9780306406157", "0306406152", "x"]), _json_value),
        "timestamp": st.one_of(st.floats(), st.integers(), _json_value),
        "count": st.one_of(st.floats(), st.integers(), _json_value),
        "slot": st.one_of(st.integers(), _json_value),
        "trace_id": st.one_of(st.just("0" * 32), _json_value),
    },
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


_body = st.one_of(
    st.builds(lambda events: _dumps({"events": events}), st.lists(_event, max_size=5)),
    _json_value.map(_dumps),
    st.binary(max_size=200),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b'{"events": [NaN]}', b'{"events": 1e999}', b"\xff\xfe{}", b'"\\ud800"']),
)
# Mostly right, so that the fuzz reaches the handlers; sometimes hostile.
_host = st.sampled_from(
    [b"127.0.0.1"] * 6 + [b"localhost:1", b"evil.example", b"", b"[::1", b"\xff"]
)
_origin = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.sampled_from(
        [b"http://evil.example", b"null", b"http://[::1", b"http://\xff", b"ftp://x", b"x" * 5000]
    ),
)
_auth = st.one_of(
    st.none(),
    st.just(b"Bearer " + TOKEN.encode()),
    st.just(b"Bearer " + TOKEN.encode()),
    st.sampled_from([b"Bearer nope", b"Bearer", b"Basic x", b"\xe9"]),
)
_content_type = st.one_of(
    st.none(),
    st.just(b"application/json"),
    st.just(b"application/json"),
    st.sampled_from(
        [b"application/json", b"text/plain", b"application/json; charset=latin-1", b";", b"\xff"]
    ),
)


@st.composite
def requests(draw: st.DrawFn, port_host: bytes) -> bytes:
    method = draw(st.sampled_from(["GET"] * 4 + ["POST"] * 3 + ["PUT", "HEAD", "OPTIONS", "BREW"]))
    target = draw(st.sampled_from(PATHS))
    if draw(st.integers(0, 3)) == 0:
        target += draw(_path_suffix)
    query = draw(_query)
    if query:
        target += "?" + query
    host = draw(_host)
    headers: list[tuple[str, bytes]] = [("Host", port_host if host == b"127.0.0.1" else host)]
    for name, strategy in (
        ("Origin", _origin),
        ("Authorization", _auth),
        ("Content-Type", _content_type),
    ):
        value = draw(strategy)
        if value is not None:
            headers.append((name, value))
    if draw(st.integers(0, 4)) == 0:
        headers.append(("X-Padding", b"a" * draw(st.integers(0, 60_000))))
    body = draw(_body) if method in ("POST", "PUT") or draw(st.integers(0, 4)) == 0 else b""
    framing = draw(st.sampled_from(["length"] * 4 + ["chunked", "chunked", "bad-chunk", "none"]))
    if framing == "length" or (framing == "none" and body):
        headers.append(("Content-Length", str(len(body)).encode()))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", b"chunked"))
        body = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    elif framing == "bad-chunk":
        headers.append(("Transfer-Encoding", b"chunked"))
        body = b"ZZ\r\n" + body + b"\r\n0\r\n\r\n"
    headers.append(("Connection", b"close"))
    return http_request(method, target, headers, body)


# the fuzz -----------------------------------------------------------------------------------


def test_raw_http_fuzz_never_gets_a_5xx(server: VizServer, errors: ErrorLog) -> None:
    port_host = f"127.0.0.1:{server.port}".encode()
    statuses: dict[int, int] = {}

    @settings(FUZZ, max_examples=120)
    @given(request=requests(port_host))
    def one(request: bytes) -> None:
        status, body = exchange(server.port, request)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, f"{status} {body[:200]!r} for {request[:400]!r}"

    one()
    print(f"\nraw HTTP fuzz: statuses {dict(sorted(statuses.items()))}")
    assert not errors.records, errors.messages()
    assert_healthy(server)


def test_emit_body_fuzz_gets_202_or_a_clear_4xx(server: VizServer, errors: ErrorLog) -> None:
    """Right headers, bodies of every shape: accepted, or refused saying why."""
    host = f"127.0.0.1:{server.port}".encode()
    seen: dict[int, int] = {}

    @settings(FUZZ, max_examples=150)
    @given(body=_body, chunked=st.booleans())
    def one(body: bytes, chunked: bool) -> None:
        headers = [
            ("Host", host),
            ("Authorization", f"Bearer {TOKEN}".encode()),
            ("Content-Type", b"application/json"),
            ("Connection", b"close"),
        ]
        if chunked:
            headers.append(("Transfer-Encoding", b"chunked"))
            body = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        else:
            headers.append(("Content-Length", str(len(body)).encode()))
        status, answer = exchange(server.port, http_request("POST", "/api/viz/emit", headers, body))
        seen[status] = seen.get(status, 0) + 1
        assert status in (202, 400, 413, 422), (status, answer[:200], body[:200])
        if status != 202:
            assert json.loads(answer)["error"]

    one()
    print(f"\nemit body fuzz: statuses {dict(sorted(seen.items()))}")
    assert seen.get(202) and seen.get(422) and seen.get(400)
    assert not errors.records, errors.messages()


def test_view_query_fuzz_gets_200_or_422(server: VizServer, errors: ErrorLog) -> None:
    """Each viewing endpoint with every kind of value for its parameters (each named once)."""
    seen: dict[int, int] = {}
    views = ["/api/viz/recent", "/api/viz/replay", "/api/viz/top", "/api/viz/stats"]
    pairs = st.lists(
        st.tuples(
            st.sampled_from(["limit", "seconds", "n", "table", "operation", "isbn"]), _query_value
        ),
        max_size=4,
        unique_by=lambda pair: pair[0],
    )

    @settings(FUZZ, max_examples=150)
    @given(path=st.sampled_from(views), query=pairs)
    def one(path: str, query: list[tuple[str, str]]) -> None:
        target = path + "?" + "&".join(f"{k}={v}" for k, v in query)
        status, answer = _get(server, target, Authorization=f"Bearer {TOKEN}")
        seen[status] = seen.get(status, 0) + 1
        assert status in (200, 422), (target, status, answer[:200])
        assert len(answer) < 8 << 20
        json.loads(answer)

    one()
    print(f"\nview query fuzz: statuses {dict(sorted(seen.items()))}")
    assert seen.get(200) and seen.get(422)
    assert not errors.records, errors.messages()


_frames = st.lists(
    st.one_of(
        st.text(max_size=2000),
        st.binary(max_size=2000),
        st.sampled_from(["ping", "PING", "", "{}", "\x00" * 100]),
        st.integers(1, 300_000).map(lambda n: "x" * n),
    ),
    min_size=1,
    max_size=6,
)


def test_websocket_frame_fuzz_is_ignored(server: VizServer, errors: ErrorLog) -> None:
    url = server.url.replace("http", "ws", 1) + f"/ws/viz?token={TOKEN}"

    @settings(FUZZ, max_examples=40)
    @given(frames=_frames)
    def one(frames: list[str | bytes]) -> None:
        with connect(url, open_timeout=5, close_timeout=2) as ws:
            assert json.loads(ws.recv(5))["type"] == "hello"
            for frame in frames:
                ws.send(frame)
            ws.send("ping")
            while (message := json.loads(ws.recv(5)))["type"] != "pong":
                pass
            assert message["type"] == "pong"

    one()
    assert not errors.records, errors.messages()
    assert_healthy(server)


# the regressions the fuzzing found ----------------------------------------------------------


def _get(server: VizServer, target: str, **headers: str) -> tuple[int, bytes]:
    host = headers.pop("Host", f"127.0.0.1:{server.port}")
    lines = [("Host", host.encode())] + [(k, v.encode()) for k, v in headers.items()]
    return exchange(server.port, http_request("GET", target, [*lines, ("Connection", b"close")]))


def test_a_malformed_origin_is_a_403_not_a_500(server: VizServer) -> None:
    # before: 500 (urlsplit raised "Invalid IPv6 URL" inside the guard)
    for origin in ("http://[::1", "http://[", "https://[x]]"):
        status, body = _get(server, "/api/viz/stats", Origin=origin)
        assert status == 403 and b"cross-origin" in body, (origin, status, body)
    assert_healthy(server)


def test_a_non_string_event_type_is_a_422_not_a_500(server: VizServer) -> None:
    # before: 500 (TypeError: unhashable type: 'dict'), found by tests/viz/test_schema.py
    for kind in ({}, [], 1, None):
        response = httpx.post(
            server.url + "/api/viz/emit",
            json={"events": [{"type": kind, "operation": "insert"}]},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 422, (kind, response.text)
        assert "type must be one of" in response.json()["error"]
    assert_healthy(server)


def test_every_event_field_given_is_checked_whatever_the_event_type(server: VizServer) -> None:
    # before: 202, a table_writes event's isbn/trace_id/source and a db_write's namespace
    # were not checked (the OpenAPI document says one schema), found by schemathesis
    for kind, field, value in (
        ("table_writes", "trace_id", "not-hex"),
        ("table_writes", "isbn", "9" * 40),
        ("table_writes", "source", {"x": 1}),
        ("db_write", "namespace", "n" * 300),
    ):
        event = {"type": kind, "operation": "insert", "table": "books", field: value}
        response = httpx.post(
            server.url + "/api/viz/emit",
            json={"events": [event]},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 422, (kind, field, response.text)
        assert f"events[0].{field}" in response.json()["error"]


def test_a_repeated_query_parameter_is_a_400(server: VizServer) -> None:
    # before: 200, the last value silently won (limit=1&limit=1000000)
    status, body = _get(server, "/api/viz/recent?limit=1&limit=20000")
    assert status == 400 and b"'limit' given more than once" in body
    status, _ = _get(server, "/api/viz/recent?limit=1&table=books")
    assert status == 200


def test_a_body_that_never_arrives_is_a_408(server: VizServer) -> None:
    # before: the request hung as long as the client kept the connection open
    request = http_request(
        "POST",
        "/api/viz/emit",
        [
            ("Host", f"127.0.0.1:{server.port}".encode()),
            ("Authorization", f"Bearer {TOKEN}".encode()),
            ("Content-Type", b"application/json"),
            ("Content-Length", b"1000"),
        ],
        b'{"events": [',
    )
    status, body = exchange(server.port, request, timeout=10)
    assert status == 408 and b"not received within 1 s" in body
    assert server.hub.counters["rejected_timeout"] >= 1
    assert_healthy(server)


def test_a_broken_chunked_body_logs_no_traceback(server: VizServer, errors: ErrorLog) -> None:
    # before: uvicorn answered 400 but the app logged "Exception in ASGI application"
    # (starlette's ClientDisconnect escaped the emit handler)
    before = len(errors.records)
    cases = (
        (b"ZZ\r\n{}\r\n0\r\n\r\n", 400),  # not a chunk size
        (b"FFFFFFFFFFFFFFFFFF\r\n{}\r\n", 400),  # a size beyond any body
        (b"5\r\n{}\r\n", 408),  # a chunk that never ends: the body timeout
    )
    for chunk, expected in cases:
        request = http_request(
            "POST",
            "/api/viz/emit",
            [
                ("Host", f"127.0.0.1:{server.port}".encode()),
                ("Authorization", f"Bearer {TOKEN}".encode()),
                ("Content-Type", b"application/json"),
                ("Transfer-Encoding", b"chunked"),
                ("Connection", b"close"),
            ],
            b"2\r\n{}\r\n" + chunk,
        )
        status, _ = exchange(server.port, request)
        assert status == expected, chunk
    time.sleep(0.2)  # the handler finishes after the answer
    assert errors.messages()[before:] == []
    assert_healthy(server)


def _ws_raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        (
            f"GET /ws/viz?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + data


def _close_code(sock: socket.socket) -> int:
    """The close code of the first close frame the server sends (skipping other frames)."""
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        while len(data) >= 2:
            length = data[1] & 0x7F
            start = 2 + {126: 2, 127: 8}.get(length, 0)
            if length >= 126:
                length = int.from_bytes(data[2:start], "big")
            if len(data) < start + length:
                break
            opcode, payload, data = (
                data[0] & 0x0F,
                data[start : start + length],
                data[start + length :],
            )
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    raise AssertionError("the server sent no close frame")


def test_binary_frames_are_ignored_and_bad_frames_close_cleanly(
    server: VizServer, errors: ErrorLog
) -> None:
    # before: a binary frame ended the handler and the socket dropped without a close (1006)
    url = server.url.replace("http", "ws", 1) + f"/ws/viz?token={TOKEN}"
    with connect(url, open_timeout=5) as ws:
        assert json.loads(ws.recv(5))["type"] == "hello"
        ws.send(b"\x00\x01binary")
        ws.send("ping")
        assert json.loads(ws.recv(5))["type"] == "pong"
    with connect(url, open_timeout=5, max_size=None) as ws:  # over the 1 MiB frame limit
        ws.recv(5)
        ws.send("x" * (2 << 20))
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(5)
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1009
    # before: an invalid UTF-8 text frame logged a traceback at ERROR (closed with 1007)
    before = len(errors.records)
    for frame, code in ((_masked(0x1, b"\xff\xfe"), 1007), (_masked(0xF, b""), 1002)):
        with _ws_raw(server.port) as sock:
            sock.sendall(frame)
            assert _close_code(sock) == code
    with _ws_raw(server.port) as sock:  # unmasked, as a client must not send
        sock.sendall(b"\x81\x04ping")
        assert _close_code(sock) == 1002
    time.sleep(0.2)
    assert errors.messages()[before:] == []
    assert_healthy(server)


def test_many_concurrent_sockets_then_the_viewer_cap_answers_429() -> None:
    # before: any number of WebSockets was served (each with its queue)
    with viz_server(max_viewers=40, rate_limit_per_s=0) as capped:
        url = capped.url.replace("http", "ws", 1) + "/ws/viz"

        def hold(_: int) -> Any:
            ws = connect(url, open_timeout=10).__enter__()  # closed in the finally below
            ws.recv(5)
            return ws

        with ThreadPoolExecutor(8) as pool:
            sockets = list(pool.map(hold, range(40)))
        try:
            assert len(capped.hub.clients) == 40
            with socket.create_connection(("127.0.0.1", capped.port), timeout=5) as sock:
                sock.sendall(
                    (
                        f"GET /ws/viz HTTP/1.1\r\nHost: 127.0.0.1:{capped.port}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n"
                    ).encode()
                )
                answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
            assert b"retry-after: 5" in answer.lower() and b"more than 40 viewers" in answer
            assert capped.hub.counters["rejected_viewers"] == 1
            assert_healthy(capped)
        finally:
            for ws in sockets:
                ws.close()
        deadline = time.monotonic() + 10
        while capped.hub.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not capped.hub.clients
        with connect(url, open_timeout=5) as ws:  # room again
            assert json.loads(ws.recv(5))["type"] == "hello"
        assert_healthy(capped)
