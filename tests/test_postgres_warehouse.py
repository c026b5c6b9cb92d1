"""example_project on a PostgreSQL warehouse (target ``pg``): real dbt-postgres, a real private server.

The raw tables are loaded by example_project/load_postgres.py and observed through
``loaded_at_field`` (raw.orders, zero-config) and a ``query`` watermark (raw.customers: dbt's
``loaded_at_query`` in example_project, or ``query:`` in dbtassets.yml); nothing DuckDB is involved.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, REPO, dbtassets
from tests.pg import PASSWORD, USER, PostgresServer

pytestmark = pytest.mark.slow

_SKIP = shutil.ignore_patterns("target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal", "__pycache__")


def pg_env(server: PostgresServer, database: str) -> dict[str, str]:
    return {"SHOPFLOW_PG_HOST": "127.0.0.1", "SHOPFLOW_PG_PORT": str(server.port), "SHOPFLOW_PG_USER": USER,
            "SHOPFLOW_PG_PASSWORD": PASSWORD, "SHOPFLOW_PG_DBNAME": database, "DBT_TARGET": "pg"}


def load(project: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(project / "load_postgres.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=project)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def pg_project(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of example_project whose target is ``pg``, on a fresh database with the raw batches loaded."""
    project = tmp_path / "shopflow"
    shutil.copytree(EXAMPLE, project, ignore=_SKIP)
    for name, value in pg_env(postgres, postgres.database("shopflow")).items():
        monkeypatch.setenv(name, value)
    load(project)
    subprocess.run([sys.executable, "-m", "dbt.cli.main", "parse", "--profiles-dir", str(project),
                    "--project-dir", str(project)], cwd=project, check=True, capture_output=True, timeout=300)
    yield project


def statuses(project: Path, *options: str) -> dict[str, tuple[str, list[str]]]:
    result = dbtassets(project, "status", "--all", "--format", "json", *options)
    assert result.returncode == 0, result.stderr
    return {a["name"]: (a["status"], [r["code"] for r in a["reasons"]]) for a in json.loads(result.stdout)["assets"]}


def fact_sales_rows(server: PostgresServer) -> int:
    ((count,),) = server.query(os.environ["SHOPFLOW_PG_DBNAME"], "select count(*) from analytics.fact_sales")
    return int(count)  # type: ignore[call-overload]


def test_the_core_loop_runs_on_a_postgres_warehouse_observed_through_loaded_at_field(
        pg_project: Path, postgres: PostgresServer) -> None:
    observed = dbtassets(pg_project, "observe", "--format", "json")
    assert observed.returncode == 0, observed.stderr
    kinds = {o["name"]: (o["observer"], o["error"]) for o in json.loads(observed.stdout)["observations"]}
    assert kinds == {"raw.orders": ("query", None), "raw.customers": ("query", None)}  # loaded_at_field, _query

    built = dbtassets(pg_project, "sync")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Built 6 of 6 assets" in built.stdout
    assert fact_sales_rows(postgres) == 6
    assert {s for s, _ in statuses(pg_project).values()} == {"fresh"}

    # A loader run moves max(_loaded_at) of raw.orders: exactly the orders lineage is stale.
    assert "loaded orders/orders_" in load(pg_project, "--orders", "3")
    # Within its every: (60 s) a query source keeps its last reading; --observe reads it now.
    assert {s for s, _ in statuses(pg_project).values()} == {"fresh"}
    stale = {name: codes for name, (status, codes) in statuses(pg_project, "--observe").items() if status != "fresh"}
    assert stale == {"stg_orders": ["upstream_updated"], "fact_sales": ["upstream_stale"],
                     "dim_customer": ["upstream_stale"]}
    again = dbtassets(pg_project, "sync")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Built 3 of 3 assets" in again.stdout
    assert fact_sales_rows(postgres) == 9


@pytest.mark.parametrize("declared", [False, True], ids=["example-loaded-at-query", "dbtassets-yml-query"])
def test_a_query_watermark_observes_a_postgres_source(pg_project: Path, declared: bool) -> None:
    # example_project's own: raw.customers' loaded_at_query reads the loader's ledger of batches.
    if declared:  # the same kind of watermark, declared in dbtassets.yml instead
        (pg_project / "dbtassets.yml").write_text(
            "sources:\n  raw.customers:\n    query: select count(*) || '@' || max(_loaded_at) from raw.customers\n")
    assert dbtassets(pg_project, "sync").returncode == 0
    batch = pg_project / "data/raw/customers/customers_0002.csv"
    batch.write_text("customer_id,name,country_code\n1,Ada Lovelace,GB\n7,Edsger Dijkstra,NL\n")
    load(pg_project)
    stale = {name: codes for name, (status, codes) in statuses(pg_project, "--observe").items() if status != "fresh"}
    assert stale == {"stg_customers": ["upstream_updated"], "dim_customer": ["upstream_stale"],
                     "customers_snapshot": ["upstream_stale"]}
    assert dbtassets(pg_project, "observe").returncode == 0  # status read it in memory; a writer records it
    observed = json.loads(dbtassets(pg_project, "why", "raw.customers", "--format", "json").stdout)
    assert observed["observed"]["kind"] == "query"
    watermark = observed["observed"]["watermark"]
    assert watermark.startswith("2@") if declared else watermark == "customers/customers_0002.csv"


def test_the_loader_says_in_one_line_when_it_cannot_connect(tmp_path: Path, postgres: PostgresServer) -> None:
    env = {**os.environ, **pg_env(postgres, "postgres"), "SHOPFLOW_PG_PASSWORD": "wrong"}
    done = subprocess.run([sys.executable, str(EXAMPLE / "load_postgres.py"), "--raw", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1
    assert done.stderr.startswith("cannot load into PostgreSQL: ")
    assert "password authentication failed" in done.stderr
    assert len(done.stderr.splitlines()) == 1
