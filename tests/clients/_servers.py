"""Private servers for the client tests: their statistics are the truth, so nothing else may
talk to them. A PostgreSQL cluster with ``pg_stat_statements`` and a ``redis-server``, each in
a temporary directory on a free loopback port, stopped (and removed) afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests import services
from tests.harness.processes import free_port, free_ports

__all__ = ["PrivatePostgres", "PrivateRedis", "PrivateRedisCluster"]


def _as_owner(argv: Sequence[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: p.split("/"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A throwaway cluster; ``stats(database)`` reads what ``pg_stat_statements`` counted."""

    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            services.require_service("PostgreSQL server binaries (initdb)", "not found")
        assert bindir is not None
        self.dir = Path(tempfile.mkdtemp(prefix="dbpulse-clients-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self._pg_ctl = str(bindir / "pg_ctl")
        data = str(self.dir / "data")
        subprocess.run(
            [
                *_as_owner([str(bindir / "initdb"), "-D", data, "-A", "trust", "-U", "postgres"]),
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top"
        )
        subprocess.run(
            [
                *_as_owner([self._pg_ctl, "-D", data, "-l", str(self.dir / "log"), "-w"]),
                "-o",
                options,
                "start",
            ],
            check=True,
            capture_output=True,
        )
        self.execute("postgres", "CREATE EXTENSION pg_stat_statements")

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            cursor = conn.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        self.execute("postgres", f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stats(self, database: str) -> list[tuple[str, int, int]]:
        """(query, calls, rows) of every statement run in ``database``."""
        rows = self.execute(
            "postgres",
            "SELECT s.query, s.calls, s.rows FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
            database,
        )
        return [(str(q), int(c), int(r)) for q, c, r in rows]

    def stop(self) -> None:
        subprocess.run(
            _as_owner([self._pg_ctl, "-D", str(self.dir / "data"), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        services.require_service(name, "not found on PATH")
    assert found is not None
    return found


def _start_redis(binary: str, port: int, directory: Path, *options: str) -> subprocess.Popen[bytes]:
    """A ``redis-server`` on 127.0.0.1:``port`` keeping its files in ``directory``."""
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(client: Any, process: subprocess.Popen[bytes]) -> None:
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PrivateRedis:
    """A ``redis-server`` of our own: ``INFO commandstats`` and keyspace hits are ours alone."""

    def __init__(self) -> None:
        binary = _binary("redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="dbpulse-clients-redis-"))
        self.port = free_port()
        self.process = _start_redis(binary, self.port, self.dir)
        import redis

        self.client = redis.Redis(port=self.port)
        _wait_for(self.client, self.process)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def reset(self) -> None:
        """Empty, statistics zeroed: the next application starts the counts."""
        self.client.flushall()
        self.client.config_resetstat()

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedisCluster:
    """A Redis Cluster of ``masters`` nodes (no replicas) of our own, made with
    ``redis-cli --cluster create``: every node's statistics are ours alone. ``clients`` are a
    plain client per node (for ``INFO`` and ``CLUSTER SETSLOT``), never through the cluster."""

    def __init__(self, masters: int = 3) -> None:
        binary = _binary("redis-server")
        cli = _binary("redis-cli")
        import redis

        self.dir = Path(tempfile.mkdtemp(prefix="dbpulse-clients-rcluster-"))
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.clients: list[Any] = []
        try:
            # Every node's port and bus port, distinct (the bus is port + 10000 by default,
            # which may be over 65535).
            ports = free_ports(2 * masters)
            for port, bus in zip(ports[:masters], ports[masters:], strict=True):
                node_dir = self.dir / str(port)
                node_dir.mkdir()
                self.ports.append(port)
                self.processes.append(
                    _start_redis(
                        binary,
                        port,
                        node_dir,
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(node_dir / "nodes.conf"),
                        "--cluster-port",
                        str(bus),
                        "--cluster-node-timeout",
                        "5000",
                    )
                )
            for port, process in zip(self.ports, self.processes, strict=True):
                client = redis.Redis(port=port)
                _wait_for(client, process)
                self.clients.append(client)
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{port}" for port in self.ports),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            deadline = time.monotonic() + 30
            while not self._settled():
                if time.monotonic() > deadline:
                    raise TimeoutError("the private Redis Cluster did not reach cluster_state:ok")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def _settled(self) -> bool:
        """Every node says ``cluster_state:ok`` and gives the same slot table."""
        if not all(c.cluster("INFO")["cluster_state"] == "ok" for c in self.clients):
            return False
        tables = [sorted(map(repr, c.execute_command("CLUSTER SLOTS"))) for c in self.clients]
        return all(t == tables[0] for t in tables)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def reset(self) -> None:
        """Every node empty, its statistics zeroed."""
        for client in self.clients:
            client.flushall()
            client.config_resetstat()

    def stop(self) -> None:
        for process in self.processes:
            _stop(process)
        for client in self.clients:
            client.close()
        shutil.rmtree(self.dir, ignore_errors=True)
