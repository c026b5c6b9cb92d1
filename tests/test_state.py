"""The state store, on both backends (an SQLite file and a PostgreSQL server): migrations, concurrent
writers, and what it refuses to open."""

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
from dbtassets.model.manifest import UniqueId
from dbtassets.state.backends import Location, backend_for
from dbtassets.state.migrations import MIGRATIONS
from dbtassets.state.records import Fingerprinted, Version
from dbtassets.state.store import StateStore
from tests.conftest import run_cli
from tests.pg import PostgresServer, free_port

A = UniqueId("model.p.a")


def test_a_new_store_records_its_migrations(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        assert store.counts() == {"runs": 0, "materializations": 0, "observations": 0}
        applied = [name for (name,) in store._query("select name from migrations")]
        assert sorted(applied) == sorted(name for name, _ in MIGRATIONS)
    with StateStore.open(state_location) as store:  # reopening applies nothing twice
        assert len(store._query("select name from migrations")) == len(applied)


def test_a_new_sqlite_store_is_in_wal_mode(tmp_path: Path) -> None:
    StateStore.open(tmp_path / "state.db").close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("pragma journal_mode").fetchone() == ("wal",)
    db.close()


def test_a_store_from_a_newer_dbtassets_is_refused(state_location: str) -> None:
    with StateStore.open(state_location) as store, store.transaction() as db:
        db.execute("insert into migrations values ('9999_future', 'now')")
    with pytest.raises(StateError, match="written by a newer dbtassets"):
        StateStore.open(state_location)


def test_observations_are_stored_only_when_the_version_moves(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        assert store.record_observation(A, "v1", "files", "t1")
        assert not store.record_observation(A, "v1", "files", "t2")
        assert store.record_observation(A, "r1", "reported", "t3")
        assert not store.record_observation(A, "v1", "files", "t4")  # files unchanged: no news
        assert store.latest_observations() == {A: Version("r1", "t3")}
        assert store.record_observation(A, "v2", "files", "t5")
        assert store.latest_observations() == {A: Version("v2", "t5")}


def test_fingerprints_are_found_in_one_query_and_replaced_in_place(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        with store.transaction() as db:
            store.save_fingerprints([Fingerprinted(A, "mv1", "c1", True, "select 1", "")], db)
            store.save_fingerprints([Fingerprinted(A, "mv1", "c2", False, "select 1", "note")], db)  # same key
        found = store.fingerprints([(A, "mv1"), (A, "mv2"), (UniqueId("model.p.b"), "mv1")])
        assert list(found) == [A]
        assert (found[A].code_version, found[A].semantic, found[A].note) == ("c2", False, "note")
        assert found[A].sql_hash is not None and store.compiled_sql(found[A].sql_hash) == "select 1"


def test_runs_left_running_by_a_dead_process_are_marked_interrupted(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        run_id = store.start_run("dbt build", ["a"], "t1")
        with store.transaction() as db:
            db.execute("update runs set pid = 2147480000 where id = ?", (run_id,))  # no such process
        mine = store.start_run("dbt build", ["b"], "t2")
        assert store.interrupt_dead_runs("t3") == [run_id]
        statuses = {run.id: run.status for run in store.runs()}
        assert statuses == {run_id: "interrupted", mine: "running"}


def test_a_failed_transaction_leaves_nothing_half_written(state_location: str) -> None:
    with StateStore.open(state_location) as store:
        run_id = store.start_run("dbt build", ["a"], "t1")
        with pytest.raises(StateError), store.transaction() as db:
            store.insert_outcome(db, uid=A, run_id=run_id, status="success", finished_at="t2", code_version="c",
                                 inputs={}, duration=0.1, rows_affected=None, message=None)
            db.execute("insert into runs (id, command, status, started_at) values (?, 'x', 'running', 't')",
                       (run_id,))  # a duplicate key: the whole transaction fails
        assert store.counts() == {"runs": 1, "materializations": 0, "observations": 0}
        assert store.view().last_success == {}


def _writer(location: str, worker: int, count: int) -> None:
    with StateStore.open(location) as store:
        for i in range(count):
            run_id = store.start_run(f"worker {worker}", [], "t")
            with store.transaction() as db:
                store.insert_outcome(db, uid=UniqueId(f"model.p.m{worker}"), run_id=run_id, status="success",
                                     finished_at=f"t{i}", code_version="c", inputs={}, duration=0.1,
                                     rows_affected=None, message=None)
                store.finish_run(db, run_id, "success", "t")
            store.record_observation(UniqueId(f"source.p.s{worker}"), f"v{i}", "files", "t")


def test_concurrent_writers_in_separate_processes_lose_nothing(state_location: str) -> None:
    StateStore.open(state_location).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(state_location, w, 60)) for w in range(4)]
    for worker in workers:
        worker.start()
    with StateStore.open(state_location) as reader:  # a reader alongside the writers never errors
        while any(w.is_alive() for w in workers):
            reader.view()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with StateStore.open(state_location) as store:
        assert store.counts() == {"runs": 240, "materializations": 240, "observations": 240}
        assert store.integrity_check() == "ok"
        assert {r.status for r in store.runs()} == {"success"}


# -- PostgreSQL: what cannot be reached, or is not ours, is one clear line -----------------------


def test_a_wrong_password_is_one_clear_line_and_exit_code_2(postgres: PostgresServer, project_dir: Path) -> None:
    url = postgres.url(postgres.database(), password="not-the-password")
    with pytest.raises(StateError) as caught:
        StateStore.open(url)
    assert str(caught.value) == (
        f"postgresql://dbtassets:***@127.0.0.1:{postgres.port}/{url.rsplit('/', 1)[1]}: the PostgreSQL server "
        "refused the password of this user; fix the password in the URL (or PGPASSWORD / ~/.pgpass)")
    result = run_cli("--project-dir", str(project_dir), "--state", url, "status")
    assert result.returncode == 2
    assert result.stderr == f"dbtassets: error: {caught.value}\n"
    assert "not-the-password" not in result.stderr


def test_a_server_that_is_not_there_is_one_clear_line(project_dir: Path) -> None:
    pytest.importorskip("psycopg2", reason='the PostgreSQL backend needs psycopg2: pip install -e ".[postgres]"')
    url = f"postgresql://someone@127.0.0.1:{free_port()}/state"
    result = run_cli("--project-dir", str(project_dir), "--state", url, "status")
    assert result.returncode == 2
    assert result.stderr.startswith(f"dbtassets: error: {url}: cannot reach the PostgreSQL state store (")
    assert result.stderr.endswith("); check that the server runs and the URL's host and port\n")
    assert len(result.stderr.splitlines()) == 1


def test_a_database_of_another_program_is_refused_and_left_alone(postgres: PostgresServer) -> None:
    database = postgres.database()
    url = postgres.url(database)
    postgres.query(database, "create table invoices (id int)")
    with pytest.raises(StateError, match=r"is a PostgreSQL schema but not a dbtassets state store \(it has "
                                         r"tables invoices\); pass another --state"):
        StateStore.open(url)
    tables = postgres.query(database, "select table_name from information_schema.tables where table_schema = 'public'")
    assert tables == [("invoices",)]


def test_a_store_reconnects_once_the_server_dropped_its_connection(postgres: PostgresServer) -> None:
    database = postgres.database()
    with StateStore.open(postgres.url(database)) as store:
        assert store.record_observation(A, "v1", "files", "t1")
        postgres.query("postgres", "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                       (database,))  # what a server restart does to the store's connection
        with pytest.raises(StateError, match="cannot reach the PostgreSQL state store"):
            store.latest_observations()  # the query in flight fails, in one line...
        assert store.latest_observations() == {A: Version("v1", "t1")}  # ...and the next one reconnects
        assert store.record_observation(A, "v2", "files", "t2")


def test_an_unknown_url_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"^mysql://u:\*\*\*@h/db: unknown state store URL; --state takes a file "
                                         r"path or postgresql://user@host:5432/database$"):
        StateStore.open("mysql://u:secret@h/db")


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
from dbtassets.state.backends import Location, backend_for
from dbtassets.errors import StateError
from dbtassets.state.store import StateStore
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


def test_each_target_sees_only_its_own_records_but_shares_file_observations(state_location: str) -> None:
    path = state_location
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


def _store_before_targets(location: str) -> None:
    """A store as dbtassets wrote it before targets: migrations 0001 and 0002, and a few records."""
    backend = backend_for(Location.parse(location))
    db = backend.connect()
    try:
        db.execute(backend.begin_write)
        db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, sql in MIGRATIONS[:2]:
            for statement in sql.split(";"):
                if statement.strip():
                    db.execute(backend.ddl(statement))
            db.execute("INSERT INTO migrations VALUES (?, 'then')", (name,))
        db.execute("INSERT INTO runs (command, status, started_at) VALUES ('dbt build', 'success', 't0')")
        db.execute("INSERT INTO materializations (unique_id, run_id, status, finished_at, code_version) "
                   "VALUES ('model.p.a', 1, 'success', 't0', 'c')")
        db.execute("INSERT INTO observations (unique_id, observed_at, data_version, kind) "
                   "VALUES ('source.p.s', 't0', 'f0', 'files'), ('source.p.q', 't0', 'q0', 'query')")
        db.execute("COMMIT")
    finally:
        db.close()


def test_records_made_before_targets_are_filed_under_the_default_target(state_location: str) -> None:
    path = state_location
    _store_before_targets(path)
    with StateStore.open(path, target=PROD, default_target=DEV) as prod:  # first opened for another target
        assert prod.view().last_success == {}
        assert prod.latest_observations() == {S: Version("f0", "t0")}
    with StateStore.open(path, target=DEV, default_target=DEV) as dev:
        assert set(dev.view().last_success) == {A}
        assert set(dev.latest_observations()) == {S, UniqueId("source.p.q")}
    with StateStore.open(path) as store:
        assert sorted(name for (name,) in store._query("select name from migrations"))[2:] == [
            "0003_targets", "0004_old_records_to_default_target", "0005_observation_checked_at", "0006_team_leases",
            "0007_old_rows_before", "0008_check_results", "0009_materialization_relation", "0010_watcher_heartbeats",
            "0011_lateness_said"]


def test_an_unchanged_observation_records_when_it_was_checked(state_location: str) -> None:
    with StateStore.open(state_location, target=DEV, default_target=DEV) as store:
        q = UniqueId("source.p.q")
        assert store.record_observation(q, "q1", "query", "t1")
        assert not store.record_observation(q, "q1", "query", "t2")  # the same watermark: no new version...
        assert store.latest_observations()[q] == Version("q1", "t1")
        assert store.last_checked("query") == {q: "t2"}  # ...but a fresh look at it
        assert store.last_checked("files") == {}


def test_the_view_reads_every_input_back_and_one_input_version_is_one_value(state_location: str) -> None:
    b, c = UniqueId("model.p.b"), UniqueId("model.p.c")
    read, widened = Version("m1", "t0"), Version("m2", "t1", "m1", frozenset({"x", "y"}))
    with StateStore.open(state_location, target=DEV, default_target=DEV) as store:
        run_id = store.start_run("dbt build", [b, c], "t2")
        with store.transaction() as db:
            for uid, inputs in ((b, {A: read, S: widened}), (c, {A: read}), (A, {})):
                store.insert_outcome(db, uid=uid, run_id=run_id, status="success", finished_at="t2",
                                     code_version="c", inputs=inputs, duration=0.1, rows_affected=1, message=None)
            store.finish_run(db, run_id, "success", "t2")
        view = store.view()
    assert view.last_success[b].inputs == {A: read, S: widened}
    assert view.last_success[c].inputs == {A: read} and view.last_success[A].inputs == {}
    # decoded once for every build that read it (a model read by thousands of children is one value)
    assert view.last_success[b].inputs[A] is view.last_success[c].inputs[A]
