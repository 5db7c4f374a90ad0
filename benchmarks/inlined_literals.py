"""SQL with its values inlined (``WHERE id = 42``, an ISBN in a string): every text is new, so
no per-text cache helps. Each variant runs in its own process (instrumentation is
process-wide), ``--rounds`` times, taking turns; medians of µs per statement::

    python benchmarks/inlined_literals.py [--rounds 5] [--rows 10000]

Variants: ``raw`` (the driver), ``contrib`` (the stock opentelemetry-instrumentation-sqlite3,
a span per call to a discarding exporter), ``dbpulse`` (dbpulse's default adaptive sampler,
spans to the same exporter, and its exact metrics). The workload: an INSERT with an ISBN and
a number inlined, then a SELECT by an inlined id, ``--rows`` times each.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import sys, time, sqlite3
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

class Discard(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

variant, rows = sys.argv[1], int(sys.argv[2])
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(Discard()))
trace.set_tracer_provider(provider)
if variant == "contrib":
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    SQLite3Instrumentor().instrument(tracer_provider=provider)
elif variant == "dbpulse":
    from opentelemetry.sdk.metrics import MeterProvider
    import dbpulse
    meters = MeterProvider()
    dbpulse.instrument(systems=("sqlite",), tracer_provider=provider, meter_provider=meters)
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE books (id INTEGER PRIMARY KEY, isbn TEXT, n INTEGER)")
cursor = conn.cursor()
start, cpu = time.perf_counter(), time.process_time()
for i in range(rows):
    cursor.execute(f"INSERT INTO books (isbn, n) VALUES ('978030640{i % 10000:04d}', {i})")
    cursor.execute(f"SELECT * FROM books WHERE id = {i + 1}").fetchall()
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
print(wall / (2 * rows) * 1e6, cpu / (2 * rows) * 1e6)
"""

VARIANTS = ("raw", "contrib", "dbpulse")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=10000)
    args = parser.parse_args()
    path = str(Path(__file__).resolve().parents[1] / "instrumentation")
    env_path = {"PYTHONPATH": path}
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, variant, str(args.rows)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **env_path},
            ).stdout.split()
            results[variant].append((float(out[0]), float(out[1])))
    print(
        f"Python {platform.python_version()}, {args.rounds} rounds of {args.rows:,} INSERT + "
        f"SELECT, {time.strftime('%Y-%m-%d')}\n"
    )
    print("| variant | wall µs/statement | CPU µs/statement | added CPU over raw |")
    print("|---|---:|---:|---:|")
    raw_cpu = statistics.median(c for _, c in results["raw"])
    for variant in VARIANTS:
        wall = statistics.median(w for w, _ in results[variant])
        cpu = statistics.median(c for _, c in results[variant])
        print(f"| {variant} | {wall:.1f} | {cpu:.1f} | {cpu - raw_cpu:+.1f} |")


if __name__ == "__main__":
    main()
