"""The SQLite state store: migrations, concurrent writers, and what it refuses to open."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dbtassets.errors import StateError
from dbtassets.manifest import UniqueId
from dbtassets.staleness import Version
from dbtassets.state import MIGRATIONS, StateStore

A = UniqueId("model.p.a")


def test_a_new_store_records_its_migrations(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s" / "state.db") as store:
        assert store.counts() == {"runs": 0, "materializations": 0, "observations": 0}
    with sqlite3.connect(tmp_path / "s" / "state.db") as db:
        assert [r[0] for r in db.execute("select name from migrations")] == [name for name, _ in MIGRATIONS]
        assert db.execute("pragma journal_mode").fetchone() == ("wal",)
    db.close()
    StateStore.open(tmp_path / "s" / "state.db").close()  # reopening applies nothing twice


def test_a_store_from_a_newer_dbtassets_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute("insert into migrations values ('9999_future', 'now')")
    db.close()
    with pytest.raises(StateError, match="written by a newer dbtassets"):
        StateStore.open(path)


def test_observations_are_stored_only_when_the_version_moves(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        assert store.record_observation(A, "v1", "files", "t1")
        assert not store.record_observation(A, "v1", "files", "t2")
        assert store.record_observation(A, "r1", "reported", "t3")
        assert not store.record_observation(A, "v1", "files", "t4")  # files unchanged: no news
        assert store.latest_observations() == {A: Version("r1", "t3")}
        assert store.record_observation(A, "v2", "files", "t5")
        assert store.latest_observations() == {A: Version("v2", "t5")}


def test_runs_left_running_by_a_dead_process_are_marked_interrupted(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as store:
        run_id = store.start_run("dbt build", ["a"], "t1")
        with store.transaction() as db:
            db.execute("update runs set pid = 2147480000 where id = ?", (run_id,))  # no such process
        mine = store.start_run("dbt build", ["b"], "t2")
        assert store.interrupt_dead_runs("t3") == [run_id]
        statuses = {run.id: run.status for run in store.runs()}
        assert statuses == {run_id: "interrupted", mine: "running"}


def _writer(path: str, worker: int, count: int) -> None:
    with StateStore.open(Path(path)) as store:
        for i in range(count):
            run_id = store.start_run(f"worker {worker}", [], "t")
            with store.transaction() as db:
                store.insert_outcome(db, uid=UniqueId(f"model.p.m{worker}"), run_id=run_id, status="success",
                                     finished_at=f"t{i}", code_version="c", inputs={}, duration=0.1,
                                     rows_affected=None, message=None)
                store.finish_run(db, run_id, "success", "t")
            store.record_observation(UniqueId(f"source.p.s{worker}"), f"v{i}", "files", "t")


def test_concurrent_writers_in_separate_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore.open(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), w, 60)) for w in range(4)]
    for worker in workers:
        worker.start()
    with StateStore.open(path) as reader:  # a reader alongside the writers never errors
        while any(w.is_alive() for w in workers):
            reader.view()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with StateStore.open(path) as store:
        assert store.counts() == {"runs": 240, "materializations": 240, "observations": 240}
        assert store.integrity_check() == "ok"
        assert {r.status for r in store.runs()} == {"success"}


def test_a_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    # Root writes anywhere, and CI runs as root: then the store is opened by `nobody`, in a directory
    # `nobody` owns with mode r-x, so that only the permission bits stand in the way.
    as_nobody = os.geteuid() == 0
    if as_nobody and shutil.which("setpriv") is None:
        reason = "running as root and setpriv (util-linux) is missing: cannot drop to an unprivileged user"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run this test (install util-linux)")
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="dbtassets-ro-"))  # not under tmp_path: /tmp/pytest-of-root is 0700
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o500)
        if as_nobody:
            os.chown(locked, 65534, 65534)
        wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] if as_nobody else []
        child = subprocess.run(
            [*wrapper, sys.executable, "-c", _OPEN_STORE, str(locked / "state.db")], capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}, timeout=60)
        assert child.returncode == 1, (child.stdout, child.stderr)  # sys.exit(message)
        assert child.stderr == (f"{locked}/state.db: cannot open the state store: unable to open database file; "
                                "check the path and its permissions\n")
        assert list(locked.iterdir()) == []  # nothing was created
    finally:
        shutil.rmtree(base)


_OPEN_STORE = """
import sys
from pathlib import Path
from dbtassets.errors import StateError
from dbtassets.state import StateStore
try:
    StateStore.open(Path(sys.argv[1])).close()
except StateError as exc:
    sys.exit(str(exc))
"""


DEV, PROD = "duckdb:dev.duckdb", "duckdb:prod.duckdb"
S = UniqueId("source.p.s")


def _build(store: StateStore, uid: UniqueId, at: str) -> None:
    run_id = store.start_run("dbt build", [uid], at)
    with store.transaction() as db:
        store.insert_outcome(db, uid=uid, run_id=run_id, status="success", finished_at=at, code_version="c",
                             inputs={}, duration=0.1, rows_affected=1, message=None)
        store.finish_run(db, run_id, "success", at)


def test_each_target_sees_only_its_own_records_but_shares_file_observations(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore.open(path, target=DEV, default_target=DEV) as dev:
        _build(dev, A, "t1")
        dev.record_observation(S, "f1", "files", "t1")
        dev.record_observation(UniqueId("source.p.q"), "q1", "query", "t1")
    with StateStore.open(path, target=PROD, default_target=DEV) as prod:
        view = prod.view()
        assert (view.last_success, view.last_failure, prod.history(A), prod.runs()) == ({}, {}, [], [])
        assert prod.latest_observations() == {S: Version("f1", "t1")}  # the same files, whichever warehouse
        assert not prod.record_observation(S, "f1", "files", "t2")  # no news for prod either
        assert prod.record_observation(UniqueId("source.p.q"), "q1", "query", "t2")  # prod's own watermark
        _build(prod, A, "t3")
    with StateStore.open(path, target=DEV, default_target=DEV) as dev:
        assert dev.view().last_success[A].finished_at == "t1"
        assert [run.started_at for run in dev.runs()] == ["t1"]


def test_records_made_before_targets_are_filed_under_the_default_target(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:  # a store as dbtassets wrote it before targets
        db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, sql in MIGRATIONS[:2]:
            db.executescript(sql)
            db.execute("INSERT INTO migrations VALUES (?, 'then')", (name,))
        db.execute("INSERT INTO runs (command, status, started_at) VALUES ('dbt build', 'success', 't0')")
        db.execute("INSERT INTO materializations (unique_id, run_id, status, finished_at, code_version) "
                   "VALUES ('model.p.a', 1, 'success', 't0', 'c')")
        db.execute("INSERT INTO observations (unique_id, observed_at, data_version, kind) "
                   "VALUES ('source.p.s', 't0', 'f0', 'files'), ('source.p.q', 't0', 'q0', 'query')")
    db.close()
    with StateStore.open(path, target=PROD, default_target=DEV) as prod:  # first opened for another target
        assert prod.view().last_success == {}
        assert prod.latest_observations() == {S: Version("f0", "t0")}
    with StateStore.open(path, target=DEV, default_target=DEV) as dev:
        assert set(dev.view().last_success) == {A}
        assert set(dev.latest_observations()) == {S, UniqueId("source.p.q")}
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("select name from migrations order by name")][2:] == [
            "0003_targets", "0004_old_records_to_default_target", "0005_observation_checked_at"]
    db.close()


def test_an_unchanged_observation_records_when_it_was_checked(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db", target=DEV, default_target=DEV) as store:
        q = UniqueId("source.p.q")
        assert store.record_observation(q, "q1", "query", "t1")
        assert not store.record_observation(q, "q1", "query", "t2")  # the same watermark: no new version...
        assert store.latest_observations()[q] == Version("q1", "t1")
        assert store.last_checked("query") == {q: "t2"}  # ...but a fresh look at it
        assert store.last_checked("files") == {}
