"""The clock boundary: everything that records a time asks a :class:`Clock`, so tests can fix it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


def timestamp(moment: datetime) -> str:
    """``2026-11-25T09:10:03.123Z``: UTC, milliseconds, sortable as text."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
