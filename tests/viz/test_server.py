"""The viz server over real HTTP and WebSocket connections."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbpulse.core.isbn import normalize_isbn
from dbpulse.viz.slots import SlotTable, load_isbns
from tests.viz._support import ISBNS, Collector, isbn13, viz_server, wait_for


def event(
    isbn: str | None, operation: str = "insert", table: str = "books", **extra: Any
) -> dict[str, Any]:
    return {
        "type": "db_write",
        "operation": operation,
        "table": table,
        "isbn": isbn,
        "timestamp": time.time(),
        "count": 1,
        **extra,
    }


def test_emit_needs_the_token_when_one_is_set() -> None:
    with viz_server(token="s3cret") as server, httpx.Client(base_url=server.url) as http:
        body = {"events": [event(ISBNS[0])]}
        missing = http.post("/api/viz/emit", json=body)
        wrong = http.post("/api/viz/emit", json=body, headers={"Authorization": "Bearer nope"})
        right = http.post("/api/viz/emit", json=body, headers={"Authorization": "Bearer s3cret"})
        # Viewing stays open (the server binds loopback by default).
        recent = http.get("/api/viz/recent").json()["events"]
        metrics = http.get("/metrics").text
    assert missing.status_code == 401 and wrong.status_code == 401
    assert "bearer token" in missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 202 and right.json() == {"accepted": 1}
    assert [e["isbn"] for e in recent] == [ISBNS[0]]
    assert 'dbpulse_viz_emit_rejected_total{reason="auth"} 2' in metrics


def test_oversized_bodies_are_refused() -> None:
    with viz_server(token="s3cret", max_body_bytes=10_000) as server:
        headers = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}
        big = {"events": [event(isbn13(i)) for i in range(200)]}
        with httpx.Client(base_url=server.url) as http:
            declared = http.post("/api/viz/emit", json=big, headers=headers)

            def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
                yield b'{"events": ['
                for _ in range(2000):
                    yield b'{"operation": "insert", "isbn": null},'
                yield b'{"operation": "insert"}]}'

            streamed = http.post("/api/viz/emit", content=chunks(), headers=headers)
            unauthenticated_big = http.post("/api/viz/emit", json=big)
        assert server.hub.counters["events_received"] == 0
    assert declared.status_code == 413 and "smaller batches" in declared.json()["error"]
    assert streamed.status_code == 413
    assert unauthenticated_big.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 422, '{"events": [...]}'),
        (b'{"events": [{"isbn": "9780140449136"}]}', 422, "events[0].operation is required"),
        (b'{"events": [{"operation": "insert", "count": -1}]}', 422, "events[0].count"),
        (b'{"events": [{"operation": "insert", "trace_id": "xyz"}]}', 422, "trace_id"),
        (b'{"events": [{"operation": "insert", "type": "nope"}]}', 422, "events[0].type"),
    ],
)
def test_bad_payloads_get_a_clear_4xx(body: bytes, status: int, message: str) -> None:
    with viz_server() as server, httpx.Client(base_url=server.url) as http:
        response = http.post(
            "/api/viz/emit", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == status
    assert message in response.json()["error"]


def test_recent_is_a_ring_buffer_with_filters() -> None:
    with viz_server() as server, httpx.Client(base_url=server.url) as http:
        events = [
            event(isbn13(i), "insert" if i % 2 else "update", "books" if i % 3 else "prices")
            for i in range(1200)
        ]
        for i in range(0, 1200, 400):
            assert (
                http.post("/api/viz/emit", json={"events": events[i : i + 400]}).status_code == 202
            )
        everything = http.get("/api/viz/recent").json()["events"]
        updates = http.get("/api/viz/recent", params={"operation": "UPDATE"}).json()["events"]
        prices = http.get("/api/viz/recent", params={"table": "prices"}).json()["events"]
        one = http.get("/api/viz/recent", params={"isbn": isbn13(1100)}).json()["events"]
        last5 = http.get("/api/viz/recent", params={"limit": 5}).json()["events"]
    assert len(everything) == 1000
    assert everything[0]["isbn"] == isbn13(200) and everything[-1]["isbn"] == isbn13(1199)
    assert updates and all(e["operation"] == "update" for e in updates)
    assert prices and all(e["table"] == "prices" for e in prices)
    assert [e["isbn"] for e in one] == [isbn13(1100)]
    assert [e["isbn"] for e in last5] == [isbn13(i) for i in range(1195, 1200)]


def test_replay_returns_the_window_asked_for() -> None:
    with viz_server(replay_seconds=300) as server, httpx.Client(base_url=server.url) as http:
        http.post("/api/viz/emit", json={"events": [event(ISBNS[0]), event(ISBNS[1], "delete")]})
        old = server.hub.replay[0]
        old["received"] = time.time() - 120  # pretend the first one is two minutes old
        last_minute = http.get("/api/viz/replay", params={"seconds": 60}).json()
        five_minutes = http.get("/api/viz/replay", params={"seconds": 300}).json()
        deletes = http.get("/api/viz/replay", params={"operation": "delete"}).json()
    assert [e["isbn"] for e in last_minute["events"]] == [ISBNS[1]]
    assert [e["isbn"] for e in five_minutes["events"]] == [ISBNS[0], ISBNS[1]]
    assert five_minutes["to"] - five_minutes["from"] == pytest.approx(300, abs=1)
    assert [e["isbn"] for e in deletes["events"]] == [ISBNS[1]]


def test_slots_are_stable_as_isbns_arrive() -> None:
    first = SlotTable(capacity=65_536)
    before = {isbn: first.learn(isbn) for isbn in ISBNS[:3]}
    for i in range(5000):
        first.learn(isbn13(i))
    assert {isbn: first.get(isbn) for isbn in ISBNS[:3]} == before
    # Another server that learns them in another order agrees (barring hash collisions).
    second = SlotTable(capacity=65_536)
    for isbn in reversed(ISBNS[:3]):
        second.learn(isbn)
    assert {isbn: second.get(isbn) for isbn in ISBNS[:3]} == before
    full = SlotTable(capacity=16)
    slots = [full.learn(isbn13(i)) for i in range(40)]
    assert len(set(slots)) == 40
    assert max(s for s in slots if s is not None) >= 16  # outer shells once the lattice fills


def test_known_isbns_come_from_events_and_a_named_table(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE catalog (code TEXT)")
    conn.executemany(
        "INSERT INTO catalog VALUES (?)",
        [("978-0-14-044913-6",), ("0306406152",), ("not an isbn",), (None,)],
    )
    conn.commit()
    conn.close()
    assert load_isbns(str(db), "catalog", "code") == ["9780140449136", "9780306406157"]
    with pytest.raises(ValueError, match="plain table"):
        load_isbns(str(db), "catalog; DROP TABLE catalog", "code")
    with (
        viz_server(isbn_db=str(db), isbn_table="catalog", isbn_column="code") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        http.post("/api/viz/emit", json={"events": [event(ISBNS[2])]})
        known = http.get("/api/viz/isbns").json()
        stats = http.get("/api/viz/stats").json()
        health = http.get("/healthz").json()
        top = http.get("/api/viz/top").json()["top"]
    assert known["isbns"] == ["9780140449136", "9780306406157", ISBNS[2]]
    assert len(set(known["slots"])) == 3 and known["capacity"] == 65_536
    assert stats["isbns_loaded"] == 2 and stats["known_isbns"] == 3
    assert health == {"status": "ok", "clients": 0, "redis": "disabled"}
    assert top == [{"isbn": ISBNS[2], "count": 1, "slot": known["slots"][2]}]


def test_isbn_normalisation() -> None:
    assert normalize_isbn("0-306-40615-2") == "9780306406157"
    assert normalize_isbn("9780306406157") == "9780306406157"
    assert normalize_isbn("9780306406158") is None
    assert normalize_isbn("080442957X") == "9780804429573"


def _stalled_websocket(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /ws/viz HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def test_a_slow_websocket_client_does_not_delay_the_others() -> None:
    with viz_server(client_queue_size=16, slow_client_drop_limit=50) as server:
        stalled = _stalled_websocket(server.port)
        fast = Collector(server.url)
        wait_for(lambda: len(server.hub.clients) == 2)
        batches, per_batch = 150, 1000
        with httpx.Client(base_url=server.url) as http:
            for b in range(batches):
                events = [event(isbn13(b * per_batch + i)) for i in range(per_batch)]
                assert http.post("/api/viz/emit", json={"events": events}).status_code == 202
                # Pace like a real feed so the fast client is never the bottleneck here.
                wait_for(lambda b=b: len(fast.events) >= (b + 1) * per_batch, timeout=30)
        dropped = server.hub.counters["ws_messages_dropped"]
        slow_disconnects = server.hub.counters["ws_slow_disconnects"]
        fast.close()
        stalled.close()
    assert len(fast.events) == batches * per_batch
    assert dropped > 0
    assert slow_disconnects == 1
