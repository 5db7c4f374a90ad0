"""Panel and dashboard builders over :mod:`.common`'s queries: time series, bars, variables,
the dashboard itself, the grid layout and the JSON rendering.

    from gen.common import promql
    from gen.panels import Layout, new_dashboard, render_dashboard, series

    board = new_dashboard("dbpulse-x", "dbpulse · X", "What it shows.", ["x"])
    layout = Layout()
    layout.add(series("Ops/s", "How busy?", "ops", [promql("sum(rate(up[5m]))")]), width=24)
    text = render_dashboard(layout.apply(board))

Panels get ids in the order they are added, so the generated JSON stays stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dm

from .common import GREEN_ONLY, PROMETHEUS

__all__ = ["Layout", "bars", "new_dashboard", "render_dashboard", "series", "variable"]


def _legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .display_mode(common_models.LegendDisplayMode.TABLE)
        .placement(common_models.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def series(
    title: str,
    description: str,
    unit: str,
    targets: list[prom.Dataquery],
    thresholds: dash.ThresholdsConfig = GREEN_ONLY,
    *,
    threshold_line: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .thresholds(thresholds)
        .legend(_legend())
        .fill_opacity(10)
    )
    if threshold_line:
        panel = panel.thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_models.GraphThresholdsStyleMode.DASHED)
        )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def bars(
    title: str, description: str, mode: common_models.BarGaugeDisplayMode, target: prom.Dataquery
) -> bargauge.Panel:
    """Horizontal bars of counts, one a series of ``target`` (an instant query)."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit("short")
        .thresholds(GREEN_ONLY)
        .display_mode(mode)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .with_target(target)
    )


@dataclass
class Layout:
    """Places panels left to right in rows of 24 grid units; ids in insertion order. A
    ``dash.Row`` starts a new line and heads the panels after it."""

    panels: list[tuple[Builder[Any], int, int]] = field(default_factory=list)

    def add(self, panel: Builder[Any], width: int = 12, height: int = 8) -> None:
        self.panels.append((panel, width, height))

    def apply(self, board: dash.Dashboard) -> dash.Dashboard:
        x = y = row_height = 0
        for number, (panel, width, height) in enumerate(self.panels, start=1):
            if x + width > 24 or isinstance(panel, dash.Row):
                x, y, row_height = 0, y + row_height, 0
            panel.id(number).grid_pos(dm.GridPos(h=height, w=width, x=x, y=y))  # type: ignore[attr-defined]
            if isinstance(panel, dash.Row):  # an open row: the panels after it belong to it
                board = board.with_row(panel)
            else:
                board = board.with_panel(panel)
            x += width
            row_height = max(row_height, height)
        return board


def variable(name: str, label: str, query: str, description: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .query(query)
        .datasource(PROMETHEUS)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def new_dashboard(uid: str, title: str, description: str, tags: list[str]) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["dbpulse", *tags])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )


def render_dashboard(builder: dash.Dashboard) -> str:
    """Stable JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(builder.build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"
