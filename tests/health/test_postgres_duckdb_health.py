"""Health checks on a real PostgreSQL (a long transaction held open shows up) and DuckDB files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dbpulse.health import Status, Thresholds, check, parse_table

pytestmark = pytest.mark.integration


def test_postgres_checks_and_figures(pg_dsn: str) -> None:
    report = check([pg_dsn])
    (target,) = report.targets
    checks = {c.name: c for c in target.checks}
    assert list(checks) == [
        "connect",
        "schema",
        "size",
        "connections",
        "long_transactions",
        "locks",
        "configuration",
    ]
    assert checks["connect"].status is Status.OK
    assert checks["size"].figures["total_bytes"] > 1_000_000
    assert (
        checks["connections"].figures["max_connections"]
        >= checks["connections"].figures["connections"]
        >= 1
    )
    assert {"deadlocks", "conflicts"} <= set(checks["locks"].figures)
    assert "lock_timeout" in checks["configuration"].figures
    # The password never reaches a report.
    if "@" in pg_dsn and ":" in pg_dsn.split("//", 1)[1].split("@", 1)[0]:
        assert ":***@" in target.target


def test_a_long_transaction_in_another_connection_shows_up(pg_dsn: str) -> None:
    import psycopg

    limits = Thresholds.from_mapping({"long_transactions": {"warning_s": 1, "critical_s": 600}})
    with psycopg.connect(pg_dsn) as holder:
        holder.execute("SELECT 1")  # opens the transaction; psycopg does not autocommit
        pid = holder.info.backend_pid
        time.sleep(1.5)
        checks = {c.name: c for c in check([pg_dsn], limits).targets[0].checks}
        long = checks["long_transactions"]
        assert long.status is Status.WARNING, long.reason
        assert pid in [t["pid"] for t in long.figures["transactions"]]
        assert "idle in transaction" in [t["state"] for t in long.figures["transactions"]]
        assert "open longer than 1 s" in long.reason
        holder.rollback()
    checks = {c.name: c for c in check([pg_dsn], limits).targets[0].checks}
    assert pid not in [t["pid"] for t in checks["long_transactions"].figures["transactions"]]


def test_unreachable_postgres_is_critical_in_one_line() -> None:
    (result,) = check(["postgresql://nobody:pw@127.0.0.1:1/none"]).targets[0].checks
    assert result.status is Status.CRITICAL
    assert result.reason.startswith("cannot connect: ")
    assert "\n" not in result.reason and "pw" not in result.reason


def test_postgres_row_counts(pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS dbpulse_health")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS dbpulse_health.runs (id serial, started timestamptz)"
        )
        conn.execute("TRUNCATE dbpulse_health.runs")
        conn.execute("INSERT INTO dbpulse_health.runs (started) VALUES (now()), (now())")
    limits = Thresholds()
    limits.tables.append(parse_table("dbpulse_health.runs:started"))
    rows = check([pg_dsn], limits).targets[0].checks[-1]
    assert rows.name == "rows:dbpulse_health.runs"
    assert rows.status is Status.OK and rows.figures["rows"] == 2
    assert rows.figures["newest_age_s"] < 60


def test_duckdb_file(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "warehouse.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE loads (id INTEGER, loaded_at TIMESTAMP)")
    conn.execute("INSERT INTO loads VALUES (1, now()), (2, now())")
    conn.close()
    limits = Thresholds()
    limits.tables.append(parse_table("loads:loaded_at"))
    report = check([f"duckdb:///{path}"], limits)
    assert report.status is Status.OK, report.as_dict()
    checks = {c.name: c for c in report.targets[0].checks}
    assert list(checks) == ["connect", "schema", "size", "configuration", "rows:loads"]
    assert checks["size"].figures["file_bytes"] == path.stat().st_size
    assert checks["rows:loads"].figures["rows"] == 2


def test_missing_duckdb_file_is_critical_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.duckdb"
    report = check([str(path)])
    assert report.status is Status.CRITICAL
    assert not path.exists()
