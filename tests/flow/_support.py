"""Running the demo producer and consumer as separate processes and reading their telemetry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90


def unique_channel(name: str) -> str:
    return f"dbpulse.test.{name}.{uuid.uuid4().hex[:8]}"


@dataclass
class Exported:
    """What one child process exported."""

    spans: list[dict[str, Any]]
    metrics: dict[str, list[dict[str, Any]]]
    returncode: int
    output: str

    def spans_named(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"] == name]

    def value(self, metric: str, **attributes: Any) -> float:
        """Sum of the matching points (``count`` for histograms)."""
        return sum(
            p.get("count", p.get("value", 0))
            for p in self.metrics.get(metric, [])
            if all(p["attributes"].get(k) == v for k, v in attributes.items())
        )


class Child:
    """``python -m tests.flow._child OUT.json <command> ...`` in its own process."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.out = tmp / f"{name}.json"
        env = dict(os.environ)
        paths = [str(ROOT), str(ROOT / "instrumentation"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["OTEL_TRACES_EXPORTER"] = "none"
        env["OTEL_METRICS_EXPORTER"] = "none"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.flow._child", str(self.out), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def result(self) -> Exported:
        try:
            output, _ = self.process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
            raise AssertionError(f"child did not finish in {TIMEOUT} s:\n{output}") from None
        if not self.out.exists():
            raise AssertionError(
                f"child exported nothing (rc {self.process.returncode}):\n{output}"
            )
        data = json.loads(self.out.read_text())
        return Exported(data["spans"], data["metrics"], self.process.returncode, output)


def run_flow(
    tmp: Path,
    redis_url: str,
    channel: str,
    *,
    producer_args: tuple[str, ...] = (),
    consumer_args: tuple[str, ...] = (),
) -> tuple[Exported, Exported]:
    """Start the consumer, then the producer (which waits for the subscription), and collect."""
    common = ("--redis-url", redis_url, "--channel", channel)
    consumer = Child(tmp, "consumer", "consumer", *common, *consumer_args)
    producer = Child(
        tmp, "producer", "producer", *common, "--wait-subscribers", "60", *producer_args
    )
    return producer.result(), consumer.result()
