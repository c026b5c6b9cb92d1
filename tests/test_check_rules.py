"""Checks in sync and watch, fast: a fake dbt runner on example_project (real dbt: test_checks.py)."""

from __future__ import annotations

import json

from dbtassets.model.manifest import UniqueId
from dbtassets.rules.staleness import ReasonCode, Status
from dbtassets.watch.watcher import Watcher
from tests.conftest import FakeRunner
from tests.test_engine import DIM, FACT, STG_ORDERS, Setup, land

UNIQUE = "unique_stg_orders_order_id"


def add_unit_test(runner: FakeRunner, name: str, model: UniqueId) -> None:
    """What ``dbt parse`` records for a unit test on ``model``, written into the parsed manifest."""
    assert runner.project is not None
    path = runner.project.dbt.manifest_path
    manifest = json.loads(path.read_text())
    manifest["unit_tests"][f"unit_test.shopflow.{model.split('.')[-1]}.{name}"] = {
        "name": name, "model": model.split(".")[-1], "depends_on": {"macros": [], "nodes": [model]},
        "config": {"enabled": True}, "checksum": name, "given": [], "expect": {"rows": []}, "overrides": None}
    path.write_text(json.dumps(manifest))
    runner.project.reload()


def test_a_failing_data_test_is_a_failing_check_on_a_fresh_asset_not_a_failed_build(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    project.sync()
    runner.failing_checks = {UNIQUE}
    land(project, "orders_more.csv")
    result = project.sync()
    assert not result.ok and not result.failed and result.built == [STG_ORDERS]
    assert set(result.skipped) == {FACT, DIM}  # dbt build skips what is downstream of a failing test
    assert [project.manifest.checks[c].name for c in result.failed_checks] == [UNIQUE]
    statuses = project.status(observe=False).statuses
    assert statuses[STG_ORDERS].status is Status.FRESH
    assert [c.check.name for c in statuses[STG_ORDERS].failing_checks] == [UNIQUE]
    assert [r.code for r in statuses[STG_ORDERS].reasons] == [ReasonCode.CHECK_FAILED]
    # Downstream is stale but held: building it later would spread the rows the test rejected.
    assert statuses[FACT].status is Status.STALE and statuses[FACT].held
    assert statuses[FACT].reasons[-1].message == (
        f"held: upstream stg_orders fails data test {UNIQUE}; it is built once that passes")
    assert project.needs_attention(project.status(observe=False))
    assert project.sync().plan.empty  # nothing to rebuild, nothing pending: the check stays failed
    runner.failing_checks = set()
    (project.dbt.directory / "data/raw/orders/orders_more.csv").unlink()  # the bad rows go: all is built again
    assert project.sync().ok and not project.needs_attention(project.status(observe=False))


def test_a_pending_check_runs_alone_and_a_rebuild_runs_its_asset_s_checks(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    project.sync()
    assert not project.needs_attention(project.status(observe=False))
    add_unit_test(runner, "test_amounts", FACT)
    report = project.status(observe=False)
    assert [c.check.name for c in report.statuses[FACT].pending_checks] == ["test_amounts"]
    assert project.needs_attention(report)  # a new test has not run: `check` fails
    runner.calls.clear()
    assert project.sync().ok and runner.calls == [["build", "--select", "test_amounts"]]
    assert not project.needs_attention(project.status(observe=False))
    land(project, "orders_more.csv")  # new data: the rebuilt assets' checks run with them, nothing else
    runner.calls.clear()
    assert project.sync().ok and runner.calls == [["build", "--select", "stg_orders+"]]
    assert not project.needs_attention(project.status(observe=False))


def test_a_failing_unit_test_fails_its_model_s_build_named_and_watch_backs_off(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    (project.dbt.directory / "dbtassets.yml").write_text("watch:\n  backoff_initial: 1s\n  backoff_max: 4s\n")
    project.sync()
    add_unit_test(runner, "test_order_ids", STG_ORDERS)
    runner.failing_checks = {"test_order_ids"}
    land(project, "orders_more.csv")
    moment = [0.0]
    watcher = Watcher(project, lambda event: None, monotonic=lambda: moment[0])
    builds = []
    for moment[0] in (0.0, 0.3, 0.6, 0.9, 1.2):
        before = len(runner.calls)
        watcher.run(once=True)
        builds.append(len(runner.calls) - before)
    assert builds == [1, 0, 0, 0, 1]  # retried after backoff_initial (1 s), not on every pass
    (last, *_) = project.store.history(STG_ORDERS, 1)
    assert last.status == "error"
    assert last.message == ("unit test test_order_ids on stg_orders failed: Got 1 result, configured to fail "
                            "if != 0 (test_order_ids)")
    statuses = project.status(observe=False).statuses
    assert [r.code for r in statuses[STG_ORDERS].reasons] == [ReasonCode.UPSTREAM_UPDATED, ReasonCode.LAST_BUILD_FAILED]
    assert "unit test test_order_ids on stg_orders failed" in statuses[STG_ORDERS].reasons[-1].message
    assert statuses[FACT].status is Status.STALE and statuses[DIM].status is Status.STALE


def test_a_github_annotation_names_the_failing_or_pending_check_of_a_fresh_asset(fake_project: Setup) -> None:
    from dbtassets.report.github import github_annotations

    project, runner, _ = fake_project
    project.sync()
    add_unit_test(runner, "test_amounts", FACT)
    lines = github_annotations(project.graph, project.status(observe=False)).splitlines()
    assert [line.split("::")[1] for line in lines if "fact_sales" in line] == [
        "error file=models/marts/fact_sales.sql,title=fact_sales%3A 1 check not run yet"]
    runner.failing_checks = {UNIQUE}
    land(project, "orders_more.csv")
    project.sync()
    lines = github_annotations(project.graph, project.status(observe=False)).splitlines()
    assert [line.split("::")[1] for line in lines if "stg_orders." in line] == [
        "error file=models/staging/stg_orders.sql,title=stg_orders%3A 1 check failed"]
