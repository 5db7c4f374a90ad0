"""Database write → WebSocket client latency through the viz feed and the viz server.

    PYTHONPATH=instrumentation python3 benchmarks/viz_latency.py [--writes 2000] [--rate 200]

The viz server runs in its own process (``dbpulse viz``), as in production. This process writes
books into SQLite through dbpulse's instrumentation with a ``VizFeedProcessor`` (default batching:
50 events or 100 ms) and listens on ``/ws/viz`` in a thread; the latency of a write is the time
from the end of its ``execute`` to the arrival of its event at the WebSocket client (one clock).
Target (issue 5): p95 <= 150 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "instrumentation"), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", "dbpulse.cli", "viz", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("viz server did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def isbn13(n: int) -> str:
    from dbpulse.core.isbn import complete_isbn13

    return complete_isbn13(f"978{n % 10**9:09d}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="writes per second")
    parser.add_argument(
        "--adaptive",
        action="store_true",
        help="keep dbpulse's adaptive sampler (default: detailed, every write a span). With it, "
        "unsampled writes arrive as counter events; past the ISBN cardinality limit (2000) those "
        "carry no ISBN and cannot be matched here.",
    )
    args = parser.parse_args()

    import dbpulse
    from dbpulse.telemetry.sampler import LOAD
    from dbpulse.viz import VizFeedProcessor

    if not args.adaptive:
        LOAD.configure(())  # no bands: detailed mode whatever the rate

    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}"
    received: dict[str, float] = {}
    done = threading.Event()

    def listen() -> None:
        with connect(f"ws://127.0.0.1:{port}/ws/viz", max_size=None) as ws:
            ws.recv()  # hello
            ready.set()
            with contextlib.suppress(ConnectionClosed):
                for raw in ws:
                    handle(raw)
                    if len(received) >= args.writes:
                        done.set()
                        return

    def handle(raw: str | bytes) -> None:
        now = time.perf_counter()
        for event in json.loads(raw).get("events", ()):
            if event.get("isbn"):
                received.setdefault(event["isbn"], now)

    ready = threading.Event()
    threading.Thread(target=listen, daemon=True).start()
    ready.wait(10)

    feed = VizFeedProcessor(url)
    provider = TracerProvider()
    provider.add_span_processor(feed)
    dbpulse.instrument(systems=("sqlite",), tracer_provider=provider)
    written: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "books.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE books (isbn TEXT PRIMARY KEY, title TEXT)")
        interval = 1.0 / args.rate
        next_write = time.perf_counter()
        for i in range(args.writes):
            isbn = isbn13(i)
            conn.execute("INSERT INTO books VALUES (?, ?)", (isbn, "t"))
            written[isbn] = time.perf_counter()
            next_write += interval
            delay = next_write - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        conn.commit()
        done.wait(30)
        conn.close()
    provider.shutdown()
    stop_server(server)

    latencies = [(received[k] - t) * 1000 for k, t in written.items() if k in received]
    print(f"writes {len(written)}, events received {len(latencies)}, rate {args.rate:g}/s")
    print(
        f"latency ms: p50 {percentile(latencies, 0.5):.1f}  p95 {percentile(latencies, 0.95):.1f}"
        f"  p99 {percentile(latencies, 0.99):.1f}  max {max(latencies):.1f}"
        f"  mean {statistics.fmean(latencies):.1f}"
    )
    print(f"feed: {feed.stats()}")


if __name__ == "__main__":
    main()
