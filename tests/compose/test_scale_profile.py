"""``docker compose --profile scale``: two agents and two gateways, validated offline by
docker-compose (``config`` needs no daemon), each mounting the files the harness runs
(``tests/harness/tiers.py``) in the same ``--config`` order."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import yaml

from tests import services
from tests.compose._compose import COMPOSE_FILE, REPO
from tests.harness.tiers import TIER_CONFIGS


def _resolved() -> dict[str, Any]:
    if not shutil.which("docker-compose"):
        services.require_service("A Compose validator (docker-compose)", "not installed")
    argv = ["docker-compose", "-f", str(COMPOSE_FILE), "--profile", "scale", "config"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = yaml.safe_load(done.stdout)
    return data


def test_scale_profile_runs_the_tier_files_the_harness_runs() -> None:
    compose = _resolved()["services"]
    for name, files in TIER_CONFIGS.items():
        svc = compose[name]
        assert svc["profiles"] == ["scale"]
        mounts = {}
        for volume in svc["volumes"]:
            source, target = str(volume).split(":")[:2]
            mounts[target] = source
        configs = [c.removeprefix("--config=") for c in svc["command"]]
        assert [mounts[c] for c in configs] == [str(f.resolve()) for f in files], name
    # The agents' static resolver names both gateways; each gateway labels its series.
    for agent in ("agent-1", "agent-2"):
        gateways = yaml.safe_load(compose[agent]["environment"]["OTELCOL_GATEWAYS"])
        assert gateways == ["gateway-1:4317", "gateway-2:4317"]
    assert compose["gateway-1"]["environment"]["OTELCOL_GATEWAY_NAME"] == "gateway-1"
    assert compose["gateway-2"]["environment"]["OTELCOL_GATEWAY_NAME"] == "gateway-2"
