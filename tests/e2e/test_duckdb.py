"""Seed 003's shape end to end: a DuckDB ``executions`` table in the dashboards, for real.

The instrumented process runs the demo's pattern-execution log (``dbpulse.demo.executions``,
what ``dbpulse demo executions`` and its compose service run) on a DuckDB file for a fixed
number of executions, exporting OTLP to the harness collector. Then the database dashboard's
own queries (operations/s, p95 latency, rows written/s by table), with the dashboard variables
set to this service, ``system = duckdb`` and ``table = executions``, return the DuckDB series
in the real Prometheus, and the same queries over the counters themselves (the panel's
``rate(...)`` taken away) give exactly what the workload did. Its spans reach the trace store,
one per execution.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbpulse.demo.executions import SUMMARY
from tests.e2e.workload import OtlpProviders, run_duckdb_workload
from tests.grafana._provisioning import dashboards, panel_queries, substitute
from tests.grafana.test_proof import BUILTINS, _has_values, _prometheus
from tests.harness.stack import OtelStack, trace_spans, wait_until

pytest.importorskip("duckdb")
pytestmark = pytest.mark.integration

BOARD = "dbpulse-database.json"
OPERATIONS = ("Operations/s by system, operation and table", "A")
P95 = ("Latency p50 / p95 / p99 by operation and table", "B")
ROWS_WRITTEN = ("Rows written/s by table", "A")
#: 60 executions at 5/s: 12 s of steady load, several exports and scrapes, so the panels'
#: rates have two samples apart; each execution is an INSERT, an UPDATE and a summary read.
EXECUTIONS, RATE = 60, 5.0
#: ``rate(<selector>[$__rate_interval])`` in a panel query: the counter itself, without rate.
_RATE = re.compile(r"rate\((\w+\{[^}]*\})\[\$__rate_interval\]\)")


def _panel(title: str, ref_id: str) -> str:
    board = dashboards()[BOARD]
    found = (q for q in panel_queries(BOARD, board) if (q.panel, q.ref_id) == (title, ref_id))
    return next(found).query


def cumulative(query: str) -> str:
    """The panel's query over its counters' totals instead of their rates."""
    totals, replaced = _RATE.subn(r"\1", query)
    assert replaced, f"no rate(...[$__rate_interval]) in {query}"
    return totals


def _by_operation(series: list[dict[str, Any]]) -> dict[str, float]:
    found: dict[str, float] = {}
    for s in series:
        labels = s["metric"]
        assert labels.get("db_system_name", "duckdb") == "duckdb", labels
        assert labels.get("db_collection_name", "executions") == "executions", labels
        op = labels["db_operation_name"]
        found[op] = found.get(op, 0.0) + float(s["value"][1])
    return found


def _equals(expected: dict[str, float]) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda series: _by_operation(series) == expected


@pytest.fixture
def workload(otel_stack: OtelStack, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    service = f"e2e-duckdb-{uuid.uuid4().hex[:8]}"
    app = OtlpProviders.otlp(otel_stack.otlp_grpc_endpoint, service)
    try:
        yield service, run_duckdb_workload(app, tmp_path / "executions.duckdb", EXECUTIONS, RATE)
    finally:
        app.shutdown()


def test_executions_table_shows_in_the_dashboard_queries_with_exact_counts(
    otel_stack: OtelStack, workload: tuple[str, dict[str, Any]]
) -> None:
    service, report = workload
    operations = {op: float(n) for op, n in report["statements"].items()}
    # Each execution: an INSERT, an UPDATE and a fetch of the summary; the last id at start.
    assert operations == {"CREATE": 1, "SELECT": EXECUTIONS + 1, "INSERT": EXECUTIONS,
                          "UPDATE": EXECUTIONS}  # fmt: skip
    written = {"INSERT": operations["INSERT"], "UPDATE": operations["UPDATE"]}
    variables = {**BUILTINS, "service": service, "system": "duckdb", "table": "executions"}

    def panel(title_ref: tuple[str, str], totals: dict[str, float] | None) -> set[str]:
        """The panel's query as Grafana runs it has data (its operations are returned); over
        the counters themselves it gives ``totals`` exactly."""
        query = _panel(*title_ref)
        shown = substitute(query, variables)
        series = wait_until(
            lambda: (r := _prometheus(otel_stack, shown, instant=False)) and _has_values(r) and r,
            timeout=60,
            interval=2,
            what=shown,
        )
        if totals is not None:
            found = otel_stack.wait_for_series(
                substitute(cumulative(query), variables), timeout=60, predicate=_equals(totals)
            )
            assert _by_operation(found) == totals
        return {s["metric"]["db_operation_name"] for s in series}

    # Operations/s: one operation per statement the workload ran.
    assert panel(OPERATIONS, operations) == set(operations)
    # Rows written/s by table: DuckDB's own counts, one row per INSERT and per UPDATE.
    assert panel(ROWS_WRITTEN, written) == set(written)
    # p95 latency by operation and table: a latency for each operation, from the histogram
    # whose +Inf bucket counts every execution.
    assert panel(P95, None) >= {"INSERT", "UPDATE", "SELECT"}
    for s in otel_stack.query_prometheus(substitute(cumulative(_panel(*P95)), variables)):
        assert 0.0 < float(s["value"][1]) <= 10.0, s  # within the histogram's buckets
    matchers = f'service_name="{service}", db_system_name="duckdb", db_collection_name="executions"'
    inf = otel_stack.query_prometheus(
        "sum by (db_operation_name) "
        f'(db_client_operation_duration_seconds_bucket{{{matchers}, le="+Inf"}})'
    )
    assert _by_operation(inf) == operations

    # The trace store: the workload's trace, whole, one span per execution.
    trace = wait_until(
        lambda: (
            (t := otel_stack.get_trace(report["trace_id"]))
            and len(trace_spans(t)) == report["spans"]
            and t
        ),
        timeout=90,
        what=f"trace {report['trace_id']} with {report['spans']} spans",
    )
    spans = [s for s in trace_spans(trace) if s["name"] != "e2e duckdb workload"]
    attributes = [{a["key"]: a["value"] for a in s["attributes"]} for s in spans]
    names: dict[str, int] = {}
    for span in spans:
        names[span["name"]] = names.get(span["name"], 0) + 1
    # Span names follow db.query.summary: DDL keeps its object type ("CREATE TABLE t").
    shown = {"CREATE": "CREATE TABLE"}
    assert names == {f"{shown.get(op, op)} executions": int(n) for op, n in operations.items()}
    assert {a["db.system.name"]["stringValue"] for a in attributes} == {"duckdb"}
    assert {a["db.namespace"]["stringValue"] for a in attributes} == {"executions.duckdb"}
    texts = {a["db.query.text"]["stringValue"] for a in attributes}
    assert SUMMARY in texts  # the relation's SELECT, fetched once per execution
    assert not any("'running'" in text for text in texts)  # literals sanitized
    hits = wait_until(
        lambda: otel_stack.search_traceql(
            f'{{ span.db.system.name = "duckdb" && span.db.collection.name = "executions" '
            f'&& resource.service.name = "{service}" }}'
        ),
        timeout=90,
        what="the DuckDB spans by attribute",
    )
    assert report["trace_id"] in {h["traceID"].rjust(32, "0") for h in hits}
