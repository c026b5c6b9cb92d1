"""The engine's sync bookkeeping, with a fake dbt runner and clock; and the build lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbtassets.building.lock import BuildLock
from dbtassets.engine import Project
from dbtassets.errors import LockError
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.staleness import ReasonCode, Status
from tests.conftest import FakeClock, FakeRunner

FACT = UniqueId("model.shopflow.fact_sales")
DIM = UniqueId("model.shopflow.dim_customer")
STG_ORDERS = UniqueId("model.shopflow.stg_orders")
ORDERS = UniqueId("source.shopflow.raw.orders")

Setup = tuple[Project, FakeRunner, FakeClock]


def land(project: Project, name: str) -> None:
    (project.dbt.directory / "data/raw/orders" / name).write_text(
        "order_id,customer_id,ordered_at,product,quantity,unit_price\n900,1,2026-11-20 10:00:00,ink,1,7.25\n")


def test_sync_records_the_input_versions_each_asset_was_built_from(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    first = project.sync()
    assert first.ok and len(first.built) == 6
    assert runner.calls == [["build", "--select", "country_codes+", "stg_orders+"]]
    source_version = project.store.latest_observations()[ORDERS]
    (stg,) = project.store.history(STG_ORDERS, 1)
    assert stg.inputs == {ORDERS: source_version}
    (fact,) = project.store.history(FACT, 1)
    assert fact.inputs[STG_ORDERS].value == f"m{stg.id}"  # built in the same run: its new version
    assert project.sync().plan.to_build == []  # nothing stale: no second build
    assert len(runner.calls) == 1


def test_select_and_exclude_restrict_what_sync_builds(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    plan = project.sync(["+fact_sales"], dry_run=True).plan
    assert [project.graph.assets[u].name for u in plan.to_build] == ["stg_orders", "fact_sales"]
    assert runner.calls == [] and project.store.counts()["runs"] == 0  # a dry run records nothing
    project.sync(["stg_orders+"], ["dim_customer"])
    assert runner.calls == [["build", "--select", "stg_orders", "fact_sales+"]]  # a leaf: + adds nothing


def test_a_failure_is_recorded_and_its_descendants_are_skipped(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    project.sync()
    land(project, "orders_more.csv")
    runner.fail = {"stg_orders"}
    result = project.sync()
    assert not result.ok
    assert list(result.failed) == [STG_ORDERS]
    assert set(result.skipped) == {FACT, DIM}
    statuses = project.status(observe=False).statuses
    assert [r.code for r in statuses[STG_ORDERS].reasons] == [ReasonCode.UPSTREAM_UPDATED,
                                                               ReasonCode.LAST_BUILD_FAILED]
    assert statuses[FACT].status is Status.STALE
    runner.fail = set()
    assert project.sync().ok
    assert not project.status(observe=False).needing_build()


def test_a_multi_line_dbt_error_keeps_the_status_table_one_row_per_reason(fake_project: Setup) -> None:
    import click

    from dbtassets import report as render
    project, runner, _ = fake_project
    runner.fail, runner.fail_message = {"stg_orders"}, "Runtime Error in model {name}\n  Conversion Error:\n    bad 'x'"
    project.sync()
    text = click.unstyle(render.status_text(project.graph, project.status(observe=False), show_all=False))
    (row,) = [line for line in text.splitlines() if "Runtime Error" in line]
    assert row.endswith("Runtime Error in model stg_orders Conversion Error: bad 'x'"), text
    assert not any("Conversion Error" in line and line not in row for line in text.splitlines()), text


def test_a_dbt_crash_leaves_everything_stale_and_the_run_marked(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    runner.crash = True
    result = project.sync()
    assert not result.ok and len(result.not_run) == 6 and result.built == []
    (run,) = project.store.runs()
    assert run.status == "error"
    assert len(project.status(observe=False).needing_build()) == 6


def test_sync_refuses_while_another_process_holds_the_build_lock(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    lock = project.dbt.directory / ".dbtassets" / "build.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from dbtassets.building.lock import BuildLock\n"
        f"BuildLock(Path({str(lock)!r}), 'watch build').acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LockError, match=f"running dbtassets watch build \\(pid {holder.pid}"):
            project.sync()
        assert runner.calls == []
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    with BuildLock(lock, "test"):  # the kernel released the dead holder's lock
        pass
    assert project.sync().ok


@pytest.mark.slow
def test_a_selection_longer_than_any_command_line_still_builds(project_dir: Path) -> None:
    """120,000 selectors are ~2.3 MB of arguments, over Linux's 2 MB limit for a whole command line."""
    from dbtassets.building.runner import DbtTarget, SubprocessRunner, build_command
    from dbtassets.model.project import load_project

    selectors = ["stg_orders"] * 120_000
    with pytest.raises(OSError, match="Argument list too long"):
        subprocess.run([sys.executable, "-c", "pass", *build_command(selectors)], check=False)
    result = SubprocessRunner(DbtTarget(load_project(project_dir))).build(selectors)
    assert result.crashed is None and result.returncode == 0
    assert [r.unique_id for r in result.results if r.unique_id.startswith("model.")] == [STG_ORDERS]
    assert result.command.endswith("(120002 arguments)")


def _code_changed(project: Project) -> dict[str, str]:
    """Each asset that status says changed code, with the reason's message."""
    return {project.graph.assets[uid].name: reason.message for uid, s in project.status().statuses.items()
            for reason in s.reasons if reason.code is ReasonCode.CODE_CHANGED}


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n-- edited\n")


@pytest.mark.parametrize(("edited", "unsettled"), [
    # dbt may have read the edited file before or after the edit: that model is rebuilt to be sure.
    ("models/staging/stg_customers.sql", {"stg_customers"}),
    # An ephemeral model's code is inlined: the assets selecting from it are rebuilt.
    ("models/intermediate/int_order_lines.sql", {"fact_sales"}),
    # YAML may configure anything: everything the build ran.
    ("models/marts/_marts.yml", {"country_codes", "stg_customers", "stg_orders", "customers_snapshot",
                                 "fact_sales", "dim_customer"}),
])
def test_a_file_edited_during_a_build_makes_what_it_concerns_unsettled(
        fake_project: Setup, edited: str, unsettled: set[str]) -> None:
    project, runner, _ = fake_project

    def edit_then_write_the_manifest() -> None:  # as dbt does: a manifest parsed before the edit, written after it
        _edit(project.dbt.directory / edited)
        os.utime(project.dbt.manifest_path)

    runner.during_build = edit_then_write_the_manifest
    assert project.sync().ok
    changed = _code_changed(project)
    assert set(changed) == unsettled
    assert all("edited during that build" in message for message in changed.values())
    (entry,) = project.store.history(project.graph.resolve(sorted(unsettled)[0]), 1)
    assert entry.code_version == "?"
    # The next command parses again: a manifest written during the build may predate the edit.
    assert project.dbt.manifest_path.stat().st_mtime < (project.dbt.directory / edited).stat().st_mtime


def test_a_build_with_no_edit_meanwhile_records_its_code_versions(fake_project: Setup) -> None:
    project, _, _ = fake_project
    assert project.sync().ok
    assert _code_changed(project) == {}
    assert all(e.code_version != "?" for uid in project.graph.assets
               for e in project.store.history(uid, 1))
