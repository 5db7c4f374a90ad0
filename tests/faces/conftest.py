"""The faces' shared stack: the harness (collector, Prometheus, Jaeger), a viz server and Redis,
after :mod:`tests.faces.workload` ran once (module tests share it through ``faced``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.harness.processes import free_port, http_get, wait_until
from tests.harness.stack import OtelStack

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Faced:
    stack: OtelStack
    viz_url: str
    service: str
    flows: dict[str, Any]
    env: dict[str, str]
    db: Path

    def sources(self) -> list[str]:
        return [
            "--prometheus", self.stack.prometheus_url,
            "--trace-store", self.stack.trace_store_url,
            "--viz", self.viz_url,
        ]  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def faced(otel_stack: OtelStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faced]:
    redis_url = services.redis_url()
    run = uuid.uuid4().hex[:8]
    path = str(REPO_ROOT / "instrumentation")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    viz_url = f"http://127.0.0.1:{port}"
    viz = subprocess.Popen(
        [sys.executable, "-m", "dbpulse.cli", "viz", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _answers(f"{viz_url}/healthz"), timeout=60, what="the viz server")
        service = f"faces-{run}"
        work_env = {
            **env,
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otel_stack.otlp_grpc_endpoint}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "DBPULSE_HEARTBEAT_INTERVAL": "1",
            "DBPULSE_VIZ_URL": viz_url,
        }
        db = tmp_path_factory.mktemp("faces") / "w.db"
        done = subprocess.run(
            [sys.executable, "-m", "tests.faces.workload", "--sqlite", str(db),
             "--redis", redis_url, "--prefix", f"faces-{run}"],
            env=work_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        flows = json.loads(done.stdout.strip().splitlines()[-1])
        otel_stack.wait_for_series(
            f'db_client_operation_duration_seconds_count{{service_name="{service}"}}', timeout=60
        )
        yield Faced(otel_stack, viz_url, service, flows, env, db)
    finally:
        viz.terminate()
        viz.wait(10)
