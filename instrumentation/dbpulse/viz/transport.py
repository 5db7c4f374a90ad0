"""How the feed's events reach the viz server: one POST per batch over ``http.client``.

Usage (the feed thread of :class:`dbpulse.viz.VizFeedProcessor` does this)::

    client = EmitClient("http://127.0.0.1:8765", token="s3cret", timeout=1.0)
    if not client.post(events, client.timeout):
        ...  # keep the batch; try again once time.monotonic() >= client.retry_at

Standard library only, one kept-alive connection. A post takes at most its ``timeout`` in all
(connecting, sending and waiting for the answer share it), so a hanging server costs the feed
thread no more than that per attempt. While the server is unreachable, ``retry_at`` backs off
exponentially up to ``max_backoff``. A 4xx answer (other than 408 and 429) means the server
will refuse the same batch again: it is dropped, counted in ``rejected_events`` and logged once.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from dbpulse.viz.events import EMIT_PATH

__all__ = ["YIELD_EVERY", "EmitClient"]

_log = logging.getLogger("dbpulse.viz")

YIELD_EVERY = 64
"""The feed thread gives the GIL back every this many spans/events (~0.5 ms of work): an
application thread that released the GIL in a driver call would otherwise wait up to the
interpreter's 5 ms switch interval to get it back."""

# Below this a socket timeout is as good as none left; a post then fails at once.
_MIN_TIMEOUT = 0.001


class EmitClient:
    """POSTs ``{"events": [...]}`` batches to a viz server's ``/api/viz/emit``.

    Args:
        url: base URL of the viz server (``http://127.0.0.1:8765``) or the full emit URL.
        token: bearer token the server expects, if any.
        timeout: the longest one post may take, in seconds (short on purpose).
        base_backoff: the first pause after a failed post; it doubles with each failure.
        max_backoff: longest pause between attempts while the server is unreachable.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 1.0,
        base_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"viz feed URL must look like http://127.0.0.1:8765, got {url!r}")
        path = parts.path.rstrip("/")
        self._path = path if path.endswith(EMIT_PATH) else path + EMIT_PATH
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self.url = f"{parts.scheme}://{parts.netloc}{self._path}"
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self._conn: http.client.HTTPConnection | None = None
        self.reset()

    def reset(self) -> None:
        """Start afresh (a forked child): counters at zero, the parent's socket left alone."""
        self._conn = None
        self._failures = 0
        self.retry_at = 0.0
        self.sent_events = 0
        self.sent_batches = 0
        self.failed_posts = 0
        self.rejected_events = 0
        self.last_error: str | None = None
        self.connected = False

    def stats(self) -> dict[str, Any]:
        return {
            "sent_events": self.sent_events,
            "sent_batches": self.sent_batches,
            "failed_posts": self.failed_posts,
            "rejected_events": self.rejected_events,
            "connected": self.connected,
            "last_error": self.last_error,
        }

    def post(self, events: list[dict[str, Any]], timeout: float) -> bool:
        """Send one batch within ``timeout`` seconds. False means "keep it and retry later"."""
        body = _encode(events)
        give_up = time.monotonic() + timeout
        try:
            conn = self._connection(timeout)
            if conn.sock is None:
                conn.connect()
            _remaining(conn, give_up)
            conn.request("POST", self._path, body=body, headers=self.headers)
            _remaining(conn, give_up)
            response = conn.getresponse()
            status = response.status
            detail = response.read(2048)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return self._failed(f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            self._failures = 0
            self.retry_at = 0.0
            self.connected = True
            self.sent_events += len(events)
            self.sent_batches += 1
            return True
        message = f"HTTP {status}: {detail.decode('utf-8', 'replace')[:200]}"
        if 400 <= status < 500 and status not in (408, 429):
            self.rejected_events += len(events)
            if self.last_error != message:
                _log.warning("dbpulse: viz server refused %d events: %s", len(events), message)
            self.last_error = message
            self.connected = True
            return True
        return self._failed(message)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=timeout)
            self._conn = conn
        else:
            conn.timeout = timeout
        return conn

    def _failed(self, message: str) -> bool:
        self.failed_posts += 1
        self._failures += 1
        self.connected = False
        if self.last_error != message:
            _log.info("dbpulse: viz server unreachable (%s); backing off", message)
        self.last_error = message
        backoff = min(self.max_backoff, self.base_backoff * (2 ** min(self._failures, 16)))
        self.retry_at = time.monotonic() + backoff
        return False


def _remaining(conn: http.client.HTTPConnection, give_up: float) -> None:
    # Each socket operation gets what is left of the post's budget, so that connecting,
    # sending and reading the answer cannot each take a whole timeout.
    if conn.sock is not None:
        conn.sock.settimeout(max(_MIN_TIMEOUT, give_up - time.monotonic()))


def _encode(events: list[dict[str, Any]]) -> bytes:
    """``{"events": [...]}`` as JSON, encoded in slices so the GIL is released in between."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    parts = []
    for start in range(0, len(events), YIELD_EVERY):
        parts.append(dumps(events[start : start + YIELD_EVERY])[1:-1])
        time.sleep(0)
    return ('{"events":[' + ",".join(p for p in parts if p) + "]}").encode()
