"""The ``dbpulse`` command line: the demo, the viz server and the flow workloads.

::

    dbpulse demo                 # embedded default: SQLite workload + viz server + sphere page
    dbpulse demo producer        # pattern-flow producer publishing to Redis
    dbpulse demo consumer        # pattern-flow consumer delivering to simulated users
    dbpulse demo collector       # ISBN writes to SQLite and PostgreSQL (psycopg_pool)
    dbpulse demo cache           # book lookups through a Redis cache (hits and misses)
    dbpulse demo executions      # a pattern-execution log in DuckDB (seed 003's table)
    dbpulse viz                  # the viz server alone (sphere page, /api/viz/emit, /ws/viz)
    dbpulse health TARGET...     # database health checks (Nagios exit codes; --json, --watch)
    dbpulse diagnose             # prove each hop of the pipeline with synthetic traffic
    dbpulse top                  # live activity, errors, heartbeats, stuck flows, events
    dbpulse mcp                  # MCP server (stdio; --http for streamable HTTP)

Each command's module is imported only when that command's extra is installed
(``pip install dbpulse[all]``); a missing extra gives a message saying what to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperOption

# Typer's rich help shows every option's type, flags too (``--summary <bool>``, ``--help
# <bool>``), although a flag takes no value; its plain help leaves them out. Checked against
# Typer 0.29: a flag shows no type here either.
_display_type_rich = getattr(TyperOption, "display_type_rich", None)


def _flag_without_type(self: TyperOption, ctx: Any) -> str | None:
    return None if self.is_flag else _display_type_rich(self, ctx)  # type: ignore[misc]


if _display_type_rich is not None:
    TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]

app = typer.Typer(
    help="dbpulse: database activity of Python services on OpenTelemetry.",
    no_args_is_help=True,
    add_completion=False,
)
demo_app = typer.Typer(help="Demo workloads (no Docker needed).", invoke_without_command=True)


def _load(module: str, name: str, extra: str) -> Callable[..., Any] | None:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        missing = exc.name or str(exc)
        if missing.startswith("dbpulse"):
            return None

        def unavailable() -> None:
            typer.echo(f"this command needs {missing!r}: pip install 'dbpulse[{extra}]'", err=True)
            raise typer.Exit(2)

        unavailable.__doc__ = f"(unavailable: pip install 'dbpulse[{extra}]')"
        return unavailable
    except AttributeError:
        return None


def _build() -> None:
    viz = _load("dbpulse.cli.viz", "viz", "viz")
    if viz is not None:
        app.command("viz")(viz)
    demo = _load("dbpulse.cli.viz", "demo", "viz")
    if demo is not None:
        demo_app.callback(invoke_without_command=True)(demo)
    for name in ("producer", "consumer"):
        command = _load("dbpulse.cli.flows", name, "redis")
        if command is not None:
            demo_app.command(name)(command)
    for name, extra in (("collector", "postgres"), ("cache", "redis"), ("executions", "duckdb")):
        command = _load("dbpulse.cli.workloads", name, extra)
        if command is not None:
            demo_app.command(name)(command)
    app.add_typer(demo_app, name="demo")
    register_health = _load("dbpulse.cli.health", "register", "cli")
    if register_health is not None:
        register_health(app)
    register_diagnose = _load("dbpulse.cli.diagnose", "register", "cli")
    if register_diagnose is not None:
        register_diagnose(app)
    for module, extra in (("dbpulse.cli.top", "cli"), ("dbpulse.cli.mcp", "mcp")):
        register = _load(module, "register", extra)
        if register is not None:
            register(app)


_build()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
