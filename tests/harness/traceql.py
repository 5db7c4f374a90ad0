"""The TraceQL subset the dashboards and tests use, answered by a Jaeger search.

Compose's Tempo runs TraceQL itself; the harness's trace store is Jaeger (see
:mod:`tests.harness.stack` for why), which has none. :func:`search` answers one spanset filter of
``&&``-joined conditions, each ``span.<attr>`` or ``resource.service.name`` compared by ``=``,
``!=`` or ``=~`` (anchored regex) with a string, by a Jaeger tag search, keeping only traces with
one span that meets every condition, as TraceQL's ``{ ... }`` does.

    from tests.harness.traceql import parse_traceql, search

    parse_traceql('{ span.flow.id = "f1" && resource.service.name =~ "demo-.*" }')
    # [("span", "flow.id", "=", "f1"), ("resource", "service.name", "=~", "demo-.*")]
    search("http://127.0.0.1:16686", '{ span.flow.id = "f1" }')  # [{"traceID": hex}, ...]

Anything outside the subset raises :class:`~tests.harness.processes.StackError`.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from tests.harness.processes import StackError, http_get

__all__ = ["Condition", "parse_traceql", "search", "span_meets"]

#: ``(scope, attribute, operator, value)``: ``("span", "flow.id", "=", "f1")``.
Condition = tuple[str, str, str, str]

_TRACEQL_CONDITION = re.compile(
    r'\s*(span|resource)\.([A-Za-z_][\w.]*)\s*(=~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*'
)


def parse_traceql(query: str) -> list[Condition]:
    """``{ span.a = "x" && resource.service.name =~ "y" }`` → ``[(scope, attr, op, value)]``."""
    text = query.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise StackError(f"TraceQL {query!r}: only one spanset filter {{ ... }} is supported")
    conditions: list[Condition] = []
    for part in text[1:-1].split("&&"):
        match = _TRACEQL_CONDITION.fullmatch(part)
        if match is None:
            raise StackError(f"TraceQL {query!r}: unsupported condition {part.strip()!r}")
        scope, attr, op, value = match.groups()
        if scope == "resource" and attr != "service.name":
            raise StackError(f"TraceQL {query!r}: only resource.service.name is supported")
        conditions.append((scope, attr, op, value.replace('\\"', '"')))
    return conditions


def _compare(actual: str | None, op: str, value: str) -> bool:
    if op == "=":
        return actual == value
    if op == "!=":
        return actual is not None and actual != value
    return actual is not None and re.fullmatch(value, actual) is not None


def span_meets(
    trace: Mapping[str, Any], span: Mapping[str, Any], conditions: list[Condition]
) -> bool:
    """One Jaeger span (of ``trace``) meets every condition, as in a TraceQL spanset."""
    tags = {t["key"]: str(t["value"]) for t in span.get("tags", [])}
    service = trace.get("processes", {}).get(span.get("processID"), {}).get("serviceName")
    return all(
        _compare(service if scope == "resource" else tags.get(attr), op, value)
        for scope, attr, op, value in conditions
    )


def search(trace_store_url: str, query: str, since_s: float = 3600.0) -> list[dict[str, Any]]:
    """Traces (``[{"traceID": hex}]``, newest first) with one span that meets ``query``.

    ``trace_store_url`` is Jaeger's query API; ``since_s`` how far back to search.
    """
    conditions = parse_traceql(query)
    exact = {attr: value for scope, attr, op, value in conditions if scope == "span" and op == "="}
    services = _services_matching(
        trace_store_url,
        [(op, value) for scope, attr, op, value in conditions if scope == "resource"],
    )
    now_us = int(time.time() * 1e6)
    hits: dict[str, int] = {}
    for service in services:
        params = {
            "service": service,
            "start": now_us - int(since_s * 1e6),
            "end": now_us + 60_000_000,
            "limit": 100,
        }
        if exact:
            params["tags"] = json.dumps(exact)
        url = f"{trace_store_url}/api/traces?" + urllib.parse.urlencode(params)
        status, body = http_get(url)
        if status != 200:
            raise StackError(f"TraceQL {query!r} as a search: HTTP {status}: {body[:300]!r}")
        for trace in json.loads(body).get("data") or []:
            spans = trace["spans"]
            starts = [s["startTime"] for s in spans if span_meets(trace, s, conditions)]
            if starts:
                hits[trace["traceID"]] = max(starts)
    return [{"traceID": tid} for tid in sorted(hits, key=hits.__getitem__, reverse=True)]


def _services_matching(trace_store_url: str, conditions: list[tuple[str, str]]) -> list[str]:
    """The services to search: the one ``=`` names, else every stored one that matches."""
    exact = [value for op, value in conditions if op == "="]
    if exact:
        candidates = exact[:1]
    else:
        status, body = http_get(f"{trace_store_url}/api/services")
        if status != 200:
            raise StackError(f"trace store services: HTTP {status}: {body[:300]!r}")
        candidates = json.loads(body).get("data") or []
    return [s for s in candidates if all(_compare(s, op, v) for op, v in conditions)]
