"""The services tests talk to, located once for every test package.

With ``CI=true`` a missing service fails the test; otherwise the test is skipped with a message
naming what to start (``scripts/services.sh``).
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(what: str, error: BaseException | str) -> None:
    """Fail in CI, skip elsewhere, naming what to start."""
    message = f"{what} is not reachable ({error}); start it with scripts/services.sh"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def postgres_dsn() -> str:
    """``DBPULSE_TEST_POSTGRES_DSN`` (default: what scripts/services.sh starts), reachable."""
    dsn = os.environ.get(
        "DBPULSE_TEST_POSTGRES_DSN", "postgresql://dbpulse:dbpulse@127.0.0.1:5432/dbpulse"
    )
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        require_service(f"PostgreSQL at {dsn}", exc)
    return dsn


def redis_url() -> str:
    """``DBPULSE_TEST_REDIS_URL`` (default: what scripts/services.sh starts), reachable."""
    url = os.environ.get("DBPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as exc:
        require_service(f"Redis at {url}", exc)
    return url
