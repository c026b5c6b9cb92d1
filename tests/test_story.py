"""The README's loop, end to end: real dbt, real DuckDB, the real CLI in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import dbtassets

pytestmark = pytest.mark.slow

ORDERS_DOWNSTREAM = {"stg_orders", "fact_sales", "dim_customer"}


def stale_names(project: Path) -> dict[str, list[str]]:
    result = dbtassets(project, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {a["name"]: [r["code"] for r in a["reasons"]] for a in json.loads(result.stdout)["assets"]}


def land_orders(project: Path) -> None:
    subprocess.run([sys.executable, str(project / "ingest_orders.py"), "--rows", "3", "--seed", "1"], check=True,
                   capture_output=True)


def test_the_core_loop(project_dir: Path) -> None:
    # Nothing was ever built: every buildable asset is missing, sources are observed and fresh.
    first = stale_names(project_dir)
    assert set(first) == {"country_codes", "stg_orders", "stg_customers", "fact_sales", "dim_customer",
                          "customers_snapshot"}
    assert all("never_materialized" in codes for codes in first.values())

    built = dbtassets(project_dir, "sync")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Built 6 of 6 assets" in built.stdout
    assert stale_names(project_dir) == {}
    assert dbtassets(project_dir, "check").returncode == 0

    # A new batch of orders makes exactly the orders lineage stale; customers stay fresh.
    land_orders(project_dir)
    stale = stale_names(project_dir)
    assert set(stale) == ORDERS_DOWNSTREAM
    assert stale["stg_orders"] == ["upstream_updated"]
    assert stale["fact_sales"] == ["upstream_stale"]

    why = dbtassets(project_dir, "why", "fact_sales")
    assert why.returncode == 0
    lines = why.stdout.splitlines()
    assert lines[0] == "fact_sales (model) is stale"
    assert "upstream stg_orders is stale" in lines[1]
    assert lines[2].strip() == "stg_orders (model) is stale"
    assert "upstream raw.orders updated: new data observed at" in lines[3]
    assert lines[4].strip().startswith("raw.orders (source) is fresh: last new data observed at")
    assert "(2 files, newest data/raw/orders/orders_" in lines[4]

    why_json = json.loads(dbtassets(project_dir, "why", "fact_sales", "--format", "json").stdout)
    cause = why_json["reasons"][0]["cause"]
    assert cause["name"] == "stg_orders"
    assert cause["reasons"][0]["cause"]["name"] == "raw.orders"

    check = dbtassets(project_dir, "check", "--format", "github")
    assert check.returncode == 1
    annotations = [line for line in check.stdout.splitlines() if line.startswith("::error")]
    assert len(annotations) == 3
    assert annotations[0].startswith("::error file=models/staging/stg_orders.sql,title=stg_orders is stale::")

    dry = dbtassets(project_dir, "sync", "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.splitlines()[-1] == "dbt build --select stg_orders+"
    assert set(stale_names(project_dir)) == ORDERS_DOWNSTREAM  # the dry run built nothing

    rows_before = _count(project_dir, "fact_sales")
    synced = dbtassets(project_dir, "sync", "--format", "json")
    assert synced.returncode == 0, synced.stderr
    document = json.loads(synced.stdout)
    assert {a["name"]: a["outcome"] for a in document["assets"]} == dict.fromkeys(ORDERS_DOWNSTREAM, "success")
    assert document["command"] == "dbt build --select stg_orders+"
    assert _count(project_dir, "fact_sales") == rows_before + 3
    assert stale_names(project_dir) == {}

    history = json.loads(dbtassets(project_dir, "history", "fact_sales", "--format", "json").stdout)
    runs = history["materializations"]
    assert [m["status"] for m in runs] == ["success", "success"]
    assert runs[0]["run_id"] > runs[1]["run_id"]
    assert list(runs[0]["inputs"]) == ["model.shopflow.stg_orders"]
    assert runs[0]["inputs"]["model.shopflow.stg_orders"]["data_version"] != \
        runs[1]["inputs"]["model.shopflow.stg_orders"]["data_version"]

    mermaid = dbtassets(project_dir, "lineage", "fact_sales", "--upstream", "--format", "mermaid").stdout
    assert mermaid.splitlines()[:4] == ["graph LR", '    n0["raw.orders"]', '    n1["stg_orders"]',
                                        '    n2["fact_sales"]']

    # A loader reports a push-style load; the customers lineage goes stale, orders does not.
    reported = dbtassets(project_dir, "report", "raw.customers")
    assert reported.returncode == 0
    assert set(stale_names(project_dir)) == {"stg_customers", "dim_customer", "customers_snapshot"}


def test_a_failing_model_stays_stale_and_sync_exits_1(project_dir: Path) -> None:
    assert dbtassets(project_dir, "sync").returncode == 0
    (project_dir / "models/marts/fact_sales.sql").write_text("select no_such_column from {{ ref('stg_orders') }}")
    land_orders(project_dir)

    failed = dbtassets(project_dir, "sync")
    assert failed.returncode == 1
    assert "failed  fact_sales" in failed.stdout
    assert f"dbt log: {project_dir / 'logs' / 'dbt.log'}" in failed.stdout
    assert "dbt build --select stg_orders+" in failed.stdout
    stale = stale_names(project_dir)
    assert set(stale) == {"fact_sales"}  # stg_orders and dim_customer were rebuilt
    assert stale["fact_sales"] == ["code_changed", "upstream_updated", "last_build_failed"]


def test_a_failing_data_test_fails_its_check_and_holds_what_is_downstream(project_dir: Path) -> None:
    assert dbtassets(project_dir, "sync").returncode == 0
    batch = project_dir / "data/raw/orders/orders_dup.csv"
    batch.write_text("order_id,customer_id,ordered_at,product,quantity,unit_price\n"
                     "1,1,2026-11-05 10:00:00,ink,1,7.25\n")  # order_id 1 again: unique test fails

    failed = dbtassets(project_dir, "sync", "--format", "json")
    assert failed.returncode == 1
    document = json.loads(failed.stdout)
    outcomes = {a["name"]: a["outcome"] for a in document["assets"]}
    # stg_orders was built (its table holds the duplicate); its check failed; dbt skipped what reads it.
    assert outcomes == {"stg_orders": "success", "fact_sales": "skipped", "dim_customer": "skipped"}
    assert list(document["failed_checks"].values()) == [
        "data test unique_stg_orders_order_id failed: Got 1 result, configured to fail if != 0"]
    stale = stale_names(project_dir)
    assert stale["stg_orders"] == ["check_failed"]
    assert stale["fact_sales"] == ["upstream_updated", "upstream_check_failed"]  # held, not rebuilt
    assert dbtassets(project_dir, "sync").stdout == ("Nothing due to build.\n2 stale assets held until a failing "
                                                     "check upstream passes (dim_customer, fact_sales)\n")

    batch.unlink()
    assert dbtassets(project_dir, "sync").returncode == 0
    assert stale_names(project_dir) == {}


def test_extra_dbt_flags_pass_through(project_dir: Path) -> None:
    result = dbtassets(project_dir, "sync", "--dry-run", "-s", "stg_orders", "--", "--threads", "1")
    assert result.stdout.splitlines()[-1] == "dbt build --select stg_orders --threads 1"


def test_query_observer_runs_through_the_dbt_profile(project_dir: Path) -> None:
    (project_dir / "dbtassets.yml").write_text(
        "sources:\n"
        "  raw.customers:\n"
        "    query: select count(*) from read_csv('data/raw/customers/*.csv')\n"
        "    every: 30s\n"
    )
    observed = json.loads(dbtassets(project_dir, "observe", "--format", "json").stdout)["observations"]
    by_name = {o["name"]: o for o in observed}
    assert by_name["raw.customers"]["observer"] == "query"
    assert by_name["raw.customers"]["detail"] == {"watermark": "6"}
    assert by_name["raw.orders"]["observer"] == "files"

    (project_dir / "dbtassets.yml").write_text(
        "sources:\n  raw.customers:\n    query: select max(nope) from nowhere\n")
    bad = dbtassets(project_dir, "observe")
    assert bad.returncode == 2
    assert "raw.customers" in bad.stdout and "query failed" in bad.stdout
    # The database's own error, inline, not only in logs/dbt.log
    assert "Catalog Error: Table with name nowhere does not exist!" in bad.stdout, bad.stdout


def _count(project: Path, table: str) -> int:
    with duckdb.connect(str(project / "shopflow.duckdb"), read_only=True) as con:
        row = con.execute(f"select count(*) from {table}").fetchone()
    assert row is not None
    return int(row[0])
