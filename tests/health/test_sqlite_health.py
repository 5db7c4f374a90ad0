"""Health checks on real SQLite files: WAL and rollback journal, missing, corrupt, freelist."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dbpulse.health import Status, Thresholds, check, parse_table, parse_target
from tests.health._files import corrupt_page, huge_freelist, sqlite_file


def _checks(target: str, thresholds: Thresholds | None = None) -> dict[str, object]:
    (report,) = check([target], thresholds).targets
    return {result.name: result for result in report.checks}


def test_wal_file_is_ok_with_figures(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "app.db", wal=True)
    report = check([f"sqlite:///{path}"])
    assert report.status is Status.OK, report.as_dict()
    checks = {c.name: c for c in report.targets[0].checks}
    assert list(checks) == ["connect", "schema", "size", "configuration", "integrity"]
    assert checks["configuration"].figures["journal_mode"] == "wal"
    size = checks["size"].figures
    assert size["file_bytes"] == path.stat().st_size
    assert size["total_bytes"] == size["file_bytes"] + size["wal_bytes"] + size["shm_bytes"]
    assert size["page_count"] >= 2 and size["freelist_count"] == 0
    assert checks["schema"].figures == {"source": "user_version", "version": 0}
    assert checks["integrity"].reason == "quick_check ok"


def test_rollback_journal_is_a_warning_with_the_fix(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "app.db", wal=False)
    checks = _checks(str(path))
    config = checks["configuration"]
    assert config.status is Status.WARNING
    assert "journal_mode is delete" in config.reason
    assert "PRAGMA journal_mode=WAL" in config.reason
    no_wal = Thresholds.from_mapping({"journal": {"require_wal": False}})
    assert _checks(str(path), no_wal)["configuration"].status is Status.OK


def test_missing_file_is_critical_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    report = check([str(path)])
    assert report.status is Status.CRITICAL and report.exit_code == 2
    (result,) = report.targets[0].checks
    assert result.name == "connect" and "does not exist" in result.reason
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_garbage_file_is_critical(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 500)
    (result,) = check([str(path)]).targets[0].checks
    assert result.status is Status.CRITICAL
    assert "not a SQLite database" in result.reason and "SQLITE_NOTADB" in result.reason


def test_corrupt_page_fails_quick_check(tmp_path: Path) -> None:
    path = corrupt_page(tmp_path / "corrupt.db")
    integrity = _checks(str(path))["integrity"]
    assert integrity.status is Status.CRITICAL
    assert "quick_check found" in integrity.reason
    assert integrity.figures["problems"] > 0


def test_huge_freelist_is_a_warning(tmp_path: Path) -> None:
    path = huge_freelist(tmp_path / "free.db")
    size = _checks(str(path))["size"]
    assert size.status is Status.WARNING
    assert size.figures["freelist_ratio"] > 0.9
    assert "VACUUM reclaims" in size.reason


def test_size_thresholds_from_a_file(tmp_path: Path) -> None:
    path = huge_freelist(tmp_path / "big.db")  # about 4 MB
    limits = tmp_path / "thresholds.yaml"
    limits.write_text("size: {warning_mb: 1, critical_mb: 3}\nfreelist: {warning_ratio: null}\n")
    size = _checks(str(path), Thresholds.load(limits))["size"]
    assert size.status is Status.CRITICAL
    assert "total size over 3 MB (CRITICAL)" in size.reason
    limits.write_text("size: {warning_mb: 1, critical_mb: 100}\nfreelist: {warning_ratio: null}\n")
    assert _checks(str(path), Thresholds.load(limits))["size"].status is Status.WARNING
    # Defaults: 500 MB / 1 GB, as documented.
    assert Thresholds().level("size").warning == 500
    assert Thresholds().level("size").critical == 1024


def test_bad_thresholds_files_say_why(tmp_path: Path) -> None:
    from dbpulse.health import ThresholdsError

    limits = tmp_path / "t.yaml"
    for text, message in (
        ("sise: {warning_mb: 1}", "unknown threshold 'sise'"),
        ("size: {warn_mb: 1}", "size.warn_mb is not a key"),
        ("size: {warning_mb: lots}", "must be a number or null"),
        ("size: [1, 2", "not valid YAML"),
    ):
        limits.write_text(text)
        with pytest.raises(ThresholdsError, match=message):
            Thresholds.load(limits)
    with pytest.raises(ThresholdsError, match="cannot read"):
        Thresholds.load(tmp_path / "absent.yaml")


def test_row_counts_and_newest_row_age(tmp_path: Path) -> None:
    fresh = sqlite_file(tmp_path / "fresh.db", rows=7)
    stale = sqlite_file(tmp_path / "stale.db", rows=3, ts="2020-01-01 00:00:00")
    limits = Thresholds()
    limits.tables.extend([parse_table("events:created_at"), parse_table("absent")])
    checks = _checks(str(fresh), limits)
    assert checks["rows:events"].status is Status.OK
    assert checks["rows:events"].figures["rows"] == 7
    assert checks["rows:events"].figures["newest_age_s"] < 60
    assert checks["rows:absent"].status is Status.ERROR
    stale_rows = _checks(str(stale), limits)["rows:events"]
    assert stale_rows.status is Status.WARNING
    assert "no new rows for more than 60 min" in stale_rows.reason


def test_schema_version_from_migrations_tables(tmp_path: Path) -> None:
    plain = sqlite_file(tmp_path / "plain.db")
    conn = sqlite3.connect(plain)
    conn.execute("PRAGMA user_version = 42")
    conn.close()
    assert _checks(str(plain))["schema"].figures["version"] == 42

    alembic = sqlite_file(tmp_path / "alembic.db")
    conn = sqlite3.connect(alembic)
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
    conn.execute("INSERT INTO alembic_version VALUES ('ae1027a6acf')")
    conn.commit()
    conn.close()
    schema = _checks(str(alembic))["schema"]
    assert schema.figures == {"source": "alembic_version", "version": "ae1027a6acf"}

    django = sqlite_file(tmp_path / "django.db")
    conn = sqlite3.connect(django)
    conn.execute("CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app, name, applied)")
    conn.execute("INSERT INTO django_migrations (app, name) VALUES ('books', '0001_initial')")
    conn.execute("INSERT INTO django_migrations (app, name) VALUES ('books', '0002_isbn')")
    conn.commit()
    conn.close()
    schema = _checks(str(django))["schema"]
    assert schema.figures["version"] == "books.0002_isbn" and schema.figures["applied"] == 2


def test_quick_check_is_bounded_in_time(tmp_path: Path) -> None:
    path = tmp_path / "slow.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX t_v ON t (v)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"v{i:08d}",) for i in range(50_000)])
    conn.commit()
    conn.close()
    limits = Thresholds.from_mapping({"integrity": {"timeout_s": 0}})
    integrity = _checks(str(path), limits)["integrity"]
    assert integrity.status is Status.WARNING
    assert "did not finish within 0 s" in integrity.reason


def test_target_strings() -> None:
    from dbpulse.health import TargetError
    from dbpulse.health.sqlite import SQLiteTarget

    target = parse_target("sqlite:////var/lib/app.db")
    assert isinstance(target, SQLiteTarget) and str(target.path) == "/var/lib/app.db"
    assert str(parse_target("sqlite:///data/app.db").path) == "data/app.db"  # type: ignore[attr-defined]
    assert parse_target("app.sqlite3").kind == "sqlite"
    assert parse_target("x.duckdb").kind == "duckdb"
    assert (
        parse_target("postgresql+psycopg://u:secret@h/db").location
        == "postgresql+psycopg://u:***@h/db"
    )
    for bad in ("app.txt", "mysql://h/db", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(TargetError):
            parse_target(bad)


def test_a_live_wal_writer_does_not_block_the_check(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "live.db", wal=True)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.executemany("INSERT INTO events (payload) VALUES (?)", [("w" * 500,)] * 200)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock during the check
    writer.execute("INSERT INTO events (payload) VALUES ('pending')")
    limits = Thresholds()
    limits.tables.append(parse_table("events"))
    report = check([str(path)], limits)
    writer.rollback()
    writer.close()
    assert report.status is Status.OK, report.as_dict()
    checks = {c.name: c for c in report.targets[0].checks}
    assert checks["size"].figures["wal_bytes"] > 100_000
    assert checks["rows:events"].figures["rows"] == 210  # committed rows only
