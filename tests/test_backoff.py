"""The watcher's retry rules (dbtassets.watch.backoff), as pure functions of a graph, statuses and the time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Manifest, UniqueId
from dbtassets.rules.statuses import AssetStatus, Status
from dbtassets.state.records import Version
from dbtassets.watch.backoff import STORE_RETRY_INITIAL, STORE_RETRY_MAX, Backoffs, Outage, delay
from tests.test_staleness import DIM, FACT, SRC, STG, node

INITIAL, CEILING = 1.0, 4.0


EVENTS = UniqueId("source.p.raw.events")


def graph(stg_code: str = "c-stg", dim: bool = True, events: bool = False) -> AssetGraph:
    """raw.orders (and with ``events``, raw.events) → stg → fact; stg → dim."""
    sources = (SRC, EVENTS) if events else (SRC,)
    nodes = {**{s: node(s, "source") for s in sources},
             STG: replace(node(STG, "model", sources), code_version=stg_code),
             FACT: node(FACT, "model", (STG,)), DIM: node(DIM, "model", (STG,))}
    if not dim:
        del nodes[DIM]
    return AssetGraph.from_manifest(Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {}))


def statuses(**versions: str | None) -> dict[UniqueId, AssetStatus]:
    """Every asset stale, with the data version given by name (``stg="m1"``), else none."""
    return {uid: AssetStatus(uid, Status.STALE, (), Version(v, "t") if (v := versions.get(uid.split(".")[-1]))
                             else None) for uid in graph().assets}


def failed(backoffs: Backoffs, *uids: UniqueId, now: float, after: dict[UniqueId, AssetStatus] | None = None) -> None:
    backoffs.after_build(graph(), [], uids, after or statuses(), now, INITIAL, CEILING)


def test_the_wait_doubles_from_the_initial_one_up_to_the_ceiling() -> None:
    assert [delay(n, INITIAL, CEILING) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert delay(2, 0.5, 30) == 1.0 and isinstance(delay(1, 1, 4), float)


def test_an_unreachable_store_is_tried_again_after_1_2_4_seconds_up_to_30_and_its_outage_is_timed() -> None:
    outage = Outage()
    assert outage.since is None
    waits = [outage.failed(now) for now in (10.0, 11.0, 13.0, 17.0, 25.0, 41.0, 71.0)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert (STORE_RETRY_INITIAL, STORE_RETRY_MAX) == (1.0, 30.0)
    assert outage.since == 10.0  # from the first failure, not the last
    assert outage.ended(72.34) == 62.3
    assert outage.since is None and outage.failed(100.0) == 1.0  # the next outage starts over


def test_an_outage_that_never_failed_lasted_nothing() -> None:
    assert Outage().ended(5.0) == 0.0


def test_a_failed_asset_and_everything_downstream_wait_until_its_retry_time() -> None:
    backoffs = Backoffs()
    failed(backoffs, STG, now=100.0)
    to_build = [STG, FACT, DIM]
    assert backoffs.held(graph(), to_build, statuses(), 100.5) == {STG, FACT, DIM}
    assert backoffs.retry_in([STG, FACT], 100.5) == {STG: 0.5}  # only the failed asset has a retry time
    assert backoffs.retry_times == [101.0]
    assert backoffs.held(graph(), to_build, statuses(), 101.0) == set()  # due at its retry time exactly


def test_each_failure_in_a_row_doubles_the_wait_and_a_success_forgives_them_all() -> None:
    backoffs = Backoffs()
    for now, wait in ((0.0, 1.0), (1.0, 2.0), (3.0, 4.0), (7.0, 4.0)):
        failed(backoffs, DIM, now=now)
        assert backoffs.retry_in([DIM], now) == {DIM: wait}
    backoffs.after_build(graph(), [DIM], [], statuses(), 11.0, INITIAL, CEILING)
    assert backoffs.retry_in([DIM], 11.0) == {} and backoffs.retry_times == []
    failed(backoffs, DIM, now=20.0)
    assert backoffs.retry_in([DIM], 20.0) == {DIM: 1.0}


def test_the_retry_time_is_rounded_to_a_tenth_of_a_second() -> None:
    backoffs = Backoffs()
    failed(backoffs, DIM, now=0.0)
    assert backoffs.retry_in([DIM], 0.333) == {DIM: 0.7}


def test_an_asset_no_longer_to_build_is_forgotten() -> None:
    backoffs = Backoffs()
    failed(backoffs, STG, now=0.0)
    assert backoffs.held(graph(), [DIM], statuses(), 0.5) == set()  # someone else rebuilt stg, say
    assert backoffs.retry_times == [] and backoffs.retry_in([STG], 0.5) == {}
    assert backoffs.held(graph(), [STG], statuses(), 0.5) == set()  # and a new failure starts over


@pytest.mark.parametrize("change", ["new data upstream", "new code"])
def test_new_data_or_new_code_retries_a_waiting_asset_at_once(change: str) -> None:
    backoffs = Backoffs()
    failed(backoffs, STG, now=0.0, after=statuses(orders="f1"))
    assert backoffs.held(graph(), [STG], statuses(orders="f1"), 0.5) == {STG, FACT, DIM}
    g, now = (graph("c-stg-2"), statuses(orders="f1")) if change == "new code" else (graph(), statuses(orders="f2"))
    assert backoffs.held(g, [STG], now, 0.5) == set()
    assert backoffs.retry_in([STG], 0.5) == {}  # forgotten: a failure now waits 1 s again
    failed(backoffs, STG, now=0.5, after=now)
    assert backoffs.retry_in([STG], 0.5) == {STG: 1.0}


def test_an_asset_waits_for_its_failing_ancestors_retry_and_is_retried_when_they_recover() -> None:
    backoffs = Backoffs()
    failed(backoffs, STG, now=0.0)
    failed(backoffs, STG, now=1.0)  # stg now waits until 3.0
    failed(backoffs, DIM, now=1.0)  # dim's own retry would be at 2.0
    assert sorted(backoffs.retry_times) == [3.0, 3.0]  # but it cannot be before its ancestor's
    assert backoffs.held(graph(), [STG, DIM], statuses(), 2.5) == {STG, FACT, DIM}
    backoffs.after_build(graph(), [STG], [], statuses(stg="m9"), 3.0, INITIAL, CEILING)  # stg recovers
    assert backoffs.held(graph(), [DIM], statuses(stg="m9"), 3.0) == set()  # dim's upstream moved: at once
    assert backoffs.retry_in([DIM], 3.0) == {}


def test_a_failing_ancestor_that_recovers_releases_its_descendant_even_with_no_new_data() -> None:
    backoffs = Backoffs()
    failed(backoffs, STG, DIM, now=0.0)  # dim's signature names stg as a failing ancestor
    backoffs.after_build(graph(), [STG], [], statuses(), 0.5, INITIAL, CEILING)
    assert backoffs.held(graph(), [DIM], statuses(), 0.5) == set()


def test_a_retry_time_of_an_asset_no_longer_in_the_project_is_dropped() -> None:
    backoffs = Backoffs()
    failed(backoffs, STG, now=0.0)
    failed(backoffs, DIM, now=1.0)
    assert sorted(backoffs.retry_times) == [1.0, 2.0]
    backoffs.after_build(graph(dim=False), [], [], statuses(), 1.0, INITIAL, CEILING)
    assert backoffs.retry_times == [1.0]


def test_a_new_asset_further_upstream_does_not_cut_a_wait_short() -> None:
    backoffs = Backoffs()
    failed(backoffs, DIM, now=0.0)
    grown = graph(events=True)  # stg now reads a second source too; dim's own inputs are the same
    assert backoffs.held(grown, [DIM], statuses(), 0.5) == {DIM}
