"""Progress on a terminal: dbt's output boiled down to the phase and one line per finished node."""

from __future__ import annotations

from dbtassets.building.progress import DbtProgress

DBT_OUTPUT = [  # as `dbt build` writes it to a pipe (colours included)
    "\x1b[0m17:26:45  Running with dbt=1.11.16",
    "\x1b[0m17:26:54  Found 5 models, 1 snapshot, 10 data tests, 1 seed, 2 sources, 512 macros",
    "\x1b[0m17:26:54  1 of 11 START sql table model main.stg_orders .................................. [RUN]",
    "\x1b[0m17:26:54  1 of 11 OK created sql table model main.stg_orders ............................. "
    "[\x1b[32mOK\x1b[0m in 0.23s]",
    "\x1b[0m17:26:55  4 of 11 PASS unique_stg_orders_order_id ........................................ "
    "[\x1b[32mPASS\x1b[0m in 0.09s]",
    "\x1b[0m17:26:55  5 of 11 ERROR creating sql table model main.dim_customer ....................... "
    "[\x1b[31mERROR\x1b[0m in 0.03s]",
    "\x1b[0m17:26:55  7 of 11 SKIP test not_null_dim_customer_customer_id ............................ "
    "[\x1b[33mSKIP\x1b[0m]",
    "  Catalog Error: Table with name stg_customers does not exist!",
    "\x1b[0m17:26:55  Done. PASS=8 WARN=0 ERROR=1 SKIP=2 NO-OP=0 TOTAL=11",
]


def test_dbt_output_becomes_the_phase_and_one_line_per_finished_node() -> None:
    shown: list[str] = []
    progress = DbtProgress(shown.append)
    progress.command("dbt parse")  # the engine says why it parses
    progress.command("dbt build --select stg_orders+")
    for line in DBT_OUTPUT:
        progress.line(line)
    assert shown == [
        "running dbt build --select stg_orders+",
        "  Found 5 models, 1 snapshot, 10 data tests, 1 seed, 2 sources, 512 macros",
        "  1 of 11 ok    sql table model main.stg_orders [OK in 0.23s]",
        "  4 of 11 pass  unique_stg_orders_order_id [PASS in 0.09s]",
        "  5 of 11 error sql table model main.dim_customer [ERROR in 0.03s]",
        "  7 of 11 skip  test not_null_dim_customer_customer_id [SKIP]",
        "  Done. PASS=8 WARN=0 ERROR=1 SKIP=2 NO-OP=0 TOTAL=11",
    ]
