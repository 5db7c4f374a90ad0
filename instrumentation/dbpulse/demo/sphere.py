"""``dbpulse demo``: an ISBN-writing SQLite workload, the viz server and the sphere, in-process.

No Docker, no collector needed. The workload writes through dbpulse's own SQLite
instrumentation (``dbpulse.instrument``), so what the sphere shows is exactly what an
instrumented application would feed it, sampler included: every 30 s a burst at ten times the
rate pushes the adaptive sampler out of detailed mode, and the sphere keeps showing every write
because the feed merges the exact counters (``docs/viz.md``).

When the process already has an SDK (``opentelemetry-instrument dbpulse demo``, an application
that configured one), the demo feeds the sphere from that provider and replaces nothing. Else,
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, it also exports its spans and metrics there through
``dbpulse.configure()`` (the docker-compose stack uses this).
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased

from dbpulse.core.isbn import complete_isbn13
from dbpulse.demo.running import stop_on_signals
from dbpulse.viz import VizConfig, VizFeedProcessor, VizServer

__all__ = ["DemoWorkload", "isbn13", "run_demo"]


def isbn13(n: int) -> str:
    """A valid ISBN-13 (978 prefix) derived from ``n``."""
    return complete_isbn13(f"978{n % 10**9:09d}")


@dataclass
class DemoWorkload:
    """Writes books into SQLite at ``rate`` writes/s: inserts, updates (skewed towards a few
    popular ISBNs, so the heat view has something to show) and some deletes."""

    path: Path
    rate: float = 200.0
    isbns: int = 5000
    burst_every: float = 30.0
    seed: int = 7
    counts: dict[str, int] = field(default_factory=lambda: {"insert": 0, "update": 0, "delete": 0})
    errors: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pool = [isbn13(1_000_003 * i + 12_345) for i in range(self.isbns)]

    def start(self) -> DemoWorkload:
        self._thread = threading.Thread(target=self._run, name="dbpulse-demo-workload", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        rng = random.Random(self.seed)
        conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS books "
            "(isbn TEXT PRIMARY KEY, title TEXT, price REAL, updated REAL)"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS prices (isbn TEXT, price REAL, seen REAL)")
        conn.commit()
        present: set[str] = {row[0] for row in conn.execute("SELECT isbn FROM books")}
        started = time.monotonic()
        next_write = started
        while not self._stop.is_set():
            now = time.monotonic()
            in_burst = self.burst_every > 0 and (now - started) % self.burst_every > (
                self.burst_every - 5
            )
            interval = 1.0 / (self.rate * (10 if in_burst else 1))
            # Popular books are written more often: a Pareto-skewed pick.
            index = min(int((rng.paretovariate(1.2) - 1) * 25), self.isbns - 1)
            isbn = (
                self.pool[(index * 7919) % self.isbns]
                if rng.random() < 0.6
                else rng.choice(self.pool)
            )
            try:
                if isbn not in present:
                    conn.execute(
                        "INSERT INTO books (isbn, title, price, updated) VALUES (?, ?, ?, ?)",
                        (isbn, f"Book {isbn[-5:]}", round(rng.uniform(3, 60), 2), time.time()),
                    )
                    present.add(isbn)
                    self.counts["insert"] += 1
                elif rng.random() < 0.06:
                    conn.execute("DELETE FROM books WHERE isbn = ?", (isbn,))
                    present.discard(isbn)
                    self.counts["delete"] += 1
                elif rng.random() < 0.3:
                    conn.execute(
                        "INSERT INTO prices (isbn, price, seen) VALUES (?, ?, ?)",
                        (isbn, round(rng.uniform(3, 60), 2), time.time()),
                    )
                    self.counts["insert"] += 1
                else:
                    conn.execute(
                        "UPDATE books SET price = ?, updated = ? WHERE isbn = ?",
                        (round(rng.uniform(3, 60), 2), time.time(), isbn),
                    )
                    self.counts["update"] += 1
                conn.commit()
            except sqlite3.Error:
                self.errors += 1
            next_write += interval
            delay = next_write - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:
                next_write = time.monotonic()  # fell behind: do not try to catch up forever
        conn.close()


@dataclass
class _Borrowed:
    """The process's own SDK, lent to the demo: on exit the demo stops its feed and flushes the
    providers, but shuts down nothing it did not build."""

    provider: TracerProvider
    feed: VizFeedProcessor

    def shutdown(self) -> None:
        self.feed.shutdown()
        for provider in (self.provider, metrics.get_meter_provider()):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                flush()


def _telemetry(server_url: str, token: str | None) -> tuple[Any, VizFeedProcessor | None]:
    """Instrument SQLite with dbpulse and feed the in-process viz server."""
    import dbpulse
    from dbpulse.telemetry.sampler import LOAD, AdaptiveSampler

    configured = trace.get_tracer_provider()
    if isinstance(configured, TracerProvider):
        # Setting providers again would only make the API refuse, loudly ("Overriding of
        # current TracerProvider is not allowed"): add the sphere's feed to the one in place.
        feed = VizFeedProcessor(server_url, token=token)
        configured.add_span_processor(feed)
        dbpulse.instrument(systems=("sqlite",))
        return _Borrowed(configured, feed), feed
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        os.environ["DBPULSE_VIZ_URL"] = server_url
        if token:
            os.environ["DBPULSE_VIZ_TOKEN"] = token
        telemetry = dbpulse.configure(
            service_name=os.environ.get("OTEL_SERVICE_NAME", "dbpulse-demo")
        )
        dbpulse.instrument(systems=("sqlite",))
        return telemetry, None
    feed = VizFeedProcessor(server_url, token=token)
    provider = TracerProvider(sampler=ParentBased(AdaptiveSampler(LOAD)))
    provider.add_span_processor(feed)
    dbpulse.instrument(systems=("sqlite",), tracer_provider=provider)
    return provider, feed


def _summary(
    url: str,
    workload: DemoWorkload,
    server: VizServer,
    feed: VizFeedProcessor | None,
    elapsed: float,
) -> Any:
    from rich.table import Table

    from dbpulse.telemetry.sampler import LOAD

    hub = server.hub
    stats = hub.stats()
    table = Table(title=f"dbpulse demo · sphere at {url}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    written = sum(workload.counts.values())
    table.add_row("running", f"{elapsed:,.0f} s")
    table.add_row(
        "writes (app)",
        f"{written:,}  ·  insert {workload.counts['insert']:,}  update "
        f"{workload.counts['update']:,}  delete {workload.counts['delete']:,}",
    )
    table.add_row("writes/s (sphere)", f"{stats['writes_per_s']:,.0f}")
    table.add_row("sampler", f"{LOAD.mode} (p={LOAD.probability:g})")
    table.add_row("sphere", f"{stats['known_isbns']:,} ISBNs · {stats['clients']} page(s) open")
    table.add_row(
        "writes (sphere)",
        f"{sum(hub.by_operation.values()):,.0f} in {stats['events_received']:,} events",
    )
    if feed is not None:
        table.add_row("feed", f"sent {feed.sent_events:,} · dropped {feed.dropped():,}")
    return table


def run_demo(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    duration: float | None = None,
    rate: float = 200.0,
    isbns: int = 5000,
    db: Path | None = None,
    token: str | None = None,
    summary: bool = True,
) -> dict[str, Any]:
    """Run the demo until Ctrl-C or ``duration`` seconds; returns final counts."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    server = VizServer(VizConfig(host=host, port=port, token=token)).start()  # PortInUse first
    # SIGTERM (a container stopping, `kill`) and Ctrl-C end the demo the same way from here on,
    # before the temporary database exists: it is removed and the summary printed.
    with stop_on_signals() as stop:
        tmpdir = None
        if db is None:
            tmpdir = tempfile.TemporaryDirectory(prefix="dbpulse-demo-")
            db = Path(tmpdir.name) / "books.db"
        url = server.url + "/"
        console.print(
            f"[bold]dbpulse demo[/bold]: sphere at [link={url}]{url}[/link]  (Ctrl-C stops)"
        )
        console.print(f"SQLite workload: {rate:g} writes/s over {isbns:,} ISBNs into {db}")
        telemetry, feed = _telemetry(server.url, token)
        workload = DemoWorkload(db, rate=rate, isbns=isbns).start()
        started = time.monotonic()

        def running() -> bool:
            return not stop.is_set() and (duration is None or time.monotonic() - started < duration)

        try:
            if summary:
                with Live(console=console, refresh_per_second=2, transient=False) as live:
                    while running():
                        live.update(
                            _summary(url, workload, server, feed, time.monotonic() - started)
                        )
                        stop.wait(0.5)
            else:
                while running():
                    stop.wait(0.2)
            if stop.is_set():
                console.print("stopping…")
        except KeyboardInterrupt:
            console.print("stopping…")
        finally:
            workload.stop()
            import dbpulse

            dbpulse.uninstrument(systems=("sqlite",))
            telemetry.shutdown()
            writes = dict(workload.counts)
            result: dict[str, Any] = {
                "url": url,
                "writes": writes,
                "events_received": server.hub.counters["events_received"],
                "sphere_writes": sum(server.hub.by_operation.values()),
                "known_isbns": len(server.hub.slots),
            }
            server.stop()
            if tmpdir is not None:
                tmpdir.cleanup()
    console.print(
        f"\ndemo done: {sum(writes.values()):,} writes; the viz server received "
        f"{result['events_received']:,} events standing for {result['sphere_writes']:,.0f} writes"
    )
    return result
