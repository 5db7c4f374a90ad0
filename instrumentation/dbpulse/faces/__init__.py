"""The operator's faces and the one read model under them (``diagnose`` proves the pipeline's
hops on its own: :mod:`dbpulse.faces.diagnose`).

``dbpulse top`` (a live terminal view) and ``dbpulse mcp`` (an MCP server) ask
:class:`ReadModel`, which answers from Prometheus, the trace store (Tempo or Jaeger), the viz
server and the database health checks::

    from dbpulse.faces import Endpoints, ReadModel

    with ReadModel(Endpoints.from_env(prometheus_url="http://127.0.0.1:9090")) as model:
        snapshot = model.snapshot(window="5m")
        for line in snapshot.unreachable:
            print(line)                 # "viz server at http://127.0.0.1:8765: connection refused"
        for row in snapshot.activity.operations if snapshot.activity else []:
            print(row.operation, row.table, row.calls, row.p95_ms)

Needs ``httpx`` (the ``cli`` extra); the MCP server needs the ``mcp`` extra.
"""

from __future__ import annotations

from dbpulse.faces.config import Endpoints
from dbpulse.faces.http import Unreachable
from dbpulse.faces.model import (
    Activity,
    CheckpointReached,
    Flow,
    Flows,
    Heartbeat,
    Liveness,
    OperationActivity,
    Snapshot,
    Subscription,
    as_dict,
)
from dbpulse.faces.read import ReadModel, matches

__all__ = [
    "Activity",
    "CheckpointReached",
    "Endpoints",
    "Flow",
    "Flows",
    "Heartbeat",
    "Liveness",
    "OperationActivity",
    "ReadModel",
    "Snapshot",
    "Subscription",
    "Unreachable",
    "as_dict",
    "matches",
]
