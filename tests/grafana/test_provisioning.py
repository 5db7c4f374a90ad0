"""Grafana's provisioning files: generated deterministically, in the formats Grafana reads,
mounted by docker-compose.yml where the provisioning files point."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.grafana._provisioning import (
    CONTACT_POINTS,
    DASHBOARD_PROVIDER,
    DASHBOARDS,
    DATASOURCES,
    POLICIES,
    REPO,
    alert_rules,
    dashboards,
    grafana_env_expand,
    load_generator,
    load_yaml,
    panel_queries,
)

#: Panel types whose values carry a unit and thresholds.
VALUE_PANELS = {"timeseries", "stat", "bargauge", "state-timeline", "gauge"}
NO_DATA_STATES = {"NoData", "Alerting", "OK", "KeepLast"}
EXEC_ERR_STATES = {"Error", "Alerting", "OK", "KeepLast"}
DURATION = re.compile(r"^\d+[smhd]$")


def test_regenerating_gives_identical_bytes() -> None:
    generator = load_generator()
    first = generator.outputs()
    second = load_generator().outputs()
    assert first == second, "two runs of the generator differ: output is not deterministic"
    for path, content in first.items():
        assert path.read_text() == content, (
            f"{path.relative_to(REPO)} is out of date: run `python grafana/generate.py`"
        )
    assert {p.name for p in DASHBOARDS.glob("*.json")} == {
        p.name for p in first if p.suffix == ".json"
    }


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS.glob("*.json")))
def test_dashboard_loads_into_the_sdk_types(name: str) -> None:
    raw = json.loads((DASHBOARDS / name).read_text())
    board = Dashboard.from_json(raw)
    assert board.uid == raw["uid"] and board.title
    # Through the SDK's model and back: nothing the SDK does not know about.
    again = json.loads(json.dumps(board.to_json(), default=lambda o: o.to_json()))
    assert again["panels"] == json.loads(json.dumps(raw["panels"]))


def test_dashboards_are_complete() -> None:
    datasource_uids = {d["uid"] for d in load_yaml(DATASOURCES)["datasources"]}
    boards = dashboards()
    assert set(boards) == {
        "dbpulse-database.json",
        "dbpulse-flows.json",
        "dbpulse-insights.json",
        "dbpulse-pipeline.json",
    }
    variables = {
        name: {v["name"] for v in board["templating"]["list"]} for name, board in boards.items()
    }
    assert {"service", "system", "table"} <= variables["dbpulse-database.json"]
    assert {"service", "channel", "flow_id"} <= variables["dbpulse-flows.json"]
    assert "service" in variables["dbpulse-pipeline.json"]
    assert "service" in variables["dbpulse-insights.json"]
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1)), f"{name}: panel ids are not stable"
        for panel in board["panels"]:
            where = f"{name} / {panel['title']}"
            if panel["type"] == "row":  # a heading: the panels after it hold the queries
                assert not panel.get("collapsed") and panel["gridPos"]["w"] == 24, where
                continue
            assert panel.get("description"), f"{where}: no description"
            assert panel["datasource"]["uid"] in datasource_uids, where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in datasource_uids, where
            if panel["type"] in VALUE_PANELS:
                defaults = panel["fieldConfig"]["defaults"]
                assert defaults.get("thresholds", {}).get("steps"), f"{where}: no thresholds"
                if panel["type"] != "state-timeline":
                    assert defaults.get("unit"), f"{where}: no unit"
        queries = panel_queries(name, board)
        assert queries and all(q.query.strip() for q in queries)


def _check_rule(rule: dict[str, Any]) -> None:
    where = rule.get("uid", "?")
    for key in ("uid", "title", "condition", "data", "noDataState", "execErrState", "for"):
        assert key in rule, f"{where}: no {key}"
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", rule["uid"]), f"{where}: invalid uid"
    assert rule["noDataState"] in NO_DATA_STATES, where
    assert rule["execErrState"] in EXEC_ERR_STATES, where
    assert DURATION.match(rule["for"]), where
    refs = {d["refId"]: d for d in rule["data"]}
    assert rule["condition"] in refs, f"{where}: condition names no query"
    for ref, query in refs.items():
        assert set(query) >= {"refId", "datasourceUid", "relativeTimeRange", "model"}, where
        assert query["model"]["refId"] == ref, where
        assert set(query["relativeTimeRange"]) == {"from", "to"}, where
        if query["datasourceUid"] == "__expr__":
            model = query["model"]
            assert model["type"] in {"reduce", "threshold", "math", "classic_conditions"}
            assert model.get("expression") in refs, f"{where}: {ref} reads no query"
        else:
            assert query["datasourceUid"] == "prometheus", where
            assert query["model"]["expr"].strip(), where
            assert "$$" not in query["model"]["expr"], f"{where}: $$ survived interpolation"
    assert rule["labels"]["severity"] in {"warning", "critical"}, where
    for key in ("summary", "description", "runbook"):
        assert rule["annotations"].get(key), f"{where}: no {key} annotation"


def test_alert_rules_follow_the_provisioning_format() -> None:
    document = load_yaml(REPO / "grafana" / "provisioning" / "alerting" / "rules.yaml")
    assert document["apiVersion"] == 1
    for group in document["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(group)
        assert DURATION.match(group["interval"])
        for rule in group["rules"]:
            _check_rule(rule)
    rules = alert_rules()
    uids = [r["uid"] for r in rules]
    assert len(uids) == len(set(uids))
    # The rules the issue asks for.
    titles = " | ".join(r["title"] for r in rules)
    for needed in ("Heartbeat", "10%", "25%", "p95 latency", "Flow p95", "stuck", "No database"):
        assert needed in titles, f"no rule for {needed!r}"
    assert any("dropping telemetry" in r["title"] for r in rules)


def test_literal_dollars_are_escaped_in_provisioning_files() -> None:
    """Grafana expands $VAR in provisioning files: template/PromQL dollars must be $$."""
    raw = (REPO / "grafana" / "provisioning" / "alerting" / "rules.yaml").read_text()
    assert "{{ $labels" not in raw and "{{ $$labels" in raw
    for path in (DATASOURCES,):
        text = path.read_text()
        assert not re.search(r"(?<!\$)\$__", text), f"{path.name}: unescaped $__ variable"


def test_contact_point_and_policy() -> None:
    env = {"ALERT_WEBHOOK_URL": "http://receiver.example/hook"}
    contact = load_yaml(CONTACT_POINTS, env)
    assert contact["apiVersion"] == 1
    (point,) = contact["contactPoints"]
    (receiver,) = point["receivers"]
    assert receiver["type"] == "webhook"
    assert receiver["settings"]["url"] == env["ALERT_WEBHOOK_URL"], "URL must come from env"
    assert "ALERT_WEBHOOK_URL" in CONTACT_POINTS.read_text()
    policies = load_yaml(POLICIES)
    assert policies["apiVersion"] == 1
    (root,) = policies["policies"]
    assert root["receiver"] == point["name"]
    assert all(route["receiver"] == point["name"] for route in root.get("routes", []))
    severities = {r["labels"]["severity"] for r in alert_rules()}
    routed = {m[2] for route in root["routes"] for m in route["object_matchers"]}
    assert severities <= routed


def test_datasources_link_metrics_and_traces() -> None:
    document = load_yaml(DATASOURCES)
    assert document["apiVersion"] == 1
    sources = {d["uid"]: d for d in document["datasources"]}
    for source in sources.values():
        assert {"name", "type", "uid", "access", "url"} <= set(source)
    prometheus = next(d for d in sources.values() if d["type"] == "prometheus")
    tempo = next(d for d in sources.values() if d["type"] == "tempo")
    (exemplar,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    # The collector's prometheus exporter writes OTLP exemplars with the label trace_id.
    assert exemplar["name"] == "trace_id"
    assert exemplar["datasourceUid"] == tempo["uid"]
    links = tempo["jsonData"]
    assert links["tracesToMetrics"]["datasourceUid"] == prometheus["uid"]
    assert links["serviceMap"]["datasourceUid"] == prometheus["uid"]
    assert links["tracesToMetrics"]["queries"]
    assert all("$__tags" in q["query"] for q in links["tracesToMetrics"]["queries"])


def test_compose_mounts_what_the_provisioning_files_point_at() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {}
    for volume in grafana["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    assert mounts.get("/etc/grafana/provisioning") == "./grafana/provisioning"
    provider = load_yaml(DASHBOARD_PROVIDER)
    (entry,) = provider["providers"]
    path = entry["options"]["path"]
    assert mounts.get(path) == "./grafana/dashboards", f"nothing mounts {path}"
    environment = grafana.get("environment", {})
    assert "ALERT_WEBHOOK_URL" in environment, "the contact point's URL is not passed in"
    # The generator writes where compose mounts from.
    assert (REPO / mounts[path].removeprefix("./")).resolve() == DASHBOARDS.resolve()


def test_grafana_env_expand_matches_grafana() -> None:
    assert grafana_env_expand("a $$b ${X} $X $$__tags", {"X": "1"}) == "a $b 1 1 $__tags"
