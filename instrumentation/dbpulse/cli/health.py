"""``dbpulse health``: check databases, print a verdict, exit with the Nagios code.

::

    dbpulse health app.db                                 # Rich table on a terminal
    dbpulse health sqlite:///app.db postgresql://app@db/app --json
    dbpulse health app.db --table executions:started_at   # row count + newest-row age
    dbpulse health app.db --thresholds thresholds.yaml    # from cron: exit code says it
    dbpulse health app.db --watch --interval 10           # re-check every 10 s (Ctrl-C stops)
    dbpulse health app.db --export --interval 30          # push the health gauges over OTLP

Exit codes: 0 OK, 1 WARNING, 2 ERROR or CRITICAL, 3 could not check (bad arguments, an
unreadable thresholds file, a missing driver). Output is a Rich table on a terminal, plain
text when piped, JSON with ``--json`` (one document per line with ``--watch``).

``--export`` checks every ``--interval`` like ``--watch`` and pushes the
``dbpulse.db.health.*`` gauges (:mod:`dbpulse.health.gauges`) over OTLP after each check,
configured by the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, default ``dbpulse-health``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from dbpulse.health import (
    HealthReport,
    Status,
    Target,
    TargetError,
    Thresholds,
    ThresholdsError,
    check,
    parse_table,
    parse_target,
)

__all__ = ["HealthCommand", "health", "register"]

UNKNOWN_EXIT = Status.UNKNOWN.exit_code
_STYLES = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.UNKNOWN: "magenta",
    Status.ERROR: "red",
    Status.CRITICAL: "bold red",
}


class HealthCommand(TyperCommand):
    """Usage errors as one line and exit code 3 (UNKNOWN), as monitoring systems expect."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            # Typer 0.2x vendors its own click: match the class by name, not by import.
            if not any(cls.__name__ == "UsageError" for cls in type(exc).__mro__):
                raise
            typer.echo(f"dbpulse health: {exc.format_message()}", err=True)  # type: ignore[attr-defined]
            raise typer.Exit(UNKNOWN_EXIT) from None


def _fail(message: str) -> typer.Exit:
    typer.echo(f"dbpulse health: {message}", err=True)
    return typer.Exit(UNKNOWN_EXIT)


def _plain(report: HealthReport) -> str:
    lines = [
        f"{report.status.name} {report.timestamp.isoformat(timespec='seconds')} "
        f"({len(report.targets)} target{'s' if len(report.targets) != 1 else ''})"
    ]
    for target in report.targets:
        lines.append(f"{target.target} [{target.kind}] {target.status.name}")
        for result in target.checks:
            lines.append(f"  {result.status.name:<8} {result.name:<18} {result.reason}")
    return "\n".join(lines)


def _rich(console: Any, report: HealthReport) -> None:
    from rich.table import Table

    table = Table(
        title=f"dbpulse health: [{_STYLES[report.status]}]{report.status.name}[/] "
        f"at {report.timestamp:%H:%M:%S}",
        show_lines=False,
    )
    for column in ("target", "check", "status", "reason"):
        table.add_column(column, overflow="fold")
    for target in report.targets:
        for index, result in enumerate(target.checks):
            table.add_row(
                target.target if index == 0 else "",
                result.name,
                f"[{_STYLES[result.status]}]{result.status.name}[/]",
                result.reason,
            )
    console.print(table)


def _render(report: HealthReport, as_json: bool, console: Any, watching: bool) -> None:
    if as_json:
        text = json.dumps(report.as_dict(), default=str, indent=None if watching else 2)
        sys.stdout.write(text + "\n")
    elif console.is_terminal:
        if watching:
            console.clear()
        _rich(console, report)
    else:
        sys.stdout.write(_plain(report) + "\n" + ("\n" if watching else ""))
    sys.stdout.flush()


def health(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="sqlite:///path, duckdb:///path, postgresql://..., or a .db/.sqlite/.duckdb path.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON: status, timestamp, checks.")
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Re-check every --interval.")] = False,
    export: Annotated[
        bool,
        typer.Option("--export", help="Re-check every --interval, push the gauges over OTLP."),
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.1, help="Seconds between --watch/--export checks."),
    ] = 5.0,
    thresholds: Annotated[
        Path | None,
        typer.Option("--thresholds", help="YAML thresholds file.", show_default=False),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            help="NAME[:TIMESTAMP_COLUMN]: count rows, age of the newest row. Repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check databases: connect, schema version, size, configuration, integrity, row counts."""
    if not targets:
        raise _fail("name at least one TARGET (sqlite:///app.db, postgresql://..., app.duckdb)")
    try:
        limits = Thresholds.load(thresholds) if thresholds is not None else Thresholds()
        limits.tables.extend(parse_table(spec) for spec in table or ())
        parsed: list[Target] = [parse_target(text) for text in targets]
    except (TargetError, ThresholdsError) as exc:
        raise _fail(str(exc)) from None

    from rich.console import Console

    console = Console()
    report = None
    exporter = _Exporter(interval) if export else None
    watch = watch or export
    if watch:
        # SIGTERM (systemd, a supervisor, `kill`) ends --watch like Ctrl-C: last verdict.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            report = check(parsed, limits)
            if exporter is not None:
                exporter.push(parsed, report)
            _render(report, as_json, console, watch)
            if not watch:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends --watch; the exit code is the last verdict's
    finally:
        if exporter is not None:
            exporter.shutdown()
    raise typer.Exit(report.exit_code if report is not None else UNKNOWN_EXIT)


class _Exporter:
    """``--export``: the health gauges on an SDK from the ``OTEL_*`` environment, pushed after
    every check."""

    def __init__(self, interval: float) -> None:
        from dbpulse.health.gauges import HealthGauges
        from dbpulse.setup import configure

        # This process checks the targets it is given, not DBPULSE_HEALTH_TARGETS's.
        os.environ.pop("DBPULSE_HEALTH_TARGETS", None)
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
        os.environ.setdefault("OTEL_METRIC_EXPORT_INTERVAL", str(max(1000, int(interval * 1000))))
        self.telemetry = configure(service_name="dbpulse-health", set_global=False)
        self.gauges = HealthGauges()
        self.gauges.register(self.telemetry.meter_provider)

    def push(self, targets: list[Target], report: HealthReport) -> None:
        for target, result in zip(targets, report.targets, strict=True):
            self.gauges.update(target.label, result)
        self.telemetry.meter_provider.force_flush(10_000)

    def shutdown(self) -> None:
        self.telemetry.shutdown()


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add ``dbpulse health`` to ``app``."""
    app.command("health", cls=HealthCommand)(health)
