"""``dbpulse health`` as cron and a terminal see it: exit codes, --json, plain text, --watch."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.health._files import huge_freelist, sqlite_file

COMMAND = [sys.executable, "-m", "dbpulse.cli", "health"]


def _interactive_signals() -> None:
    """The child gets SIGINT as an interactive shell gives it (CI may run the suite as a
    background job, whose children inherit SIGINT ignored, so Ctrl-C would not reach them)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_exit_codes_follow_nagios(tmp_path: Path) -> None:
    ok = sqlite_file(tmp_path / "ok.db", wal=True)
    warning = sqlite_file(tmp_path / "warn.db", wal=False)
    assert run(ok).returncode == 0
    assert run(warning).returncode == 1
    assert run(tmp_path / "missing.db").returncode == 2
    assert run(ok, warning).returncode == 1  # the worst target's
    assert run(ok, tmp_path / "missing.db").returncode == 2
    assert not (tmp_path / "missing.db").exists()


def test_bad_arguments_give_one_line_and_exit_3(tmp_path: Path) -> None:
    ok = sqlite_file(tmp_path / "ok.db")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("size: {warning_gb: 1}\n")
    for args, message in (
        ((), "name at least one TARGET"),
        (("notes.txt",), "not a target"),
        (("mysql://h/db",), "unsupported scheme"),
        ((ok, "--thresholds", tmp_path / "absent.yaml"), "cannot read thresholds file"),
        ((ok, "--thresholds", bad_yaml), "size.warning_gb is not a key"),
        ((ok, "--table", "drop table;"), "is not a plain"),
        ((ok, "--interval", "soon"), "Invalid value for '--interval'"),
        ((ok, "--frobnicate"), "No such option"),
    ):
        result = run(*args)
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert result.stdout == ""
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("dbpulse health: ") and message in line, line
        assert "Traceback" not in result.stderr


def test_unreachable_postgres_is_one_line_exit_2() -> None:
    result = run("postgresql://nobody:secret@127.0.0.1:1/none")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "secret" not in result.stdout
    assert "CRITICAL connect" in result.stdout and "cannot connect" in result.stdout


def test_json_shape(tmp_path: Path) -> None:
    ok = sqlite_file(tmp_path / "ok.db", rows=5)
    result = run(ok, tmp_path / "missing.db", "--json", "--table", "events:created_at")
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert set(document) == {"status", "timestamp", "targets"}
    assert document["status"] == "CRITICAL"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", document["timestamp"])
    first, missing = document["targets"]
    assert set(first) == {"target", "kind", "status", "checks"}
    assert first["kind"] == "sqlite" and first["status"] == "OK"
    names = [c["name"] for c in first["checks"]]
    assert names == ["connect", "schema", "size", "configuration", "integrity", "rows:events"]
    for item in first["checks"]:
        assert set(item) == {"name", "status", "reason", "figures", "duration_ms"}
    rows = first["checks"][-1]
    assert rows["figures"]["rows"] == 5
    assert missing["status"] == "CRITICAL" and missing["checks"][0]["name"] == "connect"


def test_plain_text_when_piped(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "app.db", wal=False)
    result = run(path)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("WARNING 20") and lines[0].endswith("(1 target)")
    assert lines[1] == f"{path} [sqlite] WARNING"
    assert any(
        re.match(r"  WARNING  configuration +journal_mode is delete", line) for line in lines
    )
    assert "\x1b[" not in result.stdout  # no terminal escapes in a pipe


def test_thresholds_file_changes_the_verdict(tmp_path: Path) -> None:
    path = huge_freelist(tmp_path / "big.db")  # ~4 MB, 99% free
    limits = tmp_path / "thresholds.yaml"
    limits.write_text(
        "# cron: warn at 1 MB, page at 2 MB\n"
        "size: {warning_mb: 1, critical_mb: 2}\n"
        "freelist: {warning_ratio: null}\n"
        "journal: {require_wal: false}\n"
    )
    assert run(path).returncode == 1  # defaults: only the freelist warns
    result = run(path, "--thresholds", limits, "--json")
    assert result.returncode == 2
    size = next(c for c in json.loads(result.stdout)["targets"][0]["checks"] if c["name"] == "size")
    assert size["status"] == "CRITICAL" and "over 2 MB" in size["reason"]


def _read_until(fd: int, pattern: str, count: int, timeout: float) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if seen.decode(errors="replace").count(pattern) >= count:
                break
    return seen.decode(errors="replace")


def test_watch_in_a_terminal_redraws_every_interval(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "app.db", wal=False)
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [*COMMAND, str(path), "--watch", "--interval", "0.3"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
        preexec_fn=_interactive_signals,
    )
    os.close(slave)
    try:
        output = _read_until(master, "dbpulse health:", 3, timeout=60)
        # A new row arrives between redraws: the watch sees it.
        conn = __import__("sqlite3").connect(path)
        conn.execute("INSERT INTO events (payload, created_at) VALUES ('y', datetime('now'))")
        conn.commit()
        conn.close()
        output += _read_until(master, "dbpulse health:", 2, timeout=60)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 1  # the last verdict: WARNING (rollback journal)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    renders = output.count("dbpulse health:")
    assert renders >= 5, output[-2000:]
    assert "\x1b[" in output  # a Rich table with colours, not plain text
    # Every complete table has the configuration row (the last one may be cut by Ctrl-C).
    assert output.count("configuration") >= renders - 1 and "WARNING" in output
    assert "Traceback" not in output
    print(f"\n--watch drew {renders} tables at 0.3 s intervals")


def test_watch_piped_prints_one_block_per_interval(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "app.db")
    process = subprocess.Popen(
        [*COMMAND, str(path), "--watch", "--interval", "0.2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_interactive_signals,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    documents = [json.loads(line) for line in lines]
    assert [d["status"] for d in documents] == ["OK", "OK", "OK"]
