"""What the dashboards and the alert rules share: datasources, targets and budgets, label
matchers, thresholds and the query builders.

    from gen.common import PROMETHEUS, promql, thresholds

    query = promql("sum by (service_name) (rate(dbpulse_db_writes_total[5m]))", "{{service_name}}")
    steps = thresholds((None, "green"), (0.1, "orange"), (0.25, "red"))
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import tempo
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import tempo as tempo_models

__all__ = [
    "FLOW_TARGET_SECONDS",
    "GREEN_ONLY",
    "OTHER_BUDGET_SECONDS",
    "PROMETHEUS",
    "PROMETHEUS_UID",
    "READ_BUDGET_SECONDS",
    "READ_OPERATIONS",
    "SERVICE",
    "TEMPO",
    "TEMPO_UID",
    "promql",
    "thresholds",
    "traceql",
]

#: Datasource uids of grafana/provisioning/datasources/datasources.yaml.
PROMETHEUS_UID = "prometheus"
TEMPO_UID = "tempo"
PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
TEMPO = dm.DataSourceRef(type_val="tempo", uid=TEMPO_UID)

#: The pattern-flow latency target (docs/flows.md).
FLOW_TARGET_SECONDS = 0.1
#: Reads get a tighter latency budget than everything else (alert "DB p95 latency").
READ_OPERATIONS = "SELECT|GET|MGET|HGET|HGETALL|EXISTS"
READ_BUDGET_SECONDS = 0.1
OTHER_BUDGET_SECONDS = 0.5

#: The ``$service`` dashboard variable as a label matcher.
SERVICE = 'service_name=~"$service"'


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


GREEN_ONLY = thresholds((None, "green"))


def promql(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> prom.Dataquery:
    query = prom.Dataquery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    query = query.legend_format(legend or "__auto")
    return query.instant() if instant else query.range()


def traceql(query: str, ref: str = "A", limit: int = 20) -> tempo.TempoQuery:
    return (
        tempo.TempoQuery()
        .ref_id(ref)
        .datasource(TEMPO)
        .query_type("traceql")
        .query(query)
        .limit(limit)
        .table_type(tempo_models.SearchTableType.TRACES)
    )
