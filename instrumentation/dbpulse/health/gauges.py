"""Health as telemetry: the health checks' last verdicts and figures as observable gauges.

An instrumented application checks the databases ``DBPULSE_HEALTH_TARGETS`` names in a
background thread and exports what it found; ``dbpulse health TARGET... --export`` does the
same from the command line. Gauges (every one with ``dbpulse.health.target``, a name safe to
export: the file's base name, ``host:port/dbname`` for PostgreSQL, never a DSN, and
``db.system.name``):

=====================================  ======================================================
``dbpulse.db.health.status``           the target's worst check: 0 OK, 1 WARNING, 2 ERROR,
                                       3 CRITICAL, 4 UNKNOWN (could not check, or the check
                                       did not finish within its time bound)
``dbpulse.db.health.size`` (By)        SQLite file + WAL + shm, DuckDB file + WAL, PostgreSQL
                                       ``pg_database_size``
``dbpulse.db.health.wal.size`` (By)    SQLite/DuckDB write-ahead log alone
``dbpulse.db.health.rows``             rows of each configured table (``db.collection.name``)
``dbpulse.db.health.newest_row.age``   seconds since the newest row of a table configured with a
(s)                                    timestamp column (``db.collection.name``)
``dbpulse.db.health.schema.version``   ``PRAGMA user_version`` or another numeric version (an
                                       Alembic revision is text and is not exported)
=====================================  ======================================================

Configuration of the in-application checks (read once, when dbpulse starts):

``DBPULSE_HEALTH_TARGETS``
    Targets as ``dbpulse health`` takes them (``sqlite:///rel.db``, ``sqlite:////abs.db``, a path
    ending ``.db``/``.sqlite``/``.sqlite3``/``.duckdb``, ``duckdb:///...``, ``postgresql://...``),
    separated by commas or white space; ``NAME=TARGET`` chooses the exported name.
``DBPULSE_HEALTH_TABLES``
    ``NAME[:TIMESTAMP_COLUMN]`` list (commas), counted in every target (as ``--table``).
``DBPULSE_HEALTH_THRESHOLDS``
    A YAML thresholds file (:mod:`dbpulse.health.thresholds`; needs PyYAML).
``DBPULSE_HEALTH_INTERVAL``
    Seconds between checks; default the metric reader's (``OTEL_METRIC_EXPORT_INTERVAL``, 60 s).
``DBPULSE_HEALTH_TIMEOUT``
    Seconds one target's check may take (default 10, at most the interval); a slower check is
    reported UNKNOWN and the target is skipped until it ends, so a hung database holds at most
    one thread.

The checks never run on the application's threads and never raise into it; the gauges only
read the last results. A setting that cannot be used is logged once and ignored.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from dbpulse.health.model import Status, TargetReport
from dbpulse.health.target import Target
from dbpulse.health.thresholds import Thresholds, ThresholdsError, parse_table
from dbpulse.telemetry.instruments import Instruments

__all__ = [
    "STATUS_VALUES",
    "HealthGauges",
    "HealthMonitor",
    "Snapshot",
    "monitor_from_env",
    "parse_targets",
    "start_from_env",
]

_log = logging.getLogger("dbpulse.health")

STATUS_VALUES = {
    Status.OK: 0,
    Status.WARNING: 1,
    Status.ERROR: 2,
    Status.CRITICAL: 3,
    Status.UNKNOWN: 4,
}
"""``dbpulse.db.health.status`` values: alerts read ``> 0`` as "not OK"."""

TARGET_ATTRIBUTE = "dbpulse.health.target"
_NAME = re.compile(r"^([A-Za-z0-9_.:-]+)=(.+)$")
_SEPARATORS = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class Snapshot:
    """What the gauges export of one target's last check."""

    label: str
    system: str
    status: int
    size_bytes: float | None = None
    wal_bytes: float | None = None
    schema_version: float | None = None
    rows: dict[str, float] = field(default_factory=dict)
    newest_age_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, label: str, report: TargetReport) -> Snapshot:
        checks = {check.name: check.figures for check in report.checks}
        size = checks.get("size", {})
        version = checks.get("schema", {}).get("version")
        rows: dict[str, float] = {}
        ages: dict[str, float] = {}
        for name, figures in checks.items():
            if not name.startswith("rows:"):
                continue
            table = name.removeprefix("rows:")
            if isinstance(figures.get("rows"), int | float):
                rows[table] = figures["rows"]
            if isinstance(figures.get("newest_age_s"), int | float):
                ages[table] = figures["newest_age_s"]
        numeric = (
            float(version)
            if isinstance(version, int | float) and not isinstance(version, bool)
            else None
        )
        return cls(
            label,
            report.kind,
            STATUS_VALUES[report.status],
            size.get("total_bytes"),
            size.get("wal_bytes"),
            numeric,
            rows,
            ages,
        )


class HealthGauges:
    """The last :class:`Snapshot` of every target, observed by the ``dbpulse.db.health.*``
    gauges on every meter provider :meth:`register` was given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}
        self._instruments = Instruments("dbpulse.health")

    def update(self, label: str, report: TargetReport) -> None:
        snapshot = Snapshot.of(label, report)
        with self._lock:
            self._snapshots[label] = snapshot

    def mark_unknown(self, label: str, system: str) -> None:
        """The check did not finish in time: status UNKNOWN, the other figures kept."""
        with self._lock:
            last = self._snapshots.get(label) or Snapshot(label, system, 0)
            self._snapshots[label] = replace(last, status=STATUS_VALUES[Status.UNKNOWN])

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return list(self._snapshots.values())

    def register(self, meter_provider: Any = None) -> None:
        self._instruments.observe(
            meter_provider,
            (
                (
                    "gauge",
                    "dbpulse.db.health.status",
                    self._status,
                    "",
                    "Health of a database: 0 OK, 1 WARNING, 2 ERROR, 3 CRITICAL, 4 UNKNOWN.",
                ),
                ("gauge", "dbpulse.db.health.size", self._size, "By", "Database size."),
                (
                    "gauge",
                    "dbpulse.db.health.wal.size",
                    self._wal,
                    "By",
                    "Write-ahead log size (SQLite, DuckDB).",
                ),
                (
                    "gauge",
                    "dbpulse.db.health.rows",
                    self._rows,
                    "{row}",
                    "Rows in each configured table.",
                ),
                (
                    "gauge",
                    "dbpulse.db.health.newest_row.age",
                    self._ages,
                    "s",
                    "Seconds since the newest row of each table with a timestamp column.",
                ),
                (
                    "gauge",
                    "dbpulse.db.health.schema.version",
                    self._version,
                    "",
                    "Schema version (PRAGMA user_version or a numeric migration version).",
                ),
            ),
        )

    # -- callbacks: read the last results, never raise ------------------------------------

    @staticmethod
    def _attributes(snapshot: Snapshot, table: str | None = None) -> dict[str, str]:
        attributes = {TARGET_ATTRIBUTE: snapshot.label, "db.system.name": snapshot.system}
        if table is not None:
            attributes["db.collection.name"] = table
        return attributes

    def _scalar(self, attribute: str) -> list[Observation]:
        try:
            return [
                Observation(value, self._attributes(s))
                for s in self.snapshots()
                if (value := getattr(s, attribute)) is not None
            ]
        except Exception:
            return []

    def _per_table(self, attribute: str) -> list[Observation]:
        try:
            return [
                Observation(value, self._attributes(s, table))
                for s in self.snapshots()
                for table, value in getattr(s, attribute).items()
            ]
        except Exception:
            return []

    def _status(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._scalar("status")

    def _size(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._scalar("size_bytes")

    def _wal(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._scalar("wal_bytes")

    def _version(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._scalar("schema_version")

    def _rows(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._per_table("rows")

    def _ages(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._per_table("newest_age_s")


def parse_targets(text: str) -> list[tuple[str, Target]]:
    """``DBPULSE_HEALTH_TARGETS``: ``(exported name, target)`` pairs; raises ``TargetError``."""
    from dbpulse.health import parse_target

    found = []
    for item in _SEPARATORS.split(text.strip()):
        if not item:
            continue
        named = _NAME.match(item)
        if named and "://" not in named.group(1):
            target = parse_target(named.group(2))
            found.append((named.group(1), target))
        else:
            target = parse_target(item)
            found.append((target.label, target))
    return found


class HealthMonitor:
    """Checks ``targets`` every ``interval`` seconds in a daemon thread and feeds ``gauges``.

    Each target is checked in a thread of its own that may take ``timeout`` seconds; one that
    takes longer is reported UNKNOWN and not checked again until it has ended."""

    def __init__(
        self,
        targets: Sequence[tuple[str, Target]],
        thresholds: Thresholds | None = None,
        interval: float = 60.0,
        timeout: float = 10.0,
        gauges: HealthGauges | None = None,
    ) -> None:
        self.targets = list(targets)
        self.thresholds = thresholds or Thresholds()
        self.interval = max(0.1, interval)
        self.timeout = max(0.1, min(timeout, self.interval))
        self.gauges = gauges or HealthGauges()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy: dict[str, threading.Thread] = {}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dbpulse-health", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.check_once()
            except Exception:
                _log.debug("dbpulse: health check round failed", exc_info=True)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def check_once(self) -> None:
        """One round: every target at once, waiting at most ``timeout`` for all of them."""
        started: list[tuple[str, Target, threading.Thread]] = []
        for label, target in self.targets:
            previous = self._busy.get(label)
            if previous is not None and previous.is_alive():
                self.gauges.mark_unknown(label, target.kind)
                continue
            worker = threading.Thread(
                target=self._check, args=(label, target), name=f"dbpulse-health-{label}"
            )
            worker.daemon = True
            self._busy[label] = worker
            worker.start()
            started.append((label, target, worker))
        deadline = time.monotonic() + self.timeout
        for label, target, worker in started:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                self.gauges.mark_unknown(label, target.kind)

    def _check(self, label: str, target: Target) -> None:
        try:
            self.gauges.update(label, target.check(self.thresholds))
        except Exception:
            self.gauges.mark_unknown(label, target.kind)


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
        if value > 0:
            return value
    except ValueError:
        pass
    _log.warning(
        "dbpulse: %s=%r is not a positive number of seconds; using %g", name, text, default
    )
    return default


def monitor_from_env() -> HealthMonitor | None:
    """The monitor the ``DBPULSE_HEALTH_*`` variables describe, or ``None`` (no targets, or a
    setting that cannot be used: logged)."""
    from dbpulse.health import TargetError

    text = os.environ.get("DBPULSE_HEALTH_TARGETS", "").strip()
    if not text:
        return None
    try:
        targets = parse_targets(text)
        path = os.environ.get("DBPULSE_HEALTH_THRESHOLDS", "").strip()
        thresholds = Thresholds.load(path) if path else Thresholds()
        for spec in os.environ.get("DBPULSE_HEALTH_TABLES", "").split(","):
            if spec.strip():
                thresholds.tables.append(parse_table(spec.strip()))
    except (TargetError, ThresholdsError) as exc:
        _log.warning("dbpulse: health checks not started (DBPULSE_HEALTH_*): %s", exc)
        return None
    reader_ms = _seconds("OTEL_METRIC_EXPORT_INTERVAL", 60_000)
    interval = _seconds("DBPULSE_HEALTH_INTERVAL", reader_ms / 1000)
    timeout = _seconds("DBPULSE_HEALTH_TIMEOUT", 10.0)
    return HealthMonitor(targets, thresholds, interval, timeout)


_started: list[HealthMonitor | None] = []
_start_lock = threading.Lock()


def start_from_env(meter_provider: Any = None) -> HealthMonitor | None:
    """Start the process's health monitor from the environment (once) and register its gauges
    on ``meter_provider`` (default: the global one). Never raises."""
    try:
        with _start_lock:
            if not _started:
                monitor = monitor_from_env()
                _started.append(monitor)
                if monitor is not None:
                    monitor.start()
            monitor = _started[0]
        if monitor is not None:
            monitor.gauges.register(meter_provider)
        return monitor
    except Exception:
        _log.warning("dbpulse: health checks could not start", exc_info=True)
        return None
