"""Data tests and unit tests as checks on their assets, with real dbt.

A new data test is pending until it has run on what the asset holds; sync runs it without
rebuilding anything; a failing one shows on its asset and fails ``dbtassets check``, and the
project still converges. A failing unit test is a failed build of its model, named.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.statuses import ReasonCode, Status
from dbtassets.state.records import RunStatus
from tests.conftest import dbtassets
from tests.tiny import dbt, write, write_project

ORDERS = UniqueId("model.tiny.orders")
SEED = "order_id,status,order_total\n1,placed,10\n2,shipped,20\n"
MODEL = "select order_id, status, order_total * {factor} as total from {{{{ ref('raw_orders') }}}}\n"
ACCEPTED = """version: 2
models:
  - name: orders
    columns:
      - name: status
        data_tests:
          - accepted_values:
              arguments:
                values: [placed]
"""
TEST_NAME = "accepted_values_orders_status__placed"
UNIT = """
unit_tests:
  - name: test_total
    model: orders
    given:
      - input: ref('raw_orders')
        rows:
          - {{order_id: 1, status: placed, order_total: 5}}
    expect:
      rows:
        - {{order_id: 1, status: placed, total: {total}}}
"""


def reasons(project: Project) -> dict[ReasonCode, str]:
    return {r.code: r.message for r in project.status().statuses[ORDERS].reasons}


@pytest.mark.slow
def test_a_new_failing_data_test_is_run_by_sync_shown_on_its_asset_and_fails_check(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", {"seeds/raw_orders.csv": SEED, "models/orders.sql":
                                                  MODEL.format(factor=1)})
    with Project(Options(directory)) as project:
        assert project.sync().ok
    write(directory, {"models/schema.yml": ACCEPTED})
    with Project(Options(directory)) as project:
        assert reasons(project) == {ReasonCode.CHECK_PENDING: f"data test {TEST_NAME} has never run (a new test)"}
    pending = dbtassets(directory, "check")
    assert pending.returncode == 1 and TEST_NAME in pending.stdout, pending.stdout + pending.stderr

    with Project(Options(directory)) as project:
        result = project.sync()
        assert result.plan.command == f"dbt test --select {TEST_NAME}"  # the test alone: orders is fresh
        assert result.built == [] and not result.ok
        assert [project.manifest.checks[c].name for c in result.failed_checks] == [TEST_NAME]
    failing = dbtassets(directory, "check", "--format", "json")
    assert failing.returncode == 1, failing.stderr
    (entry,) = [a for a in json.loads(failing.stdout)["assets"] if a["name"] == "orders"]
    assert entry["status"] == "fresh"
    assert [c["name"] for c in entry["checks"] if c["state"] == "fail"] == [TEST_NAME]
    assert any(r["code"] == "check_failed" and TEST_NAME in r["message"] for r in entry["reasons"])

    # Converged: the failing check stays failed (not pending), across dbt parse, compile and a second sync.
    for step in ("parse", "compile", "sync"):
        if step != "sync":
            dbt(directory, step)
        with Project(Options(directory)) as project:
            report = project.status()
            assert not report.needing_build() and report.statuses[ORDERS].status is Status.FRESH, step
            assert list(reasons(project)) == [ReasonCode.CHECK_FAILED], step
            if step == "sync":
                assert project.sync().plan.command == ""


@pytest.mark.slow
def test_a_failing_unit_test_is_a_failed_build_of_its_model_named_and_recorded(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", {"seeds/raw_orders.csv": SEED, "models/orders.sql":
                                                  MODEL.format(factor=1)})
    with Project(Options(directory)) as project:
        assert project.sync().ok
    # The model changes and its new unit test expects what the old code made: the build must not happen.
    write(directory, {"models/orders.sql": MODEL.format(factor=2), "models/schema.yml": "version: 2\n" +
                      UNIT.format(total=5)})
    sync = dbtassets(directory, "sync")
    assert sync.returncode == 1
    assert "unit test test_total on orders failed: actual differs from expected" in sync.stdout, sync.stdout
    with Project(Options(directory)) as project:
        failed = reasons(project)[ReasonCode.LAST_BUILD_FAILED]
        assert "unit test test_total on orders failed" in failed
        (last, *_) = project.store.history(ORDERS, 1)
        assert last.status == "error" and "unit test test_total" in (last.message or "")

    # Fixed, it builds and converges: fresh across dbt parse, compile and a second sync.
    write(directory, {"models/schema.yml": "version: 2\n" + UNIT.format(total=10)})
    with Project(Options(directory)) as project:
        assert project.sync().built == [ORDERS]
    for step in ("parse", "compile", "sync"):
        if step != "sync":
            dbt(directory, step)
        with Project(Options(directory)) as project:
            assert project.status().statuses[ORDERS].reasons == (), step
            if step == "sync":
                assert project.sync().plan.command == ""


UNIT_TWO = """
  - name: test_total_of_two
    model: orders
    given:
      - input: ref('raw_orders')
        rows:
          - {order_id: 1, status: placed, order_total: 5}
          - {order_id: 2, status: shipped, order_total: 7}
    expect:
      rows:
        - {order_id: 1, status: placed, total: 5}
        - {order_id: 2, status: shipped, total: 7}
"""


@pytest.mark.slow
def test_a_new_and_a_changed_unit_test_are_run_by_sync_and_recorded(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", {"seeds/raw_orders.csv": SEED, "models/orders.sql":
                                                  MODEL.format(factor=1), "models/schema.yml":
                                                  "version: 2\n" + UNIT.format(total=5)})
    with Project(Options(directory)) as project:
        assert project.sync().ok
        assert reasons(project) == {}

    # A new unit test: pending, then run by sync (`dbt test`: `dbt build` runs no unit test without its model).
    write(directory, {"models/schema.yml": "version: 2\n" + UNIT.format(total=5) + UNIT_TWO})
    with Project(Options(directory)) as project:
        assert reasons(project) == {
            ReasonCode.CHECK_PENDING: "unit test test_total_of_two has never run (a new test)"}
        result = project.sync()
        assert reasons(project) == {}  # it ran: no longer pending
        assert result.plan.command == "dbt test --select test_total_of_two", result.plan.command
        assert result.ok and result.built == [], (result.failed_checks, result.build)
        states = {c.check.name: c.state.value for c in project.status().statuses[ORDERS].checks}
        assert states == {"test_total": "pass", "test_total_of_two": "pass"}

    # A changed unit test (its expectation, still true): pending, run, recorded.
    write(directory, {"models/schema.yml": "version: 2\n" + UNIT.format(total=5)
                      + UNIT_TWO.replace("order_total: 7}", "order_total: 8}").replace("total: 7}", "total: 8}")})
    with Project(Options(directory)) as project:
        (pending,) = reasons(project).values()
        assert pending.startswith("unit test test_total_of_two changed since it ran at"), pending
        result = project.sync()
        assert result.ok and result.plan.command == "dbt test --select test_total_of_two"
        assert reasons(project) == {}
    # Converged: a second sync runs nothing.
    again = dbtassets(directory, "sync")
    assert again.returncode == 0 and "Nothing to build" in again.stdout, again.stdout + again.stderr


@pytest.mark.slow
def test_a_check_asked_for_that_dbt_does_not_run_fails_the_sync_naming_it(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", {"seeds/raw_orders.csv": SEED, "models/orders.sql":
                                                  MODEL.format(factor=1)})
    with Project(Options(directory)) as project:
        assert project.sync().ok
    write(directory, {"models/schema.yml": "version: 2\n" + UNIT.format(total=5)})
    # dbt is told to leave the pending unit test out: it reports nothing for it, and that is an error.
    sync = dbtassets(directory, "sync", "--", "--exclude", "test_total")
    assert sync.returncode == 1, sync.stdout + sync.stderr
    assert "unit test test_total did not run: dbt reported no result for it" in sync.stdout, sync.stdout
    with Project(Options(directory)) as project:
        assert reasons(project) == {ReasonCode.CHECK_PENDING: "unit test test_total has never run (a new test)"}
        assert project.store.runs()[-1].status is RunStatus.ERROR  # the run is recorded as failed, too
        result = project.sync(extra_args=["--exclude", "test_total"])
        assert not result.ok
        assert [project.manifest.checks[c].name for c in result.failed_checks] == ["test_total"]
