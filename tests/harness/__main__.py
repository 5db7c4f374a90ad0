"""Run the Docker-less stack in the foreground, exactly as the tests run it.

    scripts/services.sh                # once: builds/installs the binaries
    python -m tests.harness            # collector, trace store, Prometheus until Ctrl-C

Ports are the docker-compose ones on 127.0.0.1 (OTLP 4317/4318, Prometheus 9090); the trace
store is Jaeger (UI and API on 16686) where compose runs Tempo (docs/stack.md). ``--free-ports``
picks free ones instead. Data lives in a temporary directory, removed on exit.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.harness.stack import OtelStack, StackError, locate_binaries

COMPOSE_PORTS = {
    "otlp_grpc": 4317,
    "otlp_http": 4318,
    "collector_health": 13133,
    "prometheus_exporter": 8889,
    "telemetry": 8888,
    "prometheus": 9090,
    "jaeger_query_http": 16686,
    "jaeger_query_grpc": 16685,
    "jaeger_health": 13134,
    "jaeger_otlp_grpc": 14317,
    "jaeger_otlp_http": 14318,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness", description=__doc__)
    parser.add_argument("--free-ports", action="store_true", help="use free ports, not 4317...")
    args = parser.parse_args()
    try:
        stack = OtelStack(locate_binaries(), ports={} if args.free_ports else dict(COMPOSE_PORTS))
        stack.start()
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"OTLP gRPC   {stack.otlp_grpc_endpoint}")
    print(f"OTLP HTTP   {stack.otlp_http_endpoint}")
    print(f"Prometheus  {stack.prometheus_url}")
    print(f"Jaeger      {stack.trace_store_url}   (trace store; compose runs Tempo)")
    print(f"data + logs {stack.dir}   (Ctrl-C stops everything)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
