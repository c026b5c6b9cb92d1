"""Readers never write: the commands that answer questions leave the state store they read as it was.

``status``, ``check``, ``why`` and the rest observe the sources and compute code versions as writers
do, but keep what they found in memory (:mod:`dbtassets.state.readonly`): their answer shows a
landing as stale, and the store's bytes do not move. A ``--state`` that does not exist is an error.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dbtassets.engine import Options, Project
from dbtassets.errors import StateError
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.statuses import ReasonCode, Status
from dbtassets.state.backends import Location, backend_for
from dbtassets.state.store import StateStore
from tests.conftest import SHOPFLOW_SQL, FakeClock, FakeRunner, dbtassets

STG_ORDERS = UniqueId("model.shopflow.stg_orders")
FACT = UniqueId("model.shopflow.fact_sales")
ORDERS = UniqueId("source.shopflow.raw.orders")
TABLES = ("migrations", "runs", "materializations", "observations", "fingerprints", "compiled_sql", "check_results",
          "leases")


def store_files(state: Path) -> dict[str, str | None]:
    """The SQLite store's files (the database, its -wal and -shm) and the sha256 of each; None if absent."""
    return {suffix: hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
            for suffix in ("", "-wal", "-shm") for path in [Path(f"{state}{suffix}")]}


def store_rows(location: str, tables: tuple[str, ...] = TABLES) -> dict[str, list[Any]]:
    """Every row of every table, read on a plain connection (nothing migrated; works on both backends)."""
    db = backend_for(Location.parse(location)).connect()
    try:
        return {table: sorted(map(repr, db.execute(f"SELECT * FROM {table}").fetchall())) for table in tables}
    finally:
        db.close()


def land(project_dir: Path) -> None:
    (project_dir / "data/raw/orders/orders_landed.csv").write_text(
        "order_id,customer_id,ordered_at,product,quantity,unit_price\n901,1,2026-11-20 10:00:00,ink,1,7.25\n")


def reader(project_dir: Path, location: str, runner: FakeRunner) -> Project:
    project = Project(Options(project_dir, state_path=location, read_only=True), runner=runner, clock=FakeClock())
    runner.project = project
    return project


def test_status_observes_in_memory_and_leaves_the_store_as_it_was(project_dir: Path, state_location: str) -> None:
    runner = FakeRunner(compiled=dict(SHOPFLOW_SQL))
    with Project(Options(project_dir, state_path=state_location), runner=runner, clock=FakeClock()) as writer:
        runner.project = writer
        assert writer.sync().ok
        # A code change the reader must compile and fingerprint: writers cache that in the store.
        runner.edit("fact_sales", SHOPFLOW_SQL["fact_sales"].replace("amount\n", "amount, 1 as one\n"))
    land(project_dir)
    before, files = store_rows(state_location), store_files(Path(state_location))
    with reader(project_dir, state_location, runner) as project:
        statuses = project.status().statuses
        assert statuses[STG_ORDERS].status is Status.STALE  # the landing, observed in memory
        assert [r.code for r in statuses[STG_ORDERS].reasons] == [ReasonCode.UPSTREAM_UPDATED]
        assert ReasonCode.CODE_CHANGED in [r.code for r in statuses[FACT].reasons]
        assert runner.compiles  # it did compile the changed model, and fingerprinted it
        assert project.why("stg_orders").status.status is Status.STALE
        assert project.store.observation_history(ORDERS, 1)[0][2] == "files"
    assert store_rows(state_location) == before  # no observation, no fingerprint, no migration written
    assert store_files(Path(state_location)) == files  # SQLite: no -wal or -shm left behind either


def test_a_reader_beside_a_writer_leaves_the_writers_wal_files_to_it(project_dir: Path) -> None:
    state = project_dir / "state.db"
    runner = FakeRunner()
    with Project(Options(project_dir, state_path=str(state)), runner=runner, clock=FakeClock()) as writer:
        runner.project = writer
        writer.sync()
        assert all(Path(f"{state}{suffix}").exists() for suffix in ("-wal", "-shm"))  # the writer has it open
        with reader(project_dir, str(state), FakeRunner()) as project:
            assert project.status(observe=False).statuses[STG_ORDERS].status is Status.FRESH
        assert all(Path(f"{state}{suffix}").exists() for suffix in ("-wal", "-shm"))
        land(project_dir)
        runner.project = writer
        assert writer.sync().built  # the writer goes on writing


def test_a_reader_gives_the_answer_a_writer_gives(project_dir: Path) -> None:
    runner = FakeRunner(compiled=dict(SHOPFLOW_SQL))
    state = str(project_dir / "elsewhere.db")
    with Project(Options(project_dir, state_path=state), runner=runner, clock=FakeClock()) as writer:
        runner.project = writer
        writer.sync()
        land(project_dir)
        with reader(project_dir, state, runner) as project:
            read = {uid: (s.status, [r.code for r in s.reasons]) for uid, s in project.status().statuses.items()}
        runner.project = writer
        written = {uid: (s.status, [r.code for r in s.reasons]) for uid, s in writer.status().statuses.items()}
    assert read == written
    assert read[STG_ORDERS][0] is Status.STALE


def test_a_store_an_older_dbtassets_wrote_is_read_upgraded_in_memory_or_refused_and_left_alone(
        project_dir: Path, state_location: str) -> None:
    """The day dbtassets is upgraded, a CI gate reading production's SQLite store keeps answering (an upgraded
    copy, in memory); a PostgreSQL store cannot be copied, so the reader says to run a writer once."""
    runner = FakeRunner(compiled=dict(SHOPFLOW_SQL))
    with Project(Options(project_dir, state_path=state_location), runner=runner, clock=FakeClock()) as writer:
        runner.project = writer
        assert writer.sync().ok
    with StateStore.open(state_location, default_target="t") as store, store.transaction() as db:
        for name in ("0011_lateness_said", "0010_watcher_heartbeats", "0009_materialization_relation"):
            db.execute(f"DELETE FROM migrations WHERE name = '{name}'")
        db.execute("DROP TABLE lateness_said")
        db.execute("DROP TABLE watchers")
        db.execute("ALTER TABLE materializations DROP COLUMN relation_name")
    before = store_rows(state_location, ("materializations", "observations", "migrations"))
    if state_location.startswith("postgresql"):
        with reader(project_dir, state_location, FakeRunner()) as project, pytest.raises(StateError) as error:
            project.status()
        assert "older dbtassets" in str(error.value) and "0009_materialization_relation" in str(error.value)
        assert "`dbtassets sync`" in str(error.value)
    else:
        with reader(project_dir, state_location, FakeRunner(compiled=dict(SHOPFLOW_SQL))) as project:
            statuses = project.status().statuses
        assert statuses[UniqueId("model.shopflow.fact_sales")].status is Status.FRESH  # its builds were read
    assert store_rows(state_location, ("materializations", "observations", "migrations")) == before


def test_a_projects_default_store_that_does_not_exist_yet_reads_as_empty_and_is_not_made(project_dir: Path) -> None:
    with Project(Options(project_dir, read_only=True), runner=FakeRunner(), clock=FakeClock()) as project:
        project.runner.project = project  # type: ignore[attr-defined]
        statuses = project.status().statuses
    assert statuses[STG_ORDERS].status is Status.MISSING
    assert not (project_dir / ".dbtassets" / "state.db").exists()


READERS = [["status"], ["status", "--format", "json"], ["check"], ["why", "stg_orders"], ["lineage", "stg_orders"],
           ["history", "stg_orders"], ["assets"], ["lint"], ["savings"]]


@pytest.mark.parametrize("where", ["missing/state.db", "missing-dir"])
def test_a_reader_pointed_at_a_state_that_does_not_exist_exits_2_and_creates_nothing(project_dir: Path,
                                                                                     where: str) -> None:
    state = project_dir / where
    for command in (["status"], ["check"], ["history", "stg_orders"]):
        result = dbtassets(project_dir, "--state", str(state), *command)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.strip().splitlines() == [
            f"dbtassets: error: {state}: no state store there (the --state path does not exist); pass the path of an "
            "existing store, or run `dbtassets sync` or `dbtassets watch` to make one"], command
        assert not state.exists() and not state.parent.joinpath("missing").exists()


@pytest.mark.slow
def test_every_reader_leaves_the_store_byte_for_byte_unchanged_after_a_landing(project_dir: Path) -> None:
    state = project_dir / "production-state" / "state.db"
    assert dbtassets(project_dir, "--state", str(state), "sync").returncode == 0
    subprocess.run([sys.executable, str(project_dir / "ingest_orders.py")], check=True, capture_output=True)
    before = store_files(state)
    assert before[""] is not None
    for command in READERS:
        result = dbtassets(project_dir, "--state", str(state), *command)
        assert result.returncode in (0, 1), (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert store_files(state) == before, f"{command} changed the state store"
    status = dbtassets(project_dir, "--state", str(state), "status", "--format", "json")
    assets = {a["name"]: a for a in json.loads(status.stdout)["assets"]}
    assert assets["stg_orders"]["status"] == "stale"  # the landing, observed in memory
    assert [r["code"] for r in assets["stg_orders"]["reasons"]] == ["upstream_updated"]
    assert dbtassets(project_dir, "--state", str(state), "check").returncode == 1
    assert store_files(state) == before
    # A writer still records: the same observation, now in the store.
    assert dbtassets(project_dir, "--state", str(state), "observe").returncode == 0
    assert store_files(state) != before
