"""Freshness policies as a pure function: dbt's build_after and source SLAs over statuses and a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dbtassets.errors import ManifestError
from dbtassets.model.freshness import Policies, Severity
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import FreshnessConfig, Manifest, Node, UniqueId
from dbtassets.rules.policies import Schedule, lateness, next_lateness_change, schedule
from dbtassets.rules.staleness import compute_statuses
from dbtassets.rules.statuses import ReasonCode, Status
from dbtassets.state.records import Materialization, StateView, Version

ORDERS, CUSTOMERS = UniqueId("source.p.raw.orders"), UniqueId("source.p.raw.customers")
STG_O, STG_C, FACT, DIM, SNAP, LEAF = (UniqueId(u) for u in (
    "model.p.stg_orders", "model.p.stg_customers", "model.p.fact_sales", "model.p.dim_customer",
    "snapshot.p.customers_snapshot", "model.p.report"))
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ts(minutes: float) -> str:
    return at(minutes).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def hourly(updates_on: str = "any", count: int | None = 1) -> FreshnessConfig:
    return FreshnessConfig((count, "hour") if count else None, updates_on)


def graph(policies: dict[UniqueId, FreshnessConfig], report: bool = False) -> AssetGraph:
    """raw.orders → stg_orders → fact_sales [→ report]; stg_orders, stg_customers → dim_customer;
    raw.customers → stg_customers → customers_snapshot."""
    edges: dict[UniqueId, tuple[UniqueId, ...]] = {
        ORDERS: (), CUSTOMERS: (), STG_O: (ORDERS,), STG_C: (CUSTOMERS,), FACT: (STG_O,), DIM: (STG_O, STG_C),
        SNAP: (STG_C,), **({LEAF: (FACT,)} if report else {})}
    nodes = {}
    for uid, deps in edges.items():
        rtype, name = uid.split(".")[0], uid.split(".")[-1]
        nodes[uid] = Node(uid, name, rtype, "p", ("p", name), f"models/{name}.sql", (), "table", deps, "",
                          source_name="raw" if rtype == "source" else "", freshness=policies.get(uid))
    return AssetGraph.from_manifest(Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {}))


class History:
    """A state store in miniature: builds and observations at given minutes past 09:00."""

    def __init__(self, graph: AssetGraph) -> None:
        self.graph = graph
        self.successes: dict[UniqueId, Materialization] = {}
        self.observations: dict[UniqueId, Version] = {}
        self.next_id = 1

    def land(self, source: UniqueId, minute: float) -> None:
        self.observations[source] = Version(f"f{self.next_id}", ts(minute))
        self.next_id += 1

    def build(self, assets: list[UniqueId], minute: float, code: str = "c") -> None:
        for uid in self.graph.topological_order(assets):
            inputs = {p: self.version(p) for p in self.graph.parents(uid)}
            self.successes[uid] = Materialization(self.next_id, 1, ts(minute), code,
                                                  {p: v for p, v in inputs.items() if v is not None})
            self.next_id += 1

    def version(self, uid: UniqueId) -> Version | None:
        if uid in self.observations:
            return self.observations[uid]
        return self.successes[uid].data_version if uid in self.successes else None

    def schedule(self, minute: float, code: dict[UniqueId, str] | None = None) -> Schedule:
        statuses = self.statuses(code)
        return schedule(self.graph, statuses, Policies.from_graph(self.graph), at(minute))

    def statuses(self, code: dict[UniqueId, str] | None = None):  # type: ignore[no-untyped-def]
        versions = {uid: "c" for uid in self.graph if self.graph.assets[uid].resource_type != "source"}
        versions.update(code or {})
        view = StateView(self.successes, {}, self.observations)
        return compute_statuses(self.graph, versions, view, {ORDERS, CUSTOMERS})

    def everything_built(self, minute: float) -> None:
        self.land(ORDERS, minute)
        self.land(CUSTOMERS, minute)
        self.build([u for u in self.graph if self.graph.assets[u].resource_type != "source"], minute)


def due(plan: Schedule) -> set[str]:
    return {uid.split(".")[-1] for uid, d in plan.decisions.items() if d.due}


def waiting(plan: Schedule) -> set[str]:
    return {uid.split(".")[-1] for uid in plan.waiting()}


def test_a_model_with_build_after_waits_for_its_period_while_its_parent_is_built_at_once() -> None:
    history = History(graph({FACT: hourly()}))
    history.everything_built(0)
    history.land(ORDERS, 10)
    plan = history.schedule(10)
    assert due(plan) == {"stg_orders", "dim_customer"} and waiting(plan) == {"fact_sales"}
    history.build([STG_O, DIM], 10)
    plan = history.schedule(30)
    assert due(plan) == set() and waiting(plan) == {"fact_sales"}
    decision = plan.decisions[FACT]
    assert decision.due_at == at(60)
    assert decision.reason is not None and decision.reason.code is ReasonCode.NOT_DUE
    assert decision.reason.message == ("not due until 2026-11-25T10:00:00.000Z (build_after 1h; "
                                       "last built at 2026-11-25T09:00:00.000Z)")
    assert plan.next_due_at == at(60)
    assert due(history.schedule(60)) == {"fact_sales"}


def test_a_model_with_build_after_and_no_new_data_is_not_due_however_long_ago_it_was_built() -> None:
    history = History(graph({FACT: hourly()}))
    history.everything_built(0)
    plan = history.schedule(600)
    assert plan.decisions == {}  # nothing is stale: build_after never builds without new data


def test_a_code_change_is_not_held_back_by_build_after() -> None:
    history = History(graph({FACT: hourly()}))
    history.everything_built(0)
    plan = history.schedule(5, code={FACT: "edited"})
    assert due(plan) == {"fact_sales"}
    assert plan.decisions[FACT].due_at == at(5)


def test_a_missing_model_is_built_at_once_whatever_its_build_after() -> None:
    history = History(graph({FACT: hourly()}))
    history.land(ORDERS, 0)
    history.land(CUSTOMERS, 0)
    assert {"fact_sales", "stg_orders"} <= due(history.schedule(0))


def test_updates_on_all_waits_for_new_data_from_every_direct_parent() -> None:
    history = History(graph({DIM: hourly("all", count=None)}))
    history.everything_built(0)
    history.land(ORDERS, 10)
    history.build([STG_O, FACT], 10)
    plan = history.schedule(11)
    assert waiting(plan) == {"dim_customer"}
    reason = plan.decisions[DIM].reason
    assert plan.decisions[DIM].due_at is None and reason is not None
    assert reason.message == "waiting for new data from stg_customers (updates_on: all)"
    history.land(CUSTOMERS, 20)
    plan = history.schedule(20)
    assert due(plan) == {"stg_customers", "customers_snapshot", "dim_customer"}


def test_updates_on_all_with_a_period_needs_both() -> None:
    history = History(graph({DIM: hourly("all")}))
    history.everything_built(0)
    history.land(ORDERS, 10)
    history.land(CUSTOMERS, 15)
    history.build([STG_O, STG_C, FACT, SNAP], 15)
    plan = history.schedule(20)
    assert plan.decisions[DIM].due_at == at(60)
    assert due(history.schedule(60)) == {"dim_customer"}


def test_a_parent_whose_every_child_waits_is_held_until_the_first_child_falls_due() -> None:
    # stg_orders' children: fact_sales (1h) and dim_customer (2h): held until fact_sales falls due.
    history = History(graph({FACT: hourly(), DIM: FreshnessConfig((2, "hour"), "any")}))
    history.everything_built(0)
    history.land(ORDERS, 10)
    plan = history.schedule(10)
    assert waiting(plan) == {"stg_orders", "fact_sales", "dim_customer"}
    assert plan.decisions[STG_O].due_at == at(60)
    reason = plan.decisions[STG_O].reason
    assert reason is not None and reason.message == (
        "not due until 2026-11-25T10:00:00.000Z, when fact_sales falls due (build_after 1h): "
        "every model downstream waits on a build_after")
    assert plan.decisions[FACT].due_at == at(60)  # the parent's new data reaches it then
    plan = history.schedule(60)
    assert due(plan) == {"stg_orders", "fact_sales"} and waiting(plan) == {"dim_customer"}
    assert plan.decisions[DIM].due_at == at(120)


def test_a_parent_with_one_eager_child_is_built_at_once() -> None:
    history = History(graph({FACT: hourly()}))  # dim_customer has no policy: stg_orders is built now
    history.everything_built(0)
    history.land(ORDERS, 10)
    assert "stg_orders" in due(history.schedule(10))


def test_holding_passes_up_a_chain_of_models_without_policies() -> None:
    # raw.orders → stg_orders → fact_sales → report (1h); dim_customer 1h too: stg_orders and
    # fact_sales wait for report.
    history = History(graph({LEAF: hourly(), DIM: hourly()}, report=True))
    history.everything_built(0)
    history.land(ORDERS, 10)
    plan = history.schedule(10)
    assert waiting(plan) == {"stg_orders", "fact_sales", "report", "dim_customer"}
    assert plan.decisions[STG_O].due_at == plan.decisions[FACT].due_at == at(60)
    assert due(history.schedule(60)) == {"stg_orders", "fact_sales", "report", "dim_customer"}


def test_a_snapshot_child_is_never_held_so_its_parent_is_built_at_once() -> None:
    history = History(graph({DIM: hourly()}))  # stg_customers → customers_snapshot (no policy), dim_customer
    history.everything_built(0)
    history.land(CUSTOMERS, 10)
    assert {"stg_customers", "customers_snapshot"} <= due(history.schedule(10))


def test_a_model_downstream_of_a_waiting_model_waits_with_it() -> None:
    history = History(graph({FACT: hourly()}, report=True))  # report has no policy
    history.everything_built(0)
    history.land(ORDERS, 10)
    history.build([STG_O, DIM], 10)
    plan = history.schedule(20)
    assert waiting(plan) == {"fact_sales", "report"}
    reason = plan.decisions[LEAF].reason
    assert reason is not None and reason.message == (
        "not due until 2026-11-25T10:00:00.000Z: upstream fact_sales is not due until then")


def test_unknown_period_names_the_asset() -> None:
    bad = graph({FACT: FreshnessConfig((1, "week"), "any")})
    with pytest.raises(ManifestError, match=r"fact_sales .*unknown period 'week'"):
        Policies.from_graph(bad)


def test_a_source_past_error_after_is_late_and_recovers_when_data_lands() -> None:
    sla = FreshnessConfig(warn_after=(30, "minute"), error_after=(1, "hour"))
    history = History(graph({ORDERS: sla}))
    history.everything_built(0)
    policies = Policies.from_graph(history.graph)
    statuses = history.statuses()
    assert lateness(policies, statuses, at(20)) == {}
    assert next_lateness_change(policies, statuses, at(20)) == at(30)
    warn = lateness(policies, statuses, at(45))[ORDERS]
    assert warn.severity is Severity.WARN
    assert next_lateness_change(policies, statuses, at(45)) == at(60)
    error = lateness(policies, statuses, at(125))[ORDERS]
    assert error.severity is Severity.ERROR and error.reason.code is ReasonCode.LATE_ERROR
    assert error.reason.message == ("late: no new data for 2h 05m (error_after 1h); "
                                    "last new data observed at 2026-11-25T09:00:00.000Z")
    history.land(ORDERS, 126)
    assert lateness(policies, history.statuses(), at(127)) == {}
    assert statuses[ORDERS].status is Status.FRESH


def test_a_code_change_in_a_waiting_child_releases_its_held_parent_so_both_build_with_the_new_data() -> None:
    history = History(graph({FACT: hourly(), DIM: FreshnessConfig((4, "hour"), "any")}))
    history.everything_built(0)
    history.land(ORDERS, 10)
    assert waiting(history.schedule(30)) == {"stg_orders", "fact_sales", "dim_customer"}
    plan = history.schedule(30, code={FACT: "edited"})
    assert due(plan) == {"stg_orders", "fact_sales"}  # not fact_sales from 09:00's orders alone
    assert plan.decisions[DIM].due_at == at(240)
