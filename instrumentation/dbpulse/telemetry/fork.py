"""After ``os.fork()``: a child starts its own counts from zero, with fresh locks.

Prefork servers (gunicorn ``--preload``, Celery prefork, ``multiprocessing`` with fork) copy the
parent's memory. Without this, each child would export the parent's cumulative counts again as
its own, and a lock some parent thread held at the fork would stay locked in the child forever.
The SDK restarts its own export threads in the child; dbpulse's aggregates, the sampler's
window, the cache and flow counts and running heartbeats register here.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable

__all__ = ["in_child_after_fork"]

_log = logging.getLogger(__name__)


def in_child_after_fork(method: Callable[[], None], *, weak: bool = False) -> None:
    """Call the bound ``method`` in every forked child; ``weak``: only while its object lives
    (objects an application makes many of, such as heartbeats)."""
    if not hasattr(os, "register_at_fork"):
        return
    ref: Callable[[], Callable[[], None] | None]
    ref = weakref.WeakMethod(method) if weak else (lambda: method)

    def call() -> None:
        found = ref()
        if found is None:
            return
        try:
            found()
        except Exception:
            _log.debug("dbpulse: after-fork reset failed", exc_info=True)

    os.register_at_fork(after_in_child=call)
