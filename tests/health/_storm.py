"""One writer process of the lock-storm test (importable for multiprocessing's spawn)."""

from __future__ import annotations

import dbpulse
from dbpulse.health.retry import RETRIES


def writer(path: str, worker: int, writes: int) -> dict[str, int]:
    """``writes`` inserts through ``dbpulse.retry`` on a 1 ms busy timeout."""
    conn = dbpulse.sqlite_connect(path, busy_timeout_ms=1, isolation_level=None)
    policy = dbpulse.retry(max_attempts=40, initial_delay=0.005, max_delay=0.2)
    retried = max_used = errors = 0
    for seq in range(writes):
        try:
            for attempt in policy:
                with attempt:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.execute(
                            "INSERT INTO writes (worker, seq) VALUES (?, ?)", (worker, seq)
                        )
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
            retried += attempt.number - 1
            max_used = max(max_used, attempt.number)
        except Exception:
            errors += 1
    conn.close()
    return {
        "attempted": writes,
        "retried": retried,
        "max_attempts_used": max_used,
        "errors": errors,
        "counted_retried": RETRIES.total("retried"),
        "counted_succeeded": RETRIES.total("succeeded_after_retry"),
        "counted_gave_up": RETRIES.total("gave_up"),
    }
