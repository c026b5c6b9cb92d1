"""The clock boundary: everything that records a time asks a :class:`Clock`, so tests can fix it."""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


def shown(moment: datetime | str) -> str:
    """A time in text output: ``2026-11-25T09:10:03.123Z``, UTC, to the millisecond. Every message uses it.

    A recorded timestamp (dbt's ``2026-11-25T09:10:03.123456Z``, ``+00:00`` offsets) is brought to this
    one format; text that is not a timestamp is kept. JSON documents keep their own documented formats.
    """
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return moment
        moment = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    return timestamp(moment)


def to_the_second(moment: datetime) -> str:
    """``2026-11-25T09:10:03Z``: the format of the JSON fields documented so (``next_due_at``)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(moment: datetime) -> str:
    """``2026-11-25T09:10:03.123Z``: UTC, milliseconds, sortable as text."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@functools.lru_cache(maxsize=4096)  # a large project's builds share a few timestamps: parse each once
def parse_time(text: str) -> datetime:
    """A state-store timestamp (``2026-11-25T09:10:03.123Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@functools.lru_cache(maxsize=4096)
def show_time(moment: datetime) -> str:
    """:func:`shown`, remembered: the scheduler shows the same few due times over and over."""
    return shown(moment)


_DATA_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
                        r"(?:\s*(?:Z|[+-]\d{2}(?::?\d{2})?))?")


def data_time(value: object) -> datetime | None:
    """A watermark that is a timestamp (``max(loaded_at_field)``: ``2026-11-25 09:10:03.123+00``), as dbt
    reads it for ``dbt source freshness``: without a time zone it is UTC. None for any other value."""
    if not isinstance(value, str) or not _DATA_TIME.fullmatch(value.strip()):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" +", "+").replace(" -", "-"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
