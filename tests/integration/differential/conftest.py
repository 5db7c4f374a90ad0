"""Prints how many differential scenarios gave the same outcome raw and instrumented."""

from __future__ import annotations

from typing import Any

from tests.integration.differential._runner import RESULTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    counts = ", ".join(
        f"{driver} {same}/{total}" for driver, (same, total) in sorted(RESULTS.items())
    )
    total = sum(t for _, t in RESULTS.values())
    same = sum(s for s, _ in RESULTS.values())
    terminalreporter.write_line(
        f"differential: {same}/{total} scenarios raw == instrumented ({counts})"
    )
