"""The live ISBN sphere: a span processor that feeds it, and the server that draws it.

Feed a viz server from an instrumented application (standard library only)::

    from dbpulse.viz import VizFeedProcessor
    tracer_provider.add_span_processor(VizFeedProcessor("http://127.0.0.1:8765"))

Run the server (needs the ``viz`` extra: FastAPI, uvicorn and prometheus_client)::

    dbpulse viz --port 8765            # or: from dbpulse.viz import serve; serve(port=8765)

Then open http://127.0.0.1:8765/ for the sphere. ``docs/viz.md`` describes the event format,
the endpoints and the configuration variables.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dbpulse.viz.feed import WRITE_OPERATIONS, VizFeedProcessor
from dbpulse.viz.sources import adjusted_count

if TYPE_CHECKING:
    from dbpulse.viz.app import VizServer, create_app, serve
    from dbpulse.viz.config import VizConfig

__all__ = [
    "WRITE_OPERATIONS",
    "VizConfig",
    "VizFeedProcessor",
    "VizServer",
    "adjusted_count",
    "create_app",
    "serve",
]

# The server side needs FastAPI; an instrumented application importing the feed does not.
_SERVER_NAMES = {
    "VizConfig": "dbpulse.viz.config",
    "VizServer": "dbpulse.viz.app",
    "create_app": "dbpulse.viz.app",
    "serve": "dbpulse.viz.app",
}


def __getattr__(name: str) -> Any:
    module = _SERVER_NAMES.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'dbpulse.viz' has no attribute {name!r}")
