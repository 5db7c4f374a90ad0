"""Prometheus's HTTP API: instant and range queries, as the read model asks them.

Usage::

    from dbpulse.faces.prometheus import PrometheusClient

    prometheus = PrometheusClient("http://127.0.0.1:9090")
    for sample in prometheus.query("sum by (service_name) (dbpulse_db_writes_total)"):
        print(sample.labels["service_name"], sample.value)
    series = prometheus.query_range("sum(rate(dbpulse_db_writes_total[5m]))", 3600, 60)

Failures are :class:`~dbpulse.faces.http.Unreachable` (one line naming Prometheus and its URL).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from dbpulse.faces.http import JsonSource

__all__ = ["PrometheusClient", "Sample", "Series"]


@dataclass(frozen=True)
class Sample:
    """One series of an instant query: its labels and value."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and ``(unix time, value)`` points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def _number(text: Any) -> float:
    value = float(text)
    return value if math.isfinite(value) else math.nan


class PrometheusClient:
    """``/api/v1/query`` and ``/api/v1/query_range`` of one Prometheus."""

    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        self.source = JsonSource("Prometheus", url, timeout_s)

    @property
    def url(self) -> str:
        return self.source.url

    def _data(self, path: str, params: dict[str, Any]) -> Any:
        payload = self.source.get(path, params)
        if not isinstance(payload, dict) or payload.get("status") != "success":
            error = payload.get("error") if isinstance(payload, dict) else None
            raise self.source.unreachable(f"query failed: {error or 'not a Prometheus answer'}")
        return payload["data"]

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query (now, or at unix time ``at``); NaN values are left out."""
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        data = self._data("/api/v1/query", params)
        if data.get("resultType") == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        samples = [Sample(r.get("metric", {}), _number(r["value"][1])) for r in data["result"]]
        return [s for s in samples if not math.isnan(s.value)]

    def query_range(self, promql: str, seconds: float, step_s: float) -> list[Series]:
        """A range query over the last ``seconds``, one point every ``step_s``."""
        end = time.time()
        data = self._data(
            "/api/v1/query_range",
            {"query": promql, "start": end - seconds, "end": end, "step": step_s},
        )
        return [
            Series(
                r.get("metric", {}),
                [(float(t), v) for t, text in r["values"] if not math.isnan(v := _number(text))],
            )
            for r in data["result"]
        ]

    def close(self) -> None:
        self.source.close()
