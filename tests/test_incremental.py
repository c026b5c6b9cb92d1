"""What a build leaves in rows it does not rewrite: incremental models and snapshots, with real dbt.

The unit rules (which assets need ``--full-refresh`` and how a build is split) are in
test_refresh.py; this is the proof on a real project that "fresh" means every row holds the
current logic, or says which rows do not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.staleness import ReasonCode, Status
from tests.tiny import dbt, rows, write, write_project

SEED = "order_id,status,order_total\n1,placed,10\n2,shipped,20\n"
INCREMENTAL = """{{{{ config(materialized='incremental', unique_key='order_id'{extra}) }}}}
select order_id, status, order_total * {factor} as total from {{{{ ref('raw_orders') }}}}
{{% if is_incremental() %}} where order_id > (select max(order_id) from {{{{ this }}}}) {{% endif %}}
"""
SNAPSHOT = """{{% snapshot orders_snapshot %}}
{{{{ config(unique_key='order_id', strategy='check', check_cols=['status']) }}}}
select order_id, status{extra} from {{{{ ref('raw_orders') }}}}
{{% endsnapshot %}}
"""
KEPT = ", meta={'dbtassets': {'full_refresh': false}}"


def files(factor: int, snapshot_extra: str = "") -> dict[str, str]:
    return {
        "seeds/raw_orders.csv": SEED,
        "models/orders.sql": INCREMENTAL.format(extra="", factor=factor),
        "models/orders_kept.sql": INCREMENTAL.format(extra=KEPT, factor=factor),
        "models/order_count.sql": "select count(*) as n, sum(total) as total from {{ ref('orders') }}\n",
        "snapshots/orders_snapshot.sql": SNAPSHOT.format(extra=snapshot_extra),
    }


def messages(project: Project, name: str) -> dict[ReasonCode, str]:
    status = project.status().statuses[UniqueId(f"model.tiny.{name}" if "snapshot" not in name
                                                 else f"snapshot.tiny.{name}")]
    return {r.code: r.message for r in status.reasons}


@pytest.mark.slow
def test_a_code_change_fully_refreshes_an_incremental_model_unless_it_opted_out(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", files(factor=1))
    with Project(Options(directory)) as project:
        assert project.sync().ok
    # New rows land and the logic changes: `* 1` → `* 2` in both models, a new column in the snapshot.
    write(directory, {**files(factor=2, snapshot_extra=", 'v2' as version"),
                      "seeds/raw_orders.csv": SEED + "3,placed,30\n"})
    with Project(Options(directory)) as project:
        assert "an incremental model: rebuilt with a full refresh" in messages(project, "orders")[
            ReasonCode.CODE_CHANGED]
        assert ("meta dbtassets.full_refresh: false: rows built before this change will keep the old logic"
                in messages(project, "orders_kept")[ReasonCode.CODE_CHANGED])
        assert ("a snapshot is never fully refreshed: its history before this change comes from the old code"
                in messages(project, "orders_snapshot")[ReasonCode.CODE_CHANGED])
        result = project.sync()
        assert result.ok, result
        # Only orders (and what reads it) ran with --full-refresh: orders_kept's old rows must stay.
        assert result.plan.command == ("dbt build --select raw_orders orders_kept+ orders_snapshot+ && "
                                       "dbt build --select orders+ --full-refresh")
    assert rows(directory, "select order_id, total from orders order by 1") == [(1, 20), (2, 40), (3, 60)]
    assert rows(directory, "select order_id, total from orders_kept order by 1") == [(1, 10), (2, 20), (3, 60)]
    assert rows(directory, "select n, total from order_count") == [(3, 120)]

    # Fresh now, and said truthfully; it stays so across dbt's own parse and compile and a second sync.
    for step in ("parse", "compile", "sync"):
        if step in ("parse", "compile"):
            dbt(directory, step)
        with Project(Options(directory)) as project:
            report = project.status()
            assert not report.needing_build(), (step, [report.statuses[u] for u in report.needing_build()])
            assert messages(project, "orders") == {}
            kept = messages(project, "orders_kept")
            assert list(kept) == [ReasonCode.OLD_ROWS_KEPT] and "keep the old logic" in kept[ReasonCode.OLD_ROWS_KEPT]
            history = messages(project, "orders_snapshot")[ReasonCode.OLD_ROWS_KEPT]
            assert "its history before" in history and "was recorded by older code" in history
            if step == "sync":
                assert project.sync().plan.to_build == []
    assert report.statuses[UniqueId("model.tiny.orders_kept")].status is Status.FRESH


ORDERS_INC = """{{ config(materialized='incremental', unique_key='order_id') }}
select order_id, customer_id, amount from {{ ref('fact_sales') }}
{% if is_incremental() %} where order_id > (select coalesce(max(order_id), 0) from {{ this }}) {% endif %}
"""


@pytest.mark.slow
def test_new_rows_alone_never_fully_refresh_an_incremental_model(project_dir: Path) -> None:
    """An incremental build renders ``is_incremental()`` true and a first build false: neither is a code change."""
    orders_inc = UniqueId("model.shopflow.orders_inc")
    write(project_dir, {"models/marts/orders_inc.sql": ORDERS_INC})
    with Project(Options(project_dir)) as project:
        assert project.sync().ok
        first = project.store.view().last_success[orders_inc].code_version

    def count() -> int:
        with duckdb.connect(str(project_dir / "shopflow.duckdb"), read_only=True) as db:
            return int(db.execute("select count(*) from orders_inc").fetchall()[0][0])

    for landing in range(3):
        before = count()
        subprocess.run([sys.executable, str(project_dir / "ingest_orders.py"), "--rows", "4", "--seed", str(landing)],
                       check=True, capture_output=True)
        with Project(Options(project_dir)) as project:
            result = project.sync()
            assert result.ok, result
            assert orders_inc in result.built and "--full-refresh" not in result.plan.command, result.plan.command
            report = project.status()
            assert not report.needing_build(), (landing, {u: [r.message for r in report.statuses[u].reasons]
                                                          for u in report.needing_build()})
            assert project.store.view().last_success[orders_inc].code_version == first
        assert count() == before + 4

    # A comment and some spacing: the same logic, so no rebuild at all, let alone a full refresh.
    write(project_dir, {"models/marts/orders_inc.sql": "-- each order once, kept as it arrived\n"
                        + ORDERS_INC.replace("select order_id,", "select\n    order_id,")})
    with Project(Options(project_dir)) as project:
        report = project.status()
        assert [r.message for r in report.statuses[orders_inc].reasons] == []
        assert project.sync().plan.to_build == []


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def incremental_model(columns: str) -> str:
    return ("{{ config(materialized='incremental', unique_key='order_id') }}\n"
            f"select order_id, {columns}, {{{{ line_amount('quantity', 'unit_price') }}}} as amount\n"
            "from {{ ref('stg_orders') }}\n"
            "{% if is_incremental() %} where order_id > (select max(order_id) from {{ this }}) {% endif %}\n")


@pytest.mark.slow
def test_a_macro_change_fully_refreshes_the_incremental_models_that_call_it_once(project_dir: Path) -> None:
    models = {"orders_by_product": "product", "orders_by_customer": "customer_id"}
    write(project_dir, {f"models/marts/{name}.sql": incremental_model(columns) for name, columns in models.items()})
    ids = [UniqueId(f"model.shopflow.{name}") for name in models]
    with Project(Options(project_dir)) as project:
        assert project.sync().ok
    subprocess.run([sys.executable, str(project_dir / "ingest_orders.py"), "--rows", "2", "--seed", "1"],
                   check=True, capture_output=True)
    with Project(Options(project_dir)) as project:
        assert "--full-refresh" not in project.sync().plan.command
    macro = project_dir / "macros/line_amount.sql"
    # Layout inside the macro: every model calling it compiles to the same SQL as before.
    edit(macro, "-%}\n    cast(", "-%}\n        cast( ")
    with Project(Options(project_dir)) as project:
        assert project.sync().plan.to_build == []
    # Logic: both incremental models are fully refreshed by the one sync, and are fresh after it.
    edit(macro, "decimal(12, 2)", "decimal(14, 3)")
    with Project(Options(project_dir)) as project:
        result = project.sync()
        assert result.ok and set(ids) <= set(result.built)
        assert result.plan.command.endswith("--full-refresh"), result.plan.command
        report = project.status()
        assert not report.needing_build(), {u: [r.message for r in report.statuses[u].reasons]
                                            for u in report.needing_build()}
    subprocess.run([sys.executable, str(project_dir / "ingest_orders.py"), "--rows", "2", "--seed", "2"],
                   check=True, capture_output=True)
    with Project(Options(project_dir)) as project:
        result = project.sync()
        assert result.ok and set(ids) <= set(result.built) and "--full-refresh" not in result.plan.command
        assert not project.status().needing_build()
