"""``dbpulse viz`` and ``dbpulse demo`` as a user runs them: real processes, real ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.viz._support import ROOT, Collector, free_port, wait_for


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "instrumentation"), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    return env


@contextmanager
def dbpulse(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dbpulse.cli", *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_dbpulse_viz_serves_the_sphere_and_guards_emit() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with dbpulse("viz", "--port", str(port), "--token", "s3cret") as process:
        wait_for(lambda: healthy(url) or process.poll() is not None, timeout=30)
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        page = httpx.get(url + "/")
        script = httpx.get(url + "/static/sphere.js")
        refused = httpx.post(url + "/api/viz/emit", json={"events": []})
    output = process.stdout.read() if process.stdout else ""
    assert page.status_code == 200 and "sphere.js" in page.text
    assert script.status_code == 200 and "__dbpulseSphere" in script.text
    assert refused.status_code == 401
    assert f"sphere at http://127.0.0.1:{port}/" in output


def test_dbpulse_demo_writes_books_and_lights_the_sphere() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with dbpulse(
        "demo", "--port", str(port), "--duration", "6", "--rate", "100", "--no-summary"
    ) as process:
        wait_for(lambda: healthy(url) or process.poll() is not None, timeout=30)
        watcher = Collector(url)
        wait_for(lambda: len(watcher.events) >= 20, timeout=20)
        watcher.close()
        assert process.wait(30) == 0
    output = process.stdout.read() if process.stdout else ""
    assert f"sphere at {url}/" in output
    assert "the viz server received" in output
    isbns = {e["isbn"] for e in watcher.events}
    assert all(isbn and len(isbn) == 13 for isbn in isbns)
    assert {e["operation"] for e in watcher.events} & {"insert", "update"}
