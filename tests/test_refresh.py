"""The rules for rows a rebuild keeps, and for checks: pure functions over small graphs and states.

Real dbt proves them in test_incremental.py and test_checks.py; here each rule is one case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Check, CheckKind, Manifest, Node, UniqueId
from dbtassets.rules.checks import CheckState
from dbtassets.rules.refresh import Invocation, Refresh, invocations, old_rows_before, refresh_of
from dbtassets.rules.staleness import compute_statuses
from dbtassets.rules.statuses import ReasonCode, Status
from dbtassets.state.records import CheckResult, Materialization, StateView

SEED, INC, KEPT, DBT_KEPT, SNAP, TABLE = (UniqueId(u) for u in (
    "seed.p.raw", "model.p.inc", "model.p.kept", "model.p.dbt_kept", "snapshot.p.snap", "model.p.table"))


def node(uid: UniqueId, deps: tuple[UniqueId, ...] = (), materialized: str = "table", **config: Any) -> Node:
    name, rtype = uid.split(".")[-1], uid.split(".")[0]
    meta = config.pop("meta", {})
    return Node(uid, name, rtype, "p", ("p", name), f"models/{name}.sql", (), materialized, deps, "",
                meta=meta, config=config)


def graph() -> AssetGraph:
    """raw → inc → table; raw → kept (meta opt-out) → snap; raw → dbt_kept (dbt's full_refresh: false)."""
    nodes = {
        SEED: node(SEED, materialized="seed"),
        INC: node(INC, (SEED,), "incremental"),
        TABLE: node(TABLE, (INC,)),
        KEPT: node(KEPT, (SEED,), "incremental", meta={"dbtassets": {"full_refresh": False}}),
        SNAP: node(SNAP, (KEPT,), "snapshot"),
        DBT_KEPT: node(DBT_KEPT, (SEED,), "incremental", full_refresh=False),
    }
    return AssetGraph.from_manifest(Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {}))


def test_each_kind_of_asset_has_its_refresh_rule() -> None:
    g = graph()
    assert {uid: refresh_of(g.assets[uid]) for uid in g.assets} == {
        SEED: Refresh.REWRITTEN, TABLE: Refresh.REWRITTEN, INC: Refresh.FULL_ON_CHANGE,
        KEPT: Refresh.KEPT, DBT_KEPT: Refresh.KEPT, SNAP: Refresh.HISTORY}


def test_a_build_needing_no_full_refresh_or_only_full_refreshes_is_one_invocation() -> None:
    g = graph()
    assert invocations(g, [SEED, INC, TABLE], []) == [Invocation((SEED, INC, TABLE), False)]
    # dbt ignores --full-refresh for snapshots and for its own full_refresh: false: they may share it.
    assert invocations(g, [INC, TABLE, SNAP, DBT_KEPT], [INC]) == [Invocation((INC, TABLE, SNAP, DBT_KEPT), True)]
    # A seed never does: the flag makes dbt drop its table (and, with cascade, the views reading it).
    assert invocations(g, [SEED, INC, TABLE], [INC]) == [Invocation((SEED,), False), Invocation((INC, TABLE), True)]
    assert invocations(g, [], []) == []


def test_a_model_opted_out_by_meta_never_runs_with_full_refresh_and_order_is_kept() -> None:
    g = graph()
    split = invocations(g, g.topological_order([SEED, INC, TABLE, KEPT, SNAP]), [INC])
    assert [(set(i.assets), i.full_refresh) for i in split] == [
        ({SEED, KEPT, SNAP}, False), ({INC, TABLE}, True)]
    # An incremental model built for new data only must not be refreshed either: INC waits for SNAP's turn.
    split = invocations(g, g.topological_order([SEED, INC, TABLE, KEPT, SNAP]), [KEPT])
    assert [(set(i.assets), i.full_refresh) for i in split] == [({SEED, INC, TABLE}, False), ({KEPT, SNAP}, True)]


def test_rows_built_before_a_code_change_are_remembered_until_a_full_refresh() -> None:
    first = old_rows_before(Refresh.KEPT, full_refreshed=False, previous_code=None, previous_old_rows=None,
                            code_version="a", at="t1")
    changed = old_rows_before(Refresh.KEPT, full_refreshed=False, previous_code="a", previous_old_rows=None,
                              code_version="b", at="t2")
    again = old_rows_before(Refresh.KEPT, full_refreshed=False, previous_code="b", previous_old_rows="t2",
                            code_version="b", at="t3")
    refreshed = old_rows_before(Refresh.FULL_ON_CHANGE, full_refreshed=True, previous_code="b",
                                previous_old_rows="t2", code_version="c", at="t4")
    table = old_rows_before(Refresh.REWRITTEN, full_refreshed=False, previous_code="a", previous_old_rows=None,
                            code_version="b", at="t5")
    assert (first, changed, again, refreshed, table) == (None, "t2", "t2", None, None)


def state(**extra: Any) -> StateView:
    built = {uid: Materialization(n, 1, f"t{n}", "c", {}, **extra.get(uid, {}))
             for n, uid in enumerate((SEED, INC, TABLE, KEPT, SNAP, DBT_KEPT), start=1)}
    inputs = {uid: {p: built[p].data_version for p in graph().parents(uid)} for uid in built}
    return StateView({uid: Materialization(m.id, m.run_id, m.finished_at, m.code_version, inputs[uid],
                                           old_rows_before=m.old_rows_before) for uid, m in built.items()})


def test_a_code_change_says_what_happens_to_the_rows_already_built() -> None:
    statuses = compute_statuses(graph(), {SEED: "c", INC: "d", TABLE: "c", KEPT: "d", SNAP: "d", DBT_KEPT: "d"},
                                state())
    assert statuses[INC].full_refresh and not statuses[KEPT].full_refresh and not statuses[SNAP].full_refresh
    assert statuses[INC].reasons[0].message.endswith("; an incremental model: rebuilt with a full refresh")
    assert statuses[KEPT].reasons[0].message.endswith(
        "; meta dbtassets.full_refresh: false: rows built before this change will keep the old logic")
    assert statuses[DBT_KEPT].reasons[0].message.endswith(
        "; full_refresh: false: rows built before this change will keep the old logic")
    assert "its history before this change comes from the old code" in statuses[SNAP].reasons[0].message


def test_a_model_keeping_old_rows_is_fresh_and_says_since_when() -> None:
    statuses = compute_statuses(graph(), dict.fromkeys((SEED, INC, TABLE, KEPT, SNAP, DBT_KEPT), "c"),
                                state(**{KEPT: {"old_rows_before": "t9"}, SNAP: {"old_rows_before": "t9"},
                                         INC: {"old_rows_before": "t9"}}))
    assert statuses[KEPT].status is Status.FRESH
    assert [r.message for r in statuses[KEPT].reasons] == [
        "rows built before t9 keep the old logic (meta dbtassets.full_refresh: false; "
        "`dbt build --full-refresh --select kept` rebuilds them)"]
    assert statuses[SNAP].status is Status.FRESH
    assert [(r.code, r.message) for r in statuses[SNAP].reasons] == [
        (ReasonCode.OLD_ROWS_KEPT, "its history before t9 was recorded by older code (a snapshot is never fully "
                                   "refreshed)")]
    # Opted back in (the meta removed): the old rows are now a reason to refresh it.
    assert statuses[INC].status is Status.STALE and statuses[INC].full_refresh
    assert [r.code for r in statuses[INC].reasons] == [ReasonCode.OLD_ROWS_KEPT]


CHECK = Check(UniqueId("test.p.not_null_inc_id"), "not_null_inc_id", CheckKind.DATA_TEST, (INC,), "v1")


def check_state(result: CheckResult | None) -> tuple[Status, CheckState, list[ReasonCode]]:
    view = state()
    results = {INC: {CHECK.unique_id: result}} if result else {}
    view = StateView(view.last_success, {}, {}, results)
    status = compute_statuses(graph(), dict.fromkeys(graph().assets, "c"), view,
                              checks={CHECK.unique_id: CHECK})[INC]
    return status.status, status.checks[0].state, [r.code for r in status.reasons]


def test_a_check_is_pending_until_its_code_has_run_on_the_current_build() -> None:
    inc_build = 2  # INC's materialization id in state()
    assert check_state(None) == (Status.FRESH, CheckState.PENDING, [ReasonCode.CHECK_PENDING])
    assert check_state(CheckResult("v0", inc_build, "pass", "t"))[1] is CheckState.PENDING  # the test changed
    assert check_state(CheckResult("v1", inc_build - 1, "pass", "t"))[1] is CheckState.PENDING  # a newer build
    assert check_state(CheckResult("v1", inc_build, "pass", "t")) == (Status.FRESH, CheckState.PASS, [])
    assert check_state(CheckResult("v1", inc_build, "warn", "t")) == (Status.FRESH, CheckState.WARN, [])
    assert check_state(CheckResult("v1", inc_build, "fail", "t", "Got 1 result")) == (
        Status.FRESH, CheckState.FAIL, [ReasonCode.CHECK_FAILED])
