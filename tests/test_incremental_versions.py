"""An incremental model's code version, fast: its SQL differs between a build that runs it incrementally
and one that does not, and neither may look like a code change.

The fake runner compiles ``fact_sales`` as dbt compiles an incremental model: with the
``is_incremental()`` filter in a build or ``dbt compile`` without ``--full-refresh`` once its table
exists, and without it under ``--full-refresh`` or in a first build. The slow twin, on real dbt, is
in test_incremental.py.
"""

from __future__ import annotations

import pytest

from dbtassets.engine import Project
from dbtassets.errors import DbtAssetsError
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.statuses import Status
from tests.conftest import SHOPFLOW_SQL, FakeClock, FakeRunner

Setup = tuple[Project, FakeRunner, FakeClock]

FACT_SALES = UniqueId("model.shopflow.fact_sales")
WHOLE = SHOPFLOW_SQL["fact_sales"]
ONLY_NEW = WHOLE + '\nwhere order_id > (select coalesce(max(order_id), 0) from "shopflow"."main"."fact_sales")'
INCREMENTAL = {"materialized": "incremental", "unique_key": "order_id"}


def stale(project: Project) -> dict[str, list[str]]:
    return {project.graph.assets[uid].name: [r.message for r in s.reasons]
            for uid, s in project.status().statuses.items() if s.status is not Status.FRESH}


def make_incremental(setup: Setup, comment: str = "", sql: str = WHOLE) -> tuple[Project, FakeRunner]:
    """``fact_sales`` becomes (or stays) an incremental model with ``sql`` as its whole logic."""
    project, runner, _ = setup
    runner.edit("fact_sales", comment + sql, config=INCREMENTAL)
    runner.incremental["fact_sales"] = comment + sql + ONLY_NEW[len(WHOLE):]
    return project, runner


def land_orders(project: Project, batch: int) -> None:
    (project.dbt.directory / f"data/raw/orders/orders_new_{batch}.csv").write_text(
        "order_id,customer_id,ordered_at,product,quantity,unit_price\n"
        f"{900 + batch},1,2026-11-20 10:00:00,ink,1,7.25\n")


def recorded(project: Project) -> str:
    return project.store.view().last_success[FACT_SALES].code_version


def whole_version(project: Project, sql: str = WHOLE) -> str:
    (found,) = project.versions.fingerprints({FACT_SALES: sql})
    return found.code_version


def test_a_first_build_that_ran_incrementally_records_the_full_refresh_form(semantic_project: Setup) -> None:
    """Its table may exist already (a project new to dbtassets): the SQL dbt ran is then the filtered one."""
    project, runner = make_incremental(semantic_project)
    runner.tables.add("fact_sales")
    assert project.sync().ok
    assert recorded(project) == whole_version(project)
    assert stale(project) == {}
    assert runner.compiles == [["fact_sales", "--full-refresh"]]


def test_new_rows_build_an_incremental_model_incrementally_and_keep_its_code_version(semantic_project: Setup) -> None:
    project, runner = make_incremental(semantic_project)
    assert project.sync().ok
    first = recorded(project)
    for batch in range(3):
        land_orders(project, batch)
        result = project.sync()
        assert result.ok and FACT_SALES in result.built
        assert all("--full-refresh" not in call for call in runner.calls), runner.calls
        assert stale(project) == {}, batch
        assert recorded(project) == first
    assert runner.compiles == [["fact_sales", "--full-refresh"]]  # the first build's; later ones reuse it


def test_a_full_refresh_records_the_sql_it_ran(semantic_project: Setup) -> None:
    project, runner = make_incremental(semantic_project)
    assert project.sync().ok
    doubled = WHOLE.replace("    quantity,\n", "    quantity * 2 as quantity,\n")
    make_incremental(semantic_project, sql=doubled)
    assert "rebuilt with a full refresh" in stale(project)["fact_sales"][0]
    assert project.sync().ok
    assert runner.calls[-1] == ["build", "--select", "fact_sales+", "--full-refresh"]
    assert runner.compiles == [["fact_sales", "--full-refresh"]] * 2  # the first build's, the status after the edit
    assert recorded(project) == whole_version(project, doubled)
    assert stale(project) == {}
    land_orders(project, 0)
    assert project.sync().ok
    assert "--full-refresh" not in runner.calls[-1] and stale(project) == {}
    assert recorded(project) == whole_version(project, doubled)


def test_a_comment_in_an_incremental_model_changes_nothing(semantic_project: Setup) -> None:
    project, runner = make_incremental(semantic_project)
    assert project.sync().ok
    land_orders(project, 0)
    assert project.sync().ok  # an incremental build: the last SQL dbt ran is the filtered one
    make_incremental(semantic_project, comment="-- each order line once\n")
    assert stale(project) == {}
    assert runner.compiles[-1] == ["fact_sales", "--full-refresh"]
    assert project.sync().plan.to_build == []



def test_an_incremental_model_new_to_the_store_is_compiled_once_and_says_why(semantic_project: Setup) -> None:
    project, runner = make_incremental(semantic_project)
    runner.tables.add("fact_sales")  # built incrementally by its first build: that SQL is not its code
    said: list[str] = []
    project.log = said.append
    project.reload()
    assert project.sync().ok
    assert "compiling 1 incremental model as a full refresh renders it, for its code version" in said


def test_an_incremental_build_whose_full_refresh_form_does_not_compile_records_the_file_checksum(
        semantic_project: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    project, runner = make_incremental(semantic_project)
    runner.tables.add("fact_sales")

    def broken(selectors: object, *, full_refresh: bool = False) -> dict[UniqueId, str]:
        raise DbtAssetsError("dbt compile failed: Compilation Error in model fact_sales")

    monkeypatch.setattr(runner, "compile", broken)
    said: list[str] = []
    project.log = said.append
    project.reload()
    assert project.sync().ok  # the build happened: it is recorded all the same
    assert said[-1] == ("could not compile them (dbt compile failed: Compilation Error in model fact_sales); "
                        "recording their file checksums instead")
    assert recorded(project) == project.graph.assets[FACT_SALES].code_version
