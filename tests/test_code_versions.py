"""Semantic code versions through the engine, fast: a fake runner that compiles models as dbt would.

The slow twins in test_semantic.py run real dbt; these state the same rules with the dbt boundary
faked (FakeRunner.edit changes what ``dbt parse`` and ``dbt compile`` would), so that each rule has
a test that runs in a second and that mutation testing can use.
"""

from __future__ import annotations

import json

import pytest

from dbtassets.engine import Project
from dbtassets.rules.statuses import Status
from tests.conftest import SHOPFLOW_SQL, FakeClock, FakeRunner

Setup = tuple[Project, FakeRunner, FakeClock]

STG_ORDERS = SHOPFLOW_SQL["stg_orders"]
WITH_DISCOUNT = STG_ORDERS.replace(" as unit_price\n", " as unit_price,\n    cast(0 as decimal(10, 2)) as discount\n")
WITH_SEGMENT = SHOPFLOW_SQL["stg_customers"].replace("    cc.country_name\n",
                                                     "    cc.country_name,\n    'retail' as segment\n")


def stale(project: Project) -> dict[str, list[str]]:
    """Each asset that is not fresh, with its reasons' messages."""
    return {project.graph.assets[uid].name: [r.message for r in s.reasons]
            for uid, s in project.status().statuses.items() if s.status is not Status.FRESH}


def built_and_edited(setup: Setup, name: str, sql: str) -> tuple[Project, FakeRunner]:
    project, runner, _ = setup
    assert project.sync().ok and stale(project) == {}
    runner.edit(name, sql)
    return project, runner


def land_orders(project: Project) -> None:
    (project.dbt.directory / "data/raw/orders/orders_new.csv").write_text(
        "order_id,customer_id,ordered_at,product,quantity,unit_price\n900,1,2026-11-20 10:00:00,ink,1,7.25\n")


def test_an_unchanged_project_is_not_compiled_to_tell_its_status(semantic_project: Setup) -> None:
    project, runner, _ = semantic_project
    assert project.sync().ok
    assert stale(project) == {}
    assert runner.compiles == []  # the code versions recorded at the build are reused as they are


def test_reformatting_a_model_changes_nothing_and_is_compiled_once(semantic_project: Setup) -> None:
    reformatted = "-- typed order lines\n" + STG_ORDERS.upper().replace("'DATA/RAW/ORDERS/*.CSV'",
                                                                         "'data/raw/orders/*.csv'")
    project, runner = built_and_edited(semantic_project, "stg_orders", reformatted)
    assert stale(project) == {}
    assert runner.compiles == [["stg_orders"]]  # only the model whose file moved
    assert stale(project) == {}
    assert runner.compiles == [["stg_orders"]]  # and its fingerprint is cached


def test_a_changed_expression_is_breaking_for_the_model_and_everything_downstream(semantic_project: Setup) -> None:
    doubled = STG_ORDERS.replace("cast(quantity as integer) as quantity", "cast(quantity as integer) * 2 as quantity")
    project, _ = built_and_edited(semantic_project, "stg_orders", doubled)
    reasons = stale(project)
    assert set(reasons) == {"stg_orders", "fact_sales", "dim_customer"}
    assert "(breaking: existing columns changed)" in reasons["stg_orders"][0]


def test_an_added_column_nobody_reads_rebuilds_only_the_model_then_nothing(semantic_project: Setup) -> None:
    project, runner = built_and_edited(semantic_project, "stg_orders", WITH_DISCOUNT)
    reasons = stale(project)
    assert set(reasons) == {"stg_orders"}
    assert reasons["stg_orders"][0].startswith("code changed since the build at ")
    assert ("(non-breaking: added column `discount`; fact_sales, dim_customer do not read it)"
            in reasons["stg_orders"][0])
    assert project.sync().ok
    assert runner.calls[-1] == ["build", "--select", "stg_orders"]
    assert stale(project) == {}  # the rebuild added a column its readers do not read


def test_new_data_does_not_hide_behind_a_non_breaking_change(semantic_project: Setup) -> None:
    project, runner = built_and_edited(semantic_project, "stg_orders", WITH_DISCOUNT)
    land_orders(project)
    reasons = stale(project)
    assert set(reasons) == {"stg_orders", "fact_sales", "dim_customer"}  # new rows reach every reader
    assert reasons["fact_sales"] == ["upstream stg_orders is stale"]
    assert project.sync().ok
    assert runner.calls[-1] == ["build", "--select", "stg_orders+"]
    assert stale(project) == {}


def test_after_a_non_breaking_rebuild_new_data_still_rebuilds_the_readers(semantic_project: Setup) -> None:
    project, _ = built_and_edited(semantic_project, "stg_orders", WITH_DISCOUNT)
    assert project.sync().ok and stale(project) == {}
    land_orders(project)
    assert set(stale(project)) == {"stg_orders", "fact_sales", "dim_customer"}


def test_an_added_column_read_downstream_rebuilds_the_model_and_that_reader(semantic_project: Setup) -> None:
    project, runner = built_and_edited(semantic_project, "stg_orders", WITH_DISCOUNT)
    runner.edit("dim_customer", SHOPFLOW_SQL["dim_customer"].replace(
        "max(ordered_at) as last_ordered_at", "max(ordered_at) as last_ordered_at, sum(discount) as discounts"))
    reasons = stale(project)
    assert set(reasons) == {"stg_orders", "dim_customer"}
    assert "fact_sales does not read it" in reasons["stg_orders"][0]
    assert "upstream stg_orders is stale" in reasons["dim_customer"]
    assert project.sync().ok and stale(project) == {}


def test_a_snapshot_counts_as_reading_every_new_column_of_its_upstream(semantic_project: Setup) -> None:
    project, _ = built_and_edited(semantic_project, "stg_customers", WITH_SEGMENT)
    reasons = stale(project)
    assert set(reasons) == {"stg_customers", "customers_snapshot"}  # dim_customer names its columns
    assert "dim_customer does not read it" in reasons["stg_customers"][0]
    assert reasons["customers_snapshot"] == ["upstream stg_customers is stale"]


def test_a_select_star_reader_counts_as_reading_the_new_column(semantic_project: Setup) -> None:
    star = 'select * from "shopflow"."main"."stg_orders"'
    project, runner = built_and_edited(semantic_project, "fact_sales", star)
    assert project.sync().ok and stale(project) == {}
    runner.edit("stg_orders", WITH_DISCOUNT)
    assert set(stale(project)) == {"stg_orders", "fact_sales"}


def test_a_select_star_reader_passes_the_new_column_on_as_a_non_breaking_change_of_its_own(
        semantic_project: Setup) -> None:
    star = 'select * from "shopflow"."main"."stg_orders"'
    project, runner = built_and_edited(semantic_project, "fact_sales", star)
    assert project.sync().ok and stale(project) == {}
    runner.edit("stg_orders", WITH_DISCOUNT)
    (reason,) = stale(project)["fact_sales"]
    assert reason.endswith("(non-breaking: passes on its new column `discount`)"), reason


def test_a_star_of_one_table_is_expanded_over_its_columns_and_does_not_read_another_tables_new_column(
        semantic_project: Setup) -> None:
    star = ('select o.*, c.customer_name from "shopflow"."main"."stg_orders" as o '
            'join "shopflow"."main"."stg_customers" as c on o.customer_id = c.customer_id')
    project, runner = built_and_edited(semantic_project, "dim_customer", star)
    after_segment, after_discount = stale_after_a_column_in_each_staging_model(project, runner)
    assert after_segment == {"stg_customers", "customers_snapshot"}  # o.* is stg_orders' columns only
    assert after_discount == {"stg_orders", "dim_customer"}  # … which now include discount


def stale_after_a_column_in_each_staging_model(project: Project, runner: FakeRunner) -> tuple[set[str], set[str]]:
    """What is stale after stg_customers gains `segment`, and (that synced) after stg_orders gains `discount`."""
    assert project.sync().ok and stale(project) == {}
    runner.edit("stg_customers", WITH_SEGMENT)
    after_segment = set(stale(project))
    assert project.sync().ok
    runner.edit("stg_orders", WITH_DISCOUNT)
    return after_segment, set(stale(project))


def test_a_star_over_a_model_that_is_itself_a_star_is_expanded_through_both(semantic_project: Setup) -> None:
    """dim_customer reads fact_sales (made `select * from stg_orders`) as `f.*`: its columns are stg_orders'."""
    project, runner, _ = semantic_project
    path = project.dbt.manifest_path
    manifest = json.loads(path.read_text())
    manifest["nodes"]["model.shopflow.dim_customer"]["depends_on"]["nodes"].append("model.shopflow.fact_sales")
    path.write_text(json.dumps(manifest))
    runner.edit("fact_sales", 'select * from "shopflow"."main"."stg_orders"')
    joined = ('select f.*, c.customer_name from "shopflow"."main"."fact_sales" as f '
              'join "shopflow"."main"."stg_customers" as c on f.customer_id = c.customer_id')
    project, runner = built_and_edited(semantic_project, "dim_customer", joined)
    after_segment, after_discount = stale_after_a_column_in_each_staging_model(project, runner)
    assert after_segment == {"stg_customers", "customers_snapshot"}  # f.* is stg_orders' columns only
    assert after_discount == {"stg_orders", "fact_sales", "dim_customer"}  # … which now include discount


def test_a_change_inside_an_inlined_ephemeral_model_names_the_ephemeral_models(semantic_project: Setup) -> None:
    rounded = SHOPFLOW_SQL["fact_sales"].replace("decimal(12, 2)) as amount", "decimal(12, 0)) as amount")
    project, runner = built_and_edited(semantic_project, "fact_sales", rounded)
    (reason,) = stale(project)["fact_sales"]
    assert "(breaking: more than new output columns changed; in the ephemeral model int_order_lines it inlines)" \
        in reason
    assert project.sync().ok
    both = rounded.replace("decimal(12, 0)) as amount", "decimal(12, 1)) as amount").replace(
        ") select", "), __dbt__cte__int_more as (select 1 as one) select", 1)
    runner.edit("fact_sales", both)
    (reason,) = stale(project)["fact_sales"]
    assert "; in the ephemeral models int_more, int_order_lines it inlines)" in reason


def test_a_new_column_with_a_configuration_change_is_breaking(semantic_project: Setup) -> None:
    project, runner, _ = semantic_project
    assert project.sync().ok
    runner.edit("stg_orders", WITH_DISCOUNT, config={"materialized": "view"})
    reasons = stale(project)
    assert set(reasons) == {"stg_orders", "fact_sales", "dim_customer"}  # the built object changed
    assert "(breaking: its configuration changed)" in reasons["stg_orders"][0]


def test_a_snapshot_that_gains_a_column_is_rebuilt_as_a_breaking_change(semantic_project: Setup) -> None:
    widened = SHOPFLOW_SQL["customers_snapshot"].replace("country_code from", "country_code, 1 as n from")
    project, _ = built_and_edited(semantic_project, "customers_snapshot", widened)
    (reason,) = stale(project)["customers_snapshot"]
    assert reason.startswith("code changed since the build at ")
    assert "non-breaking" not in reason  # only models are classified: a snapshot's history is its own


def test_a_change_to_a_model_whose_old_sql_is_unknown_reaches_everything_downstream(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    assert project.sync().ok  # built with no compiled SQL recorded: nothing to compare a change with
    runner.compiled.update(SHOPFLOW_SQL)
    runner.edit("stg_orders", WITH_DISCOUNT)
    reasons = stale(project)
    assert set(reasons) == {"stg_orders", "fact_sales", "dim_customer"}  # not narrowed to a new column
    (reason,) = reasons["stg_orders"]
    assert reason.startswith("code changed since the build at ") and reason.count("(") == 1, reason  # no "how"


def test_a_changed_model_that_does_not_compile_is_compared_by_its_checksum_and_says_so(
        semantic_project: Setup) -> None:
    project, runner = built_and_edited(semantic_project, "stg_orders", WITH_DISCOUNT)
    del runner.compiled["stg_orders"]  # dbt compile gives nothing for it now
    reasons = stale(project)
    assert set(reasons) == {"stg_orders", "fact_sales", "dim_customer"}
    (reason,) = reasons["stg_orders"]
    assert reason.startswith("code changed since the build at ") and reason.count("(") == 1, reason
    assert project.status().notes[project.graph.resolve("stg_orders")] == \
        "could not compile it to compare its SQL; using the file checksum"


def reads_in_manifest(project: Project, name: str, jinja: str) -> None:
    """Model ``name``'s code as written gains ``jinja`` in target/manifest.json (its file and checksum do not move,
    so nothing parses again): what it reads is then found there."""
    path = project.dbt.manifest_path
    manifest = json.loads(path.read_text())
    (node,) = [n for n in manifest["nodes"].values() if n["name"] == name and n["resource_type"] == "model"]
    node["raw_code"] += jinja
    path.write_text(json.dumps(manifest))
    project.reload()


def test_an_env_var_a_model_reads_is_named_when_it_moved_the_sql_and_silent_when_it_did_not(
        semantic_project: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    project, runner, _ = semantic_project
    monkeypatch.setenv("MIN_QUANTITY", "0")
    reads_in_manifest(project, "stg_orders", "\n{{ env_var('MIN_QUANTITY', '0') }}")
    assert project.sync().ok and stale(project) == {}
    monkeypatch.setenv("MIN_QUANTITY", "1")  # the value moves, and with it what dbt compiles
    runner.compiled["stg_orders"] = STG_ORDERS.replace("cast(quantity as integer) as quantity",
                                                       "cast(quantity as integer) + 1 as quantity")
    project.reload()
    reasons = stale(project)
    assert set(reasons) == {"stg_orders", "fact_sales", "dim_customer"}
    assert "(env_var('MIN_QUANTITY') changed: breaking: existing columns changed)" in reasons["stg_orders"][0]
    monkeypatch.setenv("MIN_QUANTITY", "2")  # moves again, but this time dbt compiles the same SQL
    project.reload()
    assert set(stale(project)) == {"stg_orders", "fact_sales", "dim_customer"}
    assert project.sync().ok and stale(project) == {}
    monkeypatch.setenv("MIN_QUANTITY", "3")
    project.reload()
    assert stale(project) == {}  # a value that does not change the SQL changes nothing


def test_a_model_whose_sql_depends_on_the_command_is_stale_by_the_value_it_reads(
        semantic_project: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    project, _, _ = semantic_project
    monkeypatch.setenv("MIN_QUANTITY", "0")
    reads_in_manifest(project, "stg_customers", "\n{% if flags.WHICH == 'build' %}{{ env_var('MIN_QUANTITY') }}"
                                                "{% endif %}")
    assert project.sync().ok and stale(project) == {}
    monkeypatch.setenv("MIN_QUANTITY", "1")
    project.reload()
    reasons = stale(project)
    (reason,) = reasons["stg_customers"]
    assert reason.startswith("code changed since the build at ") and "(env_var('MIN_QUANTITY') changed) (" in reason
    assert "stg_orders" not in reasons
