"""Shared helpers of the viz tests: real servers on free loopback ports, Chromium, spans."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from websockets.sync.client import connect

from dbpulse.core.isbn import complete_isbn13
from dbpulse.viz import VizConfig, VizServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def exchange(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send ``request`` on a fresh connection; the answer's status and body (it must come
    within ``timeout`` seconds)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in answer or not _complete(answer):
            assert time.monotonic() < deadline, f"no answer within {timeout} s: {answer[:200]!r}"
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no answer within {timeout} s to {request[:300]!r}") from None
            if not chunk:
                break
            answer += chunk
    assert answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), (
        f"{answer[:200]!r} for {request[:300]!r}"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False  # read until the server closes (Connection: close)


def http_request(
    method: str, target: str, headers: list[tuple[str, bytes]], body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode()]
    lines += [name.encode() + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is reproducible, CI is stable
    database=None,
    suppress_health_check=list(HealthCheck),
)
"""Hypothesis settings of the HTTP fuzz tests; each passes its own ``max_examples``."""


class ErrorLog(logging.Handler):
    """ERROR records of the given loggers (uvicorn's, dbpulse's) while in use: a traceback
    there is a bug even when the client got an answer."""

    def __init__(self, *names: str) -> None:
        super().__init__(logging.ERROR)
        self.names = names or ("uvicorn.error", "dbpulse")
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]

    def __enter__(self) -> ErrorLog:
        for name in self.names:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            logging.getLogger(name).removeHandler(self)


@contextmanager
def viz_server(**overrides: Any) -> Iterator[VizServer]:
    server = VizServer(VizConfig(**{"port": 0, **overrides})).start()
    try:
        yield server
    finally:
        server.stop()


def chromium_path() -> str | None:
    return os.environ.get("DBPULSE_CHROMIUM") or shutil.which("chromium")


def require_chromium() -> str:
    """Chromium's path; skip (or fail in CI) when Debian's chromium is missing."""
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        message = (
            "Chromium or Playwright for Python missing: run scripts/services.sh packages "
            "(Debian's chromium) and pip install playwright; never `playwright install`"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_redis(host: str = "127.0.0.1", port: int | None = None) -> str:
    port = port or int(os.environ.get("DBPULSE_REDIS_PORT", "6379"))
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            ok = sock.recv(16).startswith(b"+PONG")
    except OSError:
        ok = False
    if not ok:
        message = f"no Redis server on {host}:{port}: run scripts/services.sh redis"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return f"redis://{host}:{port}/0"


class SlowServer:
    """A TCP server that accepts connections and never answers: a hanging viz server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


ISBNS = [
    "9780140449136",
    "9780306406157",
    "9780262033848",
    "9780131103627",
    "9780201633610",
    "9781492056355",
]


def isbn13(n: int) -> str:
    """A valid ISBN-13 derived from ``n`` (dbpulse's one check-digit implementation)."""
    return complete_isbn13(f"978{n % 10**9:09d}")


class SqliteWriter:
    """Writes books to a real SQLite file and reports each write as the dbpulse instrumentors
    would (a CLIENT span with the contract's attributes). Used where the test is about the
    viz path, not about the instrumentors."""

    def __init__(self, path: Path, provider: TracerProvider) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS books (isbn TEXT PRIMARY KEY, title TEXT)")
        self.tracer = provider.get_tracer("tests.viz")

    def write(self, operation: str, isbn: str, title: str = "A book") -> None:
        sql = {
            "INSERT": "INSERT OR REPLACE INTO books (isbn, title) VALUES (?, ?)",
            "UPDATE": "UPDATE books SET title = ? WHERE isbn = ?",
            "DELETE": "DELETE FROM books WHERE isbn = ?",
        }[operation]
        params: tuple[str, ...] = {
            "INSERT": (isbn, title),
            "UPDATE": (title, isbn),
            "DELETE": (isbn,),
        }[operation]
        with self.tracer.start_as_current_span(
            f"{operation} books",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "sqlite",
                "db.namespace": "books.db",
                "db.operation.name": operation,
                "db.collection.name": "books",
                "book.isbn": isbn,
            },
        ):
            self.conn.execute(sql, params)
            self.conn.commit()

    def close(self) -> None:
        self.conn.close()


class Collector:
    """A WebSocket client that keeps every db_write event it receives."""

    def __init__(self, url: str) -> None:
        self._cm = connect(url.replace("http", "ws", 1) + "/ws/viz")
        self.ws = self._cm.__enter__()
        self.events: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                self.messages.append(message)
                if message.get("type") == "events":
                    self.events.extend(e for e in message["events"] if e["type"] == "db_write")
        except Exception:
            return

    def total(self, isbn: str) -> float:
        return sum(e["count"] for e in self.events if e.get("isbn") == isbn)

    def close(self) -> None:
        self._cm.__exit__(None, None, None)
