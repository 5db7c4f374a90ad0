"""``dbpulse top``: live database activity, errors, sampling, heartbeats, stuck flows and the
latest events, from Prometheus, the trace store and the viz server.

::

    dbpulse top                          # live; keys: space pause, s sort, / filter, +/- refresh, q
    dbpulse top --once                   # one snapshot, then exit (scripts, tests)
    dbpulse top --once --json            # the snapshot as JSON
    dbpulse top --service 'books-.*' --window 15m --prometheus http://127.0.0.1:9090

Piped (stdout not a terminal) it prints plain snapshots without colour, one every --interval
(``--once``: one). A source that does not answer is one line; the others still show.
"""

from __future__ import annotations

import json
import sys
import time
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
from dbpulse.faces import ReadModel, as_dict
from dbpulse.faces.activity import check_window
from dbpulse.faces.top import SORTS, TopView, run_live

__all__ = ["register", "top"]


def top(
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The snapshot as JSON.")] = False,
    window: Annotated[
        str, typer.Option("--window", help="Counts and percentiles over this Prometheus range.")
    ] = "5m",
    service: Annotated[
        str | None,
        typer.Option("--service", help="Only services matching this regex.", show_default=False),
    ] = None,
    sort: Annotated[str, typer.Option("--sort", help="calls, total or p95.")] = "calls",
    filter_text: Annotated[
        str,
        typer.Option(
            "--filter", help="field=value or words (table, operation, ISBN, any event field)."
        ),
    ] = "",
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between refreshes.")
    ] = 2.0,
    events: Annotated[int, typer.Option("--events", min=1, max=200, help="Latest events.")] = 20,
    prometheus: PrometheusOption = None,
    trace_store: TraceStoreOption = None,
    trace_store_kind: TraceKindOption = None,
    viz: VizUrlOption = None,
    viz_token: VizTokenOption = None,
    timeout: TimeoutOption = None,
) -> None:
    """Live database activity by operation and table, errors, sampling, heartbeats, stuck
    flows and the latest events."""
    where = endpoints("top", prometheus, trace_store, trace_store_kind, viz, viz_token, timeout)
    try:
        check_window(window)
        if sort not in SORTS:
            raise ValueError(f"sort {sort!r}: use one of {', '.join(SORTS)}")
    except ValueError as exc:
        typer.echo(f"dbpulse top: {exc}", err=True)
        raise typer.Exit(2) from None
    from rich.console import Console

    view = TopView(window=window, sort=sort, filter=filter_text, interval=interval, events=events)
    with ReadModel(where) as model:
        if as_json:
            snapshot = model.snapshot(window, service, events=events)
            sys.stdout.write(json.dumps(as_dict(snapshot), indent=2) + "\n")
            return
        console = Console()
        if console.is_terminal and not once and sys.stdin.isatty():
            run_live(model, view, console, service)
            return
        plain = console if console.is_terminal else Console(no_color=True, highlight=False)
        try:
            while True:
                snapshot = model.snapshot(window, service, events=events)
                plain.print(view.render(snapshot, plain.size.height))
                if once:
                    return
                plain.print()
                time.sleep(interval)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    """Add ``dbpulse top`` to ``app``."""
    app.command("top")(top)
