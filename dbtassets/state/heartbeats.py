"""Heartbeats: each watcher's record in the state store, so ``status`` and ``check`` can tell whether anyone watches.

A watcher writes a row when it starts (its host and process, the project and target, when it
started), beats it at the end of every pass and at least every ``every`` seconds while idle or
building (a thread of its own beats while dbt runs), and marks it stopped when it ends. Its
heartbeat older than :data:`DEAD_AFTER` beats, or its process gone from this machine, and it
looks dead: killed, its machine gone, or its loop stuck. Reading heartbeats is a query, so the
readers (which never write) can.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from dbtassets.clock import parse_time, shown, timestamp
from dbtassets.state.backends import Location
from dbtassets.state.background import Background
from dbtassets.state.hosts import machine_name, pid_alive
from dbtassets.state.store import StateStore

HEARTBEAT_EVERY = 30.0  # seconds between the beats of a watcher with nothing to do
DEAD_AFTER = 3  # beats missed before a watcher looks dead
_KEPT_FOR = 7 * 86400  # seconds a watcher's row outlives its last beat (then a starting watcher removes it)


class WatcherState(str, Enum):
    RUNNING = "running"
    STOPPED = "stopped"  # it ended and said so
    DEAD = "dead"  # no heartbeat for DEAD_AFTER beats, or its process is gone

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class WatcherBeat:
    """One watcher's row: who it is, and when it last beat and finished a pass."""

    id: str
    project: str
    target: str
    host: str
    pid: int
    started_at: str
    beat_at: str
    last_pass_at: str | None
    every: float
    stopped_at: str | None = None

    def state(self, now: datetime) -> WatcherState:
        if self.stopped_at is not None:
            return WatcherState.STOPPED
        if self.host == machine_name() and not pid_alive(self.pid):
            return WatcherState.DEAD
        late = (now - parse_time(self.beat_at)).total_seconds() > DEAD_AFTER * self.every
        return WatcherState.DEAD if late else WatcherState.RUNNING

    def beat_within(self, seconds: float, now: datetime) -> bool:
        return (now - parse_time(self.beat_at)).total_seconds() <= seconds

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"state": self.state(now).value, "host": self.host, "pid": self.pid, "project": self.project,
                "started_at": shown(self.started_at), "last_heartbeat_at": shown(self.beat_at),
                "last_pass_at": shown(self.last_pass_at) if self.last_pass_at else None,
                "heartbeat_every": self.every,
                "stopped_at": shown(self.stopped_at) if self.stopped_at else None}


def watchers(store: StateStore, project: str) -> list[WatcherBeat]:
    """The watchers of ``project`` on the store's target, the latest heartbeat first."""
    return [WatcherBeat(*row) for row in store._query(
        "SELECT id, project, target, host, pid, started_at, beat_at, last_pass_at, every, stopped_at FROM watchers "
        "WHERE project = ? AND target = ? ORDER BY beat_at DESC, id", (project, store.target))]


@dataclass(frozen=True)
class Watching:
    """This project's watchers on this target, as their heartbeats tell, judged at ``at``."""

    watchers: tuple[WatcherBeat, ...]  # the latest heartbeat first
    at: datetime

    @property
    def watcher(self) -> WatcherBeat | None:
        """The one ``status`` shows: a running one if any, else the last to beat."""
        running = [w for w in self.watchers if w.state(self.at) is WatcherState.RUNNING]
        return next(iter(running or self.watchers), None)

    @property
    def state(self) -> WatcherState | None:
        return self.watcher.state(self.at) if self.watcher is not None else None

    def missing(self, within: float) -> str | None:
        """Why ``check --watcher-within`` fails: no watcher has beaten within ``within`` seconds (None: one has)."""
        if not self.watchers:
            return "no watcher has run for this project and target"
        last = self.watchers[0]
        if last.beat_within(within, self.at):
            return None
        return (f"no watcher has beaten within {within:g}s: the last one ({last.host}, pid {last.pid}) "
                f"{'stopped' if last.stopped_at else 'beat last'} at {shown(last.beat_at)}")

    def to_json(self) -> dict[str, Any] | None:
        return self.watcher.to_json(self.at) if self.watcher is not None else None


def watching(store: StateStore, project: str, now: datetime) -> Watching:
    """The watchers of ``project`` on the store's target, judged at ``now``."""
    return Watching(tuple(watchers(store, project)), now)


class Heartbeat:
    """This process's watcher row: :meth:`start`, :meth:`beat`, :meth:`keep` (while building), :meth:`stop`.

    ``store`` gives the store now (the project reopens it when its target changes); ``clock`` gives
    the time by the project's clock.
    """

    def __init__(self, store: Callable[[], StateStore], project: str, clock: Callable[[], datetime],
                 every: float = HEARTBEAT_EVERY) -> None:
        self._store, self.project, self._clock, self.every = store, project, clock, every
        import uuid  # imported where used: most commands never get here

        self.id = f"{machine_name()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._last: datetime | None = None  # when this process last beat

    def _now(self) -> str:
        return timestamp(self._clock())

    def start(self) -> None:
        store, now = self._store(), self._clock()
        at = timestamp(now)
        with store.transaction() as db:
            db.execute("DELETE FROM watchers WHERE project = ? AND target = ? AND beat_at < ?",
                       (self.project, store.target, timestamp(now - timedelta(seconds=_KEPT_FOR))))
            db.execute("INSERT INTO watchers (id, project, target, host, pid, started_at, beat_at, every) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (self.id, self.project, store.target, machine_name(), os.getpid(), at, at, self.every))
        self._last = now

    def beat(self, *, passed: bool = False) -> None:
        """Beat: at the end of a pass (``passed``), or while idle, once ``every`` seconds have gone by."""
        now = self._clock()
        if not passed and self._last is not None and (now - self._last).total_seconds() < self.every:
            return
        at = timestamp(now)
        passed_at = "last_pass_at = ?, " if passed else ""
        with self._store().transaction() as db:
            db.execute(f"UPDATE watchers SET {passed_at}beat_at = ? WHERE id = ?",
                       (*([at] if passed else []), at, self.id))
        self._last = now

    def stop(self) -> None:
        at = self._now()
        with self._store().transaction() as db:
            db.execute("UPDATE watchers SET stopped_at = ?, beat_at = ? WHERE id = ?", (at, at, self.id))

    def keep(self) -> _Keeper:
        """``with heartbeat.keep():`` beats every ``every`` seconds from a thread of its own (a long build)."""
        return _Keeper(self._store().location, self.id, self._now, self.every)


class _Keeper(Background):
    """Beats one watcher's row through a connection of its own until the block ends (see :class:`Heartbeat`);
    a beat that fails is left to the pass after the build, which says what is wrong with the store."""

    def __init__(self, location: Location, watcher: str, now: Callable[[], str], every: float) -> None:
        super().__init__(location, every, f"heartbeat-{watcher}")
        self.watcher, self._now = watcher, now

    def tick(self, store: StateStore) -> None:
        with store.transaction() as db:
            db.execute("UPDATE watchers SET beat_at = ? WHERE id = ?", (self._now(), self.watcher))


