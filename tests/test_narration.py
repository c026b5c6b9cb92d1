"""The watcher's build told as events (dbtassets.watch.narration): values in, events out."""

from __future__ import annotations

from dbtassets.building.runner import NodeResult, NodeStatus
from dbtassets.engine import Project
from dbtassets.model.manifest import CheckKind, UniqueId
from dbtassets.watch import events as ev
from dbtassets.watch.narration import Nodes
from tests.conftest import FakeClock, FakeRunner

STG_ORDERS = UniqueId("model.shopflow.stg_orders")
FACT = UniqueId("model.shopflow.fact_sales")


def test_a_node_skipped_after_a_failing_test_names_that_check_not_its_asset_which_built(
        fake_project: tuple[Project, FakeRunner, FakeClock]) -> None:
    project, _, _ = fake_project
    (test, *_) = [c for c in project.manifest.checks_of(STG_ORDERS) if c.kind is CheckKind.DATA_TEST]
    nodes = Nodes(project.snapshot)
    failed = nodes.finished(NodeResult(test.unique_id, NodeStatus.FAIL, "Got 1 result", 0.123))
    skipped = nodes.finished(NodeResult(FACT, NodeStatus.SKIPPED, "skipped", 0.0))
    assert failed == ev.NodeFinished(test.name, "fail", 0.12, "Got 1 result")
    assert skipped == ev.NodeFinished("fact_sales", "skipped", 0.0, f"check {test.name} failed")


def test_a_node_skipped_after_a_failed_model_names_only_that_model_not_its_parents(
        fake_project: tuple[Project, FakeRunner, FakeClock]) -> None:
    project, _, _ = fake_project
    nodes = Nodes(project.snapshot)
    nodes.finished(NodeResult(STG_ORDERS, NodeStatus.ERROR, "Runtime Error", 0.1))
    skipped = nodes.finished(NodeResult(FACT, NodeStatus.SKIPPED, "skipped", 0.0))
    assert skipped == ev.NodeFinished("fact_sales", "skipped", 0.0, "upstream stg_orders failed")


def test_each_failure_is_said_once_whether_dbt_told_it_live_or_not(
        fake_project: tuple[Project, FakeRunner, FakeClock]) -> None:
    project, _, _ = fake_project
    live = Nodes(project.snapshot)
    live.finished(NodeResult(STG_ORDERS, NodeStatus.ERROR, "Runtime Error", 0.1))
    assert live.unsaid({STG_ORDERS: "Runtime Error"}) == []
    silent = Nodes(project.snapshot)  # a runner that reports nothing until dbt ends
    assert silent.unsaid({STG_ORDERS: "Runtime Error"}) == [ev.NodeFinished("stg_orders", "error", 0.0,
                                                                            "Runtime Error")]


def test_a_node_that_is_neither_an_asset_nor_a_failure_is_not_said(
        fake_project: tuple[Project, FakeRunner, FakeClock]) -> None:
    project, _, _ = fake_project
    test = next(iter(project.manifest.checks))
    assert Nodes(project.snapshot).finished(NodeResult(test, NodeStatus.PASS, "", 0.1)) is None
