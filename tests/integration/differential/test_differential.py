"""The application sees what the raw driver gives: every scenario of the table runs raw and
instrumented, and the outcomes (values and their types, or exception type, message and error
codes) must be equal. See ``_runner.py`` for what is compared, ``sqlite_cases.py``,
``postgres_cases.py`` and ``redis_cases.py`` for the table.
"""

from __future__ import annotations

import uuid

import pytest

from tests.integration.differential import postgres_cases, redis_cases, sqlite_cases
from tests.integration.differential._runner import (
    RESULTS,
    SCENARIOS,
    Ctx,
    Scenario,
    outcome,
    set_instrumented,
)

assert sqlite_cases and postgres_cases and redis_cases  # they fill SCENARIOS


@pytest.fixture
def services(request):
    """The service a driver's scenarios need (PostgreSQL DSN, Redis URL), else nothing."""
    driver = request.node.callspec.params["case"].driver
    if driver == "postgresql":
        return {"dsn": request.getfixturevalue("pg_dsn")}
    if driver == "redis" and case_name(request).startswith("cluster_"):
        return {"cluster_url": request.getfixturevalue("redis_cluster").url}
    if driver == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {}


def case_name(request) -> str:
    return request.node.callspec.params["case"].name


def _run(case: Scenario, instrumented: bool, tmp_path, prefix: str, services) -> object:
    """One run in a directory of its own, with the Redis keys it made removed after it."""
    where = tmp_path / ("instrumented" if instrumented else "raw")
    where.mkdir()
    try:
        return outcome(case.run, Ctx(instrumented, where, prefix=prefix, **services))
    finally:
        if case.driver == "redis":
            redis_cases.forget(services.get("redis_url") or services["cluster_url"], prefix)


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda s: s.id)
def test_raw_and_instrumented_outcomes_are_equal(case: Scenario, services, otel, tmp_path):
    tally = RESULTS.setdefault(case.driver, [0, 0])
    tally[1] += 1
    prefix = f"dbpulse-diff:{uuid.uuid4().hex[:10]}:"
    set_instrumented(case.driver, False)
    try:
        raw = _run(case, False, tmp_path, prefix, services)
    finally:
        set_instrumented(case.driver, True)
    otel.span_exporter.clear()
    try:
        instrumented = _run(case, True, tmp_path, prefix, services)
    finally:
        if case.driver == "redis":  # the session fixture instruments SQLite and PostgreSQL only
            set_instrumented(case.driver, False)
    assert instrumented == raw
    if case.observed:
        systems = {s.attributes.get("db.system.name") for s in otel.spans()}
        assert case.driver in systems, "the instrumented run observed nothing"
    tally[0] += 1
