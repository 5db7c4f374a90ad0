"""``dbpulse mcp``: an MCP server with dbpulse's tools (database_status, performance_metrics,
execution_statistics, flow_status, recent_events).

::

    dbpulse mcp                                        # stdio: an assistant starts it
    DBPULSE_MCP_TOKEN=s3cret dbpulse mcp --http --port 8766    # streamable HTTP at /mcp
    dbpulse mcp --health-target sqlite:///app.db --prometheus http://127.0.0.1:9090

HTTP binds 127.0.0.1, needs a bearer token (it refuses to start without one) and checks Host
and Origin as the viz server does (``--allowed-hosts``/``--allowed-origins`` add names).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dbpulse.cli._endpoints import (
    PrometheusOption,
    TimeoutOption,
    TraceKindOption,
    TraceStoreOption,
    VizTokenOption,
    VizUrlOption,
    endpoints,
)

__all__ = ["mcp", "register"]


def mcp(
    http: Annotated[
        bool, typer.Option("--http", help="Streamable HTTP on --host:--port (else stdio).")
    ] = False,
    host: Annotated[
        str, typer.Option("--host", envvar="DBPULSE_MCP_HOST", help="Interface for --http.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", envvar="DBPULSE_MCP_PORT", help="TCP port for --http.")
    ] = 8766,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="DBPULSE_MCP_TOKEN",
            help="Bearer token every HTTP request must carry (required with --http).",
            show_default=False,
        ),
    ] = None,
    allowed_hosts: Annotated[
        str,
        typer.Option(
            "--allowed-hosts",
            envvar="DBPULSE_MCP_ALLOWED_HOSTS",
            help="Host names besides loopback (comma-separated).",
        ),
    ] = "",
    allowed_origins: Annotated[
        str,
        typer.Option(
            "--allowed-origins",
            envvar="DBPULSE_MCP_ALLOWED_ORIGINS",
            help="Origins besides the server's own (comma-separated).",
        ),
    ] = "",
    health_target: Annotated[
        list[str] | None,
        typer.Option(
            "--health-target",
            help="Database database_status checks by default [DBPULSE_HEALTH_TARGETS]. Repeatable.",
            show_default=False,
        ),
    ] = None,
    prometheus: PrometheusOption = None,
    trace_store: TraceStoreOption = None,
    trace_store_kind: TraceKindOption = None,
    viz: VizUrlOption = None,
    viz_token: VizTokenOption = None,
    timeout: TimeoutOption = None,
) -> None:
    """Serve dbpulse's MCP tools over stdio (default) or streamable HTTP (--http)."""
    if http and not token:
        typer.echo(
            "dbpulse mcp: --http needs a token: pass --token or set DBPULSE_MCP_TOKEN", err=True
        )
        raise typer.Exit(2)
    from dbpulse.faces import Endpoints, ReadModel
    from dbpulse.faces.mcp_server import build_server, http_app

    where = endpoints("mcp", prometheus, trace_store, trace_store_kind, viz, viz_token, timeout)
    if health_target:
        where = Endpoints(**{**where.__dict__, "health_targets": tuple(health_target)})
    with ReadModel(where) as model:
        server = build_server(model)
        if not http:
            server.run()
            return
        import uvicorn

        assert token is not None
        app = http_app(server, token, host, allowed_hosts, allowed_origins)
        shown = f"[{host}]" if ":" in host else host
        print(f"dbpulse mcp: streamable HTTP on http://{shown}:{port}/mcp", file=sys.stderr)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def register(app: typer.Typer) -> None:
    """Add ``dbpulse mcp`` to ``app``."""
    app.command("mcp")(mcp)
