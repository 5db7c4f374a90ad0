"""``dbpulse diagnose``: prove each hop of the pipeline with synthetic traffic.

::

    dbpulse diagnose                                   # compose defaults (docs/stack.md)
    dbpulse diagnose --json                            # one JSON document
    dbpulse diagnose --prometheus-url http://127.0.0.1:9090 --trace-store-kind jaeger \\
        --trace-store-url http://127.0.0.1:16686 --timeout 10

One line per hop (✔ passed, ✘ failed with the fix, - skipped because a hop it needs failed);
exit code 0 when every hop passed, 1 otherwise, 2 for bad arguments. The hops are in
:mod:`dbpulse.faces.diagnose`.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from dbpulse.faces.diagnose import Diagnosis, Endpoints

__all__ = ["diagnose", "register"]


def _setup(resource: Any, span_exporter: Any, metric_exporter: Any, endpoints: Endpoints) -> Any:
    """dbpulse's own pipeline (the one applications get), feeding the viz server given."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from dbpulse.setup import configure, instrument

    os.environ["DBPULSE_VIZ_URL"] = endpoints.viz
    if endpoints.viz_token:
        os.environ["DBPULSE_VIZ_TOKEN"] = endpoints.viz_token
    else:
        os.environ.pop("DBPULSE_VIZ_TOKEN", None)
    telemetry = configure(
        resource=resource,
        sampler=ALWAYS_ON,
        span_exporter=span_exporter,
        metric_exporter=metric_exporter,
    )
    instrument(systems=("sqlite",))
    return telemetry


def _option(help_text: str, env: str, *names: str) -> Any:
    return typer.Option(*names, help=f"{help_text} [env {env}]", show_default=False)


def diagnose(
    otlp_endpoint: Annotated[
        str | None,
        _option("OTLP endpoint (default :4317 gRPC, :4318 HTTP).", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ] = None,
    otlp_protocol: Annotated[
        str | None, _option("grpc or http/protobuf (default grpc).", "OTEL_EXPORTER_OTLP_PROTOCOL")
    ] = None,
    collector_health_url: Annotated[
        str | None, _option("health_check URL (default :13133).", "DBPULSE_COLLECTOR_HEALTH_URL")
    ] = None,
    collector_metrics_url: Annotated[
        str | None,
        _option(
            "collector's own metrics (default :8888/metrics).", "DBPULSE_COLLECTOR_METRICS_URL"
        ),
    ] = None,
    prometheus_url: Annotated[
        str | None,
        _option(
            "Prometheus (default :9090).",
            "DBPULSE_PROMETHEUS_URL",
            "--prometheus-url",
            "--prometheus",
        ),
    ] = None,
    trace_store_url: Annotated[
        str | None,
        _option(
            "Tempo (default :3200) or Jaeger (:16686) API.",
            "DBPULSE_TRACE_STORE_URL",
            "--trace-store-url",
            "--trace-store",
        ),
    ] = None,
    trace_store_kind: Annotated[
        str | None,
        _option("tempo, jaeger or auto (default auto).", "DBPULSE_TRACE_STORE_KIND"),
    ] = None,
    viz_url: Annotated[
        str | None, _option("viz server (default :8765).", "DBPULSE_VIZ_URL", "--viz-url", "--viz")
    ] = None,
    viz_token: Annotated[str | None, _option("viz server token.", "DBPULSE_VIZ_TOKEN")] = None,
    redis_url: Annotated[
        str | None, _option("Redis for the flow (default :6379).", "DBPULSE_REDIS_URL")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.5, help="Seconds each hop may take.")
    ] = 15.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Prove each hop of the pipeline (OTLP to viz server) with synthetic traffic."""
    try:
        endpoints = Endpoints.from_env(
            otlp=otlp_endpoint,
            otlp_protocol=otlp_protocol,
            collector_health=collector_health_url,
            collector_metrics=collector_metrics_url,
            prometheus=prometheus_url,
            trace_store=trace_store_url,
            trace_store_kind=trace_store_kind,
            viz=viz_url,
            viz_token=viz_token,
            redis=redis_url,
        )
    except ValueError as exc:
        typer.echo(f"dbpulse diagnose: {exc}", err=True)
        raise typer.Exit(2) from None
    report = Diagnosis(endpoints, _setup, timeout=timeout).run()
    sys.stdout.write((report.json() if as_json else report.text()) + "\n")
    sys.stdout.flush()
    raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    """Add ``dbpulse diagnose`` to ``app``."""
    app.command("diagnose")(diagnose)
