"""Failover between watchers sharing one state store, fast: a fake dbt runner, real leases, real time.

"Another machine" is a holder name with another host in it (this process calls itself machine-a
through DBTASSETS_HOST): its process cannot be judged by a pid here, only by its leases, as in
a team. Lease expiry is judged by the store's own clock, so these tests wait real (short) times.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.state.leases import claim, leases
from dbtassets.watch import events as ev
from dbtassets.watch.watcher import Watcher
from tests.conftest import FakeClock, FakeRunner

E = TypeVar("E", bound=ev.WatchEvent)

ORDERS_LINEAGE = {"stg_orders", "fact_sales", "dim_customer"}
DEAD = "machine-b:4242:0dead000"  # a watcher of another machine, killed with kill -9 mid-build


class Watching:
    """``Watcher.run`` in a thread on the real clock; its events, with the time each was emitted."""

    def __init__(self, project: Project) -> None:
        self.events: list[tuple[float, ev.WatchEvent]] = []
        self._queue: queue.Queue[ev.WatchEvent] = queue.Queue()
        self.watcher = Watcher(project, self._emit, settle=0.05)
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="test-watcher")
        self.thread.start()

    def _emit(self, event: ev.WatchEvent) -> None:
        self.events.append((time.monotonic() - self.started, event))
        self._queue.put(event)

    def _run(self) -> None:
        try:
            self.watcher.run()
        except BaseException as exc:
            self.error = exc
            self._queue.put(ev.Stopped())

    def wait_for(self, kind: type[E], where: Callable[[E], bool] = lambda e: True, timeout: float = 20) -> E:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind.__name__} in {timeout}s; saw {self.kinds()}") from None
            assert self.error is None, f"the watcher raised {self.error!r}"
            if isinstance(event, kind) and where(event):
                return event
            assert not isinstance(event, ev.Stopped), f"the watcher stopped; saw {self.kinds()}"

    def kinds(self) -> list[str]:
        return [e.kind.value for _, e in self.events]

    def when(self, event: ev.WatchEvent) -> float:
        return next(t for t, e in self.events if e is event)

    def stop(self) -> None:
        self.watcher.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the watcher did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def team(project_dir: Path, state_location: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[Project, FakeRunner]]:
    """example_project on ``state_location`` (SQLite or PostgreSQL), synced, as machine-a, with 1s leases."""
    monkeypatch.setenv("DBTASSETS_HOST", "machine-a")
    (project_dir / "dbtassets.yml").write_text("watch:\n  lease: 1s\n")
    runner = FakeRunner()
    with Project(Options(project_dir, state_path=state_location), runner=runner, clock=FakeClock()) as project:
        runner.project = project
        assert project.sync().ok
        yield project, runner


def land_orders(project: Project) -> None:
    (project.dbt.directory / "data/raw/orders/batch_900.csv").write_text(
        "order_id,customer_id,ordered_at,product,quantity,unit_price\n900,1,2026-11-20 10:00:00,ink,1,7.25\n")


def held_by_a_dead_machine(project: Project, names: set[str], ttl: float) -> set[UniqueId]:
    """What a watcher of machine-b had claimed and started building when it was killed: its run stays 'running'."""
    uids = {project.graph.resolve(name) for name in names}
    store = project.store
    run_id = store.start_run("dbt build --select stg_orders+", sorted(uids), project.now())
    with store.transaction() as db:
        db.execute("UPDATE runs SET host = 'machine-b', pid = 4242 WHERE id = ?", (run_id,))
    assert claim(store, uids, DEAD, ttl, store.target).granted == uids
    return uids


def test_a_watcher_builds_what_a_killed_watcher_of_another_machine_held_once_its_lease_expires(
        team: tuple[Project, FakeRunner]) -> None:
    project, _ = team
    land_orders(project)
    held_by_a_dead_machine(project, ORDERS_LINEAGE, ttl=1.5)
    claimed_at = time.monotonic()
    watching = Watching(project)
    try:
        left = watching.wait_for(ev.Waiting, lambda e: "left to another build" in e.message)
        assert set(left.assets) == ORDERS_LINEAGE and DEAD in left.message
        # No file event follows: the watcher wakes by itself once the lease has expired, and builds.
        built = watching.wait_for(ev.BuildFinished, lambda e: set(e.built) >= ORDERS_LINEAGE, timeout=15)
        assert time.monotonic() - claimed_at >= 1.5
        assert watching.when(built) - watching.when(left) < 1.5 + 2.0 + 1.0  # expiry, a held-asset look, slack
        assert leases(project.store) == {}  # the dead holder's leases were taken over, then released
    finally:
        watching.stop()
    runs = {r.host: r.status for r in project.store.runs()}
    assert runs.get("machine-b") == "interrupted"  # the dead build's run is closed, not left 'running'


def test_a_build_whose_lease_another_build_took_is_not_recorded_as_its_own_and_is_planned_again(
        team: tuple[Project, FakeRunner]) -> None:
    project, runner = team
    store = project.store
    stg_orders = project.graph.resolve("stg_orders")
    taken: list[str] = []

    def renewals_fail_and_machine_b_claims_stg_orders() -> None:
        if not taken:  # the first build only: its lease runs out (say, the store's server was away) and is taken
            with store.transaction() as db:
                db.execute("UPDATE leases SET expires_at = 0")
            taken.append(DEAD)
            assert claim(store, {stg_orders}, DEAD, 1.0, store.target).granted == {stg_orders}

    runner.during_build = renewals_fail_and_machine_b_claims_stg_orders
    land_orders(project)
    before = store.latest_materialization_id()
    watching = Watching(project)
    try:
        lost = watching.wait_for(ev.LeaseLost)
        assert lost.assets == ("stg_orders",) and lost.holders == {"stg_orders": DEAD}
        first = watching.wait_for(ev.BuildFinished)
        assert "stg_orders" not in first.built and set(first.built) == ORDERS_LINEAGE - {"stg_orders"}
        recorded = {UniqueId(uid) for (uid,) in store._query(
            "SELECT unique_id FROM materializations WHERE id > ?", (before,))}
        assert stg_orders not in recorded  # machine-b's claim is the newer one: this build's outcome is not its
        # Planned again: left to machine-b while its lease lasts, built here once it has expired (nobody renews it).
        again = watching.wait_for(ev.BuildFinished, lambda e: "stg_orders" in e.built, timeout=15)
        assert watching.when(again) - watching.when(lost) >= 0.5
    finally:
        watching.stop()
    assert [r.status for r in store.runs()][-2:] == ["error", "success"]
