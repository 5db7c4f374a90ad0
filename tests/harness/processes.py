"""The harness's processes: where the backend binaries are, one backend process started and
stopped without orphans, free loopback ports, and the HTTP helpers the stack polls with.

    from tests.harness.processes import ManagedProcess, free_port, locate_binaries

    port = free_port()
    prometheus = ManagedProcess(
        name="prometheus",
        argv=[str(locate_binaries().prometheus), f"--web.listen-address=127.0.0.1:{port}"],
        env={},
        log_path=Path("prometheus.log"),
        health_url=f"http://127.0.0.1:{port}/-/ready",
    )
    prometheus.start()  # waits for health_url to answer 200
    prometheus.stop()

A binary is found through its environment variable (``DBPULSE_OTELCOL_BIN``,
``DBPULSE_JAEGER_BIN``, ``DBPULSE_PROMETHEUS_BIN``), the path its build script caches it at, or
``PATH`` (Prometheus); ``scripts/services.sh`` builds or installs them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BINARY_ENV",
    "REPO_ROOT",
    "Binaries",
    "ManagedProcess",
    "StackError",
    "free_port",
    "http_get",
    "locate_binaries",
    "locate_binary",
    "missing_binaries_message",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

BINARY_ENV = {
    "otelcol": "DBPULSE_OTELCOL_BIN",
    "jaeger": "DBPULSE_JAEGER_BIN",
    "prometheus": "DBPULSE_PROMETHEUS_BIN",
}
_BUILD_SCRIPTS = {
    "otelcol": REPO_ROOT / "scripts" / "build-collector.sh",
    "jaeger": REPO_ROOT / "scripts" / "build-jaeger.sh",
}


class StackError(RuntimeError):
    """A backend did not start, answer or stop as expected; the message says which and why."""


def locate_binary(name: str) -> Path | None:
    """Path of the ``otelcol``, ``jaeger`` or ``prometheus`` binary, or None if absent.

    The environment variable (``DBPULSE_OTELCOL_BIN``, ``DBPULSE_JAEGER_BIN``,
    ``DBPULSE_PROMETHEUS_BIN``) wins; otherwise the path the build script caches it at
    (``~/.cache/dbpulse/...``), or Debian's ``/usr/bin/prometheus``.

    >>> locate_binary("prometheus")  # doctest: +SKIP
    PosixPath('/usr/bin/prometheus')
    """
    env = os.environ.get(BINARY_ENV[name])
    if env:
        path = Path(env).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    if name == "prometheus":
        found = shutil.which("prometheus")
        return Path(found) if found else None
    printed = subprocess.run(
        ["bash", str(_BUILD_SCRIPTS[name]), "--print-path"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    built = Path(printed) if printed else None
    return built if built and built.is_file() and os.access(built, os.X_OK) else None


@dataclass(frozen=True)
class Binaries:
    """Where the three backends' executables are."""

    otelcol: Path
    prometheus: Path
    jaeger: Path


def locate_binaries() -> Binaries:
    """All three binaries, or :class:`StackError` naming the missing ones and the fix."""
    found = {name: locate_binary(name) for name in BINARY_ENV}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise StackError(missing_binaries_message(missing))
    return Binaries(**{name: path for name, path in found.items() if path is not None})


def missing_binaries_message(missing: list[str]) -> str:
    """What to run when ``missing`` binaries are not there."""
    names = ", ".join(missing)
    envs = ", ".join(BINARY_ENV[m] for m in missing)
    return (
        f"missing telemetry backend binaries: {names}. Build/install them with "
        f"`scripts/services.sh binaries packages` (or point {envs} at them)."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now (held open
    together while chosen: one at a time, the system may give the same port twice)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url``; (status, body). Connection errors raise ``OSError``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def wait_until(
    check: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition"
) -> Any:
    """Call ``check`` until it returns something truthy; return it, or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, KeyError) as err:
            last_error = err
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass
class ManagedProcess:
    """One backend process: started in its own process group, stopped without orphans."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until ``health_url`` answers 200."""
        if self.running:
            return
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

        def healthy() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(
                    f"{self.name} exited with {self.process.returncode} during start; "
                    f"last log lines:\n{self.log_tail()}"
                )
            return http_get(self.health_url, timeout=2)[0] == 200

        try:
            wait_until(healthy, timeout, what=f"{self.name} health at {self.health_url}")
        except StackError as err:
            self.stop()
            raise StackError(f"{err}\n{self.name} log tail:\n{self.log_tail()}") from None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout``."""
        self._signal_and_reap(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL at once, as a crash or OOM kill would."""
        self._signal_and_reap(signal.SIGKILL, 10.0)

    def _signal_and_reap(self, sig: signal.Signals, timeout: float) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
