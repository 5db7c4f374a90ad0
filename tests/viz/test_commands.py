"""``dbpulse viz`` and ``dbpulse demo`` as a user runs them: real processes, real ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

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


@pytest.mark.parametrize("command", ["viz", "demo"])
def test_a_busy_port_is_one_line_naming_the_option(command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "dbpulse.cli", command, "--port", str(port)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line == (
        f"dbpulse {command}: port {port} on 127.0.0.1 is already in use (another dbpulse?): "
        "choose another with --port"
    )


def test_sigterm_ends_the_demo_with_its_summary_and_no_temporary_directory(tmp_path) -> None:
    env = {**_env(), "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "dbpulse.cli", "demo", "--port", "0", "--no-summary"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: any(tmp_path.glob("dbpulse-demo-*/books.db")), timeout=30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read() if process.stdout else ""
    assert "demo done:" in output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [[], ["demo"], ["viz"], ["health"]])
def test_help_shows_no_type_for_flags(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dbpulse.cli", *command, "--help"],
        env={**_env(), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--help" in result.stdout
    assert "<bool>" not in result.stdout
