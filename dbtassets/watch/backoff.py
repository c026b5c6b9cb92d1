"""The watcher's retries: a failed asset waits ``initial * 2**(attempts-1)`` seconds (capped) before
it is built again, unless its code or an input's data version changes, which retries it at once.

A retry falls due only once its failing ancestors' retries do, so a held asset never wakes the
watcher's loop for nothing. Times are the watcher's monotonic seconds.

A state store whose server cannot be reached is tried again by the same rule (:class:`Outage`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import UniqueId
from dbtassets.model.sources import SourceDeclaration, WatchSettings
from dbtassets.rules.statuses import AssetStatus

STORE_RETRY_INITIAL = 1.0  # seconds: a state store's server that cannot be reached is tried again after
STORE_RETRY_MAX = 30.0  # … doubling up to this: a server restart is seen within 30 s of its end


def delay(attempts: int, initial: float, ceiling: float) -> float:
    """The wait before retry number ``attempts`` (1, 2, …): ``initial`` doubling each time, at most ``ceiling``."""
    return float(min(initial * 2 ** (attempts - 1), ceiling))


class Outage:
    """How long the state store has been unreachable, and how long to wait before trying it again."""

    def __init__(self) -> None:
        self.since: float | None = None
        self._attempts = 0

    def failed(self, now: float) -> float:
        """Another attempt failed at ``now``: the seconds to wait before the next one."""
        if self.since is None:
            self.since = now
        self._attempts += 1
        return delay(self._attempts, STORE_RETRY_INITIAL, STORE_RETRY_MAX)

    def ended(self, now: float) -> float:
        """The store is reachable again: how long it was not."""
        down_for = now - (self.since if self.since is not None else now)
        self.since, self._attempts = None, 0
        return round(down_for, 1)


@dataclass
class _Entry:
    attempts: int
    retry_at: float
    signature: tuple[Any, ...]


class Backoffs:
    """The failed assets waiting out a backoff."""

    def __init__(self) -> None:
        self._entries: dict[UniqueId, _Entry] = {}
        self.retry_times: list[float] = []  # when each can be retried: derived on change, read every loop turn

    def held(self, graph: AssetGraph, to_build: Collection[UniqueId], statuses: Mapping[UniqueId, AssetStatus],
             now: float) -> set[UniqueId]:
        """The assets of ``to_build`` (and their descendants) still waiting out a backoff.

        Forgets the assets that no longer need a build (built by someone else, no longer selected,
        gone) and those whose code or inputs changed (retried at once).
        """
        for uid in [u for u in self._entries if u not in to_build]:
            del self._entries[uid]
        held: set[UniqueId] = set()
        for uid in to_build:
            entry = self._entries.get(uid)
            if entry is None:
                continue
            if entry.signature != self._signature(graph, statuses, uid):
                del self._entries[uid]
            elif now < entry.retry_at:
                held.add(uid)
                held |= graph.descendants(uid)
        self._changed(graph)
        return held

    def retry_in(self, uids: Iterable[UniqueId], now: float) -> dict[UniqueId, float]:
        """Seconds until each of ``uids`` (those waiting) may be retried."""
        return {u: round(self._entries[u].retry_at - now, 1) for u in uids if u in self._entries}

    def after_build(self, graph: AssetGraph, built: Iterable[UniqueId], failed: Collection[UniqueId],
                    statuses: Mapping[UniqueId, AssetStatus], now: float, initial: float, ceiling: float) -> None:
        """Record a build: ``failed`` back off once more, ``built`` are forgiven.

        Args:
            statuses: the statuses after the build (the inputs a retry would see include what
                this very build rebuilt upstream).
        """
        for uid in failed:
            attempts = self._entries[uid].attempts + 1 if uid in self._entries else 1
            self._entries[uid] = _Entry(attempts, now + delay(attempts, initial, ceiling), ())
        for uid in built:
            self._entries.pop(uid, None)
        for uid in failed:  # signatures name the failing ancestors: only once all of them are in
            self._entries[uid].signature = self._signature(graph, statuses, uid)
        self._changed(graph)

    def _signature(self, graph: AssetGraph, statuses: Mapping[UniqueId, AssetStatus],
                   uid: UniqueId) -> tuple[Any, ...]:
        """What a retry depends on: the asset's code, its inputs' data versions, its failing ancestors."""
        versions = tuple((p, v.value if (v := statuses[p].data_version) else None) for p in graph.parents(uid))
        upstream_failing = tuple(sorted(p for p in graph.ancestors(uid) if p in self._entries))
        return graph.assets[uid].code_version, versions, upstream_failing

    def _changed(self, graph: AssetGraph) -> None:
        """Recompute when each failed asset can be retried: not before its failing ancestors can.

        Done once per change rather than on every turn of the loop: with a whole large project
        failing (a warehouse down), walking every failed asset's ancestors is not free.
        """
        self.retry_times = [
            max([e.retry_at, *(self._entries[a].retry_at for a in graph.ancestors(uid) if a in self._entries)])
            for uid, e in self._entries.items() if uid in graph]


@dataclass
class Unreachable:
    """A warehouse that does not answer: its sources are asked again after a wait that grows with each
    observation in a row it did not answer (as any failure's), and never sooner than their own ``every:``."""

    times: int = 0

    def retry_at(self, down: Collection[UniqueId], watch: WatchSettings,
                 declarations: Mapping[UniqueId, SourceDeclaration], now: float) -> dict[UniqueId, float]:
        """When to ask each of ``down`` again (none: the warehouse answered, and the count starts over)."""
        self.times = self.times + 1 if down else 0
        wait = delay(self.times, watch.backoff_initial, watch.backoff_max)
        return {uid: now + max(wait, declarations[uid].every) for uid in down}
