"""``dbpulse mcp`` driven by the ``mcp`` SDK's own client, over stdio and streamable HTTP.

These tests point the server at sources that do not answer: the tools must be listed, and an
unreachable backend or a bad argument must come back as a tool error while the server goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from dbpulse.faces.mcp_server import TOOLS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:1"  # nothing listens on port 1
SOURCES = ["--prometheus", DEAD, "--trace-store", DEAD, "--viz", DEAD, "--timeout", "2"]


def _env() -> dict[str, str]:
    path = str(REPO_ROOT / "instrumentation")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")])}


async def _exercise(session: ClientSession) -> dict[str, Any]:
    await session.initialize()
    tools = await session.list_tools()
    out: dict[str, Any] = {"tools": {t.name: t.input_schema for t in tools.tools}}
    out["unreachable"] = await session.call_tool("performance_metrics", {"time_range": "1h"})
    out["bad"] = await session.call_tool("performance_metrics", {"time_range": "2h"})
    out["events"] = await session.call_tool("recent_events", {"limit": 3})
    out["after"] = await session.call_tool("flow_status", {"limit": 0})
    return out


def _check(found: dict[str, Any]) -> None:
    assert set(found["tools"]) == set(TOOLS)
    schema = found["tools"]["performance_metrics"]
    assert schema["properties"]["time_range"]["enum"] == ["1h", "24h", "7d", "30d"]
    for key, source in (("unreachable", "Prometheus"), ("events", "viz server")):
        result = found[key]
        assert result.is_error
        assert f"{source} at {DEAD}" in result.content[0].text
        assert "connection refused" in result.content[0].text
    assert found["bad"].is_error and "time_range" in found["bad"].content[0].text
    assert found["after"].is_error  # limit 0 is out of range; the server still answers


def test_stdio_lists_tools_and_reports_tool_errors() -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "dbpulse.cli", "mcp", *SOURCES], env=_env()
    )

    async def run() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            return await _exercise(session)

    _check(asyncio.run(asyncio.wait_for(run(), 60)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_http_needs_the_token_and_serves_the_tools() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "dbpulse.cli", "mcp", "--http", *SOURCES],
        env={**_env(), "DBPULSE_MCP_TOKEN": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "--http needs a token" in refused.stderr

    port = _free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    server = subprocess.Popen(
        [sys.executable, "-m", "dbpulse.cli", "mcp", "--http", "--port", str(port), *SOURCES],
        env={**_env(), "DBPULSE_MCP_TOKEN": "faces-test-token"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.post(url, json={}, timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "dbpulse mcp --http did not listen"
                time.sleep(0.2)
        assert response.status_code == 401
        wrong = httpx.post(url, json={}, headers={"Authorization": "Bearer nope"}, timeout=5)
        assert wrong.status_code == 401
        evil = httpx.post(
            url,
            json={},
            headers={"Authorization": "Bearer faces-test-token", "Host": "evil.example"},
            timeout=5,
        )
        assert evil.status_code == 400

        async def run() -> dict[str, Any]:
            client = create_mcp_http_client(headers={"Authorization": "Bearer faces-test-token"})
            async with (
                client,
                streamable_http_client(url, http_client=client) as (read, write),
                ClientSession(read, write) as session,
            ):
                return await _exercise(session)

        _check(asyncio.run(asyncio.wait_for(run(), 60)))
    finally:
        server.terminate()
        server.wait(10)


def _text(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return dict(json.loads(result.content[0].text))


def test_stdio_tools_answer_the_workload(faced: Any) -> None:
    from tests.faces import workload

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "dbpulse.cli", "mcp", *faced.sources()], env=faced.env
    )
    delivered = faced.flows["delivered"][0]

    async def run() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            service = {"time_range": "1h", "service": faced.service}
            calls = {
                "status": ("database_status", {"db_path": str(faced.db)}),
                "perf": ("performance_metrics", service),
                "stats": ("execution_statistics", service),
                "flow": ("flow_status", {"flow_id": delivered}),
                "events": ("recent_events", {"limit": 50, "filter": "table=faces_books"}),
                "missing_db": ("database_status", {"db_path": "/nonexistent/dir/x.db"}),
            }
            return {k: await session.call_tool(n, a) for k, (n, a) in calls.items()}

    found = asyncio.run(asyncio.wait_for(run(), 90))
    status = _text(found["status"])
    assert status["database"]["path"] == str(faced.db) and status["database"]["kind"] == "sqlite"
    assert status["status"] in {"OK", "WARNING"} and "warnings" in status and "errors" in status
    assert _text(found["missing_db"])["status"] == "CRITICAL"

    perf = _text(found["perf"])
    calls = {(r["operation"], r["table"]): r for r in perf["by_operation"]}
    assert calls[("INSERT", "faces_books")]["calls"] == workload.INSERTS
    assert calls[("SELECT", "faces_books")]["calls"] == workload.SELECTS
    assert calls[("UPDATE", "faces_books")]["calls"] == workload.UPDATES
    assert calls[("SELECT", "faces_missing")]["errors"] == workload.FAILED
    assert perf["error_count"] == workload.FAILED
    assert perf["error_rate"] == pytest.approx(workload.FAILED / perf["total_operations"])

    stats = _text(found["stats"])
    assert sum(p["operations"] for p in stats["time_series"]) == stats["totals"]["operations"]
    assert stats["totals"]["operations"] == perf["total_operations"]
    books = next(t for t in stats["top_tables"] if t["table"] == "faces_books")
    updated = workload.ISBNS.count(workload.ISBNS[0])  # the UPDATE matches this ISBN's rows
    assert books["rows_written"] == workload.INSERTS + updated
    assert stats["top_isbns"][0]["isbn"] == "9780306406157"  # 3 inserts and the update

    flow = _text(found["flow"])
    assert flow["found"] and flow["state"] == "delivered"
    assert len(flow["checkpoints"]) == 4

    events = _text(found["events"])
    assert events["count"] == workload.INSERTS + workload.UPDATES
    assert {e["table"] for e in events["events"]} == {"faces_books"}
