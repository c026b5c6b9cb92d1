"""`plan`/`check --against`: what deploying this project over another manifest would make stale, fast.

The slow twin (test_semantic.py) runs real dbt end to end; these state the same rules with the dbt
boundary faked (FakeRunner compiles models as dbt would, FakeRunner.edit changes what `dbt parse`
would), on a real copy of example_project, so that mutation testing reaches `plan_against`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbtassets.engine import Project
from dbtassets.errors import ManifestError
from dbtassets.rules.statuses import ReasonCode, Status
from tests.conftest import SHOPFLOW_SQL, FakeClock, FakeRunner

Setup = tuple[Project, FakeRunner, FakeClock]

STG_ORDERS = SHOPFLOW_SQL["stg_orders"]
WITH_DISCOUNT = STG_ORDERS.replace(" as unit_price\n", " as unit_price,\n    cast(0 as decimal(10, 2)) as discount\n")
DOUBLED = STG_ORDERS.replace("cast(quantity as integer)", "cast(quantity * 2 as integer)")


def deployed(project: Project, directory: Path, compiled: dict[str, str] = SHOPFLOW_SQL) -> Path:
    """The project's manifest as `dbt compile` would write it on production's checkout, before any edit."""
    manifest = json.loads(project.dbt.manifest_path.read_text())
    for node in manifest["nodes"].values():
        if node["name"] in compiled and node["resource_type"] in ("model", "snapshot"):
            node["compiled_code"] = compiled[node["name"]]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def planned(project: Project, other: Path) -> dict[str, list[tuple[ReasonCode, str]]]:
    """Each asset the deploy would make stale, with its reasons (code, message)."""
    report = project.plan_against(other)
    return {project.graph.assets[uid].name: [(r.code, r.message) for r in s.reasons]
            for uid, s in report.statuses.items() if s.status is not Status.FRESH}


def test_against_its_own_manifest_nothing_changes_and_nothing_is_compiled(semantic_project: Setup,
                                                                             tmp_path: Path) -> None:
    project, runner, _ = semantic_project
    other = deployed(project, tmp_path / "production")
    assert planned(project, other) == {}
    assert planned(project, other.parent) == {}  # its directory, as `dbt compile --target-path DIR` writes it
    assert runner.compiles == []  # no model's version differs: nothing to compile
    report = project.plan_against(other)
    assert report.notes == {}
    # Every deployed asset counts as built from the other manifest's code: fresh, with no reason at all.
    assert {s.status for s in report.statuses.values()} == {Status.FRESH}
    assert all(s.reasons == () for s in report.statuses.values())
    assert all(s.data_version is None for s in report.statuses.values())  # versions of production, not ours


def test_an_added_column_nobody_reads_is_the_model_alone(semantic_project: Setup, tmp_path: Path) -> None:
    project, runner, _ = semantic_project
    other = deployed(project, tmp_path / "production")
    runner.edit("stg_orders", WITH_DISCOUNT)
    plan = planned(project, other)
    assert list(plan) == ["stg_orders"], plan
    ((code, message),) = plan["stg_orders"]
    assert code is ReasonCode.CODE_CHANGED
    assert "non-breaking: added column `discount`" in message
    assert "fact_sales, dim_customer do not read it" in message
    generated_at = json.loads(other.read_text())["metadata"]["generated_at"]
    assert message.startswith(f"code changed since the build at {generated_at} (the other manifest) (non-breaking")
    assert runner.compiles == [["stg_orders"]]  # only what changed is compiled
    # what a rebuild would change: the added column, on the asset it is about
    statuses = project.plan_against(other).statuses
    uid = next(u for u, n in project.graph.assets.items() if n.name == "stg_orders")
    assert (statuses[uid].unique_id, statuses[uid].impact) == (uid, frozenset({"discount"}))
    assert all(u == s.unique_id for u, s in statuses.items())


def test_a_child_whose_sql_is_unknown_is_taken_to_read_the_added_column(semantic_project: Setup,
                                                                         tmp_path: Path) -> None:
    project, runner, _ = semantic_project
    other = deployed(project, tmp_path / "production", compiled={
        name: sql for name, sql in SHOPFLOW_SQL.items() if name != "fact_sales"})
    runner.edit("stg_orders", WITH_DISCOUNT)
    plan = planned(project, other)
    assert set(plan) == {"stg_orders", "fact_sales"}, plan  # dim_customer's SQL shows it does not read it
    assert [code for code, _ in plan["fact_sales"]] == [ReasonCode.UPSTREAM_STALE]


def test_a_changed_expression_is_breaking_for_the_model_and_everything_downstream(semantic_project: Setup,
                                                                                 tmp_path: Path) -> None:
    project, runner, _ = semantic_project
    other = deployed(project, tmp_path / "production")
    runner.edit("stg_orders", DOUBLED)
    plan = planned(project, other)
    assert set(plan) == {"stg_orders", "fact_sales", "dim_customer"}, plan
    assert [code for code, _ in plan["stg_orders"]] == [ReasonCode.CODE_CHANGED]
    assert "non-breaking" not in plan["stg_orders"][0][1]
    for child in ("fact_sales", "dim_customer"):
        assert [code for code, _ in plan[child]] == [ReasonCode.UPSTREAM_STALE], plan[child]
        assert "stg_orders" in plan[child][0][1]


def test_a_reformat_is_nothing(semantic_project: Setup, tmp_path: Path) -> None:
    project, runner, _ = semantic_project
    other = deployed(project, tmp_path / "production")
    runner.edit("stg_orders", "-- reformatted\n" + STG_ORDERS.replace("\n", "\n\n").replace("select", "SELECT", 1))
    assert planned(project, other) == {}
    assert runner.compiles == [["stg_orders"]]  # its file changed, so it was compiled, and it compares equal


def test_a_configuration_change_is_breaking_even_when_the_sql_is_the_same(semantic_project: Setup,
                                                                          tmp_path: Path) -> None:
    project, runner, _ = semantic_project
    other = deployed(project, tmp_path / "production")
    runner.edit("stg_orders", STG_ORDERS, config={"materialized": "view"})
    plan = planned(project, other)
    assert plan["stg_orders"] == [(ReasonCode.CODE_CHANGED, plan["stg_orders"][0][1])]
    assert "(breaking: its configuration changed)" in plan["stg_orders"][0][1]
    assert {"fact_sales", "dim_customer"} <= set(plan)


def test_a_model_that_does_not_compile_now_is_compared_by_checksum_and_says_so(semantic_project: Setup,
                                                                              tmp_path: Path) -> None:
    project, runner, _ = semantic_project
    other = deployed(project, tmp_path / "production")
    runner.edit("stg_orders", WITH_DISCOUNT)
    del runner.compiled["stg_orders"]  # dbt compiles nothing for it now
    report = project.plan_against(other)
    uid = next(u for u, n in project.graph.assets.items() if n.name == "stg_orders")
    assert report.notes == {uid: "could not compile it; comparing file checksums"}
    # Without SQL to compare, the checksum decides: a change, and not a non-breaking one.
    assert report.statuses[uid].status is Status.STALE
    assert "non-breaking" not in report.statuses[uid].reasons[0].message
    stale = {project.graph.assets[u].name for u, s in report.statuses.items() if s.status is not Status.FRESH}
    assert stale == {"stg_orders", "fact_sales", "dim_customer"}


def test_a_model_new_in_this_project_is_missing_from_production(semantic_project: Setup, tmp_path: Path) -> None:
    project, _, _ = semantic_project
    other = deployed(project, tmp_path / "production")
    manifest = json.loads(other.read_text())
    gone = next(uid for uid, n in manifest["nodes"].items() if n["name"] == "fact_sales")
    del manifest["nodes"][gone]
    other.write_text(json.dumps(manifest))
    plan = planned(project, other)
    assert list(plan) == ["fact_sales"], plan
    assert [code for code, _ in plan["fact_sales"]] == [ReasonCode.NEVER_MATERIALIZED]


def test_a_manifest_without_compiled_sql_for_a_changed_model_is_refused_by_name(semantic_project: Setup,
                                                                                tmp_path: Path) -> None:
    project, runner, _ = semantic_project
    other = deployed(project, tmp_path / "production", compiled={})  # as `dbt parse` writes it
    runner.edit("stg_orders", WITH_DISCOUNT)
    with pytest.raises(ManifestError) as raised:
        project.plan_against(other)
    assert str(raised.value) == (
        f"{other}: has no compiled SQL for stg_orders, which this project changes, so a reformat cannot be told "
        "from a logic change; make that manifest with `dbt compile` (or keep the one `dbt build` writes) on the "
        "deployed code and pass it, or its directory, to --against")
    # Unchanged models need no compiled SQL: the same manifest is fine while nothing differs.
    runner.edit("stg_orders", STG_ORDERS)


def test_the_refusal_names_every_changed_model(semantic_project: Setup, tmp_path: Path) -> None:
    project, _, _ = semantic_project
    manifest = json.loads(project.dbt.manifest_path.read_text())
    for node in manifest["nodes"].values():  # every model and snapshot differs from production's
        if node["resource_type"] in ("model", "snapshot"):
            node["checksum"]["checksum"] = "0" * 64
    other = tmp_path / "production.json"
    other.write_text(json.dumps(manifest))
    changed = sorted(n.name for n in project.graph.assets.values() if n.resource_type in ("model", "snapshot"))
    assert len(changed) == 5  # all of them named; a sixth would be counted ("and 1 more")
    with pytest.raises(ManifestError) as raised:
        project.plan_against(other)
    assert f"has no compiled SQL for {', '.join(changed)}, which this project changes" in str(raised.value)


def test_a_missing_path_says_what_against_needs(semantic_project: Setup, tmp_path: Path) -> None:
    project, _, _ = semantic_project
    with pytest.raises(ManifestError) as raised:
        project.plan_against(tmp_path / "nowhere")
    assert str(raised.value) == (f"{tmp_path / 'nowhere'}: no manifest there; --against takes the manifest.json "
                                 "(or its directory) that `dbt compile` writes on production's checkout (it needs "
                                 "the compiled SQL)")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"empty/manifest\.json: no manifest there"):
        project.plan_against(tmp_path / "empty")
