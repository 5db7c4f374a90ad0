"""The health gauges in process: real SQLite files, an SDK reader, the background monitor.

What the exporter would send is read with an ``InMemoryMetricReader``: the gauges carry the
last check's figures under a safe target name, a check that hangs (a file another connection
holds an exclusive lock on) is reported UNKNOWN within the monitor's time bound while the
caller goes on, and settings that cannot be used are logged and ignored, never raised.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from dbpulse.health import Thresholds, parse_table
from dbpulse.health.gauges import HealthMonitor, monitor_from_env, parse_targets


def _points(reader: InMemoryMetricReader) -> dict[tuple[str, str, str], float]:
    found: dict[tuple[str, str, str], float] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    attributes: Any = point.attributes
                    key = (
                        metric.name,
                        attributes["dbpulse.health.target"],
                        attributes.get("db.collection.name", ""),
                    )
                    found[key] = point.value  # type: ignore[union-attr]
    return found


def _database(path: Path, rows: int, journal: str = "WAL") -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.execute("CREATE TABLE events (at REAL)")
        conn.execute("PRAGMA user_version = 5")
        conn.executemany("INSERT INTO events VALUES (?)", [(time.time() - 7200,)] * rows)
    conn.close()
    return path


def test_gauges_export_the_last_check(tmp_path: Path) -> None:
    good = _database(tmp_path / "good.db", 12)
    old = _database(tmp_path / "rollback.db", 3, journal="DELETE")
    thresholds = Thresholds()
    thresholds.tables.append(parse_table("events:at"))
    targets = parse_targets(f"{good}, legacy={old} {tmp_path / 'missing.db'}")
    monitor = HealthMonitor(targets, thresholds, interval=60, timeout=10)
    reader = InMemoryMetricReader()
    monitor.gauges.register(MeterProvider(metric_readers=[reader]))
    assert _points(reader) == {}  # nothing checked yet: nothing exported, no error

    monitor.check_once()
    points = _points(reader)
    status = {t: v for (name, t, _), v in points.items() if name == "dbpulse.db.health.status"}
    # WAL and readable, but the newest row is two hours old (WARNING); a rollback journal
    # (WARNING); a missing file (CRITICAL, and no sizes).
    assert status == {"good.db": 1, "legacy": 1, "missing.db": 3}
    on_disk = sum(
        Path(f"{good}{suffix}").stat().st_size
        for suffix in ("", "-wal", "-shm")
        if Path(f"{good}{suffix}").exists()
    )
    assert points["dbpulse.db.health.size", "good.db", ""] == on_disk
    assert ("dbpulse.db.health.size", "missing.db", "") not in points
    assert points["dbpulse.db.health.rows", "good.db", "events"] == 12
    assert points["dbpulse.db.health.rows", "legacy", "events"] == 3
    assert points["dbpulse.db.health.schema.version", "good.db", ""] == 5
    assert 7100 < points["dbpulse.db.health.newest_row.age", "good.db", "events"] < 7400


def test_a_hung_check_is_unknown_within_the_bound_and_the_figures_stay(tmp_path: Path) -> None:
    path = _database(tmp_path / "locked.db", 4, journal="DELETE")
    # A connect that waits 3 s for the lock, a monitor that waits 0.5 s for the check.
    thresholds = Thresholds.from_mapping({"connect": {"critical_ms": 3000}})
    monitor = HealthMonitor(parse_targets(str(path)), thresholds, interval=60, timeout=0.5)
    reader = InMemoryMetricReader()
    monitor.gauges.register(MeterProvider(metric_readers=[reader]))
    monitor.check_once()
    size = _points(reader)["dbpulse.db.health.size", "locked.db", ""]

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        monitor.check_once()
        waited = time.monotonic() - started
        points = _points(reader)
        assert points["dbpulse.db.health.status", "locked.db", ""] == 4  # UNKNOWN
        assert points["dbpulse.db.health.size", "locked.db", ""] == size  # the last figure
        # The next round skips the target whose check is still running (one thread at most).
        monitor.check_once()
        assert _points(reader)["dbpulse.db.health.status", "locked.db", ""] == 4
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert waited < 2.5, "the round waited for the hung check instead of its bound"


def test_settings_that_cannot_be_used_are_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DBPULSE_HEALTH_TARGETS", "app.db mysql://db/app")
    with caplog.at_level(logging.WARNING, "dbpulse.health"):
        assert monitor_from_env() is None
    assert "unsupported scheme 'mysql'" in caplog.text
    monkeypatch.setenv("DBPULSE_HEALTH_TARGETS", "app.db")
    monkeypatch.setenv("DBPULSE_HEALTH_TABLES", "books; DROP TABLE x")
    assert monitor_from_env() is None
    monkeypatch.setenv("DBPULSE_HEALTH_TABLES", "books")
    monkeypatch.setenv("DBPULSE_HEALTH_INTERVAL", "soon")
    monitor = monitor_from_env()
    assert monitor is not None and monitor.interval == 60  # OTEL_METRIC_EXPORT_INTERVAL's


def test_targets_are_exported_by_safe_names() -> None:
    targets = parse_targets(
        "postgresql://app:s3cret@db.internal:6432/orders?sslmode=require,"
        "sqlite:////var/lib/app/books.db   reports=data/reports.duckdb"
    )
    assert [label for label, _ in targets] == ["db.internal:6432/orders", "books.db", "reports"]
    assert all("s3cret" not in label for label, _ in targets)
