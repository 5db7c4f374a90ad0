"""THE PROOF: every provisioned dashboard query and alert rule against the real backends.

Demo workloads (``tests/grafana/workload.py``: real dbpulse instrumentation in their own
processes, OTLP to the harness collector) run in steady state and under faults at once, under
distinct service names and channels:

========================  =====================================================================
steady                    SQLite + PostgreSQL (psycopg_pool) writes with ISBNs, Redis; a
                          producer → Redis pub/sub → consumer flow channel
fault: database           failing statements, slow reads, SQLITE_BUSY and 55P03 lock errors, an
                          exhausted pool, a viz feed that cannot send (drops); writes stop
fault: flows              a consumer that drops and delays events, receives malformed
                          messages, then exits (stuck flows, silent heartbeat)
fault: collector          the trace store stopped a while (the export queue backs up), restarted
health                    an app with DBPULSE_HEALTH_TARGETS on three SQLite files: a healthy
                          one (steady), one of 1.1 GB (sparse) in rollback mode whose rows are
                          two hours old (size, status, no new rows), one whose WAL a held
                          snapshot keeps growing (WAL growing)
fault: lock storm         four writers on one SQLite file through dbpulse.retry for 30 s, then
                          idle: the lock-storm alert fires, and is quiet once the storm is over
========================  =====================================================================

Then every panel target of every dashboard runs against Prometheus (PromQL, range or instant
as the panel asks) or the trace store (TraceQL), with the dashboard variables substituted, and
must return data. The trace store is Jaeger, not Tempo (Tempo's Go module may not be built here,
docs/stack.md): the dashboards' TraceQL is a subset (one spanset of ``&&``-joined comparisons)
that the harness answers with a Jaeger attribute search and TraceQL's one-span semantics
(``OtelStack.search_traceql``); a query outside that subset fails the test. Every alert rule's
own query runs against Prometheus, through its reduce (last, NaN dropped) and threshold: it must
fire for the fault's series and not for the steady one.

Long windows are shortened by substitution (printed in the table): "no writes for 1 h" is
evaluated over 30 s, "heartbeat missing > 120 s" with a 20 s threshold (the test's heartbeat
interval is 1 s), "WAL growing in 30 min" and "lock storm over 5 min" over the samples the run
has (Prometheus extrapolates ``delta``/``rate`` over what the window holds); the lock storm's
quiet after the storm is evaluated over 20 s. A rule's ``for`` is not waited out.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.grafana._provisioning import (
    DATASOURCES,
    REPO,
    alert_rules,
    dashboards,
    load_yaml,
    panel_queries,
    substitute,
)
from tests.harness.stack import OtelStack, StackError, http_get, wait_until

pytestmark = pytest.mark.integration

#: Grafana's built-in interval variables, as a 1-hour dashboard with a 5 s scrape gets them.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "10m"}
HEARTBEAT_THRESHOLD_S = 20.0
NO_WRITES_WINDOW = "30s"
STORM_AFTER_WINDOW = "20s"
LOCK_STORM = "dbpulse-db-lock-storm"


@dataclass
class Scenario:
    run: str
    stop_file: Path
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def service(self, role: str) -> str:
        return f"gf-{role}-{self.run}"

    def channel(self, kind: str) -> str:
        return f"gf.{kind}.{self.run}"

    @property
    def services(self) -> list[str]:
        roles = ("db", "dbfault", "producer", "consumer", "flowfault", "health", "storm")
        return [self.service(r) for r in roles]

    def variables(self) -> dict[str, str]:
        """Dashboard variables as Grafana formats a multi-value selection for a regex."""
        return {
            **BUILTINS,
            "service": "(" + "|".join(self.services) + ")",
            "system": "(sqlite|postgresql|redis)",
            "table": ".*",
            "target": ".*",
            "channel": f"({self.channel('steady')}|{self.channel('fault')})",
        }


def _start(
    scenario: Scenario, otel_stack: OtelStack, name: str, service: str, *args: str, **env: str
) -> None:
    environ = {
        **os.environ,
        # The checkout's code, whatever copy of dbpulse is installed.
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "instrumentation")]),
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otel_stack.otlp_grpc_endpoint}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        **env,
    }
    scenario.processes[name] = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.grafana.workload",
            *args,
            "--stop-file",
            str(scenario.stop_file),
        ],
        env=environ,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _send_malformed(redis_url: str, channel: str) -> None:
    """Messages an old or broken producer might send: not JSON, and JSON that is no pattern."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        wait_until(
            lambda: any(n for _, n in client.pubsub_numsub(channel)),
            timeout=30,
            what=f"a subscriber on {channel}",
        )
        for _ in range(3):
            client.publish(channel, b"\xffnot json")
            client.publish(channel, json.dumps({"flow_id": str(uuid.uuid4()), "hello": 1}))
    finally:
        client.close()


@pytest.fixture(scope="module")
def scenario(otel_stack: OtelStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    dsn, redis_url = services.postgres_dsn(), services.redis_url()
    tmp = tmp_path_factory.mktemp("grafana-proof")
    run = Scenario(uuid.uuid4().hex[:6], tmp / "stop")
    steady, fault = run.channel("steady"), run.channel("fault")
    try:
        _start(
            run, otel_stack, "consumer", run.service("consumer"), "consumer", "--channel", steady
        )
        _start(
            run,
            otel_stack,
            "flowfault",
            run.service("flowfault"),
            "consumer",
            "--channel",
            fault,
            "--drop",
            "0.5",
            "--delay",
            "0.5",
            "--seconds",
            "15",
        )
        common = ["--postgres", dsn, "--redis", redis_url, "--interval", "0.1"]
        _start(
            run, otel_stack, "db", run.service("db"), "db", "--sqlite", str(tmp / "a.db"), *common
        )
        _start(
            run,
            otel_stack,
            "dbfault",
            run.service("dbfault"),
            "db",
            "--mode",
            "fault",
            "--sqlite",
            str(tmp / "b.db"),
            "--seconds",
            "25",
            *common,
            # A viz server that is not there, a queue of 5: the feed must drop, and count it.
            DBPULSE_VIZ_URL="http://127.0.0.1:9",
            DBPULSE_VIZ_QUEUE_SIZE="5",
        )
        _start(
            run,
            otel_stack,
            "producer",
            run.service("producer"),
            "producer",
            "--channel",
            steady,
            "--channel",
            fault,
            "--rate",
            "2",
        )
        health = tmp / "health"
        health.mkdir()
        _start(
            run,
            otel_stack,
            "health",
            run.service("health"),
            "health",
            "--health-dir",
            str(health),
            DBPULSE_HEALTH_TARGETS=" ".join(str(health / n) for n in ("ok.db", "big.db", "wal.db")),
            DBPULSE_HEALTH_TABLES="events:at",
            DBPULSE_HEALTH_INTERVAL="1",
        )
        _start(
            run,
            otel_stack,
            "storm",
            run.service("storm"),
            "storm",
            "--sqlite",
            str(tmp / "storm.db"),
            "--storm-seconds",
            "30",
        )
        _send_malformed(redis_url, fault)
        yield run
    finally:
        run.stop_file.touch()
        outputs = {}
        for name, process in run.processes.items():
            try:
                outputs[name], _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                outputs[name], _ = process.communicate()
        _drop_table(dsn)
        for name, output in outputs.items():
            print(f"workload {name}: {output.strip().splitlines()[-1:] if output else ''}")


def _drop_table(dsn: str) -> None:
    import psycopg

    from tests.grafana.workload import TABLE

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


# -- querying -------------------------------------------------------------------------------


def _prometheus(stack: OtelStack, promql: str, *, instant: bool = True) -> list[dict[str, Any]]:
    if instant:
        return stack.query_prometheus(promql)
    now = time.time()
    params = {"query": promql, "start": now - 600, "end": now, "step": 15}
    url = f"{stack.prometheus_url}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    status, body = http_get(url)
    payload = json.loads(body)
    if status != 200 or payload.get("status") != "success":
        raise StackError(f"PromQL {promql!r} failed ({status}): {payload.get('error')}")
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


def _has_values(result: list[dict[str, Any]]) -> bool:
    samples = [v for s in result for v in ([s["value"]] if "value" in s else s["values"])]
    return any(not math.isnan(float(value)) for _, value in samples)


def _prometheus_has_data(stack: OtelStack, promql: str, instant: bool) -> bool:
    return _has_values(_prometheus(stack, promql, instant=instant))


def _traceql(stack: OtelStack, query: str) -> list[dict[str, Any]]:
    return stack.search_traceql(query, since_s=1800)


# -- alert rules ----------------------------------------------------------------------------


@dataclass
class RuleCase:
    """Which series of a rule are the steady state and which the fault, and what is shortened."""

    label: str
    steady: str
    fault: str
    shortened: str = ""


def _cases(run: Scenario) -> dict[str, RuleCase]:
    db = RuleCase("service_name", run.service("db"), run.service("dbfault"))
    flows = RuleCase("messaging_destination_name", run.channel("steady"), run.channel("fault"))
    health = RuleCase("dbpulse_health_target", "ok.db", "big.db")
    return {
        "dbpulse-heartbeat-missing": RuleCase(
            "service_name",
            run.service("consumer"),
            run.service("flowfault"),
            f"threshold 120 s -> {HEARTBEAT_THRESHOLD_S:.0f} s",
        ),
        "dbpulse-db-error-rate-warning": db,
        "dbpulse-db-error-rate-critical": db,
        "dbpulse-db-latency-p95": db,
        "dbpulse-flow-latency-p95": flows,
        "dbpulse-flows-stuck": flows,
        "dbpulse-db-no-writes": RuleCase(
            "service_name",
            run.service("db"),
            run.service("dbfault"),
            f"[1h] -> [{NO_WRITES_WINDOW}]",
        ),
        "dbpulse-telemetry-dropped": db,
        "dbpulse-db-size-warning": health,
        "dbpulse-db-size-critical": health,
        "dbpulse-db-health-not-ok": health,
        "dbpulse-db-no-new-rows": health,
        "dbpulse-db-wal-growing": RuleCase("dbpulse_health_target", "ok.db", "wal.db"),
        LOCK_STORM: RuleCase("service_name", run.service("db"), run.service("storm")),
        # Steady and fault are the same series at two times: before and during a trace-store
        # outage (the exporter compose aims at Tempo; here it sends to Jaeger).
        # Services are keyed by their own label; the health targets by their file names.
        "dbpulse-collector-export-backlog": RuleCase(
            "exporter", "otlp_grpc/tempo", "otlp_grpc/tempo", "fault: trace store stopped"
        ),
    }


@dataclass
class Evaluation:
    """A rule evaluated once: the reduced value and firing state per series."""

    values: dict[str, float]
    fires: dict[str, bool]


def _evaluate(
    stack: OtelStack, rule: dict[str, Any], case: RuleCase, window: str | None = None
) -> Evaluation:
    """``window`` replaces the rule's rate window (the lock storm's quiet after the storm)."""
    data = {d["refId"]: d["model"] for d in rule["data"]}
    expr = data["A"]["expr"]
    if window is not None:
        expr = expr.replace("[5m]", f"[{window}]")
    threshold_model = data[rule["condition"]]
    evaluator = threshold_model["conditions"][0]["evaluator"]
    kind, (limit,) = evaluator["type"], evaluator["params"]
    if rule["uid"] == "dbpulse-db-no-writes":
        expr = expr.replace("[1h]", f"[{NO_WRITES_WINDOW}]")
    if rule["uid"] == "dbpulse-heartbeat-missing":
        limit = HEARTBEAT_THRESHOLD_S
    assert data["B"]["type"] == "reduce" and data["B"]["reducer"] == "last"
    values: dict[str, float] = {}
    fires: dict[str, bool] = {}
    for series in stack.query_prometheus(expr):
        value = float(series["value"][1])
        if math.isnan(value):  # reduce mode dropNN
            continue
        key = series["metric"].get(case.label, "")
        firing = value > limit if kind == "gt" else value < limit
        # Several series per key (e.g. per system or operation): the most alarming one.
        worse = key not in values or (value > values[key] if kind == "gt" else value < values[key])
        if worse:
            values[key] = value
        fires[key] = fires.get(key, False) or firing
    return Evaluation(values, fires)


def _fmt(value: float | None) -> str:
    return "no data" if value is None else f"{value:.4g}"


def test_every_alert_fires_under_its_fault_and_not_in_steady_state(
    otel_stack: OtelStack, scenario: Scenario
) -> None:
    rules = {r["uid"]: r for r in alert_rules()}
    cases = _cases(scenario)
    assert set(rules) == set(cases), "a rule without a fault scenario (or a stale case)"
    steady: dict[str, tuple[float | None, bool]] = {}
    fault: dict[str, tuple[float | None, bool]] = {}

    backlog = "dbpulse-collector-export-backlog"
    wait_until(
        lambda: _evaluate(otel_stack, rules[backlog], cases[backlog]).values,
        timeout=60,
        what="the collector's queue size in Prometheus",
    )
    before = _evaluate(otel_stack, rules[backlog], cases[backlog])
    key = cases[backlog].steady
    steady[backlog] = (before.values.get(key), before.fires.get(key, False))

    pending = [uid for uid in rules if uid != backlog]

    def all_faults_fire() -> bool:
        for uid in list(pending):
            case = cases[uid]
            result = _evaluate(otel_stack, rules[uid], case)
            steady[uid] = (result.values.get(case.steady), result.fires.get(case.steady, False))
            fault[uid] = (result.values.get(case.fault), result.fires.get(case.fault, False))
            if fault[uid][1]:
                pending.remove(uid)
        return not pending

    try:
        wait_until(all_faults_fire, timeout=150, interval=3, what="every fault to fire")
    except StackError:
        pass  # reported in the table below
    # Steady state once more, now that every fault is in: it must still be quiet.
    for uid in rules:
        if uid != backlog:
            case = cases[uid]
            result = _evaluate(otel_stack, rules[uid], case)
            steady[uid] = (result.values.get(case.steady), result.fires.get(case.steady, False))

    # The lock storm is over (it lasts 30 s): the same service, over a short window, is quiet.
    storm = cases[LOCK_STORM].fault
    after: dict[str, float | None] = {}

    def storm_quiet() -> bool:
        result = _evaluate(otel_stack, rules[LOCK_STORM], cases[LOCK_STORM], STORM_AFTER_WINDOW)
        after["value"] = result.values.get(storm)
        return after["value"] is not None and not result.fires.get(storm, False)

    try:
        wait_until(storm_quiet, timeout=90, interval=2, what="the lock storm to be over")
    except StackError:
        pass  # reported below

    otel_stack.stop_trace_store()
    try:

        def backlog_fires() -> bool:
            result = _evaluate(otel_stack, rules[backlog], cases[backlog])
            fault[backlog] = (result.values.get(key), result.fires.get(key, False))
            return fault[backlog][1]

        try:
            wait_until(backlog_fires, timeout=90, interval=2, what="the export backlog")
        except StackError:
            pass
    finally:
        otel_stack.start_trace_store()

    lines = [
        f"{'rule':34} {'steady':>10} {'fault':>10}  fires  substitution",
    ]
    for uid in rules:
        s_value, s_fires = steady.get(uid, (None, False))
        f_value, f_fires = fault.get(uid, (None, False))
        verdict = "yes" if f_fires and not s_fires else "NO"
        lines.append(
            f"{uid.removeprefix('dbpulse-'):34} {_fmt(s_value):>10} {_fmt(f_value):>10}  "
            f"{verdict:5}  {cases[uid].shortened}"
        )
    storm_after = after.get("value")
    quiet_after = storm_after is not None and storm_after <= _limit(rules[LOCK_STORM])
    lines.append(
        f"{'db-lock-storm (after the storm)':34} {'':>10} {_fmt(storm_after):>10}  "
        f"{'quiet' if quiet_after else 'NO':5}  [5m] -> [{STORM_AFTER_WINDOW}]"
    )
    table = "\n".join(lines)
    print("\n" + table)
    problems = [
        uid
        for uid in rules
        if not fault.get(uid, (None, False))[1]
        or steady.get(uid, (None, True))[1]
        or steady.get(uid, (None, False))[0] is None
    ]
    if not quiet_after:
        problems.append(f"{LOCK_STORM} (after the storm)")
    assert not problems, (
        f"rules not proven (fault must fire, steady must be quiet): {problems}\n{table}"
    )


def _limit(rule: dict[str, Any]) -> float:
    data = {d["refId"]: d["model"] for d in rule["data"]}
    return float(data[rule["condition"]]["conditions"][0]["evaluator"]["params"][0])


# -- dashboards -----------------------------------------------------------------------------


def recent_flow_id(stack: OtelStack, traceql: list[Any], variables: dict[str, str]) -> str:
    """A flow id to paste into the "Flow id" variable: one of the recent flows the store lists
    (found with the dashboard's own recent-flows query)."""
    recent = next(q for q in traceql if "flow_id" not in q.query)
    found = wait_until(
        lambda: _traceql(stack, substitute(recent.query, variables)),
        timeout=120,
        interval=2,
        what=f"recent flows in the trace store ({recent.name})",
    )
    return str(uuid.UUID(found[0]["traceID"].rjust(32, "0")))


def test_every_dashboard_query_returns_data(otel_stack: OtelStack, scenario: Scenario) -> None:
    variables = scenario.variables()
    queries = [q for name, board in dashboards().items() for q in panel_queries(name, board)]
    traceql = [q for q in queries if q.language == "traceql"]
    promql = [q for q in queries if q.language == "promql"]

    variables["flow_id"] = recent_flow_id(otel_stack, traceql, variables)

    # The Tempo datasource's traces-to-metrics queries, as a span of the db service opens them.
    links = load_yaml(DATASOURCES)["datasources"]
    tempo = next(d for d in links if d["type"] == "tempo")
    tags = f'service_name="{scenario.service("db")}"'
    extra = [
        (f"datasource Tempo / tracesToMetrics / {q['name']}", q["query"].replace("$__tags", tags))
        for q in tempo["jsonData"]["tracesToMetrics"]["queries"]
    ]

    empty: list[str] = []
    failed: list[str] = []
    for query in promql:
        text = substitute(query.query, variables)
        try:
            wait_until(
                functools.partial(_prometheus_has_data, otel_stack, text, query.instant),
                timeout=45,
                interval=2,
                what=query.name,
            )
        except StackError as err:
            (failed if "failed (" in str(err) else empty).append(f"{query.name}: {text}  {err}")
    for name, text in extra:
        if not _has_values(_prometheus(otel_stack, text)):
            empty.append(f"{name}: {text}")
    for query in traceql:
        text = substitute(query.query, variables)
        try:
            wait_until(
                functools.partial(_traceql, otel_stack, text), timeout=60, interval=2, what=text
            )
        except StackError as err:
            (failed if "HTTP" in str(err) else empty).append(f"{query.name}: {text}  {err}")
    print(
        f"\n{len(promql)} PromQL, {len(extra)} datasource link and {len(traceql)} TraceQL queries"
    )
    assert not failed, "queries that do not parse or fail:\n" + "\n".join(failed)
    assert not empty, "queries without data:\n" + "\n".join(empty)
