"""Real dbt projects of the kinds that broke the staleness answers (issue 9), built once per module.

The project lives in ``transform/`` beside its raw data (``../data``) and a local package
(``../helpers``), as many real projects do, and has a Python model, DISTINCT and GROUP BY ALL
models, a package macro, and a macro whose SQL depends on the dbt command. After a ``sync`` it
must stay fresh across ``dbt parse``, ``dbt compile`` and a second ``sync`` that builds nothing,
and each kind of edit must be judged on what it changes.

The long tail of issue 18 too: models read a var (directly, and through a package macro) and an
env var (through a macro), the profile's schema is an env var, and models are deleted and moved.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import dbtassets, run_cli

pytestmark = pytest.mark.slow

FILES = {
    "data/orders.csv": "order_id,customer_id,amount\n1,1,10\n2,1,20\n3,2,5\n",
    "helpers/dbt_project.yml": 'name: helpers\nversion: "1.0.0"\nconfig-version: 2\nmacro-paths: ["macros"]\n',
    "helpers/macros/double.sql": "{% macro double(column) %}({{ column }} * 2){% endmacro %}\n",
    "helpers/macros/zone.sql": "{% macro zone() %}'{{ var('helpers_zone', 'UTC') }}'{% endmacro %}\n",
    "transform/dbt_project.yml": 'name: conv\nversion: "1.0.0"\nconfig-version: 2\nprofile: conv\n'
                                 "vars:\n  min_amount: 5\n  helpers_zone: UTC\n"
                                 "models:\n  conv:\n    +materialized: table\n    views:\n"
                                 "      +materialized: view\n",
    "transform/profiles.yml": "conv:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
                              "      path: conv.duckdb\n      schema: \"{{ env_var('CONV_SCHEMA', 'main') }}\"\n"
                              "      threads: 1\n",
    "transform/packages.yml": "packages:\n  - local: ../helpers\n",
    "transform/models/_sources.yml": "sources:\n  - name: raw\n    tables:\n      - name: orders\n        meta:\n"
                                     "          external_location: \"read_csv('../data/orders.csv')\"\n",
    "transform/macros/only_when_building.sql":
        "{% macro only_when_building() %}{% if flags.WHICH != 'compile' %}where order_id is not null"
        "{% endif %}{% endmacro %}\n",
    "transform/macros/min_total.sql": "{% macro min_total() %}{{ env_var('CONV_MIN_TOTAL', '0') }}{% endmacro %}\n",
    "transform/models/stg_orders.sql": "select order_id, customer_id, amount from {{ source('raw', 'orders') }}\n",
    "transform/models/customers.sql": "select distinct customer_id from {{ ref('stg_orders') }}\n",
    "transform/models/customer_count.sql": "select count(*) as customers from {{ ref('customers') }}\n",
    "transform/models/by_customer.sql":
        "select customer_id, sum(amount) as total from {{ ref('stg_orders') }} group by all\n",
    "transform/models/by_customer_count.sql": "select count(*) as groups from {{ ref('by_customer') }}\n",
    "transform/models/py_orders.py":
        'def model(dbt, session):\n    return dbt.ref("stg_orders").filter("amount > 0")\n',
    "transform/models/doubled.sql":
        "select order_id, {{ helpers.double('amount') }} as amount2 from {{ ref('stg_orders') }}\n",
    "transform/models/building.sql": "select order_id from {{ ref('stg_orders') }} {{ only_when_building() }}\n",
    "transform/models/big_orders.sql": "select order_id, {{ helpers.zone() }} as zone from {{ ref('stg_orders') }}\n"
                                       "where amount > {{ var('min_amount') }}\n",
    "transform/models/big_order_count.sql": "select count(*) as n from {{ ref('big_orders') }}\n",
    "transform/models/paid_orders.sql":
        "select order_id from {{ ref('stg_orders') }} where amount > {{ min_total() }}\n",
    "transform/models/_models.yml": "models:\n  - name: customer_count\n    description: How many customers bought\n",
}
MODELS = {"stg_orders", "customers", "customer_count", "by_customer", "by_customer_count", "py_orders", "doubled",
          "building", "big_orders", "big_order_count", "paid_orders"}


def dbt(project: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dbt.cli.main", *args, "--profiles-dir", str(project),
                    "--project-dir", str(project)], cwd=project, check=True, capture_output=True)


@pytest.fixture(scope="module")
def built_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project, synced once: ``sync`` from nothing builds every model."""
    root = tmp_path_factory.mktemp("convergence")
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "transform/dbt_packages").mkdir()
    os.symlink("../../helpers", root / "transform/dbt_packages/helpers")  # what `dbt deps` makes, relative
    synced = dbtassets(root / "transform", "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert f"Built {len(MODELS)} of {len(MODELS)} assets" in synced.stdout, synced.stdout
    return root


@pytest.fixture
def built(built_template: Path, tmp_path: Path) -> Path:
    """A private copy of the synced project (its warehouse and state included); returns ``transform/``."""
    shutil.copytree(built_template, tmp_path / "root", symlinks=True)
    return tmp_path / "root" / "transform"


def stale(project: Path, env: dict[str, str] | None = None, *options: str) -> dict[str, list[str]]:
    result = run_cli("--project-dir", str(project), *options, "status", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return {a["name"]: [r["message"] for r in a["reasons"]] for a in json.loads(result.stdout)["assets"]
            if a["status"] != "fresh"}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def test_after_sync_everything_stays_fresh_across_parse_compile_and_a_second_sync(built: Path) -> None:
    assert stale(built) == {}
    dbt(built, "parse")
    assert stale(built) == {}
    dbt(built, "compile")
    assert stale(built) == {}
    again = dbtassets(built, "sync")
    assert again.returncode == 0 and "Nothing to build" in again.stdout, again.stdout + again.stderr
    assert stale(built) == {}


def test_each_edit_is_judged_on_what_it_changes(built: Path) -> None:
    # Layout only: a Python model's comments and spacing, spacing inside a Jinja tag of a macro that reads
    # the dbt command (its SQL differs between `dbt compile` and `dbt build`).
    (built / "models/py_orders.py").write_text(
        '# paid orders\ndef model(dbt,   session):\n\n    return dbt.ref( "stg_orders" ).filter("amount > 0")\n')
    edit(built / "macros/only_when_building.sql", "{% if flags.WHICH", "{%   if   flags.WHICH")
    # Meaning: a local package's macro (outside the project), and a column added to a DISTINCT model and
    # to a GROUP BY ALL model, which changes the rows their downstream count(*) models count.
    edit(built / "../helpers/macros/double.sql", "* 2", "* 3")
    edit(built / "models/customers.sql", "customer_id", "customer_id, order_id")
    edit(built / "models/by_customer.sql", "as total", "as total, order_id")
    reasons = stale(built)
    assert set(reasons) == {"doubled", "customers", "customer_count", "by_customer", "by_customer_count"}
    assert "breaking: existing columns changed" in reasons["doubled"][0]
    assert "breaking: DISTINCT" in reasons["customers"][0]
    assert "breaking: GROUP BY ALL" in reasons["by_customer"][0]

    edit(built / "models/py_orders.py", "amount > 0", "amount > 5")
    edit(built / "macros/only_when_building.sql", "is not null", "> 1")  # in the branch only `dbt build` renders
    assert {"py_orders", "building"} <= set(stale(built))


def test_watch_sees_a_source_in_data_outside_the_project_and_a_local_package_edit(built: Path) -> None:
    """The watcher's inotify watches cover ../data (the source's external_location) and ../helpers."""
    from dbtassets.engine import Options, Project
    from dbtassets.watch.files import FileEvents, watched_directories

    root = built.parent.resolve()
    with Project(Options(built)) as project:
        snapshot = project.snapshot
        directories = {d for d, _ in watched_directories(snapshot)}
        assert root / "data" in directories and root / "helpers/macros" in directories
        events = FileEvents()
        touched = events.note(snapshot, "complete", str(root / "data/orders.csv"))
        assert touched.sources == {"source.conv.raw.orders"} and not touched.project
        assert events.note(snapshot, "complete", str(root / "helpers/macros/double.sql")).project


UNIT_TESTS = """
unit_tests:
  - name: test_doubled
    model: items
    given:
      - input: source('shop', 'raw_items')
        rows:
          - {{item_id: 1, price: {price}}}
    expect:
      rows:
        - {{item_id: 1, doubled: {doubled}}}
"""
SECOND_UNIT_TEST = """
  - name: test_doubled_none
    model: items
    given:
      - input: source('shop', 'raw_items')
        rows: []
    expect:
      rows: []
"""


def test_a_new_and_a_changed_unit_test_a_source_over_a_seed(built: Path) -> None:
    """jaffle-shop's style: a seed in its own schema, a source over its table, a model on the source."""
    files = {
        "seeds/raw_items.csv": "item_id,price\n1,10\n2,20\n",
        "seeds/_seeds.yml": "seeds:\n  - name: raw_items\n    config:\n      schema: raw\n",
        # dbt's default generate_schema_name puts the seed in main_raw: the source says so.
        "models/_shop.yml": "sources:\n  - name: shop\n    schema: main_raw\n    tables:\n      - name: raw_items\n",
        "models/items.sql": "select item_id, price * 2 as doubled from {{ source('shop', 'raw_items') }}\n",
        "models/_items.yml": UNIT_TESTS.format(price=3, doubled=6),
    }
    for name, text in files.items():
        (built / name).parent.mkdir(parents=True, exist_ok=True)
        (built / name).write_text(text)
    first = dbtassets(built, "sync")  # the seed must be built before the model that reads it through the source
    assert first.returncode == 0 and "Built 2 of 2 assets" in first.stdout, first.stdout + first.stderr
    assert stale(built) == {}
    checked = dbtassets(built, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A changed and a new unit test: pending (check fails) until a sync runs them; then nothing is pending.
    (built / "models/_items.yml").write_text(UNIT_TESTS.format(price=4, doubled=8) + SECOND_UNIT_TEST)
    pending = dbtassets(built, "check")
    assert pending.returncode == 1 and "test_doubled_none" in pending.stdout, pending.stdout + pending.stderr
    ran = dbtassets(built, "sync")
    assert ran.returncode == 0 and "dbt test --select" in ran.stdout, ran.stdout + ran.stderr
    checked = dbtassets(built, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A changed seed CSV: the model reading it through the source is stale too, and both are rebuilt.
    (built / "seeds/raw_items.csv").write_text("item_id,price\n1,10\n2,20\n3,30\n")
    assert {"raw_items", "shop.raw_items", "items"} <= set(stale(built))
    again = dbtassets(built, "sync")
    assert again.returncode == 0 and "Built 2 of 2 assets" in again.stdout, again.stdout + again.stderr
    assert stale(built) == {}
    assert dbtassets(built, "check").returncode == 0
    last = dbtassets(built, "sync")
    assert "Nothing to build" in last.stdout, last.stdout + last.stderr


def sync(project: Path, env: dict[str, str] | None = None, *options: str) -> str:
    result = run_cli("--project-dir", str(project), *options, "sync", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def rows(project: Path, sql: str) -> list[tuple[object, ...]]:
    import duckdb

    with duckdb.connect(str(project / "conv.duckdb"), read_only=True) as db:
        return db.execute(sql).fetchall()


def test_a_changed_var_makes_its_readers_stale_directly_or_through_a_package_macro(built: Path) -> None:
    edit(built / "dbt_project.yml", "min_amount: 5", "min_amount: 15")
    reasons = stale(built)
    assert set(reasons) == {"big_orders", "big_order_count"}, reasons
    assert "var('min_amount')" in reasons["big_orders"][0], reasons
    assert "Built 2 of 2 assets" in sync(built)
    assert rows(built, "select n from main.big_order_count") == [(1,)]
    assert stale(built) == {}

    edit(built / "dbt_project.yml", "helpers_zone: UTC", "helpers_zone: Europe/Paris")
    reasons = stale(built)
    assert set(reasons) == {"big_orders", "big_order_count"}, reasons
    assert "var('helpers_zone')" in reasons["big_orders"][0], reasons
    assert "Built 2 of 2 assets" in sync(built)
    assert rows(built, "select distinct zone from main.big_orders") == [("Europe/Paris",)]
    assert stale(built) == {}


def test_a_var_given_with_vars_makes_its_readers_stale_and_is_built_with(built: Path) -> None:
    given = ("--vars", "{min_amount: 15}")
    reasons = stale(built, None, *given)
    assert set(reasons) == {"big_orders", "big_order_count"}, reasons
    assert "var('min_amount')" in reasons["big_orders"][0], reasons
    assert "Built 2 of 2 assets" in sync(built, None, *given)  # dbt builds with them too
    assert rows(built, "select n from main.big_order_count") == [(1,)]
    assert stale(built, None, *given) == {}
    assert set(stale(built)) == {"big_orders", "big_order_count"}  # without them: dbt_project.yml's value again
    bad = run_cli("--project-dir", str(built), "--vars", "[1, 2]", "status")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--vars '[1, 2]' is not a mapping" in bad.stderr


def test_an_env_var_read_through_a_macro_makes_its_readers_stale(built: Path) -> None:
    env = {"CONV_MIN_TOTAL": "8"}
    reasons = stale(built, env)
    assert set(reasons) == {"paid_orders"}, reasons
    assert "CONV_MIN_TOTAL" in reasons["paid_orders"][0] and "'8'" not in reasons["paid_orders"][0], reasons
    assert "Built 1 of 1 asset" in sync(built, env)
    assert rows(built, "select count(*) from main.paid_orders") == [(2,)]
    assert stale(built, env) == {}
    assert set(stale(built)) == {"paid_orders"}  # unset again: its default, so not what was built


def test_an_env_var_in_the_profile_is_seen_by_the_first_status_and_sync(built: Path) -> None:
    env = {"CONV_SCHEMA": "other"}
    reasons = stale(built, env)
    assert set(reasons) == MODELS, reasons
    assert f"Built {len(MODELS)} of {len(MODELS)} assets" in sync(built, env)
    assert rows(built, "select count(*) from other.customers") == [(2,)]
    assert stale(built, env) == {}


def test_a_deleted_model_and_its_yaml_are_no_longer_listed(built: Path) -> None:
    (built / "models/customer_count.sql").unlink()
    (built / "models/_models.yml").unlink()
    listed = dbtassets(built, "assets", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert {a["name"] for a in json.loads(listed.stdout)["assets"]} == (MODELS - {"customer_count"}) | {"raw.orders"}
    assert stale(built) == {}
    again = dbtassets(built, "sync")
    assert again.returncode == 0 and "Nothing to build" in again.stdout, again.stdout + again.stderr


def test_a_moved_model_is_parsed_again_and_a_move_that_breaks_the_parse_fails_check(built: Path) -> None:
    (built / "models/views").mkdir()
    os.rename(built / "models/by_customer_count.sql", built / "models/views/by_customer_count.sql")  # mtime kept
    reasons = stale(built)
    assert set(reasons) == {"by_customer_count"}, reasons
    assert "configuration changed" in reasons["by_customer_count"][0], reasons
    assert "Built 1 of 1 asset" in sync(built)
    assert stale(built) == {}

    os.rename(built / "models/customers.sql", built / "models/customers.sql.bak")  # customer_count's ref breaks
    checked = dbtassets(built, "check")
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "dbt parse" in checked.stderr, checked.stderr


def test_an_incremental_model_through_three_landings_builds_incrementally_and_stays_fresh(built: Path) -> None:
    import duckdb

    (built / "models/orders_inc.sql").write_text(
        "{{ config(materialized='incremental', unique_key='order_id') }}\n"
        "select order_id, customer_id, amount from {{ ref('stg_orders') }}\n"
        "{% if is_incremental() %} where order_id > (select coalesce(max(order_id), 0) from {{ this }}) {% endif %}\n")
    first = dbtassets(built, "sync")
    assert first.returncode == 0, first.stdout + first.stderr
    assert stale(built) == {}
    for landing in range(3):
        with (built / "../data/orders.csv").open("a") as data:
            data.write(f"{10 + landing},3,{landing + 1}\n")
        synced = dbtassets(built, "sync", "--format", "json")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        plan = json.loads(synced.stdout)
        assert "orders_inc" in [a["name"] for a in plan["assets"]], plan["command"]
        assert "--full-refresh" not in plan["command"], (landing, plan["command"])
        assert stale(built) == {}, landing
    with duckdb.connect(str(built / "conv.duckdb"), read_only=True) as db:
        assert db.execute("select count(*) from orders_inc").fetchall() == [(6,)]


SELECT_STAR_CHAIN = {
    # dbt's standard style: import CTEs, one CTE per step, and `select * from` the last one.
    "models/stg_items.sql": "with source as (select * from {{ source('raw', 'orders') }}),\n"
                            "renamed as (select order_id, customer_id, amount from source)\n"
                            "select * from renamed\n",
    "models/int_items.sql": "with items as (select * from {{ ref('stg_items') }}),\n"
                            "final as (select *, amount > 10 as is_big from items)\n"
                            "select * from final\n",
    "models/big_items.sql": "select * from {{ ref('int_items') }} where is_big\n",
    "models/item_totals.sql": "select customer_id, sum(amount) as total from {{ ref('int_items') }}\n"
                              "group by customer_id\n",
}


def test_a_select_star_from_final_chain_passes_an_added_column_only_to_its_readers(built: Path) -> None:
    """A column appended to a `select * from renamed` staging model is a non-breaking change; the child
    that selects `*` from it gains the column and is itself non-breaking for its own children."""
    for name, text in SELECT_STAR_CHAIN.items():
        (built / name).write_text(text)
    synced = dbtassets(built, "sync")
    assert synced.returncode == 0 and "Built 4 of 4 assets" in synced.stdout, synced.stdout + synced.stderr
    edit(built / "models/stg_items.sql", "amount from source", "amount, amount * 2 as doubled from source")
    reasons = stale(built)
    assert set(reasons) == {"stg_items", "int_items", "big_items"}, reasons
    assert "non-breaking: added column `doubled`" in reasons["stg_items"][0]
    assert "(non-breaking: passes on its new column `doubled`)" in reasons["int_items"][0]
    synced = dbtassets(built, "sync")
    assert synced.returncode == 0 and "Built 3 of 3 assets" in synced.stdout, synced.stdout + synced.stderr
    assert stale(built) == {}  # item_totals, which does not read `doubled`, stays fresh after the rebuilds
