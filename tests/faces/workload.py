"""The known workload the faces' tests read back: one instrumented application process.

::

    python -m tests.faces.workload --sqlite /tmp/w.db --redis redis://... --prefix faces-ab12

It makes (exact counts the tests assert):

* SQLite table ``faces_books``: 6 INSERTs (one ISBN each, :data:`ISBNS`), 4 SELECTs, 1 UPDATE;
  2 failing SELECTs of ``faces_missing`` (SQLITE_ERROR);
* Redis: 2 SETs, 3 GETs (2 hits, 1 miss) under ``<prefix>:``;
* pattern flows: 3 delivered on ``<prefix>.live`` (a consumer in this process, with a heartbeat),
  1 published on ``<prefix>.dead`` where nobody listens (it stays stuck).

Telemetry goes where the ``OTEL_*`` variables say; the viz feed where ``DBPULSE_VIZ_URL`` says.
It prints one JSON line: the flow ids and the channels.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time

ISBNS = (
    "9780306406157",
    "9780131103627",
    "9780262033848",
    "9781492052203",
    "9780306406157",
    "9780306406157",
)
INSERTS, SELECTS, UPDATES, FAILED = 6, 4, 1, 2
FLOWS = 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()

    import redis

    import dbpulse
    from dbpulse import flow
    from dbpulse.demo import flows as demo_flows

    telemetry = dbpulse.configure()
    dbpulse.instrument()
    db = sqlite3.connect(args.sqlite, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS faces_books (isbn TEXT, title TEXT, copies INT)")
    for isbn in ISBNS:
        db.execute("INSERT INTO faces_books (isbn, title, copies) VALUES (?, 't', 1)", (isbn,))
    for isbn in ISBNS[:SELECTS]:
        db.execute("SELECT title FROM faces_books WHERE isbn = ?", (isbn,)).fetchall()
    db.execute("UPDATE faces_books SET copies = copies + 1 WHERE isbn = ?", (ISBNS[0],))
    for _ in range(FAILED):
        try:
            db.execute("SELECT isbn FROM faces_missing")
        except sqlite3.OperationalError:
            pass
    db.close()

    cache = redis.Redis.from_url(args.redis)
    cache.set(f"{args.prefix}:a", "1", ex=300)
    cache.set(f"{args.prefix}:b", "1", ex=300)
    for key in ("a", "b", "nope"):
        cache.get(f"{args.prefix}:{key}")

    live, dead = f"{args.prefix}.live", f"{args.prefix}.dead"
    options = demo_flows.ConsumerOptions(
        redis_url=args.redis,
        channel=live,
        users=3,
        count=FLOWS,
        duration=60,
        heartbeat_interval=1.0,
        seed=1,
    )
    consumer = threading.Thread(target=demo_flows.run_consumer, args=(options,))
    consumer.start()
    deadline = time.monotonic() + 30
    while cache.pubsub_numsub(live)[0][1] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    payload = {"symbol": "AAPL", "pattern_name": "Doji", "confidence": 0.9}
    delivered = [flow.publish(cache, live, payload) for _ in range(FLOWS)]
    stuck = flow.publish(cache, dead, payload)
    consumer.join(60)
    time.sleep(1.5)  # one more heartbeat and metric export after the last delivery
    cache.close()
    telemetry.shutdown()
    print(json.dumps({"delivered": delivered, "stuck": stuck, "live": live, "dead": dead}))


if __name__ == "__main__":
    main()
