"""The cache workload: book lookups through a Redis cache (cache-aside), hits and misses.

Per tick it looks a book up by ISBN: ``GET book:<isbn>``; on a miss it "loads" the record (a
short pause standing for the database) and stores it with ``SET ... EX ttl``. Popular books
stay cached, the long tail misses, so the cache hit ratio panel shows a ratio between 0 and 1
(``dbpulse.cache.requests`` by ``dbpulse.cache.result``). Every 10th lookup is a batch
(``MGET`` of a few ISBNs, one hit or miss per key)::

    with stop_on_signals() as stop:
        report = run_cache(CacheOptions(redis_url="redis://127.0.0.1:6379/0"), stop)

Run it as ``dbpulse demo cache`` (under ``opentelemetry-instrument`` for telemetry).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from dbpulse.demo.books import Catalogue
from dbpulse.demo.running import paced

__all__ = ["CacheOptions", "CacheReport", "run_cache"]


@dataclass
class CacheOptions:
    redis_url: str = "redis://127.0.0.1:6379/0"
    rate: float = 20.0
    """Lookups per second."""
    isbns: int = 5000
    ttl: int = 30
    """Seconds a cached book lives; shorter means more misses."""
    prefix: str = "dbpulse:demo:book:"
    load_seconds: float = 0.002
    """What a miss costs besides Redis: the simulated database read."""
    duration: float | None = None
    seed: int | None = 11


@dataclass
class CacheReport:
    hits: int = 0
    misses: int = 0

    @property
    def ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def run_cache(options: CacheOptions, stop: threading.Event | None = None) -> CacheReport:
    """Look books up until ``stop`` is set (or ``duration`` passes); returns hits and misses."""
    import redis  # the redis extra

    stop = stop or threading.Event()
    report = CacheReport()
    catalogue = Catalogue(options.isbns, seed=options.seed)
    client = redis.Redis.from_url(options.redis_url)

    def load(isbn: str) -> None:
        stop.wait(options.load_seconds)
        record = {"isbn": isbn, "title": catalogue.title(isbn), "price": catalogue.price()}
        client.set(options.prefix + isbn, json.dumps(record), ex=options.ttl)

    try:
        for tick in paced(options.rate, stop, options.duration):
            isbns = [catalogue.pick() for _ in range(4 if tick % 10 == 9 else 1)]
            keys = [options.prefix + isbn for isbn in isbns]
            found = client.mget(keys) if len(keys) > 1 else [client.get(keys[0])]
            for isbn, value in zip(isbns, found, strict=True):
                if value is None:
                    report.misses += 1
                    load(isbn)
                else:
                    report.hits += 1
    finally:
        client.close()
    return report
