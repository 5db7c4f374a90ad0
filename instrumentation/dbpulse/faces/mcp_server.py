"""``dbpulse mcp``: the read model as MCP tools, on the official ``mcp`` SDK (2.x).

Usage::

    from dbpulse.faces.mcp_server import build_server, http_app

    server = build_server(ReadModel(Endpoints.from_env()))
    server.run()                                           # stdio (what `dbpulse mcp` does)
    app = http_app(server, token="s3cret")                 # streamable HTTP at /mcp, guarded

Tools (each with a JSON schema from its signature; results are JSON objects):

* ``database_status(db_path?)``: health checks of one database or ``DBPULSE_HEALTH_TARGETS``,
  in seed 003's shape (status, timestamp, database path/size/schema version, warnings, errors);
* ``performance_metrics(time_range, service?)``: p50/p95/p99, error rate, by operation/table;
* ``execution_statistics(time_range, service?)``: operations and rows written over time, by
  operation, top tables, top ISBNs;
* ``flow_status(flow_id?)``: recent and stuck flows, or one flow with its checkpoints;
* ``recent_events(limit, filter)``: the viz server's newest events.

A bad argument or a source that does not answer is a tool error (``isError``) whose text says
which and why ("Prometheus at http://127.0.0.1:9090: connection refused"); the server goes on.
Over HTTP the viz server's :class:`~dbpulse.viz.guard.Guard` checks Host, Origin, the rate and
the bearer token on every request (there is no HTTP mode without a token).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field

from dbpulse.faces import activity as _activity
from dbpulse.faces.http import Unreachable
from dbpulse.faces.model import as_dict
from dbpulse.faces.read import ReadModel
from dbpulse.health import TargetError
from dbpulse.version import __version__
from dbpulse.viz.config import VizConfig
from dbpulse.viz.guard import Guard

__all__ = ["STEPS", "TOOLS", "build_server", "http_app"]

TimeRange = Literal["1h", "24h", "7d", "30d"]
#: Range query step per time range: about 60 points each.
STEPS: dict[str, int] = {"1h": 60, "24h": 1800, "7d": 3 * 3600, "30d": 12 * 3600}
SECONDS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
TOOLS = (
    "database_status",
    "performance_metrics",
    "execution_statistics",
    "flow_status",
    "recent_events",
)
_T = TypeVar("_T")
Service = Annotated[
    str | None,
    Field(description="Only services whose service.name matches this regex (all by default)."),
]


def _answer(question: Callable[[], _T]) -> _T:
    """``question()``, with unreachable sources and bad arguments as tool errors."""
    try:
        return question()
    except Unreachable as exc:
        raise ToolError(str(exc)) from None
    except (ValueError, TargetError) as exc:
        raise ToolError(f"bad argument: {exc}") from None


def _increments(points: list[tuple[float, float]], grid: Sequence[float]) -> list[float]:
    """Per-step increments of a summed cumulative counter sampled on ``grid`` (a missing point
    is a counter not yet started: 0); a drop (a series expired) counts as no increment."""
    values = dict(points)
    previous = 0.0
    out = []
    for t in grid:
        value = values.get(t, 0.0)
        out.append(max(0.0, value - previous))
        previous = value
    return out


def _series(model: ReadModel, metric: str, labels: str, time_range: str) -> dict[float, float]:
    """``{step end (unix s): increment}`` of counter ``metric`` over ``time_range``."""
    step = STEPS[time_range]
    found = model.prometheus.query_range(
        f"sum({metric}{{{labels}}})", SECONDS[time_range] + step, step
    )
    points = found[0].points if found else []
    if not points:
        return {}
    last = round(points[-1][0])
    grid = [last - step * i for i in range(SECONDS[time_range] // step, -1, -1)]
    values = _increments([(round(t), v) for t, v in points], grid)
    return dict(zip(grid, values, strict=True))


def build_server(model: ReadModel) -> MCPServer:
    """An :class:`MCPServer` with the five tools over ``model``."""
    server: MCPServer = MCPServer(
        "dbpulse",
        title="dbpulse",
        description="Database health, performance, flows and live events from dbpulse.",
        instructions=(
            "Answers about databases instrumented by dbpulse: health checks, latency "
            "percentiles and error rates, operations and writes over time, pattern flows by "
            "flow id, and the latest write events. Figures are exact counts from Prometheus."
        ),
        version=__version__,
        log_level="WARNING",
    )

    @server.tool()
    def database_status(
        db_path: Annotated[
            str | None,
            Field(
                description="A database to check (sqlite:///path, postgresql://..., "
                "duckdb:///path, or a .db/.sqlite/.duckdb path); default DBPULSE_HEALTH_TARGETS."
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Health of a database: connection, schema version, size, configuration, integrity,
        with a status (OK, WARNING, ERROR, CRITICAL), warnings and errors."""
        return _answer(lambda: model.database_status([db_path] if db_path else None))

    @server.tool()
    def performance_metrics(
        time_range: TimeRange = "1h", service: Service = None
    ) -> dict[str, Any]:
        """Latency percentiles (p50/p95/p99, ms), error rate and calls over the time range,
        overall and by system, operation and table; errors by error.type."""
        act = _answer(lambda: model.activity(time_range, service))
        return {
            "time_range": time_range,
            "total_operations": act.calls,
            "error_count": act.errors,
            "error_rate": act.error_rate,
            "duration_ms": {"p50": act.p50_ms, "p95": act.p95_ms, "p99": act.p99_ms},
            "by_operation": [
                {**as_dict(row), "error_rate": row.error_rate} for row in act.operations
            ],
            "errors_by_type": as_dict(act.errors_by_type),
            "sampling": act.sampling,
        }

    @server.tool()
    def execution_statistics(
        time_range: TimeRange = "1h", service: Service = None
    ) -> dict[str, Any]:
        """Operations and rows written over time (one point per step), calls by operation,
        the top tables and the most-written ISBNs over the time range."""

        def statistics() -> dict[str, Any]:
            act = model.activity(time_range, service)
            labels = _activity.matcher(service)
            operations = _series(model, f"{_activity.OPERATIONS}_count", labels, time_range)
            writes = _series(model, _activity.WRITES, labels, time_range)
            step = STEPS[time_range]
            by_operation: dict[str, int] = {}
            tables: dict[tuple[str | None, str | None], dict[str, Any]] = {}
            for row in act.operations:
                by_operation[row.operation] = by_operation.get(row.operation, 0) + row.calls
                if row.table is None:
                    continue
                entry = tables.setdefault(
                    (row.system, row.table),
                    {"system": row.system, "table": row.table, "calls": 0, "rows_written": 0},
                )
                entry["calls"] += row.calls
                entry["rows_written"] += row.rows_written
            return {
                "time_range": time_range,
                "step_seconds": step,
                "totals": {"operations": act.calls, "rows_written": act.rows_written},
                "time_series": [
                    {"t": t, "operations": round(n), "rows_written": round(writes.get(t, 0.0))}
                    for t, n in operations.items()
                ],
                "by_operation": [
                    {"operation": op, "calls": n}
                    for op, n in sorted(by_operation.items(), key=lambda kv: (-kv[1], kv[0]))
                ],
                "top_tables": sorted(tables.values(), key=lambda t: (-t["calls"], t["table"]))[:10],
                "top_isbns": [
                    {"isbn": isbn, "writes": n}
                    for isbn, n in model.top_isbns(time_range, service, 10)
                ],
            }

        return _answer(statistics)

    @server.tool()
    def flow_status(
        flow_id: Annotated[
            str | None,
            Field(description="A flow id (UUID): that flow and its checkpoints; else recent."),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Recent flows to list.")] = 20,
        stuck_after_s: Annotated[
            float, Field(gt=0, le=86400, description="Undelivered this long: stuck.")
        ] = 30.0,
    ) -> dict[str, Any]:
        """Pattern flows (producer → Redis → consumer): one flow by id with the checkpoints it
        reached, or the recent flows, the stuck ones and stuck counts per channel."""
        if flow_id is not None:
            found = _answer(lambda: model.flow(flow_id, stuck_after_s))
            if found is None:
                return {
                    "flow_id": flow_id,
                    "found": False,
                    "reason": "the trace store has no trace with this id (not stored yet, "
                    "never published, or past retention)",
                }
            return {"found": True, **as_dict(found)}
        flows = _answer(lambda: model.flows(3600.0, limit, stuck_after_s))
        return as_dict(flows)

    @server.tool()
    def recent_events(
        limit: Annotated[int, Field(ge=1, le=1000, description="Events, newest first.")] = 20,
        filter: Annotated[
            str,
            Field(description="field=value terms (table=books isbn=978...) or words."),
        ] = "",
    ) -> dict[str, Any]:
        """The latest database write events the viz server received (its ring buffer), newest
        first, and its write rate."""
        events = _answer(lambda: model.events(limit, filter))
        stats = _answer(model.viz_stats)
        rate = stats.get("writes_per_s")
        return {
            "count": len(events),
            "events": events,
            "writes_per_s": rate if isinstance(rate, int | float) and math.isfinite(rate) else None,
        }

    return server


def http_app(
    server: MCPServer,
    token: str,
    host: str = "127.0.0.1",
    allowed_hosts: str = "",
    allowed_origins: str = "",
) -> Any:
    """The streamable HTTP app (``/mcp``) behind the viz server's guard: Host (loopback, the
    bind address, ``allowed_hosts``), Origin (same origin or ``allowed_origins``), a rate
    limit, and ``Authorization: Bearer <token>`` on every request (401 otherwise)."""
    if not token:
        raise ValueError("streamable HTTP needs a token (--token or DBPULSE_MCP_TOKEN)")
    app = server.streamable_http_app(
        host=host,
        # The guard below checks Host and Origin (with the allowlists); the SDK's own check
        # would refuse the allowlisted names.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    config = VizConfig(
        host=host,
        token=token,
        protect_views=True,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )
    app.add_middleware(
        Guard,
        config=config,
        counters={},
        view_paths=None,
        variables=("DBPULSE_MCP_ALLOWED_HOSTS", "DBPULSE_MCP_ALLOWED_ORIGINS"),
    )
    return app
