"""What the query insights cost on the hot path: the SQLite INSERT loop of ``overhead.py`` in
aggregated mode (exact metrics, no span), with the insights on (per-fingerprint totals, N+1
tracking, slow/failed capture: the defaults) and off (``DBPULSE_TOP_STATEMENTS=0``,
``DBPULSE_N_PLUS_ONE_THRESHOLD=0``, capture off), against the raw driver, taking turns in one
process (medians over the blocks)::

    python benchmarks/insights_cost.py [--rounds 15] [--rows 5000]

Run it with an older checkout on ``PYTHONPATH`` (``PYTHONPATH=<checkout>/instrumentation``) to
compare with code that had no insights: its ``dbpulse aggregated`` row is then the baseline.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead_inprocess import SQLITE_INSERT, Pipeline, take_turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    pipeline = Pipeline()
    try:
        from dbpulse.telemetry.limits import INSIGHTS
    except ImportError:  # a checkout from before the insights
        INSIGHTS = None

    def connection(raw: bool) -> Any:
        conn = (pipeline.raw_sqlite_connect if raw else __import__("sqlite3").connect)(":memory:")
        conn.execute("CREATE TABLE books (isbn TEXT, title TEXT, price REAL, copies INT)")
        conn.execute("BEGIN")
        return conn

    def runner(raw: bool, insights: bool | None) -> Any:
        conn = connection(raw)

        def run(rows: list[Any]) -> None:
            if INSIGHTS is not None and insights is not None:
                INSIGHTS.top_statements = 20 if insights else 0
                INSIGHTS.repeat_threshold = 5 if insights else 0
                INSIGHTS.slow_seconds = 0.2 if insights else float("inf")
                INSIGHTS.capture_errors = insights
            cursor = conn.cursor()
            for row in rows:
                cursor.execute(SQLITE_INSERT, row)

        return run

    runners = {"raw": runner(True, None)}
    if INSIGHTS is None:
        runners["dbpulse aggregated"] = runner(False, None)
    else:
        runners["dbpulse aggregated, insights on"] = runner(False, True)
        runners["dbpulse aggregated, insights off"] = runner(False, False)

    def rows(block: int) -> list[Any]:
        return [(f"{block:06d}{i:07d}", f"t{i}", 9.5, i) for i in range(args.rows)]

    samples = take_turns(runners, pipeline, rows, rounds=args.rounds)
    raw_wall = statistics.median(w for w, _ in samples["raw"])
    raw_cpu = statistics.median(c for _, c in samples["raw"])
    print(f"Python {platform.python_version()}, {args.rounds} rounds of {args.rows} rows")
    print("| variant | wall µs/op | added wall µs/op | CPU µs/op | added CPU µs/op |")
    print("|---|---:|---:|---:|---:|")
    for name, values in samples.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        added = f"{wall - raw_wall:+.2f} | {cpu:.2f} | {cpu - raw_cpu:+.2f}"
        print(f"| {name} | {wall:.2f} | {added} |")


if __name__ == "__main__":
    main()
