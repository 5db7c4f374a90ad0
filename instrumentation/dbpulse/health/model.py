"""What a health check returns: a :class:`Status`, one :class:`CheckResult` per check, one
:class:`TargetReport` per target and the :class:`HealthReport` of a run.

Statuses follow the Nagios plugin convention, so ``dbpulse health`` can run from cron or a
monitoring system: the exit code is 0 for OK, 1 for WARNING, 2 for ERROR or CRITICAL and 3 when
the target could not be checked (UNKNOWN). The overall status is the worst check's, in the order
OK < WARNING < UNKNOWN < ERROR < CRITICAL (a known failure outranks an unknown).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["CheckResult", "HealthReport", "Status", "TargetReport", "worst"]


class Status(enum.Enum):
    """One check's verdict; ``rank`` orders severities, ``exit_code`` is the Nagios code."""

    OK = (0, 0)
    WARNING = (1, 1)
    UNKNOWN = (2, 3)
    ERROR = (3, 2)
    CRITICAL = (4, 2)

    @property
    def rank(self) -> int:
        return self.value[0]

    @property
    def exit_code(self) -> int:
        return self.value[1]


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe of ``statuses`` (OK when there are none)."""
    return max(statuses, key=lambda status: status.rank, default=Status.OK)


@dataclass(frozen=True)
class CheckResult:
    """One check of one target: its status, a reason a person can act on, and the figures."""

    name: str
    status: Status
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.name,
            "reason": self.reason,
            "figures": self.figures,
            "duration_ms": round(self.duration_ms, 3),
        }


@dataclass(frozen=True)
class TargetReport:
    """Every check of one target, in the order they ran."""

    target: str
    kind: str
    checks: tuple[CheckResult, ...]

    @property
    def status(self) -> Status:
        return worst(check.status for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "status": self.status.name,
            "checks": [check.as_dict() for check in self.checks],
        }


@dataclass(frozen=True)
class HealthReport:
    """One run over every target; ``status`` is the worst target's."""

    targets: tuple[TargetReport, ...]
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def status(self) -> Status:
        return worst(target.status for target in self.targets)

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.name,
            "timestamp": self.timestamp.isoformat(timespec="seconds"),
            "targets": [target.as_dict() for target in self.targets],
        }
