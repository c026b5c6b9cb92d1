"""Semantic change detection with real dbt: only changes that can affect data make anything stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import dbtassets

pytestmark = pytest.mark.slow

STG_ORDERS = "models/staging/stg_orders.sql"


def stale(project: Path) -> dict[str, list[str]]:
    result = dbtassets(project, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {a["name"]: [r["message"] for r in a["reasons"]] for a in json.loads(result.stdout)["assets"]}


@pytest.fixture
def built(project_dir: Path) -> Path:
    result = dbtassets(project_dir, "sync")
    assert result.returncode == 0, result.stdout + result.stderr
    return project_dir


def edit(project: Path, path: str, old: str, new: str) -> None:
    file = project / path
    text = file.read_text()
    assert old in text, (path, old)
    file.write_text(text.replace(old, new))


def test_reformatting_comments_and_keyword_case_change_nothing(built: Path) -> None:
    (built / STG_ORDERS).write_text(
        "-- typed order lines\n"
        "SELECT CAST(order_id AS INTEGER)   AS   order_id,\n"
        "       CAST(customer_id AS INTEGER) AS customer_id, /* who */\n"
        "       CAST(ordered_at AS TIMESTAMP) AS ordered_at,\n"
        "       CAST(product AS VARCHAR) AS product,\n"
        "       CAST(quantity AS INTEGER) AS quantity,\n"
        "       CAST(unit_price AS DECIMAL(10, 2)) AS unit_price\n"
        "  FROM {{ source('raw', 'orders') }}\n"
    )
    edit(built, "macros/line_amount.sql", "cast({{ quantity }} * {{ unit_price }} as decimal(12, 2))",
         "CAST( {{ quantity }}*{{ unit_price }}  AS DECIMAL(12,2) )")
    result = dbtassets(built, "status")
    assert "compiling 2 changed models" in result.stderr  # only what may have changed is compiled
    assert stale(built) == {}
    # The compiled SQL is kept in target/ by manifest version (dbtassets.sql.compiled): no second compile...
    assert "compiling" not in dbtassets(built, "status").stderr
    (built / "target/dbtassets-compiled.cache").unlink()
    assert "compiling 2 changed models" in dbtassets(built, "status").stderr  # ...a reader keeps none in the store
    assert dbtassets(built, "sync").returncode == 0  # a writer keeps the fingerprints: nothing to build, nor to compile
    assert "compiling" not in dbtassets(built, "status").stderr


def test_a_changed_expression_makes_the_model_and_its_dependents_stale(built: Path) -> None:
    edit(built, STG_ORDERS, "cast(quantity as integer) as quantity", "cast(quantity as integer) * 2 as quantity")
    reasons = stale(built)
    assert set(reasons) == {"stg_orders", "fact_sales", "dim_customer"}
    assert "(breaking: existing columns changed)" in reasons["stg_orders"][0]


def test_an_added_column_nobody_reads_rebuilds_only_the_model(built: Path) -> None:
    edit(built, STG_ORDERS, "as unit_price\n", "as unit_price,\n    cast(0 as decimal(10, 2)) as discount\n")
    reasons = stale(built)
    assert set(reasons) == {"stg_orders"}
    assert ("(non-breaking: added column `discount`; fact_sales, dim_customer do not read it)"
            in reasons["stg_orders"][0])
    synced = dbtassets(built, "sync")
    assert "Built 1 of 1 asset with: dbt build --select stg_orders\n" in synced.stdout
    assert stale(built) == {}  # fact_sales and dim_customer stay fresh after the rebuild too


def test_an_added_column_read_downstream_rebuilds_the_model_and_that_reader(built: Path) -> None:
    edit(built, STG_ORDERS, "as unit_price\n", "as unit_price,\n    cast(0 as decimal(10, 2)) as discount\n")
    edit(built, "models/marts/dim_customer.sql", "max(ordered_at) as last_ordered_at",
         "max(ordered_at) as last_ordered_at,\n        sum(discount) as discounts")
    reasons = stale(built)
    assert set(reasons) == {"stg_orders", "dim_customer"}
    assert "fact_sales does not read it" in reasons["stg_orders"][0]
    assert any("upstream stg_orders is stale" in r for r in reasons["dim_customer"])
    assert dbtassets(built, "sync").returncode == 0
    assert stale(built) == {}


def test_select_star_downstream_counts_as_reading_the_new_column_unless_an_import_cte_drops_it(built: Path) -> None:
    (built / "models/marts/orders_all.sql").write_text("select * from {{ ref('stg_orders') }}\n")
    (built / "models/marts/orders_import.sql").write_text(
        "with orders as (select * from {{ ref('stg_orders') }}),\n"
        "final as (select order_id, quantity * unit_price as total from orders)\n"
        "select * from final\n")
    assert dbtassets(built, "sync").returncode == 0
    edit(built, STG_ORDERS, "as unit_price\n", "as unit_price,\n    cast(0 as decimal(10, 2)) as discount\n")
    reasons = stale(built)
    assert set(reasons) == {"stg_orders", "orders_all"}
    assert "orders_import" in reasons["stg_orders"][0]  # named among the models that do not read it


def test_a_macro_change_reaches_the_models_whose_compiled_sql_it_changes(built: Path) -> None:
    edit(built, "macros/line_amount.sql", "decimal(12, 2)", "decimal(14, 2)")
    reasons = stale(built)
    assert set(reasons) == {"fact_sales"}  # through the ephemeral int_order_lines that calls it
    assert "code changed" in reasons["fact_sales"][0]
    assert "in the ephemeral model int_order_lines it inlines" in reasons["fact_sales"][0]


def test_a_seed_content_change_makes_the_seed_and_its_dependents_stale(built: Path) -> None:
    seed = built / "seeds/country_codes.csv"
    seed.write_text(seed.read_text() + "IT,Italy\n")
    assert set(stale(built)) == {"country_codes", "stg_customers", "dim_customer", "customers_snapshot"}


def test_why_explains_a_non_breaking_change(built: Path) -> None:
    edit(built, STG_ORDERS, "as unit_price\n", "as unit_price,\n    cast(0 as decimal(10, 2)) as discount\n")
    why = dbtassets(built, "why", "stg_orders")
    assert why.returncode == 0
    assert "code changed since the build at" in why.stdout
    assert "(non-breaking: added column `discount`; fact_sales, dim_customer do not read it)" in why.stdout


def test_plan_against_another_manifest_is_semantic_and_check_gates_on_it(built: Path, tmp_path: Path) -> None:
    production = tmp_path / "production" / "manifest.json"
    production.parent.mkdir()
    production.write_bytes((built / "target/manifest.json").read_bytes())  # written by the build: compiled SQL
    edit(built, STG_ORDERS, "as unit_price\n", "as unit_price,\n    cast(0 as decimal(10, 2)) as discount\n")
    edit(built, "models/staging/stg_customers.sql", "cc.country_name", "cc.country_name  -- shown to users")
    edit(built, "macros/line_amount.sql", "decimal(12, 2)", "decimal(14, 2)")

    plan = dbtassets(built, "plan", "--against", str(production), "--format", "json")
    assert plan.returncode == 0, plan.stderr
    assets = {a["name"]: a["reasons"] for a in json.loads(plan.stdout)["assets"]}
    assert set(assets) == {"stg_orders", "fact_sales"}  # the comment-only edit of stg_customers is nothing
    assert "non-breaking: added column `discount`" in assets["stg_orders"][0]["message"]
    assert assets["fact_sales"][0]["code"] == "code_changed"

    gate = dbtassets(built, "check", "--against", str(production), "--format", "github")
    assert gate.returncode == 1
    assert gate.stdout.count("::error ") == 2
    same = dbtassets(built, "check", "--against", str(built / "target/manifest.json"))
    assert same.returncode == 0, same.stdout  # against its own manifest: nothing to deploy
    assert same.stdout.startswith("This change affects nothing: deploying it leaves every selected asset as it is ")


def test_lint_and_why_report_reads_no_ref_or_source_declares(built: Path) -> None:
    assert dbtassets(built, "lint").returncode == 0
    edit(built, "models/marts/dim_customer.sql", "from {{ ref('stg_orders') }}",
         "from {{ ref('stg_orders') }}\n    where customer_id in (select customer_id from main.customers_snapshot)")
    lint = dbtassets(built, "lint", "--format", "json")
    assert lint.returncode == 1
    (finding,) = json.loads(lint.stdout)["undeclared"]
    assert finding["name"] == "dim_customer" and finding["reads"] == ["main.customers_snapshot"]
    assert dbtassets(built, "sync").returncode == 0
    why = dbtassets(built, "why", "dim_customer").stdout
    assert "note: it also reads main.customers_snapshot, which no ref() or source() declares" in why


def test_a_seed_moved_to_another_schema_says_it_moved_not_that_its_content_changed(built: Path) -> None:
    (built / "macros/generate_schema_name.sql").write_text(
        "{% macro generate_schema_name(custom_schema_name, node) -%}\n"
        "{%- if node.resource_type == 'seed' -%} seeds {%- else -%} {{ target.schema }} {%- endif -%}\n"
        "{%- endmacro %}\n")
    reasons = stale(built)
    seed = reasons["country_codes"]
    assert len(seed) == 1 and "content changed" not in seed[0], seed
    assert 'moved from "shopflow"."main"."country_codes" to "shopflow"."seeds"."country_codes"' in seed[0], seed
    assert dbtassets(built, "sync").returncode == 0
    assert {name for name, why in stale(built).items() if why} == set()
