"""The two collector tiers on loopback: 2 agents → 2 gateways → Jaeger + Prometheus.

The collectors run the repository's files as ``docker compose --profile scale`` does (same
files, same order): agents ``collector/config.yaml`` + ``collector/agent.yaml``, gateways
``collector/config.yaml`` + ``collector/gateway.yaml``; the variables they read point at free
loopback ports. Prometheus runs ``prometheus/prometheus.yml`` with the tier jobs' targets
rewritten to the gateways and agents (the single collector's jobs get none)::

    from tests.harness.processes import locate_binaries
    from tests.harness.tiers import TwoTierStack

    with TwoTierStack(locate_binaries()) as tiers:
        print(tiers.otlp_grpc_endpoints)  # one per agent; apps send to any of them
        tiers.kill_gateway("gateway-2")
        tiers.reroute(["gateway-1"])  # what a DNS/k8s resolver does by itself (docs/stack.md)

Queries (:meth:`query_prometheus`, :meth:`get_trace`, ...) are :class:`OtelStack`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from tests.harness.processes import REPO_ROOT, ManagedProcess
from tests.harness.stack import COLLECTOR_CONFIG, OtelStack, telemetry_sum

AGENT_CONFIG = REPO_ROOT / "collector" / "agent.yaml"
GATEWAY_CONFIG = REPO_ROOT / "collector" / "gateway.yaml"
AGENTS = ("agent-1", "agent-2")
GATEWAYS = ("gateway-1", "gateway-2")

#: The config files each tier's compose services mount, in ``--config`` order; the compose
#: test checks docker-compose.yml's scale profile against this mapping.
TIER_CONFIGS = {
    **{name: (COLLECTOR_CONFIG, AGENT_CONFIG) for name in AGENTS},
    **{name: (COLLECTOR_CONFIG, GATEWAY_CONFIG) for name in GATEWAYS},
}

_COLLECTOR_PORTS = ("otlp_grpc", "otlp_http", "health", "prometheus_exporter", "telemetry")


def gateway_list(endpoints: Sequence[str]) -> str:
    """``OTELCOL_GATEWAYS`` as agent.yaml reads it: a YAML list of host:port."""
    return "[" + ", ".join(endpoints) + "]"


class TwoTierStack(OtelStack):
    """Agents and gateways from the repository's configs, Jaeger and Prometheus behind them."""

    START_ORDER: ClassVar[tuple[str, ...]] = ("jaeger", *GATEWAYS, *AGENTS, "prometheus")
    routed_gateways: list[str]

    def _port_keys(self) -> tuple[str, ...]:
        keys = [f"{c}.{p}" for c in (*AGENTS, *GATEWAYS) for p in _COLLECTOR_PORTS]
        return (*keys, *self._backend_port_keys())

    def _processes(self) -> dict[str, ManagedProcess]:
        self.routed_gateways = list(GATEWAYS)
        procs = {"jaeger": self._jaeger_process(), "prometheus": self._prometheus_process()}
        for name in (*GATEWAYS, *AGENTS):
            procs[name] = self._tier_process(name)
        return procs

    def prometheus_targets(self) -> dict[str, list[str]]:
        def addr(name: str, port: str) -> str:
            return f"127.0.0.1:{self.ports[f'{name}.{port}']}"

        return {
            "otel-collector-exporter": [],
            "otel-collector": [],
            "otel-gateways-exporter": [addr(g, "prometheus_exporter") for g in GATEWAYS],
            "otel-tiers": [addr(c, "telemetry") for c in (*AGENTS, *GATEWAYS)],
        }

    # -- endpoints -------------------------------------------------------------------------

    def endpoint(self, name: str, port: str = "otlp_grpc") -> str:
        return f"127.0.0.1:{self.ports[f'{name}.{port}']}"

    @property
    def otlp_grpc_endpoints(self) -> list[str]:
        """The agents' OTLP/gRPC ``host:port``: where applications send."""
        return [self.endpoint(a) for a in AGENTS]

    @property
    def otlp_grpc_endpoint(self) -> str:
        return self.otlp_grpc_endpoints[0]

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://{self.endpoint(AGENTS[0], 'otlp_http')}"

    def telemetry_url(self, name: str) -> str:
        return f"http://{self.endpoint(name, 'telemetry')}/metrics"

    def telemetry(self, name: str, name_prefix: str) -> float:
        """Sum of collector ``name``'s own metric samples named ``name_prefix...``."""
        return telemetry_sum(self.telemetry_url(name), name_prefix)

    # -- processes -------------------------------------------------------------------------

    def tier_env(self, name: str) -> dict[str, str]:
        """The variables config.yaml + the tier's file read, for collector ``name``."""
        env = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": self.endpoint(name),
            "OTELCOL_OTLP_HTTP_ENDPOINT": self.endpoint(name, "otlp_http"),
            "OTELCOL_HEALTH_ENDPOINT": self.endpoint(name, "health"),
            "OTELCOL_PROMETHEUS_ENDPOINT": self.endpoint(name, "prometheus_exporter"),
            "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
            "OTELCOL_TELEMETRY_PORT": str(self.ports[f"{name}.telemetry"]),
            "OTELCOL_STORAGE_DIR": str(self.dir / f"{name}-storage"),
            "TEMPO_OTLP_ENDPOINT": f"127.0.0.1:{self.ports['jaeger_otlp_grpc']}",
        }
        if name in GATEWAYS:
            env["OTELCOL_GATEWAY_NAME"] = name
        else:
            env["OTELCOL_GATEWAYS"] = gateway_list([self.endpoint(g) for g in self.routed_gateways])
        return env

    def _tier_process(self, name: str) -> ManagedProcess:
        return ManagedProcess(
            name=name,
            argv=[str(self.binaries.otelcol), *(f"--config={f}" for f in TIER_CONFIGS[name])],
            env=self.tier_env(name),
            log_path=self.dir / f"{name}.log",
            health_url=f"http://{self.endpoint(name, 'health')}/",
        )

    def kill_gateway(self, name: str) -> None:
        """SIGKILL gateway ``name``: no flush, as a crash or OOM kill."""
        self._procs[name].kill()

    def start_gateway(self, name: str) -> None:
        self._procs[name].start()

    def reroute(self, gateways: Sequence[str]) -> None:
        """Give every agent the static gateway list ``gateways`` and restart it (SIGTERM: it
        drains what it holds; then it starts with the new list), one agent at a time.

        With the static resolver this is the operator's step (compose: edit OTELCOL_GATEWAYS,
        ``docker compose up -d``); the dns and k8s resolvers change the ring by themselves.
        """
        self.routed_gateways = list(gateways)
        for agent in AGENTS:
            self._procs[agent].stop()
            self._procs[agent] = self._tier_process(agent)
            self._procs[agent].start()

    def dropped_spans_logged(self, name: str) -> int:
        """Spans collector ``name`` logged as dropped ("Exporting failed. Dropping data."),
        over all its restarts (the log is appended to; its counters restart at zero)."""
        total = 0
        for line in (self.dir / f"{name}.log").read_text(errors="replace").splitlines():
            if "Dropping data" in line and '"otelcol.signal": "traces"' in line:
                found = re.search(r'"dropped_items": (\d+)', line)
                total += int(found.group(1)) if found else 0
        return total
