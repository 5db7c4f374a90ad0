"""What the read model answers: plain dataclasses, JSON-serialisable with :func:`as_dict`.

Times are unix seconds, durations milliseconds unless the name says ``_s``; a figure the sources
could not give is ``None``, never NaN.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Activity",
    "CheckpointReached",
    "ErrorCount",
    "Flow",
    "Flows",
    "Heartbeat",
    "Liveness",
    "OperationActivity",
    "Snapshot",
    "Subscription",
    "as_dict",
]


def as_dict(value: Any) -> Any:
    """A dataclass of this module (or a list of them) as plain JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [as_dict(v) for v in value]
    return value


@dataclass
class OperationActivity:
    """One operation on one table of one system, over the window."""

    system: str | None
    operation: str
    table: str | None
    calls: int = 0
    errors: int = 0
    ops_per_s: float = 0.0
    total_time_s: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    rows_written: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


@dataclass
class ErrorCount:
    system: str | None
    error_type: str
    count: int


@dataclass
class Activity:
    """Database activity over ``window`` (Prometheus duration, e.g. ``5m``), exact counts."""

    window: str
    calls: int = 0
    errors: int = 0
    error_rate: float | None = None
    ops_per_s: float = 0.0
    rows_written: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    cache_requests: int = 0
    cache_hit_ratio: float | None = None
    sampling: dict[str, str] = field(default_factory=dict)
    operations: list[OperationActivity] = field(default_factory=list)
    errors_by_type: list[ErrorCount] = field(default_factory=list)


@dataclass
class Heartbeat:
    service: str | None
    component: str | None
    last_beat: float
    age_s: float


@dataclass
class Subscription:
    service: str | None
    channel: str | None
    active: bool


@dataclass
class Liveness:
    heartbeats: list[Heartbeat] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)


@dataclass
class CheckpointReached:
    checkpoint: str
    service: str | None
    at: float
    duration_ms: float
    error: bool = False


@dataclass
class Flow:
    """One pattern flow: its trace (trace id = flow id) and the checkpoints it reached.

    ``state`` is ``delivered`` (WEBSOCKET_DELIVERED reached), ``in flight`` (not yet, but
    recent) or ``stuck`` (not delivered ``stuck_after_s`` after it was published);
    ``stuck_at`` names the last checkpoint reached.
    """

    flow_id: str
    trace_id: str
    channel: str | None
    published_at: float | None
    state: str
    stuck_at: str | None = None
    latency_ms: float | None = None
    checkpoints: list[CheckpointReached] = field(default_factory=list)


@dataclass
class Flows:
    """Recent flows from the trace store, the stuck among them, and Prometheus's count of
    published minus delivered over 5 minutes per channel."""

    recent: list[Flow] = field(default_factory=list)
    stuck: list[Flow] = field(default_factory=list)
    stuck_by_channel: dict[str, float] = field(default_factory=dict)


@dataclass
class Snapshot:
    """Everything ``dbpulse top`` shows, taken at once; ``unreachable`` has one line per
    source that did not answer (the other fields are then empty or None)."""

    taken_at: float
    activity: Activity | None = None
    liveness: Liveness | None = None
    flows: Flows | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    viz: dict[str, Any] | None = None
    unreachable: list[str] = field(default_factory=list)
