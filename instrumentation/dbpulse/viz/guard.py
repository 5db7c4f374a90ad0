"""The viz server's door: ``Host`` and ``Origin`` checks, per-client rate limit, viewing token.

Usage (``create_app`` installs it around the FastAPI app)::

    app.add_middleware(Guard, config=config, counters=hub.counters)

Every HTTP request and WebSocket handshake except ``GET /healthz`` passes, in order:

1. the rate limit: a token bucket per client address (``rate_limit_per_s`` refilled,
   ``rate_limit_burst`` deep); an empty bucket answers ``429`` with ``Retry-After``. Requests
   that carry the configured token are not limited (the feed with ``DBPULSE_VIZ_TOKEN``);
2. ``Host`` must name the server: ``127.0.0.1``, ``localhost``, ``[::1]``, the configured bind
   address and ``allowed_hosts`` (``400`` otherwise; ``*`` allows any), which defeats DNS
   rebinding;
3. ``Origin``, when the client sends one (browsers do), must be the page's own origin or one of
   ``allowed_origins`` (``403`` otherwise);
4. no query parameter may be given twice (``400``: which one counts would be a guess);
5. on the viewing endpoints, a token given (``Authorization: Bearer`` or ``?token=``) must be
   the configured one (``401``); with ``protect_views`` one must be given.

A refused WebSocket handshake is closed before it is accepted (the client sees HTTP 403).

Other servers reuse it: ``dbpulse mcp --http`` passes ``view_paths=None`` (every path needs the
token) and its own variable names for the refusal messages.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from dbpulse.viz.config import VizConfig, names

__all__ = ["LOOPBACK_HOSTS", "VIEW_PATHS", "Guard", "RateLimiter", "host_name"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
VIEW_PATHS = frozenset(
    {
        "/ws/viz",
        "/api/viz/recent",
        "/api/viz/replay",
        "/api/viz/isbns",
        "/api/viz/top",
        "/api/viz/stats",
        "/metrics",
    }
)
_OPEN_PATHS = frozenset({"/healthz"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


class RateLimiter:
    """Token buckets per client key; at most ``max_clients`` kept (the idlest forgotten)."""

    def __init__(self, per_second: float, burst: int, max_clients: int = 10_000) -> None:
        self.per_second = per_second
        self.burst = max(1.0, float(burst))
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may pass, else the seconds until it could."""
        if self.per_second <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.per_second
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def host_name(host: str) -> str:
    """``Host`` header without its port, lowercased: ``[::1]:8765`` → ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """Pure ASGI middleware (HTTP and WebSocket) applying the checks above."""

    def __init__(
        self,
        app: ASGIApp,
        config: VizConfig,
        counters: dict[str, int],
        view_paths: Collection[str] | None = VIEW_PATHS,
        variables: tuple[str, str] = ("DBPULSE_VIZ_ALLOWED_HOSTS", "DBPULSE_VIZ_ALLOWED_ORIGINS"),
    ) -> None:
        """``view_paths``: where a token given must be right (``None``: every path);
        ``variables``: the settings the Host and Origin refusals point at."""
        self.app = app
        self.view_paths = view_paths
        self.variables = variables
        self.counters = counters
        self.token = config.token.encode() if config.token else None
        self.protect_views = bool(config.protect_views and self.token)
        self.limiter = RateLimiter(config.rate_limit_per_s, config.rate_limit_burst)
        hosts = {h.lower() for h in names(config.allowed_hosts)} | LOOPBACK_HOSTS
        bind = config.host.strip().lower()
        if bind not in _WILDCARD_BINDS:
            hosts.add(f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind)
        self.any_host = "*" in hosts
        self.hosts = frozenset(hosts)
        self.origins = frozenset(o.rstrip("/").lower() for o in names(config.allowed_origins))
        for name in (
            "rejected_rate",
            "rejected_host",
            "rejected_origin",
            "rejected_query",
            "rejected_view_token",
        ):
            counters.setdefault(name, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope.get("path") in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message, headers = refusal
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        body = json.dumps({"error": message}).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    def check(self, scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        headers = _headers(scope)
        given = _given_token(scope, headers) if self.token is not None else None
        trusted = given is not None and self._right(given)
        client = scope.get("client")
        wait = 0.0 if trusted else self.limiter.take(str(client[0]) if client else "?")
        if wait > 0:
            self.counters["rejected_rate"] += 1
            retry = str(max(1, math.ceil(wait)))
            return 429, f"too many requests: retry in {retry} s", {"Retry-After": retry}
        host = headers.get("host", "")
        if not self.any_host and host_name(host) not in self.hosts:
            self.counters["rejected_host"] += 1
            return 400, f"unknown Host: add it to {self.variables[0]}", {}
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host):
            self.counters["rejected_origin"] += 1
            return 403, f"cross-origin request: add it to {self.variables[1]}", {}
        repeated = _repeated_parameter(scope)
        if repeated is not None:
            self.counters["rejected_query"] += 1
            return 400, f"query parameter {repeated[:40]!r} given more than once", {}
        paths = self.view_paths
        viewing = self.token is not None and (paths is None or scope.get("path") in paths)
        if viewing and not trusted and (given is not None or self.protect_views):
            self.counters["rejected_view_token"] += 1
            return 401, "missing or wrong token: send ?token= or a bearer token", {}
        return None

    def _right(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token)

    def _origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:  # "http://[::1": not a URL, so not this server's origin
            return False
        return parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _repeated_parameter(scope: Scope) -> str | None:
    """The first query parameter named twice (``?limit=1&limit=9``), if any: which one counts
    is a guess, so none does."""
    seen: set[str] = set()
    for name, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"), True):
        if name in seen:
            return name
        seen.add(name)
    return None


def _given_token(scope: Scope, headers: dict[str, str]) -> str | None:
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return given
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("token")
    return values[0] if values else None
