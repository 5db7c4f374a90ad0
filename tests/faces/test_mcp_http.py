"""``dbpulse mcp --http`` under hostile input, and its tools answering real figures over HTTP.

A foreign ``Origin`` is refused with 403 whatever the token (the MCP specification's guidance
against DNS rebinding for streamable HTTP servers); bad JSON-RPC, unknown tools, wrong argument
types and oversized bodies get a 4xx or a JSON-RPC/tool error, never a 5xx, and the server
goes on answering.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from dbpulse.faces.mcp_server import TOOLS
from tests.harness.processes import free_port
from tests.viz._support import FUZZ

REPO_ROOT = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:1"  # nothing listens on port 1
TOKEN = "mcp-http-fuzz-token"
ACCEPT = "application/json, text/event-stream"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": ACCEPT}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "fuzz", "version": "1"},
    },
}


def _env() -> dict[str, str]:
    path = str(REPO_ROOT / "instrumentation")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")])}


class McpHttp:
    def __init__(self, sources: list[str], env: dict[str, str], *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dbpulse.cli", "mcp", "--http", "--port", str(self.port),
             *sources, *extra],
            env={**env, "DBPULSE_MCP_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(self.url, json={}, timeout=2)
                return
            except httpx.TransportError:
                assert self.process.poll() is None, self.stop()
                assert time.monotonic() < deadline, "dbpulse mcp --http did not listen"
                time.sleep(0.2)

    def post(self, body: Any, raw: bool = False, **headers: str) -> httpx.Response:
        content = body if raw else json.dumps(body).encode()
        merged = {**HEADERS, "Content-Type": "application/json", **headers}
        return httpx.post(self.url, content=content, headers=merged, timeout=30)

    def session(self) -> str:
        response = self.post(INITIALIZE)
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        done = self.post(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, **{"mcp-session-id": session}
        )
        assert done.status_code == 202, done.text
        return session

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        return self.process.stderr.read() if self.process.stderr else ""


@pytest.fixture(scope="module")
def mcp_http() -> Iterator[McpHttp]:
    sources = ["--prometheus", DEAD, "--trace-store", DEAD, "--viz", DEAD, "--timeout", "1"]
    server = McpHttp(sources, _env(), "--allowed-origins", "https://assistant.example")
    try:
        yield server
    finally:
        stderr = server.stop()
    assert "Traceback" not in stderr, stderr[-3000:]


def _result(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of an answer (JSON or one server-sent event)."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return dict(json.loads(text))


def test_a_foreign_origin_is_a_403_whatever_the_token(mcp_http: McpHttp) -> None:
    for origin in ("http://evil.example", "null", f"http://localhost.evil:{mcp_http.port}"):
        with_token = mcp_http.post(INITIALIZE, Origin=origin)
        without = mcp_http.post(INITIALIZE, Origin=origin, Authorization="")
        for refused in (with_token, without):
            assert refused.status_code == 403, (origin, refused.text)
            assert "DBPULSE_MCP_ALLOWED_ORIGINS" in refused.json()["error"]
    streaming = httpx.get(
        mcp_http.url, headers={**HEADERS, "Origin": "http://evil.example"}, timeout=10
    )
    assert streaming.status_code == 403
    # before the guard fix: 500 (urlsplit raised on the unterminated IPv6 literal)
    assert mcp_http.post(INITIALIZE, Origin="http://[::1").status_code == 403
    # the server's own origin and an allowlisted one are served
    own = mcp_http.post(INITIALIZE, Origin=f"http://127.0.0.1:{mcp_http.port}")
    listed = mcp_http.post(INITIALIZE, Origin="https://assistant.example")
    assert own.status_code == 200 and listed.status_code == 200, (own.text, listed.text)


def test_bad_json_rpc_and_bad_arguments_are_errors_not_5xx(mcp_http: McpHttp) -> None:
    session = {"mcp-session-id": mcp_http.session()}
    raw_cases = {
        b"{not json": 400,
        b"[" * 100_000 + b"]" * 100_000: 400,
        b"\xff\xfe": 400,
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "x" * (20 << 20)}).encode(): 413,
    }
    for body, expected in raw_cases.items():
        response = mcp_http.post(body, raw=True, **session)
        assert response.status_code == expected, (body[:40], response.text[:200])
    for body in (5, None, [], {"jsonrpc": "1.0", "id": 3, "method": "ping"}, {"id": 4}):
        response = mcp_http.post(body, **session)
        assert response.status_code == 400, (body, response.text[:200])
        assert _result(response)["error"]["code"] in (-32600, -32602)

    def call(name: str, arguments: Any) -> dict[str, Any]:
        message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call"}
        response = mcp_http.post(
            {**message, "params": {"name": name, "arguments": arguments}}, **session
        )
        assert response.status_code == 200, response.text[:300]
        return _result(response)

    unknown = call("drop_everything", {})
    assert (
        unknown["result"]["isError"] and "Unknown tool" in unknown["result"]["content"][0]["text"]
    )
    for name, arguments in (
        ("recent_events", {"limit": "abc"}),
        ("recent_events", {"limit": 10**30}),
        ("performance_metrics", {"time_range": ["1h"]}),
        ("flow_status", {"flow_id": "\x00" * 1000}),
        ("database_status", {"db_path": "postgresql://[::1"}),
        ("flow_status", {"stuck_after_s": float("inf")}),
    ):
        answer = call(name, arguments)
        assert answer["result"]["isError"], (name, arguments, answer)
    assert call("recent_events", [1, 2])["error"]["code"] == -32602
    unknown_method = mcp_http.post({"jsonrpc": "2.0", "id": 5, "method": "nope/x"}, **session)
    assert _result(unknown_method)["error"]["code"] == -32601
    assert mcp_http.post({"jsonrpc": "2.0", "id": 6, "method": "ping"}).status_code == 400
    assert mcp_http.post(INITIALIZE, **{"Content-Type": "text/plain"}).status_code in (400, 415)
    assert mcp_http.post(INITIALIZE, Accept="application/json").status_code == 406
    assert httpx.put(mcp_http.url, headers=HEADERS, timeout=10).status_code == 405


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_messages = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]),
        "id": st.one_of(st.integers(), st.text(max_size=8), _json),
        "method": st.one_of(
            st.sampled_from(["tools/call", "tools/list", "ping", "resources/read", "x"]), _json
        ),
        "params": st.one_of(
            st.fixed_dictionaries(
                {"name": st.one_of(st.sampled_from(TOOLS), _json)},
                optional={
                    "arguments": st.one_of(st.dictionaries(st.text(max_size=12), _json), _json)
                },
            ),
            _json,
        ),
    },
)


_ARGUMENT_NAMES = [
    "db_path",
    "time_range",
    "service",
    "flow_id",
    "limit",
    "stuck_after_s",
    "filter",
]
_tool_calls = st.builds(
    lambda i, name, arguments: {
        "jsonrpc": "2.0",
        "id": i,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    },
    st.integers(0, 10**6),
    st.one_of(st.sampled_from(TOOLS), st.text(max_size=12)),
    st.dictionaries(
        st.sampled_from(_ARGUMENT_NAMES),
        st.one_of(st.sampled_from(["1h", "2h", "", ".*", "(("]), _json),
        max_size=3,
    ),
)


def test_json_rpc_fuzz_never_gets_a_5xx(mcp_http: McpHttp) -> None:
    session = {"mcp-session-id": mcp_http.session()}
    seen: dict[int, int] = {}

    @settings(FUZZ, max_examples=60)
    @given(message=st.one_of(_tool_calls, _tool_calls, _messages, st.lists(_messages, max_size=2)))
    def one(message: Any) -> None:
        response = mcp_http.post(json.dumps(message, allow_nan=True).encode(), raw=True, **session)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (message, response.text[:300])

    one()
    print(f"\nMCP JSON-RPC fuzz: statuses {dict(sorted(seen.items()))}")
    assert seen.get(200) and seen.get(400)  # tool calls were answered, junk was refused
    assert (
        mcp_http.post({"jsonrpc": "2.0", "id": 7, "method": "ping"}, **session).status_code == 200
    )


def test_http_tool_calls_answer_the_workload(faced: Any) -> None:
    """Over streamable HTTP, with the token, the tools give the workload's exact figures."""
    from tests.faces import workload

    server = McpHttp(faced.sources(), faced.env)

    async def run() -> dict[str, Any]:
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        async with (
            client,
            streamable_http_client(server.url, http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            perf = await session.call_tool(
                "performance_metrics", {"time_range": "1h", "service": faced.service}
            )
            events = await session.call_tool(
                "recent_events", {"limit": 50, "filter": "table=faces_books"}
            )
            return {"perf": perf, "events": events}

    try:
        found = asyncio.run(asyncio.wait_for(run(), 90))
    finally:
        stderr = server.stop()
    assert "Traceback" not in stderr, stderr[-3000:]
    for result in found.values():
        assert not result.is_error, result.content[0].text
    perf = json.loads(found["perf"].content[0].text)
    calls = {(r["operation"], r["table"]): r for r in perf["by_operation"]}
    assert calls[("INSERT", "faces_books")]["calls"] == workload.INSERTS
    assert calls[("SELECT", "faces_books")]["calls"] == workload.SELECTS
    assert calls[("UPDATE", "faces_books")]["calls"] == workload.UPDATES
    assert calls[("SELECT", "faces_missing")]["errors"] == workload.FAILED
    assert perf["error_count"] == workload.FAILED
    events = json.loads(found["events"].content[0].text)
    assert events["count"] == workload.INSERTS + workload.UPDATES
