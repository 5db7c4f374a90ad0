"""The alert rules, written as Grafana *file provisioning* (``provisioning/alerting/rules.yaml``).

Not the SDK's alerting builders, which follow the HTTP API's shape. Every ``$`` of a query or
annotation is written ``$$``, because Grafana expands environment variables in provisioning
files. Add a rule to :data:`ALERT_RULES`; :data:`ALERT_GROUPS` files it by its uid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from .common import (
    FLOW_TARGET_SECONDS,
    OTHER_BUDGET_SECONDS,
    PROMETHEUS_UID,
    READ_BUDGET_SECONDS,
    READ_OPERATIONS,
)
from .health import SIZE_CRITICAL_BYTES, SIZE_WARNING_BYTES, WAL_FLOOR_BYTES

__all__ = ["ALERT_GROUPS", "ALERT_RULES", "AlertRule", "provisioning_rule", "render_rules"]


@dataclass(frozen=True)
class AlertRule:
    """One Grafana-managed rule: a PromQL query (A), reduce last (B), threshold (C)."""

    uid: str
    title: str
    expr: str
    evaluator: str  # gt, lt
    threshold: float
    severity: str
    for_: str
    summary: str
    description: str
    runbook: str
    hint: str
    window_seconds: int = 600
    #: No series at all is usually a fresh or idle stack, not an outage.
    no_data: str = "OK"
    exec_err: str = "Error"


DB_COUNT = "db_client_operation_duration_seconds_count"
DB_BUCKET = "db_client_operation_duration_seconds_bucket"
_ERROR_RATIO = (
    f'(sum by (service_name, db_system_name) (rate({DB_COUNT}{{error_type!=""}}[5m]))'
    f" or sum by (service_name, db_system_name) (rate({DB_COUNT}[5m])) * 0)"
    f" / sum by (service_name, db_system_name) (rate({DB_COUNT}[5m]))"
)
_LATENCY_BY_OP = "sum by (service_name, db_system_name, db_operation_name, le)"
_PUBLISHED = (
    "sum by (messaging_destination_name) (increase(dbpulse_flow_checkpoints_total"
    '{flow_checkpoint="PATTERN_PUBLISHED"}[5m]))'
)
_DELIVERED = (
    "sum by (messaging_destination_name) (increase(dbpulse_flow_checkpoints_total"
    '{flow_checkpoint="WEBSOCKET_DELIVERED"}[5m]))'
)


_BY_TARGET = "max by (service_name, dbpulse_health_target)"
_WAL = "dbpulse_db_health_wal_size_bytes"
#: Lock retries and the busy errors behind them, per second (0 for a service with neither).
_LOCK_STORM = (
    '(sum by (service_name) (rate(dbpulse_db_retries_total{outcome="retried"}[5m])'
    f' or rate({DB_COUNT}{{error_type=~"SQLITE_BUSY|SQLITE_LOCKED"}}[5m]))'
    f" or sum by (service_name) (rate({DB_COUNT}[5m])) * 0)"
)
LOCK_STORM_PER_SECOND = 1.0


def _size_rule(severity: str, limit: int, words: str) -> AlertRule:
    return AlertRule(
        uid=f"dbpulse-db-size-{severity}",
        title=f"Database larger than {words}",
        expr=f"{_BY_TARGET} (dbpulse_db_health_size_bytes)",
        evaluator="gt",
        threshold=limit,
        severity=severity,
        for_="15m",
        summary="{{ $labels.dbpulse_health_target }} ({{ $labels.service_name }}): "
        "{{ humanize1024 $values.B.Value }}B",
        description=f"The database {{{{ $labels.dbpulse_health_target }}}} is larger than "
        f"{words} (seed 003's {severity} level; dbpulse health's size.{severity}_mb).",
        runbook="database-size",
        hint="dbpulse health TARGET shows file, WAL and freelist; VACUUM, archive or prune.",
    )


def _error_rate_rule(severity: str, threshold: float, for_: str, share: str) -> AlertRule:
    """The database error-rate rule of one level: ``share`` says ``threshold`` in words."""
    return AlertRule(
        uid=f"dbpulse-db-error-rate-{severity}",
        title=f"Database error rate above {threshold:.0%}",
        expr=_ERROR_RATIO,
        evaluator="gt",
        threshold=threshold,
        severity=severity,
        for_=for_,
        summary="{{ $labels.service_name }}: {{ humanizePercentage $values.B.Value }} of "
        "{{ $labels.db_system_name }} operations fail",
        description=f"More than {share} of "
        "{{ $labels.db_system_name }} operations of "
        "{{ $labels.service_name }} failed over the last 5 minutes.",
        runbook="database-error-rate",
        hint=(
            "Errors/s by error.type on the Database dashboard names the failure; open an "
            "exemplar trace."
        ),
    )


ALERT_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        uid="dbpulse-heartbeat-missing",
        title="Heartbeat missing",
        expr=(
            "time() - max by (service_name, dbpulse_component) "
            "(max_over_time(dbpulse_heartbeat_timestamp_seconds[1d]))"
        ),
        evaluator="gt",
        threshold=120,
        severity="critical",
        for_="0s",
        summary="{{ $labels.service_name }} {{ $labels.dbpulse_component }}: no heartbeat for "
        "{{ humanizeDuration $values.B.Value }}",
        description="The {{ $labels.dbpulse_component }} of {{ $labels.service_name }} has not "
        "reported a heartbeat for more than 2 minutes (interval 60 s): the process is down, "
        "hung, or cannot reach the collector.",
        runbook="heartbeat-missing",
        hint="is the process running? its log; can it reach the collector (OTLP)?",
        # No component beat in the last day: nothing to watch (a fresh stack), not an outage,
        # so no data stays OK.
        window_seconds=86400,
    ),
    _error_rate_rule("warning", 0.10, "5m", "10%"),
    _error_rate_rule("critical", 0.25, "2m", "a quarter"),
    AlertRule(
        uid="dbpulse-db-latency-p95",
        title="Database p95 latency over budget",
        expr=(
            f"histogram_quantile(0.95, {_LATENCY_BY_OP} (rate({DB_BUCKET}"
            f'{{db_operation_name=~"{READ_OPERATIONS}"}}[5m]))) / {READ_BUDGET_SECONDS}'
            f" or histogram_quantile(0.95, {_LATENCY_BY_OP} (rate({DB_BUCKET}"
            f'{{db_operation_name!~"{READ_OPERATIONS}"}}[5m]))) / {OTHER_BUDGET_SECONDS}'
        ),
        evaluator="gt",
        threshold=1.0,
        severity="warning",
        for_="5m",
        summary="{{ $labels.service_name }}: p95 of {{ $labels.db_system_name }} "
        '{{ $labels.db_operation_name }} is {{ printf "%.1f" $values.B.Value }}x its budget',
        description="The 95th percentile latency of {{ $labels.db_operation_name }} on "
        "{{ $labels.db_system_name }} ({{ $labels.service_name }}) exceeded its budget over "
        f"5 minutes: {READ_BUDGET_SECONDS * 1000:.0f} ms for reads ({READ_OPERATIONS}), "
        f"{OTHER_BUDGET_SECONDS * 1000:.0f} ms for everything else. The value is p95 / budget.",
        runbook="database-latency",
        hint=(
            "find the slow operation and table on the latency panel, open an exemplar trace, "
            "check locks and pool wait."
        ),
    ),
    AlertRule(
        uid="dbpulse-flow-latency-p95",
        title="Flow p95 latency above 100 ms",
        expr=(
            "histogram_quantile(0.95, sum by (service_name, messaging_destination_name, le) "
            "(rate(dbpulse_flow_latency_seconds_bucket[5m])))"
        ),
        evaluator="gt",
        threshold=FLOW_TARGET_SECONDS,
        severity="warning",
        for_="5m",
        summary="{{ $labels.messaging_destination_name }}: flow p95 "
        "{{ humanizeDuration $values.B.Value }} (target 100 ms)",
        description="Pattern events on {{ $labels.messaging_destination_name }} take longer "
        "than 100 ms from publish to WebSocket delivery (p95 over 5 minutes, consumer "
        "{{ $labels.service_name }}).",
        runbook="flow-latency",
        hint=(
            "is the consumer slow (deliver spans) or behind (heartbeat events)? Open a slow "
            "flow in Tempo."
        ),
    ),
    AlertRule(
        uid="dbpulse-flows-stuck",
        title="Flows stuck (published, not delivered)",
        expr=f"{_PUBLISHED} - ({_DELIVERED} or {_PUBLISHED} * 0)",
        evaluator="gt",
        threshold=10,
        severity="critical",
        for_="5m",
        summary="{{ $labels.messaging_destination_name }}: {{ $values.B.Value }} flows "
        "published but not delivered in 5 minutes",
        description="More than 10 pattern events published on "
        "{{ $labels.messaging_destination_name }} in the last 5 minutes were not delivered to "
        "WebSocket users: no consumer, a consumer that drops or fails them, or one far behind.",
        runbook="flows-stuck",
        hint=(
            "the checkpoint funnel shows where flows stop; is a consumer subscribed "
            "(subscription panel)?"
        ),
    ),
    AlertRule(
        uid="dbpulse-db-no-writes",
        title="No database writes for 1 hour",
        expr=(
            "sum by (service_name) (increase(dbpulse_db_writes_total[1h]))"
            " or sum by (service_name) (count_over_time(dbpulse_db_writes_total[1d])) * 0"
        ),
        evaluator="lt",
        threshold=1,
        severity="warning",
        for_="0s",
        summary="{{ $labels.service_name }} wrote no rows for an hour",
        description="{{ $labels.service_name }} wrote rows in the last day but none in the "
        "last hour (dbpulse.db.writes). Expected writes stopped: the writer is down, stuck, "
        "or its input dried up.",
        runbook="no-writes",
        hint=(
            "is the writer running (heartbeat, sampler mode series)? Did its input stop? "
            "Errors on the same service?"
        ),
        # No service wrote in the last day: nothing is expected to write, so no data stays OK.
        window_seconds=86400,
    ),
    _size_rule("warning", SIZE_WARNING_BYTES, "500 MB"),
    _size_rule("critical", SIZE_CRITICAL_BYTES, "1 GB"),
    AlertRule(
        uid="dbpulse-db-health-not-ok",
        title="Database health not OK",
        expr=f"{_BY_TARGET} (dbpulse_db_health_status)",
        evaluator="gt",
        threshold=0,
        severity="warning",
        for_="5m",
        summary="{{ $labels.dbpulse_health_target }} ({{ $labels.service_name }}): status "
        "{{ $values.B.Value }} (1 WARNING, 2 ERROR, 3 CRITICAL, 4 UNKNOWN)",
        description="A health check of {{ $labels.dbpulse_health_target }} is not OK "
        "(dbpulse.db.health.status is its worst check) for 5 minutes.",
        runbook="database-health",
        hint="dbpulse health TARGET prints every check with its reason and the fix.",
    ),
    AlertRule(
        uid="dbpulse-db-wal-growing",
        title="WAL growing without checkpoints",
        expr=(
            f"({_BY_TARGET} (delta({_WAL}[30m])) and {_BY_TARGET} ({_WAL}) > {WAL_FLOOR_BYTES})"
            f" or {_BY_TARGET} ({_WAL}) * 0"
        ),
        evaluator="gt",
        threshold=0,
        severity="warning",
        for_="10m",
        summary="{{ $labels.dbpulse_health_target }}: WAL grew "
        "{{ humanize1024 $values.B.Value }}B in 30 minutes",
        description="The write-ahead log of {{ $labels.dbpulse_health_target }} is over 16 MB "
        "and still growing: checkpoints cannot reset it (SQLite's auto-checkpoint keeps it "
        "near 4 MB), usually because a reader holds an old snapshot open.",
        runbook="wal-growing",
        hint="find the long-lived read transaction; PRAGMA wal_checkpoint(TRUNCATE) after.",
    ),
    AlertRule(
        uid="dbpulse-db-no-new-rows",
        title="No new rows for 1 hour",
        expr="max by (service_name, dbpulse_health_target, db_collection_name) "
        "(dbpulse_db_health_newest_row_age_seconds)",
        evaluator="gt",
        threshold=3600,
        severity="warning",
        for_="0s",
        summary="{{ $labels.dbpulse_health_target }} {{ $labels.db_collection_name }}: newest "
        "row {{ humanizeDuration $values.B.Value }} old",
        description="The newest row of {{ $labels.db_collection_name }} in "
        "{{ $labels.dbpulse_health_target }} is more than an hour old (seed 003's \"no "
        'executions in the last hour"): whatever writes it stopped.',
        runbook="no-new-rows",
        hint="is the writer running? The No database writes alert of the same service?",
    ),
    AlertRule(
        uid="dbpulse-db-lock-storm",
        title="Lock storm",
        expr=_LOCK_STORM,
        evaluator="gt",
        threshold=LOCK_STORM_PER_SECOND,
        severity="warning",
        for_="5m",
        summary="{{ $labels.service_name }}: {{ humanize $values.B.Value }} lock retries and "
        "busy errors/s",
        description="{{ $labels.service_name }} retried or failed on locks "
        "(dbpulse.db.retries retried, SQLITE_BUSY/SQLITE_LOCKED) more than once a second "
        "over 5 minutes: writers queue on one database.",
        runbook="lock-storm",
        hint="fewer concurrent writers or shorter transactions; WAL and a busy timeout "
        "(dbpulse.sqlite_connect).",
    ),
    AlertRule(
        uid="dbpulse-telemetry-dropped",
        title="dbpulse dropping telemetry",
        expr=(
            "sum by (service_name) (increase(dbpulse_telemetry_dropped_total[10m]))"
            " or sum by (service_name) (dbpulse_sampler_mode) * 0"
        ),
        evaluator="gt",
        threshold=0,
        severity="warning",
        for_="0s",
        summary="{{ $labels.service_name }} dropped {{ $values.B.Value }} telemetry items "
        "in 10 minutes",
        description="dbpulse in {{ $labels.service_name }} dropped telemetry to protect the "
        "application (dbpulse.telemetry.dropped: span queue, viz feed, ISBN cardinality, "
        "flow, extractor). Dashboards and traces are incomplete for that time.",
        runbook="telemetry-dropped",
        hint=(
            "the Telemetry pipeline dashboard names the component; raise that queue or fix "
            "its receiver."
        ),
    ),
    AlertRule(
        uid="dbpulse-collector-export-backlog",
        title="Collector export backlog",
        expr="max by (exporter) (otelcol_exporter_queue_size)",
        evaluator="gt",
        threshold=5,
        severity="warning",
        for_="5m",
        # The collector's own metrics are missing: the collector or its scrape is down.
        no_data="Alerting",
        summary="{{ $labels.exporter }}: {{ $values.B.Value }} batches waiting",
        description="The collector cannot deliver to {{ $labels.exporter }} as fast as data "
        "arrives: its sending queue holds more than 5 batches. For Tempo the queue is "
        "persistent (nothing is lost until it is full: 10000 batches), but traces are late.",
        runbook="collector-backlog",
        hint="is the backend (Tempo) up and reachable from the collector? Check the collector log.",
    ),
)


def _escape(value: Any) -> Any:
    """Grafana expands $VAR in provisioning files: a literal $ is written $$."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value


def provisioning_rule(rule: AlertRule) -> dict[str, Any]:
    """``rule`` in Grafana's alert-rule file-provisioning shape (unescaped)."""
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": rule.window_seconds, "to": 0},
                "datasourceUid": PROMETHEUS_UID,
                "model": {
                    "refId": "A",
                    "expr": rule.expr,
                    "instant": True,
                    "range": False,
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                    "legendFormat": "__auto",
                    "datasource": {"type": "prometheus", "uid": PROMETHEUS_UID},
                },
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                    # NaN (e.g. a quantile of no traffic) is no value, not a firing value.
                    "settings": {"mode": "dropNN"},
                    "datasource": {"type": "__expr__", "uid": "__expr__"},
                },
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [
                        {"evaluator": {"type": rule.evaluator, "params": [rule.threshold]}}
                    ],
                    "datasource": {"type": "__expr__", "uid": "__expr__"},
                },
            },
        ],
        "noDataState": rule.no_data,
        "execErrState": rule.exec_err,
        "for": rule.for_,
        "labels": {"severity": rule.severity, "team": "dbpulse"},
        "annotations": {
            "summary": rule.summary,
            "description": rule.description,
            "runbook": f"docs/grafana.md#{rule.runbook}: {rule.hint}",
        },
        "isPaused": False,
    }


ALERT_GROUPS = (
    ("dbpulse-database", ("db-", "telemetry-")),
    ("dbpulse-flows", ("heartbeat-", "flow")),
    ("dbpulse-pipeline", ("collector-",)),
)


def render_rules() -> str:
    groups = []
    for name, prefixes in ALERT_GROUPS:
        rules = [
            provisioning_rule(r)
            for r in ALERT_RULES
            if r.uid.removeprefix("dbpulse-").startswith(prefixes)
        ]
        groups.append(
            {"orgId": 1, "name": name, "folder": "dbpulse", "interval": "1m", "rules": rules}
        )
    document = {"apiVersion": 1, "groups": _escape(groups)}
    header = (
        "# Generated by grafana/generate.py from grafana/gen/alerts.py; edit that and run it.\n"
        "# Grafana alert-rule file provisioning; `$$` is a literal `$` (Grafana expands env\n"
        "# vars here). Runbooks: docs/grafana.md. Proven by tests/grafana/test_proof.py.\n"
    )
    body = yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
    return header + body
