"""Leases on both backends: a claim takes what is free or expired, renewals keep it, dead holders free it."""

from __future__ import annotations

import multiprocessing
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.state.leases import Renewer, claim, leased, leases, new_holder, release
from dbtassets.state.store import StateStore
from tests.conftest import FakeClock, FakeRunner

X, Y, Z = UniqueId("model.p.x"), UniqueId("model.p.y"), UniqueId("model.p.z")


def test_a_claim_takes_free_assets_and_leaves_those_another_build_holds(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        first = claim(store, {X, Y}, "a:1:n", ttl=60)
        assert first.granted == {X, Y} and first.held_by_others == {}
        second = claim(store, {Y, Z}, "b:2:n", ttl=60)
        assert second.granted == {Z}
        assert list(second.held_by_others) == [Y]
        holder, left = second.held_by_others[Y]
        assert holder == "a:1:n" and 50 < left <= 60
        assert second.next_expiry == left
        assert claim(store, {X}, "a:1:n", ttl=60).granted == {X}  # the holder itself may claim again
        release(store, "a:1:n")
        assert claim(store, {X, Y}, "b:2:n", ttl=60).granted == {X, Y}
        assert {uid: holder for uid, (holder, _) in leases(store).items()} == {X: "b:2:n", Y: "b:2:n", Z: "b:2:n"}


def test_leases_of_separate_targets_never_meet(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        assert claim(store, {X}, "a:1:n", ttl=60, target="prod").granted == {X}
        assert claim(store, {X}, "b:2:n", ttl=60, target="dev").granted == {X}


def test_an_expired_lease_is_taken_and_a_renewed_one_is_not(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        assert claim(store, {X}, "a:1:n", ttl=0.3).granted == {X}
        time.sleep(0.5)  # the holder stopped renewing (a kill -9, a lost machine): the lease runs out
        assert claim(store, {X}, "b:2:n", ttl=1.2).granted == {X}
        with Renewer(store, "b:2:n", ttl=1.2) as renewer:  # renews every 0.4s
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:  # well past the first expiry: the renewals keep it
                assert claim(store, {X}, "a:1:n", ttl=60).granted == frozenset()
                time.sleep(0.2)
        assert not renewer.lost and renewer.errors == []
        time.sleep(1.4)
        assert claim(store, {X}, "a:1:n", ttl=60).granted == {X}


def test_a_lease_of_a_dead_process_on_this_machine_is_free_at_once(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        dead = f"{socket.gethostname()}:2147480000:n"  # no such process
        assert claim(store, {X}, dead, ttl=600).granted == {X}
        assert claim(store, {X}, new_holder(), ttl=60).granted == {X}
        elsewhere = "another-machine:1:n"  # a process elsewhere is not judged by its pid: its lease stands
        assert claim(store, {Y}, elsewhere, ttl=600).granted == {Y}
        assert claim(store, {Y}, new_holder(), ttl=60).granted == frozenset()


def _race(location: str, worker: int, assets: list[str], results: multiprocessing.Queue[tuple[int, list[str]]],
          start: float) -> None:
    with StateStore.open(location) as store:
        while time.time() < start:
            time.sleep(0.001)
        got = claim(store, [UniqueId(a) for a in assets], f"w{worker}:{worker}:n", ttl=600)
        results.put((worker, sorted(got.granted)))


def test_racing_claims_from_many_processes_grant_each_asset_once(state_location: str) -> None:
    StateStore.open(state_location).close()
    assets = [f"model.p.m{i}" for i in range(60)]
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[int, list[str]]] = context.Queue()
    start = time.time() + 3
    workers = [context.Process(target=_race, args=(state_location, w, assets[w * 10:w * 10 + 40], results, start))
               for w in range(3)]
    for worker in workers:
        worker.start()
    granted = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    everything = [a for got in granted.values() for a in got]
    assert sorted(everything) == sorted(set(everything))  # nobody got an asset another got
    assert set(everything) == set(assets[:60])  # and every wanted asset went to someone


def test_a_run_of_another_machine_is_judged_by_its_leases_not_by_a_local_pid(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        alive_elsewhere = store.start_run("dbt build", ["x"], "t1")
        dead_elsewhere = store.start_run("dbt build", ["y"], "t1")
        with store.transaction() as db:  # pid 1 exists here, and says nothing about those machines
            db.execute("update runs set host = 'machine-b', pid = 1 where id = ?", (alive_elsewhere,))
            db.execute("update runs set host = 'machine-c', pid = 1 where id = ?", (dead_elsewhere,))
        assert claim(store, {X}, "machine-b:1:n", ttl=60).granted == {X}
        assert claim(store, {Y}, "machine-c:1:n", ttl=0.2).granted == {Y}
        time.sleep(0.4)  # machine-c stopped renewing
        assert store.interrupt_dead_runs("t2") == [dead_elsewhere]
        assert {r.id: r.status for r in store.runs()} == {alive_elsewhere: "running", dead_elsewhere: "interrupted"}


def test_sync_leaves_what_another_build_holds_and_everything_downstream_of_it(
        project_dir: Path, state_location: str) -> None:
    runner = FakeRunner()
    with Project(Options(project_dir, state_path=state_location), runner=runner, clock=FakeClock()) as project:
        runner.project = project
        stg_orders = project.graph.resolve("stg_orders")
        other = claim(project.store, {stg_orders}, "machine-b:1:n", ttl=60, target=project.store.target)
        assert other.granted == {stg_orders}
        result = project.sync()
        names = {project.graph.assets[u].name for u in result.built}
        assert names == {"country_codes", "stg_customers", "customers_snapshot"}
        assert {project.graph.assets[u].name: h for u, h in result.left.items()} == {
            "stg_orders": "machine-b:1:n", "fact_sales": "an upstream asset being built elsewhere",
            "dim_customer": "an upstream asset being built elsewhere"}
        assert result.ok
        assert set(leases(project.store)) == {stg_orders}  # this build's leases are gone, the other's stays
        release(project.store, "machine-b:1:n")
        again = project.sync()
        assert {project.graph.assets[u].name for u in again.built} == {"stg_orders", "fact_sales", "dim_customer"}
        assert again.left == {}


@dataclass(frozen=True)
class _Plan:
    """All a lease needs of a plan: the assets it builds."""

    to_build: tuple[UniqueId, ...]


def test_a_share_leaves_what_another_build_holds_and_what_is_downstream_of_it(tmp_path: Path) -> None:
    downstream = {X: {Y}, Y: set(), Z: set()}  # y reads x
    replans: list[int] = []

    def replan() -> _Plan:
        replans.append(1)
        return _Plan((X, Y, Z))

    with StateStore.open(tmp_path / "state.db") as store:
        claim(store, {X}, "other:1:n", ttl=60)
        with leased(store, _Plan((X, Y, Z)), 60, seen=store.latest_materialization_id(), replan=replan,
                    narrowed=lambda plan, allowed: _Plan(tuple(allowed)),
                    descendants=lambda uid: downstream[uid]) as share:
            assert share.plan == _Plan((Z,)) and share.left == [X, Y] and replans == []
            assert share.left_to() == {X: "other:1:n", Y: "an upstream asset being built elsewhere"}
            assert set(leases(store)) == {X, Z}  # y, granted but left, is given back at once
        assert set(leases(store)) == {X}
