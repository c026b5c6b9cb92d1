"""The state store's schema, as named migrations recorded in the store itself (``migrations`` table).

The same migrations run on SQLite and PostgreSQL (:meth:`Backend.ddl` adapts the few words that
differ). Each is applied in its own write transaction, once: a process that waited for the lock
while another applied it sees the row and moves on. A store with a migration this version does not
know was written by a newer dbtassets and is refused, never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timezone

from dbtassets.errors import StateError
from dbtassets.state.backends import Backend, Connection
from dbtassets.state.records import SHARED, SHARED_KINDS

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_initial", """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            selected TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL CHECK (status IN ('running', 'success', 'error', 'interrupted')),
            started_at TEXT NOT NULL,
            finished_at TEXT,
            pid INTEGER,
            log_path TEXT,
            message TEXT
        );
        CREATE TABLE materializations (
            id INTEGER PRIMARY KEY,
            unique_id TEXT NOT NULL,
            run_id INTEGER NOT NULL REFERENCES runs (id),
            status TEXT NOT NULL CHECK (status IN ('success', 'error', 'skipped')),
            finished_at TEXT NOT NULL,
            code_version TEXT NOT NULL,
            inputs TEXT NOT NULL DEFAULT '{}',
            duration REAL,
            rows_affected INTEGER,
            message TEXT
        );
        CREATE INDEX materializations_by_asset ON materializations (unique_id, status, id);
        CREATE TABLE observations (
            id INTEGER PRIMARY KEY,
            unique_id TEXT NOT NULL,
            observed_at TEXT NOT NULL,
            data_version TEXT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX observations_by_asset ON observations (unique_id, id);
    """),
    ("0002_semantic_versions", """
        ALTER TABLE materializations ADD COLUMN manifest_version TEXT;
        ALTER TABLE materializations ADD COLUMN base_version TEXT;
        ALTER TABLE materializations ADD COLUMN added_columns TEXT NOT NULL DEFAULT '[]';
        CREATE TABLE compiled_sql (
            sql_hash TEXT PRIMARY KEY,
            normalized_sql TEXT NOT NULL
        );
        CREATE TABLE fingerprints (
            unique_id TEXT NOT NULL,
            manifest_version TEXT NOT NULL,
            code_version TEXT NOT NULL,
            semantic INTEGER NOT NULL,
            sql_hash TEXT REFERENCES compiled_sql (sql_hash),
            note TEXT,
            PRIMARY KEY (unique_id, manifest_version)
        );
    """),
    # Records made before this are NULL until OLD_RECORDS_TO_DEFAULT_TARGET files them.
    ("0003_targets", """
        ALTER TABLE runs ADD COLUMN target TEXT;
        ALTER TABLE materializations ADD COLUMN target TEXT;
        ALTER TABLE observations ADD COLUMN target TEXT;
        CREATE INDEX materializations_by_target ON materializations (target, status, unique_id, id);
        CREATE INDEX observations_by_target ON observations (target, unique_id, id);
    """),
    # When an observer last read the source, even if it saw the same data version (a query's `every:`).
    ("0005_observation_checked_at", """
        ALTER TABLE observations ADD COLUMN checked_at TEXT;
    """),
    # Team mode: a build's claim on the assets it builds (dbtassets.state.leases), per target; times are
    # seconds since the epoch by the store's own clock.
    ("0006_team_leases", """
        CREATE TABLE leases (
            target TEXT NOT NULL,
            unique_id TEXT NOT NULL,
            holder TEXT NOT NULL,
            claimed_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (target, unique_id)
        );
        CREATE INDEX leases_by_holder ON leases (holder);
        ALTER TABLE runs ADD COLUMN host TEXT;
    """),
    ("0007_old_rows_before", """
        ALTER TABLE materializations ADD COLUMN old_rows_before TEXT;
    """),
    ("0008_check_results", """
        CREATE TABLE check_results (
            id INTEGER PRIMARY KEY,
            check_id TEXT NOT NULL,
            unique_id TEXT NOT NULL,
            run_id BIGINT NOT NULL REFERENCES runs (id),
            code_version TEXT NOT NULL,
            materialization_id BIGINT NOT NULL REFERENCES materializations (id),
            status TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            message TEXT
        );
        CREATE INDEX check_results_by_asset ON check_results (unique_id, check_id, id);
    """),
    # Where a build put the asset (dbt's relation name), so a reason can say it moved.
    ("0009_materialization_relation", """
        ALTER TABLE materializations ADD COLUMN relation_name TEXT;
    """),
    # Each watcher's heartbeat (dbtassets.state.heartbeats): is anyone watching this project and target?
    ("0010_watcher_heartbeats", """
        CREATE TABLE watchers (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            target TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            beat_at TEXT NOT NULL,
            last_pass_at TEXT,
            every REAL NOT NULL,
            stopped_at TEXT
        );
        CREATE INDEX watchers_by_project ON watchers (project, target, beat_at);
    """),
    # The sources a watcher of the target said were late (source_late), until it said they recovered:
    # a restarted watcher, or another one in team mode, does not say it again.
    ("0011_lateness_said", """
        CREATE TABLE lateness_said (
            target TEXT NOT NULL,
            unique_id TEXT NOT NULL,
            severity TEXT NOT NULL,
            said_at TEXT NOT NULL,
            PRIMARY KEY (target, unique_id)
        );
    """),
)
# Needs the profile's default target, known only when a project opens the store: records made
# before targets existed were built for the target dbt used by default.
OLD_RECORDS_TO_DEFAULT_TARGET = "0004_old_records_to_default_target"

Transaction = Callable[[], AbstractContextManager[Connection]]


def migrate(db: Connection, backend: Backend, transaction: Transaction, where: object,
            default_target: str | None) -> None:
    """Bring the store on ``db`` to this version's schema, each missing migration in a ``transaction()``.

    Raises:
        StateError: the database is not a dbtassets store, or a newer dbtassets wrote it (``where``
            names it in the message).
    """
    applied = _applied(db, backend, where)
    backend.prepare(db)
    if applied is None:
        with transaction():
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        applied = set()
    for name, sql in MIGRATIONS:
        if name in applied:
            continue
        with transaction():
            if db.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                continue  # another process applied it while we waited for the lock
            for statement in sql.split(";"):
                if statement.strip():
                    db.execute(backend.ddl(statement))
            db.execute("INSERT INTO migrations VALUES (?, ?)", (name, _utc_now()))
    if default_target is not None and OLD_RECORDS_TO_DEFAULT_TARGET not in applied:
        _file_old_records(transaction, default_target)


def not_applied(db: Connection, backend: Backend, where: object, default_target: str | None) -> list[str]:
    """For a reader, which never migrates the store it reads: the migrations this version knows that the store
    on ``db`` lacks (an older dbtassets wrote it), in order; none when it is current.

    Raises:
        StateError: it is empty, not a dbtassets store, or written by a newer dbtassets.
    """
    applied = _applied(db, backend, where)
    if applied is None:
        raise StateError(f"{where}: holds no dbtassets state store yet; run `dbtassets sync` or `dbtassets watch` "
                         "with this --state to make one")
    wanted = {name for name, _ in MIGRATIONS} | ({OLD_RECORDS_TO_DEFAULT_TARGET} if default_target else set())
    return sorted(wanted - applied)


def older_store(where: object, missing: list[str]) -> StateError:
    """A reader refusing a store an older dbtassets wrote (where it cannot read an upgraded copy)."""
    return StateError(f"{where}: was written by an older dbtassets (migrations {', '.join(missing)} not applied) "
                      "and commands that only read never change a store; run `dbtassets sync` or `dbtassets watch` "
                      "of this version with this --state once to upgrade it")


def _applied(db: Connection, backend: Backend, where: object) -> set[str] | None:
    """The migrations applied to the store on ``db`` (None: the database is empty).

    Raises:
        StateError: the database is not a dbtassets store, or a newer dbtassets wrote it.
    """
    tables = backend.tables(db)
    if tables and "migrations" not in tables:
        kind = "an SQLite database" if backend.name == "sqlite" else "a PostgreSQL schema"
        raise StateError(
            f"{where}: is {kind} but not a dbtassets state store "
            f"(it has tables {', '.join(sorted(tables))}); pass another --state"
        )
    if "migrations" not in tables:
        return None
    applied = {row[0] for row in db.execute("SELECT name FROM migrations")}
    known = {name for name, _ in MIGRATIONS} | {OLD_RECORDS_TO_DEFAULT_TARGET}
    if applied - known:
        raise StateError(
            f"{where}: was written by a newer dbtassets (migrations {', '.join(sorted(applied - known))}); "
            "upgrade dbtassets or pass another --state path"
        )
    return applied


def _file_old_records(transaction: Transaction, default_target: str) -> None:
    """The named migration that files records made before targets under the default target."""
    with transaction() as db:
        if db.execute("SELECT 1 FROM migrations WHERE name = ?", (OLD_RECORDS_TO_DEFAULT_TARGET,)).fetchone():
            return  # another process filed them while we waited for the lock
        db.execute("UPDATE runs SET target = ? WHERE target IS NULL", (default_target,))
        db.execute("UPDATE materializations SET target = ? WHERE target IS NULL", (default_target,))
        shared = ", ".join("?" for _ in SHARED_KINDS)
        db.execute(f"UPDATE observations SET target = CASE WHEN kind IN ({shared}) THEN ? ELSE ? END "
                   "WHERE target IS NULL", (*sorted(SHARED_KINDS), SHARED, default_target))
        db.execute("INSERT INTO migrations VALUES (?, ?)", (OLD_RECORDS_TO_DEFAULT_TARGET, _utc_now()))


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
