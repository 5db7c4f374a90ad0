"""Thresholds of the health checks, with documented defaults, read from a YAML file.

Every threshold is a mapping of one shape, ``NAME: {warning_<unit>: X, critical_<unit>: Y}``;
``null`` switches a level off. A file overrides only the keys it names::

    # thresholds.yaml (the defaults)
    connect: {warning_ms: 1000, critical_ms: 5000}      # time to open and query the database
    size: {warning_mb: 500, critical_mb: 1024}          # SQLite file+WAL+shm, DuckDB file+WAL,
                                                        # PostgreSQL pg_database_size
    wal: {warning_mb: 64, critical_mb: 512}             # SQLite/DuckDB write-ahead log alone
    freelist: {warning_ratio: 0.25, critical_ratio: null}  # free pages / pages (VACUUM to reclaim)
    connections: {warning_ratio: 0.8, critical_ratio: 0.95}  # PostgreSQL, of max_connections
    long_transactions: {warning_s: 300, critical_s: 3600}    # PostgreSQL, oldest open transaction
    deadlocks: {warning_count: null, critical_count: null}   # pg_stat_database, since stats reset
    conflicts: {warning_count: null, critical_count: null}   # pg_stat_database, since stats reset
    newest_row: {warning_s: 3600, critical_s: null}     # age of the newest row (--table T:COLUMN)
    integrity: {timeout_s: 5}                           # PRAGMA quick_check's time bound
    journal: {require_wal: true}                        # a writer-facing SQLite file needs WAL
    tables: []                                          # e.g. ["executions:started_at", "books"]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbpulse.health.model import Status

__all__ = ["DEFAULTS", "Level", "TableSpec", "Thresholds", "ThresholdsError", "parse_table"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "connect": {"warning_ms": 1000, "critical_ms": 5000},
    "size": {"warning_mb": 500, "critical_mb": 1024},
    "wal": {"warning_mb": 64, "critical_mb": 512},
    "freelist": {"warning_ratio": 0.25, "critical_ratio": None},
    "connections": {"warning_ratio": 0.8, "critical_ratio": 0.95},
    "long_transactions": {"warning_s": 300, "critical_s": 3600},
    "deadlocks": {"warning_count": None, "critical_count": None},
    "conflicts": {"warning_count": None, "critical_count": None},
    "newest_row": {"warning_s": 3600, "critical_s": None},
    "integrity": {"timeout_s": 5},
    "journal": {"require_wal": True},
}


class ThresholdsError(ValueError):
    """A thresholds file or a ``--table`` option that cannot be used; the message says why."""


@dataclass(frozen=True)
class TableSpec:
    """A table whose rows are counted, and optionally the column dating its newest row."""

    name: str
    timestamp_column: str | None = None


def _identifier(text: str, what: str) -> str:
    parts = text.split(".")
    if not text or not all(
        part.replace("_", "a").isalnum() and not part[0].isdigit() for part in parts
    ):
        raise ThresholdsError(f"{what} {text!r} is not a plain (optionally schema.) identifier")
    return text


def parse_table(text: str) -> TableSpec:
    """``NAME`` or ``NAME:TIMESTAMP_COLUMN`` (the ``--table`` option)."""
    name, _, column = text.partition(":")
    return TableSpec(
        _identifier(name.strip(), "table"),
        _identifier(column.strip(), "column") if column else None,
    )


@dataclass(frozen=True)
class Level:
    """A warning/critical pair for one figure, in the unit its key names."""

    warning: float | None
    critical: float | None

    def status_of(self, value: float) -> Status:
        if self.critical is not None and value >= self.critical:
            return Status.CRITICAL
        if self.warning is not None and value >= self.warning:
            return Status.WARNING
        return Status.OK


@dataclass
class Thresholds:
    """The defaults, overridden by a file's keys (:meth:`load`) and ``--table`` options."""

    values: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    tables: list[TableSpec] = field(default_factory=list)

    def level(self, name: str) -> Level:
        entry = self.values[name]
        warning = next(v for k, v in entry.items() if k.startswith("warning_"))
        critical = next(v for k, v in entry.items() if k.startswith("critical_"))
        return Level(warning, critical)

    def setting(self, name: str, key: str) -> Any:
        return self.values[name][key]

    @classmethod
    def from_mapping(cls, data: Any, source: str = "thresholds") -> Thresholds:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ThresholdsError(f"{source}: expected a mapping of threshold names")
        thresholds = cls()
        for name, entry in data.items():
            if name == "tables":
                if not isinstance(entry, list):
                    raise ThresholdsError(f"{source}: tables must be a list of NAME[:COLUMN]")
                thresholds.tables.extend(parse_table(str(item)) for item in entry)
                continue
            if name not in DEFAULTS:
                known = ", ".join(sorted([*DEFAULTS, "tables"]))
                raise ThresholdsError(f"{source}: unknown threshold {name!r} (known: {known})")
            if not isinstance(entry, dict):
                raise ThresholdsError(f"{source}: {name} must be a mapping like {DEFAULTS[name]}")
            for key, value in entry.items():
                if key not in DEFAULTS[name]:
                    keys = ", ".join(DEFAULTS[name])
                    raise ThresholdsError(f"{source}: {name}.{key} is not a key (use {keys})")
                if value is not None and not isinstance(value, bool | int | float):
                    raise ThresholdsError(f"{source}: {name}.{key} must be a number or null")
                thresholds.values[name][key] = value
        return thresholds

    @classmethod
    def load(cls, path: str | Path) -> Thresholds:
        """Read a YAML file (needs PyYAML); a bad file raises :class:`ThresholdsError`."""
        try:
            import yaml
        except ImportError as exc:
            raise ThresholdsError(
                "reading a thresholds file needs PyYAML: pip install pyyaml"
            ) from exc
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ThresholdsError(f"cannot read thresholds file {path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ThresholdsError(f"{path}: not valid YAML ({exc})".splitlines()[0]) from None
        return cls.from_mapping(data, str(path))
