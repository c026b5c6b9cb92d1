"""``dbtassets watch`` on a real copy of example_project: real dbt, real DuckDB, real inotify."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli
from tests.watcher import WatchProcess

pytestmark = pytest.mark.slow

ORDERS_LINEAGE = {"stg_orders", "fact_sales", "dim_customer"}
EVERYTHING = {"country_codes", "stg_orders", "stg_customers", "fact_sales", "dim_customer", "customers_snapshot"}


def land(project: Path, name: str, first_id: int, rows: int = 2) -> None:
    """Land a batch of orders atomically, as ingest_orders.py does (write elsewhere, then rename)."""
    lines = ["order_id,customer_id,ordered_at,product,quantity,unit_price"]
    lines += [f"{first_id + i},1,2026-11-20 10:00:00,ink,1,7.25" for i in range(rows)]
    temporary = project / "data/raw/orders" / f".{name}.tmp"
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, project / "data/raw/orders" / name)


def built(event: dict[str, object]) -> set[str]:
    return set(event["built"])  # type: ignore[call-overload]


def test_new_orders_rebuild_exactly_the_orders_lineage_and_the_warehouse_is_free_between_builds(
        project_dir: Path) -> None:
    with WatchProcess(project_dir) as watcher:
        assert built(watcher.wait_for("build_finished")) == EVERYTHING

        # Idle: the warehouse file must be openable by another process, even read-write.
        with duckdb.connect(str(project_dir / "shopflow.duckdb")) as con:
            before = con.execute("select count(*) from fact_sales").fetchone()

        land(project_dir, "orders_a.csv", 100)
        event = watcher.wait_for("build_finished")
        assert built(event) == ORDERS_LINEAGE
        assert event["failed"] == {} and event["skipped"] == []
        with duckdb.connect(str(project_dir / "shopflow.duckdb"), read_only=True) as con:
            after = con.execute("select count(*) from fact_sales").fetchone()
        assert before is not None and after is not None and after[0] == before[0] + 2
        assert watcher.stop() == 0
    assert watcher.events[-1]["event"] == "stopped"


def test_a_burst_of_files_gives_one_build(project_dir: Path) -> None:
    with WatchProcess(project_dir) as watcher:
        watcher.wait_for("build_finished")
        for i in range(40):
            land(project_dir, f"orders_burst_{i:03d}.csv", 1000 + 10 * i)
        event = watcher.wait_for("build_finished")
        assert built(event) == ORDERS_LINEAGE
        new_data = [e for e in watcher.events if e["event"] == "new_data"]
        assert new_data[-1]["files"] == 41  # every file of the burst is in the one observation
        assert watcher.stop() == 0
    assert len(watcher.builds()) == 2  # the initial build and exactly one for the burst


def test_a_file_being_written_is_not_read_until_it_is_closed(project_dir: Path) -> None:
    with WatchProcess(project_dir) as watcher:
        watcher.wait_for("build_finished")
        path = project_dir / "data/raw/orders/orders_slow.csv"
        with path.open("w") as f:
            f.write("order_id,customer_id,ordered_at,product,quantity,unit_price\n")
            f.flush()
            watcher.wait_for("fresh")  # the watcher saw the write and found nothing complete to build
            f.write("500,1,2026-11-20 10:00:00,ink,1,7.25\n")
        event = watcher.wait_for("build_finished")
        assert built(event) == ORDERS_LINEAGE
        assert watcher.stop() == 0
    assert [e for e in watcher.events if e["event"] == "build_failed"] == []


def test_editing_a_model_rebuilds_it_and_its_dependents(project_dir: Path) -> None:
    with WatchProcess(project_dir) as watcher:
        watcher.wait_for("build_finished")
        model = project_dir / "models/staging/stg_customers.sql"
        model.write_text(model.read_text().replace("cc.country_name", "upper(cc.country_name) as country_name"))
        watcher.wait_for("parsed")
        event = watcher.wait_for("build_finished")
        assert built(event) == {"stg_customers", "dim_customer", "customers_snapshot"}
        assert watcher.stop() == 0


def test_a_failing_model_backs_off_and_recovers_after_the_fix(project_dir: Path) -> None:
    (project_dir / "dbtassets.yml").write_text("watch:\n  backoff_initial: 1s\n  backoff_max: 4s\n")
    model = project_dir / "models/marts/fact_sales.sql"
    good = model.read_text()
    model.write_text("select no_such_column from {{ ref('stg_orders') }}")
    with WatchProcess(project_dir) as watcher:
        first = watcher.wait_for("build_finished")
        assert "fact_sales" in first["failed"]
        assert first["retry_in"] == {"fact_sales": 1.0}
        second = watcher.wait_for("build_finished")
        assert set(second["failed"]) == {"fact_sales"} and built(second) == set()
        assert second["retry_in"] == {"fact_sales": 2.0}  # doubled, not a tight loop
        third = watcher.wait_for("build_finished")
        assert third["retry_in"] == {"fact_sales": 4.0}
        model.write_text(good)  # the fix retries at once, whatever the backoff says
        fixed = watcher.wait_for("build_finished", lambda e: "fact_sales" in e["built"])
        assert fixed["failed"] == {}
        assert watcher.stop() == 0
    attempts = [e for e in watcher.builds() if "fact_sales" in e["failed"]]
    assert len(attempts) == 3


def test_a_second_watcher_is_refused(project_dir: Path) -> None:
    with WatchProcess(project_dir) as watcher:
        watcher.wait_for("watching")
        second = run_cli("--project-dir", str(project_dir), "watch", "--format", "json")
        assert second.returncode == 2
        assert "already" in second.stderr and "watch" in second.stderr
        assert f"pid {watcher.process.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert watcher.stop() == 0


def test_sigterm_mid_build_finishes_records_and_exits_0(project_dir: Path) -> None:
    with WatchProcess(project_dir) as watcher:
        watcher.wait_for("build_started")
        assert watcher.stop(signal.SIGTERM) == 0
    kinds = [e["event"] for e in watcher.events]
    assert kinds.index("build_finished") < kinds.index("stopped")
    assert built(watcher.builds()[0]) == EVERYTHING
    with sqlite3.connect(project_dir / ".dbtassets/state.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        assert db.execute("select count(*) from runs where status = 'running'").fetchone() == (0,)
    db.close()
    status = json.loads(run_cli("--project-dir", str(project_dir), "status", "--format", "json").stdout)
    assert status["assets"] == []  # everything the interrupted watcher built is recorded and fresh
    # The lock went with the process: a new watcher starts at once.
    with WatchProcess(project_dir) as again:
        again.wait_for("fresh")
        assert again.stop() == 0


def test_report_from_another_process_triggers_a_build(project_dir: Path) -> None:
    with WatchProcess(project_dir) as watcher:
        watcher.wait_for("build_finished")
        reported = subprocess.run([sys.executable, "-m", "dbtassets", "--project-dir", str(project_dir), "report",
                                   "raw.customers"], capture_output=True, text=True)
        assert reported.returncode == 0, reported.stderr
        watcher.wait_for("reported", timeout=5)
        event = watcher.wait_for("build_finished")
        assert built(event) == {"stg_customers", "dim_customer", "customers_snapshot"}
        assert watcher.stop() == 0


def test_once_does_one_pass_and_exits(project_dir: Path) -> None:
    result = run_cli("--project-dir", str(project_dir), "watch", "--once", "--format", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events if e["event"] == "build_finished"] == ["build_finished"]
    assert set(events[-1]["built"]) == EVERYTHING


def test_once_on_an_up_to_date_project_finds_nothing_to_build_and_exits_0_in_text_mode(project_dir: Path) -> None:
    assert run_cli("--project-dir", str(project_dir), "sync").returncode == 0
    result = run_cli("--project-dir", str(project_dir), "watch", "--once")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "everything is fresh (8 assets)" in result.stdout


def test_text_mode_after_a_sync_answers_a_comment_edit_and_a_landing_and_stops_on_sigterm(project_dir: Path) -> None:
    assert run_cli("--project-dir", str(project_dir), "sync").returncode == 0
    with WatchProcess(project_dir, fmt="text") as watcher:
        watcher.wait_for("line", lambda e: "everything is fresh" in e["text"])
        model = project_dir / "models/marts/fact_sales.sql"
        model.write_text("-- a comment changes nothing that is built\n" + model.read_text())
        watcher.wait_for("line", lambda e: "re-parsed in" in e["text"])
        watcher.wait_for("line", lambda e: "everything is fresh" in e["text"])
        land(project_dir, "orders_text.csv", 700)
        watcher.wait_for("line", lambda e: "building 3 assets: dbt build --select stg_orders+" in e["text"])
        watcher.wait_for("line", lambda e: "built 3 assets" in e["text"])
        assert watcher.stop(signal.SIGTERM) == 0
        assert "Traceback" not in watcher.process.stderr.read()  # type: ignore[union-attr]
    assert watcher.events[-1]["text"].endswith("stopped")
