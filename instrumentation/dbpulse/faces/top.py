"""``dbpulse top``: the read model's snapshot as a terminal view (Rich), live or once.

Usage::

    from dbpulse.faces.read import ReadModel
    from dbpulse.faces.top import TopView, run_live

    view = TopView(window="5m")
    console.print(view.render(model.snapshot()))       # one snapshot (what --once prints)
    run_live(model, view, console)                     # until q (keys: see KEYS)

The view fits 80x24: the activity table gets the rows the other sections leave. Without a
terminal (piped) the same tables print without colour.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from dbpulse.faces.model import OperationActivity, Snapshot
from dbpulse.faces.read import ReadModel, matches

__all__ = ["INTERVALS", "KEYS", "SORTS", "TopView", "run_live"]

SORTS = ("calls", "total", "p95")
INTERVALS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
KEYS = "space pause · s sort · / filter · +/- refresh · q quit"
_SORT_KEYS = {
    "calls": lambda r: (r.calls, r.total_time_s),
    "total": lambda r: (r.total_time_s, r.calls),
    "p95": lambda r: (r.p95_ms or 0.0, r.calls),
}


_SYSTEMS = {"postgresql": "pg"}


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.2g}" if value < 1 else f"{value:.1f}"


def _clock(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts)).strftime("%H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return "--:--:--"


def _count(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "-"


def _row_fields(row: OperationActivity) -> dict[str, Any]:
    return {"system": row.system, "operation": row.operation, "table": row.table}


@dataclass
class TopView:
    """What the view shows and how: sort, filter, pause, refresh interval; :meth:`key` takes
    one key press."""

    window: str = "5m"
    sort: str = "calls"
    filter: str = ""
    paused: bool = False
    interval: float = 2.0
    editing: str | None = None
    done: bool = False
    events: int = 20
    _history: list[str] = field(default_factory=list)

    def key(self, char: str) -> None:
        """Apply one key: space, s, /, +, -, q (and while editing a filter: text, Enter,
        Escape, Backspace)."""
        if self.editing is not None:
            if char in ("\r", "\n"):
                self.filter, self.editing = self.editing.strip(), None
            elif char == "\x1b":
                self.editing = None
            elif char in ("\x7f", "\b"):
                self.editing = self.editing[:-1]
            elif char.isprintable():
                self.editing += char
            return
        if char == " ":
            self.paused = not self.paused
        elif char == "s":
            self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        elif char == "/":
            self.editing = self.filter
        elif char in ("+", "="):
            self.interval = next((i for i in INTERVALS if i > self.interval), INTERVALS[-1])
        elif char in ("-", "_"):
            self.interval = next(
                (i for i in reversed(INTERVALS) if i < self.interval), INTERVALS[0]
            )
        elif char in ("q", "Q", "\x03"):
            self.done = True

    # -- rendering ----------------------------------------------------------------------------

    def header(self, snap: Snapshot | None) -> Text:
        text = Text()
        text.append("dbpulse top", style="bold")
        text.append(f" {self.window}")
        act = snap.activity if snap else None
        if act is not None:
            text.append(f" │ {act.calls} calls {act.ops_per_s:.1f}/s │ errors ")
            text.append(_pct(act.error_rate), style="red" if act.errors else "green")
            text.append(f" │ cache hit {_pct(act.cache_hit_ratio)}")
        if snap is not None:
            text.append(f" │ {_clock(snap.taken_at)}")
        text.append(f"\nsort {self.sort} │ every {self.interval:g}s")
        if act is not None:
            modes = sorted(set(act.sampling.values()))
            text.append(f" │ sampling {'/'.join(modes) or '-'}")
        if self.paused:
            text.append(" │ PAUSED", style="bold yellow")
        if self.editing is not None:
            text.append(f" │ filter: {self.editing}_", style="bold cyan")
        elif self.filter:
            text.append(f" │ filter: {self.filter}", style="cyan")
        return text

    def operations(self, snap: Snapshot, rows: int) -> Table:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
        marks = {name: "▼" if self.sort == name else "" for name in SORTS}
        table.add_column("system", no_wrap=True)
        table.add_column("operation", max_width=14, no_wrap=True)
        table.add_column("table", max_width=20, no_wrap=True)
        table.add_column(f"calls{marks['calls']}", justify="right", no_wrap=True)
        table.add_column("op/s", justify="right", no_wrap=True)
        table.add_column("err%", justify="right", no_wrap=True)
        table.add_column(f"total s{marks['total']}", justify="right", no_wrap=True)
        table.add_column(f"p95 ms{marks['p95']}", justify="right", no_wrap=True)
        table.add_column("rows", justify="right", no_wrap=True)
        act = snap.activity
        found = [r for r in (act.operations if act else []) if matches(_row_fields(r), self.filter)]
        found.sort(key=_SORT_KEYS[self.sort], reverse=True)
        for r in found[:rows]:
            table.add_row(
                _SYSTEMS.get(r.system or "-", r.system or "-"),
                r.operation,
                r.table or "-",
                str(r.calls),
                f"{r.ops_per_s:.1f}",
                Text(_pct(r.error_rate), style="red" if r.errors else ""),
                f"{r.total_time_s:.3f}",
                _ms(r.p95_ms),
                str(r.rows_written),
            )
        if len(found) > rows:
            table.caption = f"{len(found) - rows} more rows"
        return table

    def status_lines(self, snap: Snapshot) -> Text:
        text = Text()
        act = snap.activity
        if act is not None and act.errors_by_type:
            errors = ", ".join(
                f"{e.system or '?'} {e.error_type} {e.count}" for e in act.errors_by_type
            )
            text.append(f"errors: {errors}\n", style="red")
        live = snap.liveness
        if live is not None:
            beats = ", ".join(
                f"{b.service}/{b.component} {b.age_s:.0f}s ago" for b in live.heartbeats[:4]
            )
            text.append(f"heartbeats: {beats or 'none'}\n")
        flows = snap.flows
        if flows is not None:
            stuck = [f for f in flows.stuck if matches(_flow_fields(f), self.filter)]
            counted = {c: n for c, n in flows.stuck_by_channel.items() if n > 0}
            text.append("stuck flows: ", style="bold" if stuck or counted else "")
            shown = [f"{f.flow_id[:8]} {f.channel} at {f.stuck_at}" for f in stuck[:2]]
            shown += [f"{c}: {n:g} in 5m" for c, n in sorted(counted.items())[:2]]
            text.append(("; ".join(shown) or "none") + "\n", style="red" if shown else "")
        return text

    def event_table(self, snap: Snapshot, rows: int) -> Table:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left")
        table.title = "latest events"
        for column in ("time", "operation", "table", "isbn", "count", "source"):
            table.add_column(column, no_wrap=True)
        chosen = [e for e in snap.events if matches(e, self.filter)]
        for event in chosen[:rows]:
            table.add_row(
                _clock(event.get("timestamp")),
                str(event.get("operation") or "-"),
                str(event.get("table") or "-"),
                str(event.get("isbn") or "-"),
                f"{event.get('count', 1):g}"
                if isinstance(event.get("count"), int | float)
                else "-",
                str(event.get("source") or "-"),
            )
        return table

    def render(self, snap: Snapshot | None, height: int = 24) -> RenderableType:
        parts: list[RenderableType] = [self.header(snap)]
        if snap is None:
            parts.append(Text("waiting for the first snapshot…"))
            return Group(*parts)
        for line in snap.unreachable:
            parts.append(Text(f"✘ {line}", style="red"))
        status = self.status_lines(snap)
        events = min(self.events, 4 if height <= 30 else 10)
        used = 2 + len(snap.unreachable) + status.plain.count("\n") + 3 + events + 4 + 1
        parts.append(self.operations(snap, max(3, height - used)))
        parts.append(status)
        parts.append(self.event_table(snap, events))
        parts.append(Text(KEYS, style="dim"))
        return Group(*parts)


def _flow_fields(flow: Any) -> dict[str, Any]:
    return {"flow_id": flow.flow_id, "channel": flow.channel, "state": flow.state}


@contextlib.contextmanager
def _cbreak(stream: Any) -> Iterator[bool]:
    """stdin in cbreak mode (keys without Enter, no echo) while the view runs."""
    try:
        import termios
        import tty

        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        yield False
        return
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_live(
    model: ReadModel,
    view: TopView,
    console: Console,
    service: str | None = None,
    stdin: Any = None,
) -> None:
    """Refresh every ``view.interval`` (unless paused) and take keys until ``q``."""
    from rich.live import Live

    stdin = stdin or sys.stdin
    state: dict[str, Snapshot | None] = {"snap": None}
    wake = threading.Event()
    changed = threading.Event()

    def fetch() -> None:
        while not view.done:
            if not view.paused:
                state["snap"] = model.snapshot(view.window, service, events=view.events)
                changed.set()
            wake.wait(view.interval)
            wake.clear()

    worker = threading.Thread(target=fetch, name="dbpulse-top", daemon=True)
    with (
        _cbreak(stdin) as keys,
        Live(
            view.render(None, console.size.height),
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
        ) as live,
    ):
        worker.start()
        try:
            while not view.done:
                if keys and select.select([stdin], [], [], 0.1)[0]:
                    char = os.read(stdin.fileno(), 1).decode("utf-8", "replace")
                    before = view.interval
                    view.key(char)
                    if view.interval != before:
                        wake.set()
                    changed.set()
                elif not keys:
                    time.sleep(0.1)
                if changed.is_set():
                    changed.clear()
                    live.update(view.render(state["snap"], console.size.height), refresh=True)
        except KeyboardInterrupt:
            pass
        finally:
            view.done = True
            wake.set()
