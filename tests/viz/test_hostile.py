"""The viz server under hostile input, over real HTTP and WebSocket connections.

One test per attack of issue 17 ("A viz server that holds under hostile input"); each one
ends by checking that ``/healthz`` still answers 200 ``ok``.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbpulse.viz import VizConfig
from dbpulse.viz.hub import OVERFLOW_LABEL
from tests.viz._support import ISBNS, isbn13, viz_server, wait_for

JSON = {"Content-Type": "application/json"}


def event(isbn: str | None = ISBNS[0], **extra: Any) -> dict[str, Any]:
    return {
        "operation": "insert",
        "table": "books",
        "isbn": isbn,
        "timestamp": time.time(),
        **extra,
    }


def emit(http: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post("/api/viz/emit", content=content, headers={**JSON, **headers})


def assert_healthy(http: httpx.Client) -> None:
    health = http.get("/healthz")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"


def ws_handshake(port: int, path: str = "/ws/viz", **headers: str) -> int:
    """The HTTP status a WebSocket handshake gets (101 when accepted)."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {headers.pop('Host', f'127.0.0.1:{port}')}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_deeply_nested_json_is_a_400_and_bodies_are_bounded() -> None:
    with viz_server(max_body_bytes=300_000) as server, httpx.Client(base_url=server.url) as http:
        deep = b"[" * 100_000 + b"]" * 100_000
        nested = b"[" * 50_000 + b"]" * 50_000
        as_body = emit(http, deep)
        in_event = emit(http, b'{"events": [{"operation": "insert", "table": ' + nested + b"}]}")
        too_big = emit(http, b"[" * 400_000)
        assert_healthy(http)
        assert server.hub.counters["events_received"] == 0
    assert as_body.status_code == 400 and "nested too deeply" in as_body.json()["error"]
    assert in_event.status_code == 400 and "nested too deeply" in in_event.json()["error"]
    assert too_big.status_code == 413


def test_ingest_requires_application_json() -> None:
    with viz_server() as server, httpx.Client(base_url=server.url) as http:
        body = json.dumps({"events": [event()]})
        plain = http.post("/api/viz/emit", content=body, headers={"Content-Type": "text/plain"})
        form = http.post("/api/viz/emit", data={"events": body})
        missing = http.post("/api/viz/emit", content=body.encode())
        charset = http.post(
            "/api/viz/emit",
            content=body,
            headers={"Content-Type": "Application/JSON; charset=utf-8"},
        )
        assert_healthy(http)
        stats = http.get("/api/viz/stats").json()
    for refused in (plain, form, missing):
        assert refused.status_code == 415, refused.text
        assert "application/json" in refused.json()["error"]
    assert charset.status_code == 202
    assert stats["rejected_content_type"] == 3 and stats["events_received"] == 1


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_are_refused(number: bytes) -> None:
    with viz_server() as server, httpx.Client(base_url=server.url) as http:
        for field in (b"timestamp", b"count"):
            body = b'{"events": [{"operation": "insert", "%s": %s}]}' % (field, number)
            response = emit(http, body)
            assert response.status_code == 422, response.text
        assert server.hub.counters["events_received"] == 0
        # Even a non-finite value already stored (an older server, a hand-made event) cannot
        # make the viewing endpoints fail: it is served as null.
        emit(http, {"events": [event()]})
        stored = server.hub.ring[-1]
        stored["timestamp"] = float("nan")
        stored["count"] = float("inf")
        recent = http.get("/api/viz/recent")
        replay = http.get("/api/viz/replay")
        assert_healthy(http)
    assert recent.status_code == 200 and replay.status_code == 200
    assert recent.json()["events"][0]["timestamp"] is None
    assert replay.json()["events"][0]["count"] is None


def test_metrics_label_values_cannot_forge_lines() -> None:
    forged = 'x"} 1\ndbpulse_viz_forged_total 1\n# y'
    with viz_server() as server, httpx.Client(base_url=server.url) as http:
        assert emit(http, {"events": [event(operation=forged[:32])]}).status_code == 202
        response = http.get("/metrics")
        assert_healthy(http)
    text = response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert not any(line.startswith("dbpulse_viz_forged") for line in text.splitlines())
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "dbpulse_viz_forged" not in families
    (sample,) = families["dbpulse_viz_writes"].samples
    assert sample.labels == {"operation": forged[:32].lower()} and sample.value == 1


def test_distinct_tables_and_operations_are_capped_with_a_counted_overflow() -> None:
    with viz_server(max_label_values=20) as server, httpx.Client(base_url=server.url) as http:
        events = [event(isbn13(i), table=f"tmp_{i}", operation=f"op{i}") for i in range(500)]
        exact = [
            {"type": "table_writes", "operation": "insert", "table": f"tmp_{i}", "count": 2}
            for i in range(500)
        ]
        assert emit(http, {"events": events + exact}).status_code == 202
        stats_response = http.get("/api/viz/stats")
        metrics = http.get("/metrics").text
        assert_healthy(http)
    stats = stats_response.json()
    assert len(stats["writes_by_table"]) == 21 and len(stats["writes_by_operation"]) == 21
    assert stats["writes_by_table"][OVERFLOW_LABEL] == 480
    assert stats["writes_by_operation"][OVERFLOW_LABEL] == 480
    assert len(stats["tables"]) == 20 and OVERFLOW_LABEL not in stats["tables"]
    assert len(stats["exact_writes"]) == 21
    assert stats["label_overflow"] == {"table": 480, "operation": 480, "table_writes": 480}
    assert len(stats_response.content) < 20_000
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    overflow = {s.labels["label"]: s.value for s in families["dbpulse_viz_label_overflow"].samples}
    assert overflow == {"table": 480, "operation": 480, "table_writes": 480}
    assert len(families["dbpulse_viz_writes"].samples) == 21


def test_a_client_over_its_rate_limit_gets_429_with_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBPULSE_VIZ_RATE_LIMIT_PER_S", "0.5")
    monkeypatch.setenv("DBPULSE_VIZ_RATE_LIMIT_BURST", "5")
    config = VizConfig.from_env(port=0)
    assert (config.rate_limit_per_s, config.rate_limit_burst) == (0.5, 5)
    with viz_server(**config.__dict__) as server, httpx.Client(base_url=server.url) as http:
        answers = [http.get("/api/viz/stats") for _ in range(5)]
        limited = http.get("/api/viz/recent")
        posted = emit(http, {"events": [event()]})
        socket_status = ws_handshake(server.port)
        assert_healthy(http)  # probes are never limited
        time.sleep(2.2)  # a token back
        again = emit(http, {"events": [event()]})
        assert server.hub.counters["rejected_rate"] == 3
    assert [a.status_code for a in answers] == [200] * 5
    assert limited.status_code == 429 and posted.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "too many requests" in limited.json()["error"]
    assert socket_status == 403
    assert again.status_code == 202

    # The token's holder (the feed with DBPULSE_VIZ_TOKEN) is not limited; others still are.
    limits = {"rate_limit_per_s": 0.5, "rate_limit_burst": 1}
    with viz_server(token="s3cret", **limits) as server, httpx.Client(base_url=server.url) as http:
        anonymous = [http.get("/api/viz/stats").status_code for _ in range(2)]
        bearer = {"Authorization": "Bearer s3cret"}
        feed = [emit(http, {"events": [event()]}, **bearer).status_code for _ in range(20)]
        assert_healthy(http)
    assert anonymous == [200, 429] and feed == [202] * 20


def test_origin_and_host_are_checked_on_http_and_websocket() -> None:
    with (
        viz_server(allowed_origins="https://dash.example", allowed_hosts="viz.internal") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        port = server.port
        same = f"http://127.0.0.1:{port}"
        ws = {
            "same origin": ws_handshake(port, Origin=same),
            "allowlisted origin": ws_handshake(port, Origin="https://dash.example"),
            "no origin": ws_handshake(port),
            "foreign origin": ws_handshake(port, Origin="https://evil.example"),
            "null origin": ws_handshake(port, Origin="null"),
            "rebound host": ws_handshake(port, Host=f"evil.example:{port}", Origin=same),
        }
        cross_post = emit(http, {"events": [event()]}, Origin="https://evil.example")
        same_post = emit(http, {"events": [event()]}, Origin=same)
        hosts = {
            host: http.get("/api/viz/recent", headers={"Host": host}).status_code
            for host in (
                f"localhost:{port}",
                f"[::1]:{port}",
                "viz.internal",
                f"evil.example:{port}",
                "127.0.0.1.evil.example",
            )
        }
        assert_healthy(http)
        stats = http.get("/api/viz/stats").json()
    assert ws == {
        "same origin": 101,
        "allowlisted origin": 101,
        "no origin": 101,
        "foreign origin": 403,
        "null origin": 403,
        "rebound host": 403,
    }
    assert cross_post.status_code == 403 and same_post.status_code == 202
    assert hosts == {
        f"localhost:{port}": 200,
        f"[::1]:{port}": 200,
        "viz.internal": 200,
        f"evil.example:{port}": 400,
        "127.0.0.1.evil.example": 400,
    }
    assert stats["rejected_origin"] == 3 and stats["rejected_host"] == 3


def test_replay_and_recent_are_bounded_and_take_the_token() -> None:
    with (
        viz_server(token="s3cret", ring_size=500, max_response_events=50) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        bearer = {"Authorization": "Bearer s3cret"}
        events = [event(isbn13(i)) for i in range(200)]
        assert emit(http, {"events": events}, **bearer).status_code == 202
        replay = http.get("/api/viz/replay", params={"limit": 1_000_000}).json()["events"]
        recent = http.get("/api/viz/recent", params={"limit": 1_000_000}).json()["events"]
        default = http.get("/api/viz/replay").json()["events"]
        with_query = http.get("/api/viz/recent", params={"token": "s3cret", "limit": 3})
        with_bearer = http.get("/api/viz/stats", headers=bearer)
        wrong = http.get("/api/viz/replay", params={"token": "nope"})
        sockets = (
            ws_handshake(server.port, "/ws/viz?token=s3cret"),
            ws_handshake(server.port, "/ws/viz?token=nope"),
        )
        assert_healthy(http)
    assert len(replay) == len(recent) == len(default) == 50
    assert replay[-1]["isbn"] == isbn13(199) and recent[0]["isbn"] == isbn13(150)
    assert with_query.status_code == 200 and len(with_query.json()["events"]) == 3
    assert with_bearer.status_code == 200
    assert wrong.status_code == 401 and "token" in wrong.json()["error"]
    assert sockets == (101, 403)

    with (
        viz_server(token="s3cret", protect_views=True) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        closed = [http.get(path).status_code for path in ("/api/viz/recent", "/metrics")]
        opened = http.get("/api/viz/recent", params={"token": "s3cret"}).status_code
        page = http.get("/").status_code
        sockets = (ws_handshake(server.port), ws_handshake(server.port, "/ws/viz?token=s3cret"))
        assert_healthy(http)
    assert closed == [401, 401] and opened == 200 and page == 200
    assert sockets == (403, 101)


def test_healthz_is_503_when_the_ingest_loop_or_redis_is_down() -> None:
    with viz_server() as server, httpx.Client(base_url=server.url) as http:
        assert_healthy(http)
        task = server.hub.upkeep_task
        assert task is not None
        task.get_loop().call_soon_threadsafe(task.cancel)
        wait_for(task.done)
        stopped = http.get("/healthz")
    assert stopped.status_code == 503 and stopped.json()["status"] == "down"

    with (
        viz_server(redis_url="redis://127.0.0.1:1/0") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        wait_for(lambda: server.hub.redis_state.startswith("down"))
        redis_down = http.get("/healthz")
        # Ingest still works, delivered locally.
        accepted = emit(http, {"events": [event()]})
    assert redis_down.status_code == 503
    assert redis_down.json()["status"] == "degraded" and redis_down.json()["redis"].startswith(
        "down"
    )
    assert accepted.status_code == 202

    with viz_server() as server, httpx.Client(base_url=server.url) as http:
        assert_healthy(http)
