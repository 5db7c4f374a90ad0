"""One small JSON-over-HTTP client that every source of the read model uses, and the one way a
source that does not answer is reported.

Usage::

    from dbpulse.faces.http import JsonSource, Unreachable

    source = JsonSource("Prometheus", "http://127.0.0.1:9090", timeout_s=3)
    try:
        payload = source.get("/api/v1/query", {"query": "up"})
    except Unreachable as exc:
        print(exc)          # "Prometheus at http://127.0.0.1:9090: connection refused"

Everything that goes wrong (refused, timed out, an HTTP error status, a body that is not JSON)
becomes :class:`Unreachable`, whose message is one line naming the source and its address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["JsonSource", "Unreachable"]

#: Answers larger than this are refused: the read model asks bounded questions.
MAX_BODY_BYTES = 16 * 1024 * 1024


class Unreachable(Exception):
    """A source did not answer usefully; ``str()`` is one line: ``"<name> at <url>: <why>"``."""

    def __init__(self, source: str, url: str, reason: str) -> None:
        super().__init__(f"{source} at {url}: {reason}")
        self.source = source
        self.url = url
        self.reason = reason


def _reason(exc: httpx.HTTPError, timeout_s: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout_s:g} s"
    text = str(exc)
    if isinstance(exc, httpx.ConnectError):
        lowered = text.lower()
        if "refused" in lowered:
            return "connection refused"
        if "name or service not known" in lowered or "nodename nor servname" in lowered:
            return "unknown host"
    return text.splitlines()[0] if text else type(exc).__name__


class JsonSource:
    """GET JSON from one HTTP API (``name`` and ``url`` say which in every error)."""

    def __init__(
        self, name: str, url: str, timeout_s: float = 3.0, token: str | None = None
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.url, timeout=timeout_s, headers=headers)

    def unreachable(self, reason: str) -> Unreachable:
        return Unreachable(self.name, self.url, reason)

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        allow: tuple[int, ...] = (),
    ) -> Any:
        """The decoded JSON of ``GET path``; a status in ``allow`` returns None instead of
        raising (a trace store's 404 for a trace it has not stored)."""
        try:
            response = self._client.get(path, params=dict(params or {}))
        except httpx.HTTPError as exc:
            raise self.unreachable(_reason(exc, self.timeout_s)) from None
        if response.status_code in allow:
            return None
        if len(response.content) > MAX_BODY_BYTES:
            raise self.unreachable(f"answer over {MAX_BODY_BYTES // 2**20} MiB")
        if response.status_code >= 400:
            detail = _error_text(response)
            raise self.unreachable(
                f"HTTP {response.status_code} on {path}" + (f": {detail}" if detail else "")
            )
        try:
            return response.json()
        except ValueError:
            raise self.unreachable(f"{path} did not answer JSON") from None

    def text(self, path: str) -> tuple[int, str]:
        """Status and body of ``GET path`` (probes such as Tempo's ``/api/echo``)."""
        try:
            response = self._client.get(path)
        except httpx.HTTPError as exc:
            raise self.unreachable(_reason(exc, self.timeout_s)) from None
        return response.status_code, response.text[:1000]

    def close(self) -> None:
        self._client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    if isinstance(payload, Mapping):
        for key in ("error", "errors", "message", "detail"):
            if payload.get(key):
                return str(payload[key])[:200]
    return ""
