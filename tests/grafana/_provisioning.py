"""Reading Grafana's provisioning files the way Grafana does, for the tests.

Grafana cannot run here, so the tests read what it would read: the generated dashboards, the
alert rules (with ``$$`` turned back into ``$`` as Grafana's env interpolation does) and the
datasources, and turn dashboard targets into the queries Grafana would send to Prometheus and
Tempo once the dashboard variables are substituted.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
PROVISIONING = GRAFANA / "provisioning"
DASHBOARDS = GRAFANA / "dashboards"
RULES = PROVISIONING / "alerting" / "rules.yaml"
CONTACT_POINTS = PROVISIONING / "alerting" / "contact-points.yaml"
POLICIES = PROVISIONING / "alerting" / "policies.yaml"
DATASOURCES = PROVISIONING / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDER = PROVISIONING / "dashboards" / "dashboards.yaml"

#: The queries Grafana's Tempo datasource sends to Prometheus for a serviceMap query
#: (public/app/plugins/datasource/tempo: serviceMapMetrics + the failed/seconds series).
SERVICE_MAP_QUERIES = (
    "sum by (client, server) (rate(traces_service_graph_request_total[$__range]))",
    "sum by (client, server) (rate(traces_service_graph_request_server_seconds_sum[$__range]))",
    "sum by (client, server) (rate(traces_service_graph_request_failed_total[$__range]))",
)


def load_generator() -> ModuleType:
    """``grafana/generate.py`` as a module (``grafana/`` is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "dbpulse_grafana_generate", GRAFANA / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while executing it
    spec.loader.exec_module(module)
    return module


def grafana_env_expand(text: str, env: dict[str, str] | None = None) -> str:
    """Grafana's provisioning interpolation: ``$$`` → ``$``, ``$VAR``/``${VAR}`` → value."""
    env = env or {}
    pattern = re.compile(r"\$\$|\$\{(\w+)\}|\$(\w+)")

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1) or match.group(2), "")

    return pattern.sub(replace, text)


def load_yaml(path: Path, env: dict[str, str] | None = None) -> Any:
    return yaml.safe_load(grafana_env_expand(path.read_text(), env))


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def alert_rules() -> list[dict[str, Any]]:
    document = load_yaml(RULES)
    return [rule for group in document["groups"] for rule in group["rules"]]


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, as Grafana would send it."""

    dashboard: str
    panel: str
    ref_id: str
    language: str  # "promql" or "traceql"
    query: str
    instant: bool = False

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def panel_queries(board_file: str, board: dict[str, Any]) -> list[PanelQuery]:
    """Every target of every panel; a serviceMap target becomes its Prometheus queries."""
    found: list[PanelQuery] = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            ref = target["refId"]
            if uid == "prometheus":
                found.append(
                    PanelQuery(
                        board_file,
                        panel["title"],
                        ref,
                        "promql",
                        target["expr"],
                        bool(target.get("instant")),
                    )
                )
            elif target.get("queryType") == "serviceMap":
                for i, query in enumerate(SERVICE_MAP_QUERIES):
                    found.append(
                        PanelQuery(board_file, panel["title"], f"{ref}:map{i}", "promql", query)
                    )
            else:
                found.append(
                    PanelQuery(board_file, panel["title"], ref, "traceql", target["query"])
                )
    return found


_LEFT = re.compile(r"\$\{?([A-Za-z_]\w*)")


def substitute(query: str, variables: dict[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` the way Grafana interpolates (longest names first). A
    variable the dashboard uses and the test does not give is an error, not a query sent with
    ``$name`` in it."""
    for name in sorted(variables, key=len, reverse=True):
        query = query.replace("${" + name + "}", variables[name])
        query = query.replace("$" + name, variables[name])
    left = sorted(set(_LEFT.findall(query)))
    if left:
        raise ValueError(f"no value for ${', $'.join(left)} in {query!r}")
    return query
