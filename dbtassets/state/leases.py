"""Leases: a build's time-limited claim on the assets it builds, held in the state store.

Several watchers (on one machine or several) may share one state store. Each plans from the
same state, so each may want the same stale asset; before building, a build claims its plan's
assets in one statement. A claim takes an asset nobody holds, or whose lease has expired, and
leaves the others to their holders: the build drops them and everything downstream of them
(built from an input being rebuilt), and a later pass sees what the holder built.

A lease lasts ``ttl`` seconds and a :class:`Renewer` thread extends it every ``ttl / 3`` while
the build runs, so a holder killed with ``kill -9`` (or a machine that vanished) frees its
assets within ``ttl``. Expiry is judged by the store's own clock (SQLite: this machine's; a
PostgreSQL server: the server's), so the watchers' clocks need not agree. A lease held by a dead
process of this very machine is free at once: a watcher restarted after a crash does not wait.

Writes take turns (see :mod:`dbtassets.state.backends`), so two claims never both succeed. The same
SQL serves both engines.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from dbtassets.errors import DbtAssetsError
from dbtassets.model.manifest import UniqueId
from dbtassets.state.backends import Connection
from dbtassets.state.background import Background
from dbtassets.state.hosts import machine_name, pid_alive
from dbtassets.state.store import StateStore

# Holders of this process whose leases could not be released (the store's server was unreachable):
# the next claim drops them, so a watcher that reconnects does not wait out its own leases.
_unreleased: set[str] = set()


def new_holder() -> str:
    """A build's name in the leases table: ``host:pid:nonce`` (the nonce tells two builds of one process apart)."""
    import uuid  # imported where used: most commands never get here

    return f"{machine_name()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claim:
    """What a claim got: the assets now held, and for the others who holds them and for how long yet."""

    holder: str
    granted: frozenset[UniqueId]
    held_by_others: Mapping[UniqueId, tuple[str, float]] = field(default_factory=dict)

    @property
    def next_expiry(self) -> float | None:
        """Seconds until the first lease held by another build expires (None if none is)."""
        return min((left for _, left in self.held_by_others.values()), default=None)


def claim(store: StateStore, assets: Collection[UniqueId], holder: str, ttl: float, target: str = "") -> Claim:
    """Claim ``assets`` for ``holder`` for ``ttl`` seconds; returns what was granted and what others hold."""
    now = store.backend.now
    unreleased = sorted(_unreleased)
    with store.transaction() as db:
        _free_dead_local_holders(db)
        db.executemany("DELETE FROM leases WHERE holder = ?", [(h,) for h in unreleased])
        granted = {UniqueId(uid) for (uid,) in db.execute(
            "INSERT INTO leases (target, unique_id, holder, claimed_at, expires_at) "
            f"SELECT k.a, k.b, ?, {now}, {now} + ? FROM {store.backend.json_pairs()} WHERE true "
            "ON CONFLICT (target, unique_id) DO UPDATE SET holder = excluded.holder, "
            "claimed_at = excluded.claimed_at, expires_at = excluded.expires_at "
            f"WHERE leases.expires_at < {now} OR leases.holder = excluded.holder "
            "RETURNING unique_id", (holder, ttl, json.dumps([[target, uid] for uid in sorted(assets)]))).fetchall()}
        others = {}
        if len(granted) < len(assets):
            for uid, other, left in db.execute(
                    f"SELECT unique_id, holder, expires_at - {now} FROM leases WHERE target = ? AND holder != ?",
                    (target, holder)).fetchall():
                if uid in assets:
                    others[UniqueId(uid)] = (str(other), max(0.0, float(left)))
    _unreleased.difference_update(unreleased)
    return Claim(holder, frozenset(granted), others)


def renew(store: StateStore, holder: str, ttl: float) -> int:
    """Extend every lease of ``holder`` by ``ttl`` from now; returns how many it still holds."""
    with store.transaction() as db:
        return len(db.execute(f"UPDATE leases SET expires_at = {store.backend.now} + ? WHERE holder = ? "
                              "RETURNING unique_id", (ttl, holder)).fetchall())


def release(store: StateStore, holder: str, assets: Collection[UniqueId] | None = None) -> None:
    """Give up ``holder``'s leases (all of them, or ``assets``)."""
    with store.transaction() as db:
        if assets is None:
            db.execute("DELETE FROM leases WHERE holder = ?", (holder,))
        else:
            db.executemany("DELETE FROM leases WHERE holder = ? AND unique_id = ?",
                           [(holder, uid) for uid in assets])


def leases(store: StateStore) -> dict[UniqueId, tuple[str, float]]:
    """Every live lease: asset → (holder, seconds left). For ``status`` and tests."""
    return {UniqueId(uid): (str(holder), float(left)) for uid, holder, left in store._query(
        f"SELECT unique_id, holder, expires_at - {store.backend.now} FROM leases "
        f"WHERE expires_at >= {store.backend.now}")}


def _free_dead_local_holders(db: Connection) -> None:
    """Drop the leases of processes of this machine that no longer exist (they would only expire later)."""
    host = machine_name()
    dead = []
    for (holder,) in db.execute("SELECT DISTINCT holder FROM leases").fetchall():
        holder_host, pid, _nonce = [*str(holder).rsplit(":", 2), "", ""][:3]
        if holder_host == host and pid.isdigit() and not pid_alive(int(pid)):
            dead.append((holder,))
    if dead:
        db.executemany("DELETE FROM leases WHERE holder = ?", dead)


class Plan(Protocol):
    """All leases need of a build's plan: the assets it builds."""

    @property
    def to_build(self) -> Sequence[UniqueId]: ...


P = TypeVar("P", bound=Plan)


@dataclass(frozen=True)
class Leased(Generic[P]):
    """A build's share of a plan: what it may build now, and what it leaves to other builds."""

    plan: P
    claim: Claim
    left: Sequence[UniqueId]  # wanted, but held by another build or downstream of such an asset

    def left_to(self) -> dict[UniqueId, str]:
        """Each asset left to another build, with that build's holder (or the held asset upstream of it)."""
        held = self.claim.held_by_others
        return {uid: held[uid][0] if uid in held else "an upstream asset being built elsewhere" for uid in self.left}


def narrow(to_build: Sequence[UniqueId], granted: Collection[UniqueId],
           descendants: Callable[[UniqueId], Collection[UniqueId]]) -> tuple[list[UniqueId], list[UniqueId]]:
    """``to_build`` split into what a build holding ``granted`` may build and what it must leave.

    It leaves what it does not hold and everything downstream of that: built now, those would
    be built from an input another build is about to replace.
    """
    excluded: set[UniqueId] = set()
    for uid in to_build:
        if uid not in granted and uid not in excluded:
            excluded.add(uid)
            excluded.update(descendants(uid))
    return [u for u in to_build if u not in excluded], [u for u in to_build if u in excluded]


@contextlib.contextmanager
def leased(store: StateStore, plan: P, ttl: float, *, seen: int, replan: Callable[[], P],
           narrowed: Callable[[P, list[UniqueId]], P],
           descendants: Callable[[UniqueId], Collection[UniqueId]]) -> Iterator[Leased[P]]:
    """Claim ``plan``'s assets for one build for ``ttl`` seconds, and hold them (renewed) until the block ends.

    ``seen`` is the store's :meth:`~dbtassets.state.store.StateStore.latest_materialization_id` from
    before ``plan`` was made: if another build recorded outcomes since, the plan is made again by
    ``replan``, under the claim. Then it is narrowed to what this build holds (see :func:`narrow`;
    ``narrowed(plan, assets)`` is the plan that builds only ``assets``). The leases are released
    when the block ends, after the build's outcomes are recorded; if that fails, they expire.
    """
    holder = new_holder()
    got = claim(store, plan.to_build, holder, ttl, store.target)
    try:
        if got.granted:
            if store.latest_materialization_id() != seen:
                plan = replan()
            allowed, left = narrow(plan.to_build, got.granted, descendants)
            if set(got.granted) - set(allowed):
                release(store, holder, set(got.granted) - set(allowed))
        else:
            allowed, left = [], list(plan.to_build)
        share = narrowed(plan, allowed)
        with Renewer(store, holder, ttl) if allowed else contextlib.nullcontext():
            yield Leased(share, got, left)
    finally:
        try:
            release(store, holder)
        except DbtAssetsError:  # the next claim releases them (or they expire)
            _unreleased.add(holder)


class Renewer(Background):
    """Keeps a holder's leases alive while a build runs: ``with Renewer(location, holder, ttl):``.

    It renews through a connection of its own, every ``ttl / 3`` seconds, and stops (and joins)
    when the block ends. A renewal that fails (the server restarting) is retried at the next
    tick; ``lost`` says whether the leases ran out meanwhile. What a build then recorded is
    decided when it is recorded, against the leases table itself: an asset another build has
    claimed since is not recorded as this build's (:meth:`~dbtassets.state.store.StateStore.record_build`).
    """

    def __init__(self, store: StateStore, holder: str, ttl: float) -> None:
        super().__init__(store.location, ttl / 3, f"lease-renewer-{holder}")
        self.holder = holder
        self.ttl = ttl
        self.lost = False
        self.errors: list[str] = []

    def tick(self, store: StateStore) -> None:
        if renew(store, self.holder, self.ttl) == 0:
            self.lost = True

    def failed(self, error: DbtAssetsError) -> None:
        self.errors.append(str(error))
