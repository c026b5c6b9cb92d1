"""A failing data test holds what would read the data it rejected: every model it read, with real dbt.

A relationships test on ``stg_order_items`` reads ``stg_orders`` too. When a change to ``stg_orders``
makes it fail, ``dbt build`` skips ``order_items`` (it reads both); the next sync must not build it
either, though the test is attached to ``stg_order_items``, which ``order_items`` has already read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.statuses import ReasonCode, Status
from tests.tiny import write, write_project

STG_ORDERS, ORDER_ITEMS = UniqueId("model.tiny.stg_orders"), UniqueId("model.tiny.order_items")
RELATIONSHIPS = """version: 2
models:
  - name: stg_order_items
    columns:
      - name: order_id
        data_tests:
          - relationships:
              arguments:
                to: ref('stg_orders')
                field: order_id
"""
FILES = {
    "seeds/raw_orders.csv": "order_id,amount\n1,10\n2,20\n",
    "seeds/raw_items.csv": "item_id,order_id\n1,1\n2,2\n",
    "models/stg_orders.sql": "select order_id, amount from {{ ref('raw_orders') }}\n",
    "models/stg_order_items.sql": "select item_id, order_id from {{ ref('raw_items') }}\n",
    "models/order_items.sql": "select i.item_id, o.order_id, o.amount from {{ ref('stg_order_items') }} as i "
                              "join {{ ref('stg_orders') }} as o on o.order_id = i.order_id\n",
    "models/schema.yml": RELATIONSHIPS,
}


@pytest.mark.slow
def test_a_failing_relationships_test_holds_what_reads_the_model_it_points_to(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", FILES)
    with Project(Options(directory)) as project:
        assert project.sync().ok
        (check,) = project.manifest.checks.values()
        assert set(check.reads) == {STG_ORDERS, UniqueId("model.tiny.stg_order_items")}  # dbt's depends_on
    write(directory, {"models/stg_orders.sql": "select order_id, amount from {{ ref('raw_orders') }} "
                                               "where order_id > 1\n"})
    with Project(Options(directory)) as project:
        result = project.sync()
        assert list(result.failed_checks) == [check.unique_id]
        assert ORDER_ITEMS not in result.built  # dbt build skipped it: the test it waits on failed

    with Project(Options(directory)) as project:
        status = project.status().statuses[ORDER_ITEMS]
        assert status.status is Status.STALE and status.held
        (hold,) = [r for r in status.reasons if r.code is ReasonCode.UPSTREAM_CHECK_FAILED]
        assert hold.upstream == STG_ORDERS and check.name in hold.message, hold
        plan = project.plan()
        assert ORDER_ITEMS not in plan.to_build, plan.command
        assert ORDER_ITEMS not in project.sync().built

    # Fixed upstream: the test passes and order_items is built from the data it approved.
    write(directory, {"models/stg_orders.sql": FILES["models/stg_orders.sql"]})
    with Project(Options(directory)) as project:
        result = project.sync()
        assert result.ok and ORDER_ITEMS in result.built, result.plan.command
        assert not project.status().needing_build()
