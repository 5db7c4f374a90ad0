"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """A private 3-master Redis Cluster (``redis-server`` and ``redis-cli`` from Debian; with
    ``CI=true`` their absence is a failure), started once and stopped after the session."""
    pytest.importorskip("redis")
    from tests.clients._servers import PrivateRedisCluster

    cluster = PrivateRedisCluster()
    yield cluster
    cluster.stop()
