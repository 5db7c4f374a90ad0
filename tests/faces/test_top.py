"""``dbpulse top`` in a real terminal (a pty) and piped.

Its sources here do not answer: each is one line saying so, and the view still runs, keys
included. (The figures after a workload are not covered by this file yet.)
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:1"  # nothing listens on port 1
SOURCES = ["--prometheus", DEAD, "--trace-store", DEAD, "--viz", DEAD, "--timeout", "2"]
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _env(**extra: str) -> dict[str, str]:
    path = str(REPO_ROOT / "instrumentation")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")]),
        **extra,
    }


def test_piped_once_is_plain_text_naming_the_unreachable_sources() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dbpulse.cli", "top", "--once", *SOURCES],
        env=_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert b"\x1b[" not in done.stdout
    text = done.stdout.decode()
    assert f"✘ Prometheus at {DEAD}: connection refused" in text
    assert f"✘ viz server at {DEAD}: connection refused" in text
    assert "sort calls" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def _read_until(fd: int, needle: bytes, seen: bytearray, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in ANSI.sub(b"", bytes(seen)):
        assert time.monotonic() < deadline, f"{needle!r} never shown: {bytes(seen[-400:])!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break


def test_key_s_changes_the_sort_in_a_terminal() -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: dbpulse top on an 80x24 terminal
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "dbpulse.cli", "top", "--interval", "1", *SOURCES],
            _env(COLUMNS="80", LINES="24", TERM="xterm-256color"),
        )
    seen = bytearray()
    try:
        _read_until(fd, b"sort calls", seen)
        os.write(fd, b"s")
        _read_until(fd, b"sort total", seen)
        os.write(fd, b"s")
        _read_until(fd, b"sort p95", seen)
        os.write(fd, b"q")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0
                break
            time.sleep(0.2)
        else:
            raise AssertionError("dbpulse top did not quit on q")
        pid = 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_once_shows_the_workload_with_its_counts(faced: Any) -> None:
    from tests.faces import workload

    argv = [sys.executable, "-m", "dbpulse.cli", "top", "--once", "--service", faced.service]
    tall = {**faced.env, "LINES": "60"}  # 24 lines (the default) hold the busiest rows only
    done = subprocess.run([*argv, *faced.sources()], env=tall, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "✘" not in text  # every source answered
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[0] in {"sqlite", "redis"}:
            rows[(cells[1], cells[2])] = cells[3]
    assert rows[("INSERT", "faces_books")] == str(workload.INSERTS)
    assert rows[("SELECT", "faces_books")] == str(workload.SELECTS)
    assert rows[("UPDATE", "faces_books")] == str(workload.UPDATES)
    assert rows[("SELECT", "faces_missing")] == str(workload.FAILED)

    snap = subprocess.run(
        [*argv, "--json", *faced.sources()], env=faced.env, capture_output=True, timeout=60
    )
    activity = json.loads(snap.stdout)["activity"]
    assert activity["errors"] == workload.FAILED
    assert activity["cache_requests"] == 3 and round(activity["cache_hit_ratio"], 3) == 0.667
    assert activity["sampling"] == {faced.service: "detailed"}
