"""Figures as people read them (sizes, ages), and the size levels shared by file databases."""

from __future__ import annotations

from dbpulse.health.model import Status, worst
from dbpulse.health.thresholds import Thresholds

__all__ = ["age_text", "mb", "size_statuses"]


def mb(size: float) -> str:
    """Bytes as a short human figure."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def size_statuses(
    total_bytes: float, wal_bytes: float | None, thresholds: Thresholds
) -> tuple[Status, list[str]]:
    """The size and WAL levels against their thresholds, and a note for each exceeded."""
    notes: list[str] = []
    statuses = [Status.OK]
    for name, value in (("size", total_bytes), ("wal", wal_bytes)):
        if value is None:
            continue
        level = thresholds.level(name)
        status = level.status_of(value / (1 << 20))
        if status is not Status.OK:
            limit = level.critical if status is Status.CRITICAL else level.warning
            what = "total size" if name == "size" else "WAL"
            notes.append(f"{what} over {limit} MB ({status.name})")
            statuses.append(status)
    return worst(statuses), notes


def age_text(seconds: float) -> str:
    """Seconds as a short human duration."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
