"""The workload building blocks the compose services run, without any backend."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from dbpulse.core.isbn import check13
from dbpulse.demo.books import Catalogue
from dbpulse.demo.running import paced, rerun_on, stop_on_signals


def test_the_catalogue_is_valid_isbns_with_a_popular_head() -> None:
    catalogue = Catalogue(size=500, seed=1)
    assert len(set(catalogue.isbns)) == 500
    assert all(check13(isbn) == isbn for isbn in catalogue.isbns)
    picks = [catalogue.pick() for _ in range(5000)]
    top = max(picks.count(isbn) for isbn in set(picks))
    assert top > 5000 / 500 * 10, "the most popular book is picked far more than average"


def test_paced_stops_on_count_and_on_the_event() -> None:
    stop = threading.Event()
    assert list(paced(0, stop, count=5)) == [0, 1, 2, 3, 4]
    seen = []
    for index in paced(1000.0, stop):
        seen.append(index)
        if index == 9:
            stop.set()
    assert seen == list(range(10))


def test_sigterm_sets_the_stop_event_and_the_old_handler_returns() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2)
    assert signal.getsignal(signal.SIGTERM) is before


def test_rerun_on_rides_out_listed_errors_only() -> None:
    stop = threading.Event()
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("lost")
        return "done"

    assert rerun_on((ConnectionError,), flaky, stop, pause=0.01) == "done"
    assert len(attempts) == 3

    def broken() -> str:
        raise ValueError("a bug, not a lost connection")

    with pytest.raises(ValueError):
        rerun_on((ConnectionError,), broken, stop, pause=0.01)

    def lost() -> str:
        raise ConnectionError("lost while stopping")

    stop.set()
    with pytest.raises(ConnectionError):
        rerun_on((ConnectionError,), lost, stop, pause=0.01)


def test_the_execution_log_records_each_run_and_continues_after_a_restart(tmp_path) -> None:
    duckdb = pytest.importorskip("duckdb")
    from dbpulse.demo.executions import ExecutionsOptions, run_executions

    path = str(tmp_path / "executions.duckdb")
    first = run_executions(ExecutionsOptions(database=path, rate=0, count=20, failure_rate=0.5))
    assert first.statements == {"CREATE": 1, "SELECT": 21, "INSERT": 20, "UPDATE": 20}
    assert sum(first.by_status.values()) == 20 and set(first.by_status) == {"ok", "failed"}
    assert {status: n for status, n, _ in first.summary} == first.by_status
    again = run_executions(ExecutionsOptions(database=path, rate=0, count=5, seed=4))
    assert again.count("INSERT") == 5
    with duckdb.connect(path) as con:
        ids = [row[0] for row in con.execute("SELECT id FROM executions ORDER BY id").fetchall()]
        assert ids == list(range(1, 26))
        running = con.execute("SELECT count(*) FROM executions WHERE status = 'running'")
        assert running.fetchone() == (0,)
