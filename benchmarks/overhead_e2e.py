"""End-to-end rows of ``overhead.py``: the workload as whole processes, plainly and under
``opentelemetry-instrument``, timed with the kernel's resource usage of each finished child.

Variants (all run ``overhead_e2e_child.py`` with the same rows, in turns):

* ``plain python`` — no OpenTelemetry at all (every ``OTEL_*`` variable removed);
* ``otel-instrument, dbpulse`` — ``opentelemetry-instrument python ...`` with default settings:
  the distro and configurator it picks are dbpulse's (installed), so the adaptive sampler runs
  with its default bands. Exporters are ``none`` (``OTEL_TRACES_EXPORTER``,
  ``OTEL_METRICS_EXPORTER``, ``OTEL_LOGS_EXPORTER``): spans and metrics are still made, and
  dropped at the exporter. An OTLP endpoint that is not listening was the other choice; it was
  not taken because the exporter's retries and backoff at shutdown (up to its 10 s timeout)
  would time the exporter's sleep, not the application's cost;
* ``otel-instrument, stock contrib`` — the same with ``OTEL_PYTHON_DISTRO=distro``,
  ``OTEL_PYTHON_CONFIGURATOR=configurator`` and dbpulse's instrumentors disabled
  (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``): opentelemetry-instrumentation-sqlite3 alone;
* ``otel-instrument, OTEL_SDK_DISABLED=true`` — the dbpulse variant with the SDK disabled.

Each variant also runs with no rows (``startup``): the fixed cost of the interpreter, the
imports and the SDK set-up, which the per-op figures leave out.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from overhead_mixes import Mix

CHILD = Path(__file__).with_name("overhead_e2e_child.py")
_NONE = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
_NONE["OTEL_LOGS_EXPORTER"] = "none"
EXPECTED = {
    "plain python": "",
    "otel-instrument, dbpulse": "dbpulse.",
    "otel-instrument, stock contrib": "opentelemetry.",
}
"""Variant -> how the module that wrapped the child's cursor must start (checked every run)."""
VARIANTS: dict[str, dict[str, str] | None] = {
    "plain python": None,
    "otel-instrument, dbpulse": _NONE,
    "otel-instrument, stock contrib": {
        **_NONE,
        "OTEL_PYTHON_DISTRO": "distro",
        "OTEL_PYTHON_CONFIGURATOR": "configurator",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "dbpulse_sqlite3,dbpulse_psycopg,dbpulse_redis",
    },
    "otel-instrument, OTEL_SDK_DISABLED=true": {**_NONE, "OTEL_SDK_DISABLED": "true"},
}
"""Variant -> the OTEL_* environment under ``opentelemetry-instrument`` (``None``: plain)."""

Run = dict[str, Any]  # wall, cpu (whole process); loop_wall, loop_cpu (the insert loop); observer


def _instrument_command() -> str:
    # The console script next to this interpreter, not a version manager's shim (whose own
    # start-up would be timed too).
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    return str(beside) if beside.exists() else "opentelemetry-instrument"


def run_once(variant: str, rows_file: Path, db: Path, autocommit: bool) -> Run:
    """One child process from start to reaping: wall and user + system CPU from ``wait4``."""
    otel = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    command = [sys.executable, str(CHILD), str(rows_file), str(db)]
    if autocommit:
        command.append("--autocommit")
    if otel is not None:
        env.update(otel)
        command.insert(0, _instrument_command())
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{variant}: exit {proc.returncode}: {err.decode()[-2000:]}")
    report = json.loads(out.decode().strip().splitlines()[-1])
    expected = EXPECTED.get(variant)
    observer = report["observer"]
    if expected is not None and (
        observer[: len(expected)] != expected or bool(observer) != bool(expected)
    ):
        # A broken install (stale entry points, say) runs the workload unobserved: its numbers
        # would flatter whoever should have observed it.
        raise RuntimeError(
            f"{variant}: inserts observed by {observer or 'nobody'!r}, expected {expected!r}; "
            f"stderr: {err.decode()[-1500:]}"
        )
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "loop_wall": report["wall"],
        "loop_cpu": report["cpu"],
        "observer": observer,
    }


def e2e_workload(
    title: str, mix: Mix, n: int, autocommit: bool, tmp: Path, rounds: int
) -> dict[str, dict[str, list[Run]]]:
    """``rounds`` counted runs (after one warm-up) per variant of ``n`` rows and of none.

    Returns ``{"ops": {variant: runs}, "startup": {variant: runs}}``."""
    rows_file, empty = tmp / "e2e-rows.json", tmp / "e2e-empty.json"
    rows_file.write_text(json.dumps(mix.make(0, n)))
    empty.write_text("[]")
    db = tmp / "e2e.db"
    results: dict[str, dict[str, list[Run]]] = {"ops": {}, "startup": {}}
    names = list(VARIANTS)
    for round_no in range(rounds + 1):
        order = names if round_no % 2 else names[::-1]
        for variant in order:
            for kind, source in (("ops", rows_file), ("startup", empty)):
                run = run_once(variant, source, db, autocommit)
                if round_no:  # round 0 warms the page cache and the disk
                    results[kind].setdefault(variant, []).append(run)
    for variant, runs in results["ops"].items():
        print(f"  {title}, {variant}: observed by {runs[0]['observer'] or '-'}", file=sys.stderr)
    return results


def print_e2e(title: str, n: int, results: dict[str, dict[str, list[Run]]]) -> None:
    def med(runs: list[Run], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    ops, startup = results["ops"], results["startup"]
    plain = ops["plain python"]
    plain_wall, plain_cpu = med(plain, "wall"), med(plain, "cpu")
    plain_loop_wall, plain_loop_cpu = med(plain, "loop_wall"), med(plain, "loop_cpu")
    for variant, runs in ops.items():
        wall, cpu = med(runs, "wall"), med(runs, "cpu")
        loop_wall, loop_cpu = med(runs, "loop_wall"), med(runs, "loop_cpu")
        start_wall, start_cpu = med(startup[variant], "wall"), med(startup[variant], "cpu")
        print(
            f"| {title} | {variant} | {wall:.3f} | {cpu:.3f} "
            f"| {(cpu - plain_cpu) / plain_wall * 100:+.1f}% "
            f"| {start_wall:.3f} / {start_cpu:.3f} "
            f"| {loop_wall / n * 1e6:.1f} | {loop_cpu / n * 1e6:.1f} "
            f"| {(loop_cpu - plain_loop_cpu) / plain_loop_wall * 100:+.1f}% |"
        )


E2E_HEADER = (
    "| e2e workload | variant | process wall s | process CPU s | added CPU / plain wall "
    "| startup (0 rows) wall / CPU s | loop wall µs/op | loop CPU µs/op "
    "| loop: added CPU / plain wall |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
)
