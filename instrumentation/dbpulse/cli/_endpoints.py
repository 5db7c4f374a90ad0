"""The endpoint flags ``dbpulse top`` and ``dbpulse mcp`` share (each overrides its
``DBPULSE_*`` variable; :class:`dbpulse.faces.Endpoints` has the defaults)."""

from __future__ import annotations

from typing import Annotated

import typer

from dbpulse.faces import Endpoints

__all__ = [
    "PrometheusOption",
    "TimeoutOption",
    "TraceKindOption",
    "TraceStoreOption",
    "VizTokenOption",
    "VizUrlOption",
    "endpoints",
]

PrometheusOption = Annotated[
    str | None,
    typer.Option(
        "--prometheus", help="Prometheus URL [DBPULSE_PROMETHEUS_URL; http://127.0.0.1:9090]."
    ),
]
TraceStoreOption = Annotated[
    str | None,
    typer.Option(
        "--trace-store",
        help="Tempo or Jaeger URL [DBPULSE_TRACE_STORE_URL; http://127.0.0.1:3200].",
    ),
]
TraceKindOption = Annotated[
    str | None,
    typer.Option(
        "--trace-store-kind", help="tempo, jaeger or auto [DBPULSE_TRACE_STORE_KIND; auto]."
    ),
]
VizUrlOption = Annotated[
    str | None,
    typer.Option("--viz", help="Viz server URL [DBPULSE_VIZ_URL; http://127.0.0.1:8765]."),
]
VizTokenOption = Annotated[
    str | None,
    typer.Option("--viz-token", help="Viz server token [DBPULSE_VIZ_TOKEN].", show_default=False),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", help="Seconds per request [DBPULSE_FACES_TIMEOUT; 3]."),
]


def endpoints(
    command: str,
    prometheus: str | None,
    trace_store: str | None,
    trace_store_kind: str | None,
    viz: str | None,
    viz_token: str | None,
    timeout: float | None,
) -> Endpoints:
    """The endpoints, or exit 2 with one line saying what is wrong."""
    try:
        return Endpoints.from_env(
            prometheus_url=prometheus,
            trace_store_url=trace_store,
            trace_store_kind=trace_store_kind,
            viz_url=viz,
            viz_token=viz_token,
            timeout_s=timeout,
        )
    except ValueError as exc:
        typer.echo(f"dbpulse {command}: {exc}", err=True)
        raise typer.Exit(2) from None
