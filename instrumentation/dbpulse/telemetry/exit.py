"""Leaving the process quickly when the collector is not there.

At exit (and in ``Telemetry.shutdown()``) the SDK flushes the last spans and metrics; with no
collector listening, each OTLP exporter retries with backoff until its timeout (10 s by
default) and logs every attempt: a one-shot script took 12.7 s more to exit and printed four
export errors. Before that flush, dbpulse tries one TCP connection (0.5 s at most) to each OTLP
exporter's endpoint; when it is refused, that exporter is shut down first, so the flush drops
its last batch at once, and the OTLP exporters' log records during the flush are not shown
(one DEBUG line on ``dbpulse.telemetry.exit`` says what was dropped). A collector that is
reachable gets the normal flush, retries included.

The endpoint is read as the OTLP exporters read it (checked against
opentelemetry-exporter-otlp 1.45): ``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT``, else
``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``localhost:4317`` (gRPC) or ``localhost:4318`` (HTTP).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["drop_unreachable", "is_otlp"]

_log = logging.getLogger(__name__)
_OTLP = "opentelemetry.exporter.otlp"
_PROBE_SECONDS = 0.5


def is_otlp(exporter: Any) -> bool:
    return type(exporter).__module__.startswith(_OTLP)


def _endpoint(exporter: Any) -> tuple[str, int]:
    grpc = ".grpc." in type(exporter).__module__
    signal = "METRICS" if "metric" in type(exporter).__module__ else "TRACES"
    value = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or ("localhost:4317" if grpc else "localhost:4318")
    )
    parts = urlsplit(value if "://" in value else f"http://{value}")
    default = 443 if parts.scheme == "https" else (4317 if grpc else 4318)
    return parts.hostname or "localhost", parts.port or default


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=_PROBE_SECONDS):
            return True
    except OSError:
        return False


def drop_unreachable(exporters: Iterable[Any]) -> None:
    """Shut down the OTLP exporters whose endpoint refuses a connection, and hide the OTLP
    exporters' log records from here on (the process is stopping). Never raises."""
    try:
        probed: dict[tuple[str, int], bool] = {}
        gone = []
        for exporter in exporters:
            where = _endpoint(exporter)
            if where not in probed:
                probed[where] = _reachable(*where)
            if not probed[where]:
                gone.append((exporter, where))
        if not gone:
            return
        logging.getLogger(_OTLP).setLevel(logging.CRITICAL)
        for exporter, (host, port) in gone:
            _log.debug("dbpulse: no collector at %s:%s; last batch dropped", host, port)
            try:
                exporter.shutdown()  # the HTTP exporters' takes no timeout
            except Exception:
                pass
    except Exception:
        pass
