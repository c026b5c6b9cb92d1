"""The staleness rules, one reason at a time, as a pure function of graph, code versions and state."""

from __future__ import annotations

from pathlib import Path

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Check, CheckKind, Manifest, Node, ResourceType, UniqueId
from dbtassets.rules.staleness import AssetStatus, CodeChange, Reason, ReasonCode, Status, compute_statuses
from dbtassets.state.records import CheckResult, Failure, Materialization, StateView, Version

SRC, STG, FACT, EPH, DIM = (UniqueId(u) for u in (
    "source.p.raw.orders", "model.p.stg", "model.p.fact", "model.p.eph", "model.p.dim"))


def node(uid: UniqueId, rtype: str, deps: tuple[UniqueId, ...] = (), materialized: str = "table") -> Node:
    name = uid.split(".")[-1]
    return Node(uid, name, ResourceType(rtype), "p", ("p", name), f"models/{name}.sql", (), materialized, deps, "",
                source_name="raw" if rtype == "source" else "")


def graph() -> AssetGraph:
    """raw.orders → stg → eph (ephemeral) → fact; stg → dim."""
    nodes = {
        SRC: node(SRC, "source"),
        STG: node(STG, "model", (SRC,)),
        EPH: node(EPH, "model", (STG,), "ephemeral"),
        FACT: node(FACT, "model", (EPH,)),
        DIM: node(DIM, "model", (STG,)),
    }
    return AssetGraph.from_manifest(Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {}))


CODE = {STG: "c-stg", FACT: "c-fact", DIM: "c-dim"}
OBSERVED = Version("f1", "t1")


def built(mid: int, code: str, **inputs: Version) -> Materialization:
    return Materialization(mid, 1, f"t{mid}", code, {UniqueId(k): v for k, v in inputs.items()})


def fresh_state() -> StateView:
    """Everything built from the current observation with the current code."""
    successes = {
        STG: built(10, "c-stg", **{SRC: OBSERVED}),
        FACT: built(11, "c-fact", **{STG: Version("m10", "t10")}),
        DIM: built(12, "c-dim", **{STG: Version("m10", "t10")}),
    }
    return StateView(successes, {}, {SRC: OBSERVED})


def codes(statuses: dict[UniqueId, AssetStatus], uid: UniqueId) -> list[str]:
    return [r.code.value for r in statuses[uid].reasons]


def test_everything_fresh() -> None:
    statuses = compute_statuses(graph(), CODE, fresh_state(), {SRC})
    assert {u: s.status for u, s in statuses.items()} == dict.fromkeys((SRC, STG, FACT, DIM), Status.FRESH)
    assert EPH not in statuses  # ephemeral models are not assets
    assert graph().parents(FACT) == (STG,)


def test_never_materialized_is_missing_and_propagates_upstream_missing() -> None:
    statuses = compute_statuses(graph(), CODE, StateView(observations={SRC: OBSERVED}), {SRC})
    assert statuses[STG].status is Status.MISSING
    assert codes(statuses, STG) == ["never_materialized"]
    assert codes(statuses, FACT) == ["never_materialized", "upstream_missing"]


def test_new_observation_makes_downstream_stale_with_the_source_named() -> None:
    state = fresh_state()
    moved = StateView(state.last_success, {}, {SRC: Version("f2", "t99")})
    statuses = compute_statuses(graph(), CODE, moved, {SRC})
    assert codes(statuses, STG) == ["upstream_updated"]
    reason = statuses[STG].reasons[0]
    assert reason.upstream == SRC
    assert reason.message == "upstream raw.orders updated: new data observed at t99 (built from the version of t1)"
    assert codes(statuses, FACT) == ["upstream_stale"]
    assert codes(statuses, DIM) == ["upstream_stale"]


def test_code_change_only_affects_the_changed_model_and_its_descendants() -> None:
    statuses = compute_statuses(graph(), {**CODE, DIM: "c-dim-2"}, fresh_state(), {SRC})
    assert codes(statuses, DIM) == ["code_changed"]
    assert statuses[STG].status is Status.FRESH
    assert statuses[FACT].status is Status.FRESH


def test_upstream_rebuilt_makes_child_stale_without_upstream_stale() -> None:
    state = fresh_state()
    successes = {**state.last_success, STG: built(20, "c-stg", **{SRC: OBSERVED})}
    statuses = compute_statuses(graph(), CODE, StateView(successes, {}, state.observations), {SRC})
    assert statuses[STG].status is Status.FRESH
    assert codes(statuses, FACT) == ["upstream_updated"]
    assert "rebuilt at t20" in statuses[FACT].reasons[0].message


def test_last_build_failed_until_a_later_success() -> None:
    state = fresh_state()
    failing = StateView(state.last_success, {FACT: Failure(30, "t30", "Runtime Error")}, state.observations)
    statuses = compute_statuses(graph(), CODE, failing, {SRC})
    assert codes(statuses, FACT) == ["last_build_failed"]
    assert statuses[FACT].status is Status.STALE
    earlier = StateView(state.last_success, {FACT: Failure(5, "t5", "old")}, state.observations)
    assert compute_statuses(graph(), CODE, earlier, {SRC})[FACT].status is Status.FRESH


def test_every_reason_that_holds_is_listed() -> None:
    state = fresh_state()
    moved = StateView(state.last_success, {STG: Failure(40, "t40", "boom")}, {SRC: Version("f3", "t3")})
    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, moved, {SRC})
    assert codes(statuses, STG) == ["code_changed", "upstream_updated", "last_build_failed"]


def test_a_source_with_no_observer_is_unobserved_never_fresh() -> None:
    for observations in ({}, {SRC: OBSERVED}):  # an observation from an observer since removed proves nothing
        statuses = compute_statuses(graph(), CODE, fresh_state() if observations else StateView(), set())
        assert statuses[SRC].status is Status.UNOBSERVED and not statuses[SRC].needs_build
        assert codes(statuses, SRC) == [ReasonCode.UNOBSERVED.value]
    observable = compute_statuses(graph(), CODE, StateView(observations={}), {SRC})
    assert observable[SRC].status is Status.FRESH and codes(observable, SRC) == []


def test_a_changed_seed_says_its_content_changed() -> None:
    seed = UniqueId("seed.p.codes")
    nodes = {seed: Node(seed, "codes", "seed", "p", ("p", "codes"), "seeds/codes.csv", (), "seed", (), "")}
    seeds = AssetGraph.from_manifest(Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {}))
    statuses = compute_statuses(seeds, {seed: "new-checksum"}, StateView({seed: built(1, "old-checksum")}))
    assert [r.message for r in statuses[seed].reasons] == ["content changed since the build at t1 (seeds/codes.csv)"]


DISCOUNT = frozenset({"discount"})


def reads_nothing_new(child: UniqueId, columns: frozenset[str]) -> bool:
    return False


def test_a_non_breaking_change_nobody_reads_leaves_the_readers_fresh() -> None:
    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, fresh_state(), {SRC},
                                {STG: CodeChange(False, DISCOUNT, "non-breaking")}, reads_nothing_new)
    assert codes(statuses, STG) == ["code_changed"]
    assert statuses[STG].impact == DISCOUNT
    assert statuses[FACT].status is Status.FRESH and statuses[DIM].status is Status.FRESH


def test_new_data_does_not_hide_behind_a_non_breaking_change() -> None:
    state = fresh_state()
    moved = StateView(state.last_success, {}, {SRC: Version("f2", "t2")})
    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, moved, {SRC},
                                {STG: CodeChange(False, DISCOUNT, "non-breaking")}, reads_nothing_new)
    assert codes(statuses, STG) == ["code_changed", "upstream_updated"]
    assert statuses[STG].impact is None  # a rebuild changes every column: the new rows are in all of them
    assert codes(statuses, FACT) == ["upstream_stale"] and codes(statuses, DIM) == ["upstream_stale"]


def test_a_breaking_change_reaches_readers_whatever_columns_they_read() -> None:
    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, fresh_state(), {SRC},
                                {STG: CodeChange(True, DISCOUNT, "breaking")}, reads_nothing_new)
    assert statuses[STG].impact is None
    assert codes(statuses, FACT) == ["upstream_stale"] and codes(statuses, DIM) == ["upstream_stale"]


def reads_everything(child: UniqueId, columns: frozenset[str]) -> bool:
    return True


def messages(statuses: dict[UniqueId, AssetStatus], uid: UniqueId) -> list[dict[str, str]]:
    return [r.to_json() for r in statuses[uid].reasons]


def test_every_reason_names_what_moved_and_when() -> None:
    state = fresh_state()
    moved = StateView(state.last_success, {STG: Failure(40, "t40", "boom")}, {SRC: Version("f2", "t99")})
    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, moved, {SRC},
                                {STG: CodeChange(True, description="breaking: existing columns changed")})
    assert messages(statuses, STG) == [
        {"code": "code_changed", "message": "code changed since the build at t10 (breaking: existing columns "
                                           "changed) (code version c-stg → c-stg-2)"},
        {"code": "upstream_updated", "upstream": SRC,
         "message": "upstream raw.orders updated: new data observed at t99 (built from the version of t1)"},
        {"code": "last_build_failed", "message": "last build failed at t40: boom"},
    ]
    assert messages(statuses, FACT) == [{"code": "upstream_stale", "upstream": STG, "message": "upstream stg is stale"}]


def test_a_code_change_without_a_description_shows_both_versions() -> None:
    statuses = compute_statuses(graph(), {**CODE, DIM: "0123456789abcdef"}, fresh_state(), {SRC})
    assert messages(statuses, DIM) == [{"code": "code_changed", "message": "code changed since the build at t12 "
                                                                          "(code version c-dim → 01234567)"}]


def test_a_missing_upstream_and_a_new_input_are_named() -> None:
    state = fresh_state()
    successes = {STG: state.last_success[STG], FACT: built(11, "c-fact")}  # fact: built with no input recorded
    statuses = compute_statuses(graph(), CODE, StateView(successes, {}, state.observations), {SRC})
    assert messages(statuses, FACT) == [{"code": "upstream_updated", "upstream": STG,
                                         "message": "upstream stg updated: rebuilt at t10 (a new input)"}]
    assert messages(statuses, DIM) == [{"code": "never_materialized", "message": "never materialized"}]
    assert statuses[DIM].status is Status.MISSING and statuses[DIM].needs_build
    without_stg = compute_statuses(graph(), CODE, StateView({}, {}, state.observations), {SRC})
    assert messages(without_stg, FACT)[1] == {"code": "upstream_missing", "upstream": STG,
                                              "message": "upstream stg was never materialized"}


def test_a_failure_before_the_last_success_is_history_and_a_missing_asset_that_failed_says_so() -> None:
    state = fresh_state()
    old = StateView(state.last_success, {STG: Failure(10, "t10", "same run")}, state.observations)
    assert compute_statuses(graph(), CODE, old, {SRC})[STG].status is Status.FRESH
    never = StateView({}, {STG: Failure(3, "t3", "boom")}, state.observations)
    assert codes(compute_statuses(graph(), CODE, never, {SRC}), STG) == ["never_materialized", "last_build_failed"]


def test_a_non_breaking_change_says_which_readers_do_not_read_it() -> None:
    change = CodeChange(False, DISCOUNT, "non-breaking: added column `discount`")

    def only_dim_reads(child: UniqueId, columns: frozenset[str]) -> bool:
        return child == DIM

    one = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, fresh_state(), {SRC}, {STG: change}, only_dim_reads)
    assert one[STG].reasons[0].message == ("code changed since the build at t10 (non-breaking: added column "
                                           "`discount`; fact does not read it) (code version c-stg → c-stg-2)")
    assert one[FACT].status is Status.FRESH and codes(one, DIM) == ["upstream_stale"]
    both = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, fresh_state(), {SRC}, {STG: change},
                            reads_nothing_new)
    assert "(non-breaking: added column `discount`; fact, dim do not read it)" in both[STG].reasons[0].message
    everyone = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, fresh_state(), {SRC}, {STG: change},
                                reads_everything)
    assert "(non-breaking: added column `discount`) " in everyone[STG].reasons[0].message
    assert codes(everyone, FACT) == ["upstream_stale"] and codes(everyone, DIM) == ["upstream_stale"]


def test_a_non_breaking_change_that_adds_no_column_reaches_no_reader() -> None:
    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, fresh_state(), {SRC},
                                {STG: CodeChange(False, frozenset(), "non-breaking")}, reads_everything)
    assert statuses[STG].impact == frozenset()
    assert statuses[FACT].status is Status.FRESH and statuses[DIM].status is Status.FRESH


def test_a_rebuild_that_only_added_columns_reaches_only_their_readers() -> None:
    state = fresh_state()
    widened = Materialization(20, 2, "t20", "c-stg-2", {SRC: OBSERVED}, base="m10", added=DISCOUNT)
    assert widened.data_version == Version("m20", "t20", "m10", DISCOUNT)
    assert widened.data_version.base_value == "m10" and Version("m10", "t10").base_value == "m10"
    view = StateView({**state.last_success, STG: widened}, {}, state.observations)
    quiet = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, view, {SRC}, reads=reads_nothing_new)
    assert {u: s.status for u, s in quiet.items() if u != SRC} == dict.fromkeys((STG, FACT, DIM), Status.FRESH)
    loud = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, view, {SRC}, reads=reads_everything)
    assert codes(loud, FACT) == ["upstream_updated"] and codes(loud, DIM) == ["upstream_updated"]
    assert loud[FACT].reasons[0].message == "upstream stg updated: rebuilt at t20 (built from the version of t10)"


def test_after_a_rebuild_that_added_columns_the_reader_is_asked_about_those_columns() -> None:
    asked: set[tuple[UniqueId, frozenset[str]]] = set()

    def reads_what_is_added(child: UniqueId, columns: frozenset[str]) -> bool:
        asked.add((child, columns))
        return True

    state = fresh_state()
    widened = Materialization(20, 2, "t20", "c-stg-2", {SRC: OBSERVED}, base="m10", added=DISCOUNT)
    view = StateView({**state.last_success, STG: widened}, {}, state.observations)
    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, view, {SRC}, reads=reads_what_is_added)
    assert asked == {(FACT, DISCOUNT), (DIM, DISCOUNT)}
    assert codes(statuses, FACT) == ["upstream_updated"] and codes(statuses, DIM) == ["upstream_updated"]


def test_an_unobserved_source_says_how_to_observe_it() -> None:
    statuses = compute_statuses(graph(), CODE, fresh_state(), set())
    assert messages(statuses, SRC) == [{"code": "unobserved", "message": "no observer: declare files, query or "
                                        "reported in dbtassets.yml; changes to this source are not detected"}]
    assert statuses[SRC].status is Status.UNOBSERVED and not statuses[SRC].needs_build
    assert statuses[SRC].data_version == OBSERVED  # what was seen before is still its version


def test_without_a_column_reader_every_child_reads_an_added_column() -> None:
    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, fresh_state(), {SRC},
                                {STG: CodeChange(False, DISCOUNT, "non-breaking")})
    assert statuses[STG].impact == DISCOUNT
    assert codes(statuses, FACT) == ["upstream_stale"] and codes(statuses, DIM) == ["upstream_stale"]


def test_the_column_reader_is_asked_about_the_columns_the_upstream_added() -> None:
    asked: set[tuple[UniqueId, frozenset[str]]] = set()

    def reads_what_is_added(child: UniqueId, columns: frozenset[str]) -> bool:
        asked.add((child, columns))
        return True

    statuses = compute_statuses(graph(), {**CODE, STG: "c-stg-2"}, fresh_state(), {SRC},
                                {STG: CodeChange(False, DISCOUNT, "non-breaking: added column `discount`")},
                                reads_what_is_added)
    assert asked == {(FACT, DISCOUNT), (DIM, DISCOUNT)}
    assert "do not read it" not in statuses[STG].reasons[0].message
    assert codes(statuses, FACT) == ["upstream_stale"] and codes(statuses, DIM) == ["upstream_stale"]


def test_a_code_change_names_both_versions_by_their_first_eight_characters() -> None:
    state = fresh_state()
    long_ago = StateView({**state.last_success, DIM: built(12, "fedcba9876543210", **{STG: Version("m10", "t10")})},
                         {}, state.observations)
    statuses = compute_statuses(graph(), {**CODE, DIM: "0123456789abcdef"}, long_ago, {SRC})
    assert statuses[DIM].reasons[0].message == ("code changed since the build at t12 "
                                               "(code version fedcba98 → 01234567)")


def test_a_built_asset_whose_upstream_has_no_version_says_only_that_it_is_missing() -> None:
    state = fresh_state()
    orphan = StateView({FACT: state.last_success[FACT]}, {}, state.observations)  # stg's builds were forgotten
    statuses = compute_statuses(graph(), CODE, orphan, {SRC})
    assert statuses[STG].data_version is None
    assert messages(statuses, FACT) == [{"code": "upstream_missing", "upstream": STG,
                                         "message": "upstream stg was never materialized"}]


def test_a_failing_check_holds_the_children_that_have_not_read_the_failing_data_and_theirs() -> None:
    """stg's new build fails two data tests: dim, which has not read it, is held (naming both); so is what reads dim.

    A child that already read stg's current data is not held: nothing new would reach it.
    """
    top = UniqueId("model.p.top")
    nodes = {SRC: node(SRC, "source"), STG: node(STG, "model", (SRC,)), FACT: node(FACT, "model", (STG,)),
             DIM: node(DIM, "model", (STG,)), top: node(top, "model", (DIM,))}
    tests = {UniqueId(f"test.p.{name}"): Check(UniqueId(f"test.p.{name}"), name, CheckKind.DATA_TEST, (STG,), "t1")
             for name in ("not_null_stg_id", "unique_stg_id")}
    state = fresh_state()
    failing = {uid: CheckResult("t1", 20, "fail", "t20", "Got 1 result") for uid in tests}
    view = StateView({**state.last_success, STG: built(20, "c-stg", **{SRC: OBSERVED}),
                      FACT: built(21, "c-fact", **{STG: Version("m20", "t20")}),
                      top: built(22, "c-top", **{DIM: Version("m12", "t12")})},
                     {}, state.observations, {STG: failing})
    full = AssetGraph.from_manifest(Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {}))
    statuses = compute_statuses(full, {**CODE, top: "c-top"}, view, {SRC}, checks=tests)
    assert statuses[STG].status is Status.FRESH and not statuses[STG].held
    assert statuses[FACT].status is Status.FRESH and not statuses[FACT].held  # built from the failing data already
    assert statuses[DIM].held and statuses[DIM].reasons[-1] == Reason(
        ReasonCode.UPSTREAM_CHECK_FAILED, "held: upstream stg fails data test not_null_stg_id, data test "
        "unique_stg_id; it is built once that passes", STG)
    assert statuses[top].held and statuses[top].reasons[-1] == Reason(
        ReasonCode.UPSTREAM_CHECK_FAILED, "held: upstream dim waits for a failing check", DIM)


def test_each_status_names_its_asset_and_says_no_full_refresh_unless_one_is_needed() -> None:
    statuses = compute_statuses(graph(), CODE, fresh_state(), set())  # raw.orders unobserved here
    assert {uid: s.unique_id for uid, s in statuses.items()} == {uid: uid for uid in (SRC, STG, FACT, DIM)}
    assert all(s.full_refresh is False for s in statuses.values())
    observed = compute_statuses(graph(), CODE, fresh_state(), {SRC})
    assert observed[SRC].unique_id == SRC and observed[SRC].status is Status.FRESH


def test_an_incremental_model_opted_back_into_full_refreshes_is_rebuilt_with_one_and_says_why() -> None:
    nodes = {SRC: node(SRC, "source"), STG: node(STG, "model", (SRC,), "incremental"),
             FACT: node(FACT, "model", (STG,)), DIM: node(DIM, "model", (STG,))}
    incremental = AssetGraph.from_manifest(Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {}))
    state = fresh_state()
    kept = Materialization(10, 1, "t10", "c-stg", {SRC: OBSERVED}, old_rows_before="t5")
    statuses = compute_statuses(incremental, CODE, StateView({**state.last_success, STG: kept}, {},
                                                             state.observations), {SRC})
    assert statuses[STG].status is Status.STALE and statuses[STG].full_refresh is True
    assert statuses[STG].reasons == (Reason(ReasonCode.OLD_ROWS_KEPT, "rows built before t5 keep the old logic and "
                                            "it is no longer opted out of full refreshes: rebuilt with a full "
                                            "refresh"),)
