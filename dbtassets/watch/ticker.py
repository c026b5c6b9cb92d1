"""The watcher's time and memory housekeeping: a :class:`Ticker` (tests give a fake one), and freezing
long-lived objects out of the garbage collector's sight."""

from __future__ import annotations

import gc
import queue
import time
from collections.abc import Callable
from typing import Protocol

from dbtassets.watch.files import Inbox


class Ticker(Protocol):
    """The watcher's time: a monotonic clock, and waiting on the inbox."""

    def monotonic(self) -> float: ...

    def wait(self, inbox: Inbox, timeout: float) -> tuple[str, str] | None:
        """The inbox's next item, or None once ``timeout`` seconds passed without one."""
        ...


class RealTicker:
    """Real waiting; the time from ``monotonic`` (a test that runs single passes may give its own)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic

    def monotonic(self) -> float:
        return self._monotonic()

    def wait(self, inbox: Inbox, timeout: float) -> tuple[str, str] | None:
        try:
            return inbox.get(timeout=timeout)
        except queue.Empty:
            return None


def settle_memory() -> None:
    """Move dbt's long-lived objects (the parsed manifest…) out of the garbage collector's sight.

    Otherwise full collections walk ~180,000 of them every few seconds while data lands, and one
    in three builds pays 0.1-0.3 s for it (measured by benchmarks/bench_watch.py's author).
    """
    gc.collect()
    gc.freeze()
