"""``database_status``: the health checks of :mod:`dbpulse.health` in the predecessor's shape
(seed 003's MCP tool): status, timestamp, the database's path, size and schema version, and the
warnings and errors a person can act on.

Usage::

    from dbpulse.faces.status import database_status

    status = database_status(["sqlite:///app.db"])       # or DBPULSE_HEALTH_TARGETS
    print(status["status"], status["warnings"])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbpulse.health import Status, TargetReport, check, parse_target

__all__ = ["database_status"]


def _database(report: TargetReport) -> dict[str, Any]:
    by_name = {c.name: c for c in report.checks}
    size = by_name.get("size")
    total = size.figures.get("total_bytes") if size is not None else None
    schema = by_name.get("schema")
    return {
        "path": report.target,
        "kind": report.kind,
        "status": report.status.name,
        "size_mb": round(total / 2**20, 3) if isinstance(total, int | float) else None,
        "schema_version": schema.figures.get("version") if schema is not None else None,
        "checks": [c.as_dict() for c in report.checks],
    }


def database_status(targets: Sequence[str]) -> dict[str, Any]:
    """The health of ``targets`` (``sqlite:///...``, ``postgresql://...``, a path).

    Raises ValueError when there is no target or one names nothing dbpulse can check.
    """
    if not targets:
        raise ValueError(
            "no database to check: pass db_path or set DBPULSE_HEALTH_TARGETS "
            "(comma-separated sqlite:///path, postgresql://..., duckdb:///path)"
        )
    report = check([parse_target(t) for t in targets])
    warnings: list[str] = []
    errors: list[str] = []
    for target in report.targets:
        for result in target.checks:
            line = f"{target.target}: {result.name}: {result.reason}"
            if result.status is Status.WARNING:
                warnings.append(line)
            elif result.status is not Status.OK:
                errors.append(line)
    databases = [_database(t) for t in report.targets]
    return {
        "status": report.status.name,
        "timestamp": report.timestamp.isoformat(),
        "database": databases[0] if len(databases) == 1 else None,
        "databases": databases,
        "warnings": warnings,
        "errors": errors,
    }
