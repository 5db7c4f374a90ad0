"""What docker compose would run for each dbpulse service, read from the files compose reads.

``docker-compose.yml`` (YAML merge keys and ``${VAR:-default}`` interpolation resolved the way
compose resolves them with no variable set) and ``docker/dbpulse.Dockerfile`` (its ``ENV`` and
``CMD``). A dbpulse service is one built from that Dockerfile. :func:`local_environment` turns
a service's compose environment into the one it gets here: each compose hostname is replaced by
the loopback address of the harness service that stands for it, and a hostname nobody maps is
an error (a new dependency must be mapped, not silently kept).
"""

from __future__ import annotations

import json
import re
import shlex
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "dbpulse.Dockerfile"
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """``${VAR:-default}`` → ``default``, ``${VAR}`` → ``""``: compose with no variable set."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@dataclass(frozen=True)
class Dockerfile:
    env: dict[str, str]
    cmd: list[str]


def load_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    """The final ``ENV`` values and ``CMD`` (exec form) of a Dockerfile."""
    text = re.sub(r"\\\n", " ", path.read_text())
    env: dict[str, str] = {}
    cmd: list[str] = []
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
        elif instruction.upper() == "CMD":
            cmd = json.loads(rest)
    return Dockerfile(env, cmd)


@dataclass(frozen=True)
class Service:
    """One dbpulse service as compose would start it."""

    name: str
    argv: list[str]
    environment: dict[str, str]
    published: dict[int, int] = field(default_factory=dict)
    """Container port -> host port (``127.0.0.1:HOST:CONTAINER``)."""
    depends_on: tuple[str, ...] = ()

    @property
    def service_name(self) -> str:
        return self.environment["OTEL_SERVICE_NAME"]


def _argv(command: Any, default: list[str]) -> list[str]:
    if command is None:
        return list(default)
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _published(ports: list[Any]) -> dict[int, int]:
    found = {}
    for port in ports:
        parts = str(port).split(":")
        found[int(parts[-1])] = int(parts[-2])
    return found


def dbpulse_services(compose: Mapping[str, Any] | None = None) -> dict[str, Service]:
    """Every service built from ``docker/dbpulse.Dockerfile``, in compose's order."""
    compose = compose or load_compose()
    dockerfile = load_dockerfile()
    found: dict[str, Service] = {}
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if (
            not isinstance(build, dict)
            or (REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()
            != DOCKERFILE.resolve()
        ):
            continue
        environment = {
            **dockerfile.env,
            **{k: interpolate(str(v)) for k, v in (svc.get("environment") or {}).items()},
        }
        found[name] = Service(
            name=name,
            argv=_argv(svc.get("command"), dockerfile.cmd),
            environment=environment,
            published=_published(svc.get("ports", [])),
            depends_on=tuple(svc.get("depends_on") or ()),
        )
    return found


def start_order(services: Mapping[str, Service]) -> list[str]:
    """Dependencies first (only among ``services``; the backends are the harness's)."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        for dep in services[name].depends_on:
            if dep in services:
                visit(dep, (*path, name))
        order.append(name)

    for name in services:
        visit(name, ())
    return order


@dataclass
class HostMap:
    """Compose ``host:port`` -> what stands for it here.

    ``urls`` replaces a whole URL whose host is the key (PostgreSQL's credentials may differ
    here); ``netlocs`` replaces ``host:port`` and keeps the rest of the value.
    """

    urls: dict[str, str] = field(default_factory=dict)
    netlocs: dict[str, str] = field(default_factory=dict)

    def value(self, key: str, value: str) -> str:
        parsed = urllib.parse.urlsplit(value) if "://" in value else None
        if parsed is not None and parsed.hostname:
            netloc = f"{parsed.hostname}:{parsed.port}" if parsed.port else parsed.hostname
            if parsed.hostname in self.urls:
                return self.urls[parsed.hostname]
            if netloc in self.netlocs:
                return value.replace(parsed.netloc, self.netlocs[netloc], 1)
            if parsed.hostname not in {"127.0.0.1", "localhost"}:
                raise AssertionError(f"{key}={value}: no local stand-in for {netloc!r}")
        return value


def local_environment(service: Service, hosts: HostMap, ports: Mapping[int, int]) -> dict[str, str]:
    """The service's compose environment with compose hostnames mapped to loopback services.

    ``ports``: this service's published container ports -> the free local ports it listens on
    here; its own ``*_PORT`` variables follow, and an all-interfaces bind becomes loopback.
    """
    env = {}
    for key, value in service.environment.items():
        if key.endswith("_HOST") and value in {"0.0.0.0", "::"}:
            value = "127.0.0.1"
        elif key.endswith("_PORT") and value.isdigit() and int(value) in ports:
            value = str(ports[int(value)])
        env[key] = hosts.value(key, value)
    return env
