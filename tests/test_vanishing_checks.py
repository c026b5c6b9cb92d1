"""Checks that vanish: dbt's partial parse loses the YAML tests of a model file moved away and back.

Seen while ``watch`` ran (issue 19, item 1): move a model file away (an editor's safe-save, a branch
switch), let a parse run, move it back; the next partial parse keeps the model and drops the tests its
unchanged schema YAML declares, so they never run and ``check`` passes. dbtassets parses in full when
a parse it ran lost declared tests; a test still missing shows on its asset and fails ``check``; a test
deleted from the YAML on purpose is reported, not failed on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.model.project import load_project
from dbtassets.model.snapshot import load_snapshot
from dbtassets.rules.checks import CheckState
from dbtassets.rules.statuses import ReasonCode
from tests.conftest import dbtassets
from tests.tiny import dbt, write, write_project

DIM = UniqueId("model.shopflow.dim_customer")
DIM_TESTS = {"not_null_dim_customer_customer_id", "unique_dim_customer_customer_id"}
ORDERS = UniqueId("model.tiny.orders")
SCHEMA = """version: 2
models:
  - name: orders
    columns:
      - name: order_id
        data_tests: [unique, not_null]
"""
TINY = {"seeds/raw_orders.csv": "order_id,total\n1,10\n2,20\n",
        "models/orders.sql": "select order_id, total from {{ ref('raw_orders') }}\n", "models/schema.yml": SCHEMA}


def checks_of(project: Project, uid: UniqueId) -> set[str]:
    return {c.name for c in project.manifest.checks_of(uid)}


def vanish(directory: Path, model: str, aside: Path) -> None:
    """Move ``model`` away, let dbt parse (partially), move it back and let dbt parse again: as a user's own
    dbt commands (or a watcher on today's main) do around an editor's safe-save."""
    shutil.move(directory / model, aside)
    dbt(directory, "parse")
    shutil.move(aside, directory / model)
    dbt(directory, "parse")


def test_a_model_file_moved_away_and_back_keeps_its_yaml_tests_across_the_watchers_reparses(
        project_dir: Path, tmp_path: Path) -> None:
    said: list[str] = []
    model = project_dir / "models/marts/dim_customer.sql"
    with Project(Options(project_dir, profiles_dir=project_dir), log=said.append) as project:
        assert checks_of(project, DIM) == DIM_TESTS
        shutil.move(model, tmp_path / "dim_customer.sql")
        project.reparse()  # as the watcher does on the file event
        assert DIM not in project.graph
        shutil.move(tmp_path / "dim_customer.sql", model)
        project.reparse()
        assert checks_of(project, DIM) == DIM_TESTS
        assert project.snapshot.missing_checks == ()
    assert any("dbt's partial parse lost them, parsing in full" in line for line in said), said


def test_declared_tests_the_manifest_lacks_show_on_their_asset_and_in_the_watch_log(
        project_dir: Path, tmp_path: Path) -> None:
    before = load_snapshot(load_project(project_dir), project_dir / "target/manifest.json", lambda why: None)
    vanish(project_dir, "models/marts/dim_customer.sql", tmp_path / "dim_customer.sql")
    # The manifest as another dbt command left it, used as is: no parse of dbtassets' heals it.
    options = Options(project_dir, profiles_dir=project_dir, manifest_path=project_dir / "target/manifest.json",
                      state_path=tmp_path / "state.db")
    with Project(options) as project:
        assert checks_of(project, DIM) == set()
        status = project.status(observe=False).statuses[DIM]
        missing = {c.check.name for c in status.checks if c.state is CheckState.MISSING}
        assert missing == {"unique on dim_customer.customer_id", "not_null on dim_customer.customer_id"}
        assert [r.code for r in status.reasons].count(ReasonCode.CHECK_MISSING) == 2
        from dbtassets.watch.narration import removed_checks  # here: the module imports on main without it

        events = removed_checks(before, project.snapshot)
    assert {(e.asset, e.check, e.state) for e in events} == {("dim_customer", name, "missing") for name in DIM_TESTS}


def test_status_json_names_the_missing_checks(project_dir: Path, tmp_path: Path) -> None:
    vanish(project_dir, "models/marts/dim_customer.sql", tmp_path / "dim_customer.sql")
    done = dbtassets(project_dir, "--profiles-dir", str(project_dir), "--manifest",
                     str(project_dir / "target/manifest.json"), "status", "--no-observe", "--format", "json")
    assert done.returncode == 0, done.stderr
    entry = next(a for a in json.loads(done.stdout)["assets"] if a["unique_id"] == DIM)
    assert {c["name"]: c["state"] for c in entry["checks"]} == {
        "unique on dim_customer.customer_id": "missing", "not_null on dim_customer.customer_id": "missing"}
    assert "check_missing" in {r["code"] for r in entry["reasons"]}


@pytest.mark.slow
def test_check_fails_on_tests_dbt_lost_and_only_reports_tests_deleted_from_the_yaml(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", TINY)
    state = str(tmp_path / "state.db")
    with Project(Options(directory, state_path=state)) as project:
        assert project.sync().ok
    assert dbtassets(directory, "--state", state, "check", "--no-observe").returncode == 0

    vanish(directory, "models/orders.sql", tmp_path / "orders.sql")  # the user's own dbt lost them
    gate = dbtassets(directory, "--state", state, "check", "--no-observe")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "unique on orders.order_id" in gate.stdout and "not in the manifest" in gate.stdout

    dbt(directory, "parse", "--no-partial-parse")  # back: the gate passes again
    assert dbtassets(directory, "--state", state, "check", "--no-observe").returncode == 0

    write(directory, {"models/schema.yml": SCHEMA.replace("[unique, not_null]", "[not_null]")})  # on purpose
    gate = dbtassets(directory, "--state", state, "check", "--no-observe", "--format", "json")
    assert gate.returncode == 0, gate.stdout + gate.stderr
    entry = next(a for a in json.loads(gate.stdout)["assets"] if a["unique_id"] == ORDERS)
    removed = [c for c in entry["checks"] if c["state"] == "removed"]
    assert [c["name"] for c in removed] == ["unique_orders_order_id"]
    assert "check_removed" in {r["code"] for r in entry["reasons"]}

    write(directory, {"models/orders.sql": TINY["models/orders.sql"].replace("total from", "total * 2 as total from")})
    with Project(Options(directory, state_path=state)) as project:
        assert list(project.sync().built) == [ORDERS]  # the next build: said, and now forgotten
        assert not [c for c in project.status(observe=False).statuses[ORDERS].checks
                    if c.state is CheckState.REMOVED]


def test_a_removed_check_is_said_until_its_asset_is_next_built_and_never_fails() -> None:
    # imported here, as removed_checks above: so that this file runs on main, where the tests above fail
    from dbtassets.model.declared import MissingCheck
    from dbtassets.results import StatusReport
    from dbtassets.rules.statuses import AssetStatus, Status
    from dbtassets.rules.vanished import with_vanished
    from dbtassets.state.records import CheckResult, Materialization, StateView

    a, b = UniqueId("model.p.a"), UniqueId("model.p.b")
    gone = UniqueId("test.p.unique_a_id.1234")
    fresh = {uid: AssetStatus(uid, Status.FRESH, (), None) for uid in (a, b)}

    def state(built: int) -> StateView:
        return StateView({a: Materialization(built, 1, "t", "v", {}), b: Materialization(9, 1, "t", "v", {})},
                         check_results={a: {gone: CheckResult("c", 7, "pass", "t1", "")}})

    said = with_vanished(fresh, (), state(7), known=())
    assert [(c.check.name, c.state) for c in said[a].checks] == [("unique_a_id", CheckState.REMOVED)]
    assert [r.code for r in said[a].reasons] == [ReasonCode.CHECK_REMOVED]
    report = StatusReport(said, [a, b], [])
    assert report.listed(a) and not report.failing(a) and not report.listed(b)
    assert with_vanished(fresh, (), state(8), known=())[a].checks == ()  # rebuilt since: forgotten
    assert with_vanished(fresh, (), state(7), known=(gone,))[a].checks == ()  # still declared: nothing to say

    lost = with_vanished(fresh, (MissingCheck(a, "unique on a.id", "models/a.yml"),), state(8), known=())
    assert {(c.check.name, c.state) for c in lost[a].checks} == {("unique on a.id", CheckState.MISSING),
                                                                  ("unique_a_id", CheckState.MISSING)}
    assert StatusReport(lost, [a, b], []).failing(a)
