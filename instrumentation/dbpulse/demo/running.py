"""Running a demo workload until it is stopped: signals, and a steady pace.

Containers stop with SIGTERM, terminals with Ctrl-C (SIGINT); both should end a workload the
same way, through its loop, so that the ``finally`` blocks flush telemetry and the process
exits 0::

    with stop_on_signals() as stop:
        for _ in paced(rate=50.0, stop=stop):
            write_one()

``paced`` sleeps on ``stop`` (a :class:`threading.Event`), so a stop is seen at once rather
than after the current pause. ``rerun_on`` keeps a workload going through lost connections (a
restarted Redis, a killed subscription): it runs it again after a pause instead of exiting,
which a container would answer with a restart anyway, minus the lost telemetry.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

__all__ = ["paced", "rerun_on", "stop_on_signals"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs; the old handlers come back after.

    Outside the main thread (where Python cannot install handlers) the event is only set by
    whoever holds it.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {sig: signal.signal(sig, handle) for sig in _SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def paced(
    rate: float, stop: threading.Event, duration: float | None = None, count: int | None = None
) -> Iterator[int]:
    """Yield 0, 1, 2, ... at ``rate`` per second until ``stop``, ``duration`` s or ``count``.

    ``rate`` <= 0 means as fast as possible. A loop that falls more than a second behind
    resumes from now instead of catching up in a burst.
    """
    period = 1.0 / rate if rate > 0 else 0.0
    deadline = time.monotonic() + duration if duration else float("inf")
    next_at = time.monotonic()
    index = 0
    while not stop.is_set() and time.monotonic() < deadline:
        if count is not None and index >= count:
            return
        yield index
        index += 1
        next_at += period
        pause = next_at - time.monotonic()
        if pause > 0:
            stop.wait(pause)
        elif pause < -1.0:
            next_at = time.monotonic()


def rerun_on(
    errors: tuple[type[BaseException], ...],
    run: Callable[[], _T],
    stop: threading.Event,
    *,
    what: str = "workload",
    pause: float = 1.0,
    max_pause: float = 15.0,
) -> _T | None:
    """``run()``; when it raises one of ``errors`` before ``stop`` is set, wait and run it again.

    The pause doubles after each failure up to ``max_pause``. Returns the result of the run
    that returned, or ``None`` when ``stop`` is set while waiting to run again; an error raised
    once ``stop`` is set propagates.
    """
    delay = pause
    while True:
        try:
            return run()
        except errors as exc:
            if stop.is_set():
                raise
            _log.warning(
                "%s: %s: %s; running again in %.0f s", what, type(exc).__name__, exc, delay
            )
            if stop.wait(delay):
                return None
            delay = min(delay * 2, max_pause)
