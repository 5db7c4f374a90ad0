"""Typer commands of the viz room; the ``dbpulse`` CLI registers them::

    app.command("viz")(dbpulse.cli.viz.viz)
    demo_app = typer.Typer(callback=dbpulse.cli.viz.demo, invoke_without_command=True)

``dbpulse viz`` runs the viz server; ``dbpulse demo`` (no sub-command) runs the embedded demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["demo", "viz"]


def _server_side() -> None:
    """Fail with an actionable message when the viz extra is not installed."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        typer.echo(f"this command needs {exc.name!r}: pip install 'dbpulse[viz]'", err=True)
        raise typer.Exit(2) from None


def viz(
    host: Annotated[
        str,
        typer.Option(envvar="DBPULSE_VIZ_HOST", help="Interface to bind (loopback by default)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="DBPULSE_VIZ_PORT", help="TCP port.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="DBPULSE_VIZ_TOKEN",
            help="Bearer token POST /api/viz/emit requires (none: open, loopback only).",
            show_default=False,
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="DBPULSE_VIZ_REDIS_URL",
            help="Share one feed between replicas over Redis pub/sub, e.g. redis://127.0.0.1:6379/0.",
        ),
    ] = None,
    isbn_db: Annotated[
        str | None,
        typer.Option(
            envvar="DBPULSE_VIZ_ISBN_DB",
            help="SQLite file or postgresql:// DSN to preload the sphere's ISBNs from.",
        ),
    ] = None,
    isbn_table: Annotated[
        str | None,
        typer.Option(envvar="DBPULSE_VIZ_ISBN_TABLE", help="Table holding the ISBNs."),
    ] = None,
    isbn_column: Annotated[
        str, typer.Option(envvar="DBPULSE_VIZ_ISBN_COLUMN", help="Column holding the ISBNs.")
    ] = "isbn",
    replay_seconds: Annotated[
        float, typer.Option(envvar="DBPULSE_VIZ_REPLAY_SECONDS", help="Replay window kept.")
    ] = 300.0,
    max_body_bytes: Annotated[
        int, typer.Option(envvar="DBPULSE_VIZ_MAX_BODY_BYTES", help="Largest emit body accepted.")
    ] = 2 * 1024 * 1024,
) -> None:
    """Run the viz server: the live ISBN sphere and its event API."""
    _server_side()
    from dbpulse.viz import VizConfig, serve

    if isbn_db and not isbn_table:
        raise typer.BadParameter("--isbn-db needs --isbn-table", param_hint="--isbn-table")
    config = VizConfig.from_env(
        host=host,
        port=port,
        token=token,
        redis_url=redis_url,
        isbn_db=isbn_db,
        isbn_table=isbn_table,
        isbn_column=isbn_column,
        replay_seconds=replay_seconds,
        max_body_bytes=max_body_bytes,
    )
    from dbpulse.viz.app import PortInUse, check_port

    try:
        check_port(host, port)
    except PortInUse as exc:
        _refuse("viz", exc)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"dbpulse viz: sphere at http://{shown}:{port}/")
    from dbpulse.demo.running import stop_on_signals

    # uvicorn shuts down gracefully on SIGTERM, then raises it again: caught here, exit 0.
    with stop_on_signals():
        serve(config)


def _refuse(command: str, exc: OSError) -> None:
    """One line on stderr naming what to change, exit status 2 (no traceback)."""
    typer.echo(f"dbpulse {command}: {exc.strerror}", err=True)
    raise typer.Exit(2)


def demo(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port of the in-process viz server.")] = 8765,
    host: Annotated[str, typer.Option(help="Interface of the viz server.")] = "127.0.0.1",
    duration: Annotated[
        float | None,
        typer.Option(
            help="Stop after this many seconds (default: until Ctrl-C).", show_default=False
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option(help="Writes per second (ten times that in bursts).")
    ] = 200.0,
    isbns: Annotated[int, typer.Option(help="How many distinct ISBNs the workload writes.")] = 5000,
    db: Annotated[
        Path | None,
        typer.Option(help="SQLite file to write (default: a temporary one).", show_default=False),
    ] = None,
    summary: Annotated[bool, typer.Option(help="Live terminal summary.")] = True,
) -> None:
    """Run the embedded demo: SQLite workload + viz server + sphere (no Docker)."""
    if ctx.invoked_subcommand is not None:
        return
    _server_side()
    from dbpulse.demo.sphere import run_demo
    from dbpulse.viz.app import PortInUse

    try:
        run_demo(
            host=host,
            port=port,
            duration=duration,
            rate=rate,
            isbns=isbns,
            db=db,
            summary=summary,
        )
    except PortInUse as exc:
        _refuse("demo", exc)
