"""Viz server throughput with 10 WebSocket clients, and the app's overhead with the feed on/off.

    PYTHONPATH=instrumentation python3 benchmarks/viz_throughput.py [--seconds 5] [--clients 10]

1. Ingest: the viz server runs in its own process; a second process holds ``--clients``
   WebSocket clients that count the events they receive; this process POSTs batches of 1000
   events (the feed's largest POST is 2000) from two threads for ``--seconds``. Reported:
   events/s accepted by the server and events/s delivered to each client (target >= 20,000).
2. Overhead: N SQLite INSERTs through dbpulse's instrumentation with (a) no instrumentation,
   (b) dbpulse, no viz feed, (c) dbpulse + viz feed to the running server, (d) dbpulse + viz
   feed to a port where nothing listens (server down). µs per write, best of 3 runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sqlite3
import threading
import time
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from viz_latency import free_port, isbn13, start_server, stop_server


def clients_process(port: int, n: int, seconds: float, out: Any) -> None:
    from websockets.sync.client import connect

    counts = [0] * n
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with connect(f"ws://127.0.0.1:{port}/ws/viz", max_size=None) as ws:
            ws.recv()
            out.put(("ready", i))
            while time.monotonic() < stop:
                try:
                    raw = ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                # Count without a full parse: the client side must not be the bottleneck.
                counts[i] += raw.count('"seq":') if isinstance(raw, str) else 0

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(("counts", counts))


def ingest(port: int, seconds: float, clients: int) -> None:
    queue: Any = mp.Queue()
    proc = mp.Process(target=clients_process, args=(port, clients, seconds + 6, queue))
    proc.start()
    for _ in range(clients):
        queue.get(timeout=30)
    now = time.time()
    batch = [
        {
            "type": "db_write",
            "operation": ("insert", "update", "delete")[i % 3],
            "table": "books",
            "isbn": isbn13(i),
            "timestamp": now,
            "trace_id": f"{i:032x}",
            "system": "sqlite",
            "count": 1,
            "source": "span",
        }
        for i in range(1000)
    ]
    body = json.dumps({"events": batch}).encode()
    sent = [0, 0]
    stop = time.monotonic() + seconds

    def post(slot: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            while time.monotonic() < stop:
                r = http.post(
                    "/api/viz/emit", content=body, headers={"Content-Type": "application/json"}
                )
                r.raise_for_status()
                sent[slot] += len(batch)

    start = time.monotonic()
    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    _kind, counts = queue.get(timeout=60)
    proc.join(10)
    total = sum(sent)
    stats = httpx.get(f"http://127.0.0.1:{port}/api/viz/stats").json()
    print(
        f"ingest: {total / elapsed:,.0f} events/s accepted over {elapsed:.1f} s "
        f"({clients} WebSocket clients connected)"
    )
    print(
        f"delivered per client: min {min(counts) / elapsed:,.0f} events/s, "
        f"max {max(counts) / elapsed:,.0f} events/s; delivered {min(counts)}/{total} "
        f"(server skipped {stats['ws_messages_dropped']} messages for slow clients)"
    )


def overhead(port: int, writes: int) -> None:
    import dbpulse
    from dbpulse.telemetry.sampler import DEFAULT_BANDS, LOAD
    from dbpulse.viz import VizFeedProcessor

    def run() -> float:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE books (isbn TEXT, title TEXT)")
        isbns = [isbn13(i) for i in range(writes)]
        start = time.perf_counter()
        for isbn in isbns:
            conn.execute("INSERT INTO books VALUES (?, ?)", (isbn, "t"))
        elapsed = time.perf_counter() - start
        conn.close()
        return elapsed / writes * 1e6

    print(f"  raw sqlite3: {min(run() for _ in range(3)):.2f} µs/write")
    for sampler, bands in (("detailed (every write a span)", ()), ("adaptive", DEFAULT_BANDS)):
        results: dict[str, float] = {}
        dropped: dict[str, int] = {}
        for label, url in (
            ("no viz feed", None),
            ("viz feed, server up", f"http://127.0.0.1:{port}"),
            ("viz feed, server down", f"http://127.0.0.1:{free_port()}"),
        ):
            LOAD.configure(bands)
            provider = TracerProvider()
            feed = None
            if url:
                feed = VizFeedProcessor(url)
                provider.add_span_processor(feed)
            dbpulse.instrument(systems=("sqlite",), tracer_provider=provider)
            results[label] = min(run() for _ in range(3))
            dbpulse.uninstrument(systems=("sqlite",))
            if feed is not None:
                dropped[label] = feed.dropped()
            provider.shutdown()
        base = results["no viz feed"]
        print(f"  dbpulse, sampler {sampler}:")
        for label, value in results.items():
            extra = f", {dropped[label]:,} events dropped" if label in dropped else ""
            print(f"    {label}: {value:.2f} µs/write ({value / base:.2f}x){extra}")
    LOAD.configure(DEFAULT_BANDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--writes", type=int, default=20_000)
    args = parser.parse_args()
    port = free_port()
    server = start_server(port)
    try:
        ingest(port, args.seconds, args.clients)
        print(f"overhead, {args.writes:,} INSERTs into :memory: SQLite, best of 3:")
        overhead(port, args.writes)
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
