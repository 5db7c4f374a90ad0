"""Spans/s one collector and the two tiers accept from telemetrygen, drops and peak RSS.

    PYTHONPATH=instrumentation python3 benchmarks/collector_throughput.py [--seconds 10]

Runs the harness's stacks on real binaries (``tests/harness``): the single collector
(``collector/config.yaml``) and 2 agents + 2 gateways (``tests/harness/tiers.py``), each with
Jaeger and Prometheus behind it. ``telemetrygen traces`` (collector-contrib's OTLP load
generator, ``scripts/build-telemetrygen.sh``; ``DBPULSE_TELEMETRYGEN_BIN`` overrides) sends
unthrottled for ``--seconds`` (2 workers per entry point, 1 parent + 3 child spans per trace),
then ``telemetrygen metrics`` the same way. Each topology runs twice: spans without
attributes, and spans carrying the span-metrics dimensions dbpulse configures
(``DIMENSIONS``), so the cost of those dimensions shows.

Reported from the collectors' own metrics: spans and metric points accepted per second by the
receivers (the agents for the tiers), items refused by receivers and failed by exporters, and
each collector's peak RSS (VmHWM). On a shared 2-core machine the generator, the collectors,
Jaeger and Prometheus compete for the same cores: the figures are a floor, not a capacity.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.processes import locate_binaries  # noqa: E402
from tests.harness.stack import OtelStack  # noqa: E402
from tests.harness.tiers import AGENTS, GATEWAYS, TwoTierStack  # noqa: E402


def telemetrygen() -> str:
    path = os.environ.get("DBPULSE_TELEMETRYGEN_BIN")
    if not path:
        build = [str(ROOT / "scripts" / "build-telemetrygen.sh")]
        path = subprocess.run(build, check=True, capture_output=True, text=True).stdout.strip()
    return path


def peak_rss_mib(stack: OtelStack, name: str) -> float:
    process = stack._procs[name].process
    assert process is not None
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


#: The span-metrics dimensions of collector/config.yaml, with values a dbpulse span carries.
DIMENSIONS = {
    "db.system.name": "sqlite",
    "db.operation.name": "INSERT",
    "db.collection.name": "books",
    "messaging.destination.name": "patterns",
    "flow.checkpoint": "EVENT_RECEIVED",
}


def drive(signal: str, endpoints: list[str], seconds: float, dimensions: bool = False) -> None:
    argv = [telemetrygen(), signal, "--otlp-insecure", "--rate", "0", "--workers", "2"]
    argv += ["--duration", f"{seconds}s", "--service", "bench"]
    if signal == "traces":
        argv += ["--child-spans", "3"]
        if dimensions:
            for key, value in DIMENSIONS.items():
                argv += ["--telemetry-attributes", f'{key}="{value}"']
    procs = [
        subprocess.Popen(
            [*argv, "--otlp-endpoint", e], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for e in endpoints
    ]
    for proc in procs:
        proc.wait(seconds + 60)


def measure(
    label: str,
    stack: OtelStack,
    front: list[str],
    all_: list[str],
    seconds: float,
    dimensions: bool = False,
) -> None:
    def metric(name: str, prefix: str) -> float:
        if isinstance(stack, TwoTierStack):
            return stack.telemetry(name, prefix)
        return stack.collector_metric(prefix)

    endpoints = (
        stack.otlp_grpc_endpoints if isinstance(stack, TwoTierStack) else [stack.otlp_grpc_endpoint]
    )
    drive("traces", endpoints, seconds, dimensions)
    time.sleep(5)  # queues drain
    accepted = sum(metric(n, "otelcol_receiver_accepted_spans") for n in front)
    refused = sum(metric(n, "otelcol_receiver_refused_spans") for n in front)
    failed = sum(metric(n, "otelcol_exporter_send_failed_spans") for n in all_)
    before = sum(metric(n, "otelcol_receiver_accepted_metric_points") for n in front)
    drive("metrics", endpoints, seconds)
    time.sleep(5)
    points = sum(metric(n, "otelcol_receiver_accepted_metric_points") for n in front) - before
    refused += sum(metric(n, "otelcol_receiver_refused_metric_points") for n in front)
    failed += sum(metric(n, "otelcol_exporter_send_failed_metric_points") for n in all_)
    rss = ", ".join(f"{n} {peak_rss_mib(stack, n):.0f}" for n in all_)
    print(
        f"| {label} | {accepted / seconds:,.0f} | {points / seconds:,.0f} | {refused:,.0f} | "
        f"{failed:,.0f} | {rss} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    binaries = locate_binaries()
    print("| topology | spans/s | metric points/s | refused | export failed | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for dimensions in (False, True):
        spans = "spans with dbpulse's dimensions" if dimensions else "plain spans"
        with OtelStack(binaries) as single:
            front = ["otelcol"]
            measure(f"single collector, {spans}", single, front, front, args.seconds, dimensions)
        with TwoTierStack(binaries) as tiers:
            every = [*AGENTS, *GATEWAYS]
            label = f"2 agents + 2 gateways, {spans}"
            measure(label, tiers, list(AGENTS), every, args.seconds, dimensions)


if __name__ == "__main__":
    main()
