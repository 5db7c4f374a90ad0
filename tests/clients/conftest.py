"""Real applications, unmodified, under ``opentelemetry-instrument`` in subprocesses.

Each application in ``apps/`` runs twice at once: plainly (``python app.py``) and instrumented.
Both must print the same thing, the driver's or server's own account of what was done
included (the ``TRUTH`` line), and dbpulse's exported counts (received by an OTLP sink in this
process) must equal that account.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clients._servers import PrivatePostgres, PrivateRedis
from tests.clients._sink import OtlpSink
from tests.integration.test_autoinstrument import run_app

APPS = Path(__file__).parent / "apps"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """The output both runs printed, and the truth line parsed."""

    stdout: str
    truth: dict[str, Any]


@pytest.fixture(scope="session")
def sink() -> Iterator[OtlpSink]:
    receiver = OtlpSink()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[tuple[PrivateRedis, PrivateRedis]]:
    """Two servers: the plain run's and the instrumented run's (they run at once)."""
    servers = (PrivateRedis(), PrivateRedis())
    yield servers
    for server in servers:
        server.stop()


def app_env(sink: OtlpSink, service: str, **extra: str) -> dict[str, str]:
    """The environment of both runs: this checkout's dbpulse first on the path, the apps'
    shared helper importable, OTLP pointed at the sink."""
    path = [str(REPO / "instrumentation"), str(APPS), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        **sink.env(),
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "OTEL_SERVICE_NAME": service,
        **extra,
    }


def run_both(
    sink: OtlpSink,
    tmp_path: Path,
    script: str,
    args: Sequence[str] | Callable[[bool], Sequence[str]] = (),
    **extra: str,
) -> Run:
    """``python apps/script args`` plain and under ``opentelemetry-instrument``, each in its
    own directory; same output required. The sink then holds the instrumented run's export.
    ``args`` may depend on the run (``args(instrumented)``), such as a database of its own."""
    sink.clear()
    arguments = args if callable(args) else lambda _instrumented: args
    plain_dir, instrumented_dir = tmp_path / "plain", tmp_path / "instrumented"
    plain_dir.mkdir()
    instrumented_dir.mkdir()
    env = app_env(sink, script.removesuffix(".py"), **extra)
    script_path = str(APPS / script)
    with ThreadPoolExecutor(2) as pool:
        plain = pool.submit(
            run_app, plain_dir, env, [script_path, *arguments(False)], instrumented=False
        )
        instrumented = pool.submit(run_app, instrumented_dir, env, [script_path, *arguments(True)])
        plain_out, instrumented_out = plain.result().stdout, instrumented.result().stdout
    assert _same_every_run(instrumented_out) == _same_every_run(plain_out)
    truth: dict[str, Any] = {}
    for line in instrumented_out.splitlines():
        for prefix in ("TRUTH ", "RUN TRUTH "):
            if line.startswith(prefix):
                truth.update(json.loads(line.removeprefix(prefix)))
    return Run(plain_out, truth)


def _same_every_run(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if not line.startswith("RUN TRUTH ")]


def operations(sink: OtlpSink, system: str) -> dict[str, int]:
    """dbpulse's ``db.client.operation.duration`` counts of ``system``, by operation."""
    counts = sink.by(
        "db.client.operation.duration", "db.operation.name", **{"db.system.name": system}
    )
    return {k: int(v) for k, v in counts.items()}


def writes(sink: OtlpSink, system: str) -> int:
    """dbpulse's ``dbpulse.db.writes`` of ``system``, summed over every series and process."""
    return int(sink.total("dbpulse.db.writes", **{"db.system.name": system}))


DRIVER_TRANSACTIONS = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})
"""What a driver runs itself (``commit()``, ``rollback()``, an implicit ``BEGIN``, psycopg's
savepoints): the server counts them, the application never passed them to ``execute``."""


def expected_operations(
    statements: dict[str, int], batches: Sequence[int], skip: frozenset[str] = frozenset()
) -> dict[str, int]:
    """The operations an application made, from the statements the database ran: ``skip``
    left out, and each ``executemany`` of n rows (n runs of one INSERT) one operation."""
    expected = Counter({k: v for k, v in statements.items() if k not in skip})
    expected["INSERT"] -= sum(n - 1 for n in batches)
    return dict(+expected)
