"""dbpulse's Grafana dashboards and alert rules as code; ``grafana/generate.py`` writes them.

One module a dashboard (:mod:`.database`, :mod:`.flows`, :mod:`.insights`, :mod:`.pipeline`)
over the shared building blocks of :mod:`.common` (datasources, budgets, queries) and
:mod:`.panels` (panels, layout, rendering), and :mod:`.alerts` for the alert rules.
:func:`outputs` renders every generated file::

    from gen import outputs

    for path, content in outputs().items():
        assert path.read_text() == content, f"{path} is out of date"
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dash

from .alerts import ALERT_RULES, render_rules
from .database import database_dashboard
from .flows import flows_dashboard
from .insights import insights_dashboard
from .panels import render_dashboard
from .pipeline import pipeline_dashboard

__all__ = [
    "ALERT_RULES",
    "DASHBOARDS",
    "DASHBOARDS_DIR",
    "GRAFANA",
    "RULES_FILE",
    "outputs",
]

GRAFANA = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = GRAFANA / "dashboards"
RULES_FILE = GRAFANA / "provisioning" / "alerting" / "rules.yaml"

#: Each dashboard's file name under :data:`DASHBOARDS_DIR` and the function that builds it.
DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "dbpulse-database.json": database_dashboard,
    "dbpulse-flows.json": flows_dashboard,
    "dbpulse-insights.json": insights_dashboard,
    "dbpulse-pipeline.json": pipeline_dashboard,
}


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {DASHBOARDS_DIR / name: render_dashboard(build()) for name, build in DASHBOARDS.items()}
    files[RULES_FILE] = render_rules()
    return files
