"""A WSGI application under gunicorn ``--preload`` with three workers: the master writes before
forking, the workers serve the writes. Summed over the processes, dbpulse's counts must be the
rows in the database: no worker re-exports the master's counts, none loses its own."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.clients._sink import OtlpSink
from tests.clients.conftest import app_env
from tests.harness.processes import free_port, wait_until

WORKERS = 3
REQUESTS = [1 + i % 3 for i in range(30)]  # rows each /write request inserts: 60 in all
SEED = 5  # rows the master writes at import


def serve(directory: Path, env: dict[str, str], instrumented: bool) -> tuple[list[str], set[str]]:
    """Start gunicorn, make the requests from 6 threads, stop it gracefully (SIGTERM)."""
    port = free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    launcher = [shutil.which("opentelemetry-instrument") or ""] if instrumented else []
    options = ["--preload", "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "--graceful-timeout=20"]
    server = subprocess.Popen(
        [*launcher, gunicorn, *options, "wsgi_app:app"],
        cwd=directory,
        env={**env, "APP_DB": str(directory / "books.db")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[str, str]:
        with urllib.request.urlopen(base + path, timeout=30) as response:
            return response.read().decode(), response.headers["X-Worker"]

    try:
        wait_until(lambda: get("/count"), 60, 0.1, "gunicorn to answer")
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(get, [f"/write?n={n}" for n in REQUESTS]))
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    return [body.split(" changes")[0] for body, _ in replies], {w for _, w in replies}


def test_gunicorn_preload_workers_sum_to_the_rows_written(sink: OtlpSink, tmp_path: Path):
    sink.clear()
    env = app_env(sink, "gunicorn-app")
    (tmp_path / "plain").mkdir()
    (tmp_path / "instrumented").mkdir()
    with ThreadPoolExecutor(2) as pool:
        plain = pool.submit(serve, tmp_path / "plain", env, False)
        instrumented = pool.submit(serve, tmp_path / "instrumented", env, True)
        plain_replies, _ = plain.result()
        replies, workers = instrumented.result()
    assert sorted(replies) == sorted(plain_replies)
    db = sqlite3.connect(tmp_path / "instrumented" / "books.db")
    by_process = [n for (n,) in db.execute("SELECT count(*) FROM books GROUP BY worker")]
    assert sum(by_process) == SEED + sum(REQUESTS) == 65
    # Each process (master and every worker that served) exported its own rows, nobody else's.
    exported: dict[object, float] = {}
    for point in sink.latest("dbpulse.db.writes"):
        process = (point.resource, point.start)
        exported[process] = exported.get(process, 0) + point.value
    assert len(exported) == 1 + len(workers)
    assert sorted(exported.values()) == sorted(by_process)
    assert sink.by("db.client.operation.duration", "db.operation.name") == {
        "CREATE": 1,
        "INSERT": 65,
        "SELECT": 1,  # the readiness check
    }
