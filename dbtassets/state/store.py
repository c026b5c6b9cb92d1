"""The state store: runs, materializations and observations, in an SQLite file or on a PostgreSQL server.

Every write is one transaction and writers take turns (see :mod:`dbtassets.state.backends`), so
concurrent writers queue instead of failing, and a process killed mid-write leaves the last
committed state. Schema changes are named migrations recorded in the ``migrations`` table, the
same ones on both engines. A database that is not a dbtassets store, or is corrupt, is reported
and never replaced.

A store is opened for one target (see :mod:`dbtassets.model.targets`): it files every run,
materialization and observation under that target's warehouse key and reads back only those, so
no answer mixes two warehouses. File observations are the exception: they read the project's
files, the same whichever warehouse is built, and are shared (filed under ``*``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dbtassets.building.recording import BuildStatus, CheckOutcome, Outcome
from dbtassets.errors import StateError
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.checks import CheckResult
from dbtassets.rules.staleness import DataVersionKind, Failure, Materialization, StateView, Version
from dbtassets.state.backends import Backend, Connection, Location, backend_for

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
)
# Needs the profile's default target, known only when a project opens the store: records made
# before targets existed were built for the target dbt used by default.
OLD_RECORDS_TO_DEFAULT_TARGET = "0004_old_records_to_default_target"
SHARED = "*"  # the target of observations every target shares
SHARED_KINDS = frozenset({"files"})  # observers reading the project's files, not a warehouse


@dataclass(frozen=True)
class HistoryEntry:
    """One build attempt of an asset, for ``dbtassets history``."""

    id: int
    run_id: int
    status: str
    finished_at: str
    code_version: str
    inputs: Mapping[UniqueId, Version]
    duration: float | None
    rows_affected: int | None
    message: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "run_id": self.run_id, "status": self.status, "finished_at": self.finished_at,
            "code_version": self.code_version, "duration": self.duration, "rows_affected": self.rows_affected,
            "message": self.message,
            "inputs": {uid: {"data_version": v.value, "at": v.at} for uid, v in self.inputs.items()},
        }


@dataclass(frozen=True)
class CachedFingerprint:
    """A semantic code version remembered for one manifest version of an asset."""

    code_version: str
    semantic: bool
    sql_hash: str | None
    note: str


@dataclass(frozen=True)
class Fingerprinted:
    """A fingerprint computed from compiled SQL, to remember for one manifest version of an asset."""

    unique_id: UniqueId
    manifest_version: str
    code_version: str
    semantic: bool
    normalized_sql: str
    note: str


@dataclass(frozen=True)
class RunRecord:
    id: int
    command: str
    status: str
    started_at: str
    finished_at: str | None
    pid: int | None
    host: str | None = None  # the machine of ``pid`` (None: recorded before team mode, so this one)


class StateStore:
    """An open state store. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, backend: Backend, connection: Connection, target: str = "") -> None:
        self.backend = backend
        self.location = backend.location
        self.target = target
        self._db = connection

    @property
    def path(self) -> Path | str:
        """The SQLite file, or the server's URL without its password (for messages)."""
        return self.location.path if self.location.path is not None else str(self.location)

    @classmethod
    def open(cls, where: Path | str | Location, *, target: str = "", default_target: str | None = None,
             busy_timeout: float = 30.0) -> StateStore:
        """Open (creating and migrating if needed) the store at ``where`` (a path, or a postgresql:// URL),
        for the records of ``target``.

        Args:
            target: the warehouse key of the target whose records to read and write.
            default_target: the profile's default target's key, which owns records made before
                the store knew targets; without it they stay unfiled (and unseen) for now.

        Raises:
            StateError: the path is a directory, not an SQLite file, another program's database,
                corrupt, or its directory cannot be created or written; the server cannot be
                reached or refuses the user.
        """
        location = where if isinstance(where, Location) else Location.parse(where)
        backend = backend_for(location, busy_timeout=busy_timeout)
        db = backend.connect()
        store = cls(backend, db, target)
        try:
            store._prepare(default_target)
        except backend.errors as exc:
            db.close()
            raise backend.error(exc) from None
        except BaseException:
            db.close()
            raise
        return store

    def _prepare(self, default_target: str | None) -> None:
        db, backend = self._db, self.backend
        tables = backend.tables(db)
        if tables and "migrations" not in tables:
            kind = "an SQLite database" if backend.name == "sqlite" else "a PostgreSQL schema"
            raise StateError(
                f"{self.path}: is {kind} but not a dbtassets state store "
                f"(it has tables {', '.join(sorted(tables))}); pass another --state"
            )
        backend.prepare(db)
        if "migrations" not in tables:
            with self.transaction():
                db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        applied = {row[0] for row in db.execute("SELECT name FROM migrations")}
        known = {name for name, _ in MIGRATIONS} | {OLD_RECORDS_TO_DEFAULT_TARGET}
        if applied - known:
            raise StateError(
                f"{self.path}: was written by a newer dbtassets (migrations {', '.join(sorted(applied - known))}); "
                "upgrade dbtassets or pass another --state path"
            )
        for name, sql in MIGRATIONS:
            if name in applied:
                continue
            with self.transaction():
                if db.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                    continue  # another process applied it while we waited for the lock
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(backend.ddl(statement))
                db.execute("INSERT INTO migrations VALUES (?, ?)", (name, _utc_now()))
        if default_target is not None and OLD_RECORDS_TO_DEFAULT_TARGET not in applied:
            self._file_old_records(default_target)

    def _file_old_records(self, default_target: str) -> None:
        """The named migration that files records made before targets under the default target."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM migrations WHERE name = ?", (OLD_RECORDS_TO_DEFAULT_TARGET,)).fetchone():
                return  # another process filed them while we waited for the lock
            db.execute("UPDATE runs SET target = ? WHERE target IS NULL", (default_target,))
            db.execute("UPDATE materializations SET target = ? WHERE target IS NULL", (default_target,))
            shared = ", ".join("?" for _ in SHARED_KINDS)
            db.execute(f"UPDATE observations SET target = CASE WHEN kind IN ({shared}) THEN ? ELSE ? END "
                       "WHERE target IS NULL", (*sorted(SHARED_KINDS), SHARED, default_target))
            db.execute("INSERT INTO migrations VALUES (?, ?)", (OLD_RECORDS_TO_DEFAULT_TARGET, _utc_now()))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _reconnect_if_lost(self) -> None:
        """Open a new connection if the server dropped the last one (it restarted, the network broke).

        Only between transactions: a transaction cut off is rolled back by the server, and its
        caller has had a StateError. Raises StateError while the server cannot be reached.
        """
        if self.backend.is_lost(self._db):
            with suppress(*self.backend.errors):
                self._db.close()
            self._db = self.backend.connect()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; waits for other writers, rolls back on any error."""
        self._reconnect_if_lost()
        db, backend = self._db, self.backend
        try:
            db.execute(backend.begin_write)
        except backend.errors as exc:
            self._rollback()
            raise backend.error(exc) from None
        try:
            yield db
        except backend.errors as exc:  # e.g. the disk filled up in the middle of the transaction
            self._rollback()
            raise backend.error(exc) from None
        except BaseException:
            self._rollback()
            raise
        try:
            db.execute("COMMIT")
        except backend.errors as exc:
            self._rollback()
            raise backend.error(exc) from None

    def _rollback(self) -> None:
        """Undo the open transaction, unless the engine already has (SQLite does on SQLITE_FULL and some I/O errors)."""
        with suppress(*self.backend.errors):  # the error being raised says more than a failed rollback
            if self.backend.in_transaction(self._db):
                self._db.execute("ROLLBACK")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._reconnect_if_lost()
        try:
            return list(self._db.execute(sql, params).fetchall())
        except self.backend.errors as exc:
            raise self.backend.error(exc) from None

    # -- reading -------------------------------------------------------------------------

    def view(self) -> StateView:
        """Everything the staleness rules need, in three indexed queries."""
        successes = {
            UniqueId(uid): Materialization(mid, run_id, finished_at, code_version, _versions(inputs), manifest_version,
                                           base or "", frozenset(json.loads(added)) if added != "[]" else frozenset(),
                                           old_rows)
            for mid, uid, run_id, finished_at, code_version, inputs, manifest_version, base, added, old_rows
            in self._query(
                "SELECT m.id, m.unique_id, m.run_id, m.finished_at, m.code_version, m.inputs, m.manifest_version, "
                "m.base_version, m.added_columns, m.old_rows_before "
                "FROM materializations m JOIN (SELECT MAX(id) AS id FROM materializations "
                "WHERE target = ? AND status = 'success' GROUP BY unique_id) AS latest USING (id)", (self.target,)
            )
        }
        failures = {
            UniqueId(uid): Failure(fid, finished_at, message or "failed")
            for fid, uid, finished_at, message in self._query(
                "SELECT m.id, m.unique_id, m.finished_at, m.message "
                "FROM materializations m JOIN (SELECT MAX(id) AS id FROM materializations "
                "WHERE target = ? AND status = 'error' GROUP BY unique_id) AS latest USING (id)", (self.target,)
            )
        }
        return StateView(successes, failures, self.latest_observations(), self.check_results())

    def check_results(self) -> dict[UniqueId, dict[UniqueId, CheckResult]]:
        """The last recorded run of each check on each asset of this target: asset → check → result."""
        out: dict[UniqueId, dict[UniqueId, CheckResult]] = {}
        for uid, check_id, code_version, mid, status, at, message in self._query(
            "SELECT c.unique_id, c.check_id, c.code_version, c.materialization_id, c.status, c.finished_at, c.message "
            "FROM check_results c JOIN (SELECT MAX(c.id) AS id FROM check_results c JOIN materializations m "
            "ON m.id = c.materialization_id WHERE m.target = ? GROUP BY c.unique_id, c.check_id) AS latest USING (id)",
            (self.target,)
        ):
            out.setdefault(UniqueId(uid), {})[UniqueId(check_id)] = CheckResult(code_version, mid, status, at,
                                                                                 message or "")
        return out

    def latest_observations(self) -> dict[UniqueId, Version]:
        return {
            UniqueId(uid): Version(version, at)
            for uid, version, at in self._query(
                "SELECT o.unique_id, o.data_version, o.observed_at FROM observations o "
                "JOIN (SELECT MAX(id) AS id FROM observations WHERE target IN (?, ?) GROUP BY unique_id) AS latest "
                "USING (id)",
                (SHARED, self.target))
        }

    def last_checked(self, kind: str) -> dict[UniqueId, str]:
        """When each source was last read by an observer of ``kind`` (whether or not its data had moved)."""
        return {
            UniqueId(uid): at for uid, at in self._query(
                "SELECT o.unique_id, COALESCE(o.checked_at, o.observed_at) FROM observations o "
                "JOIN (SELECT MAX(id) AS id FROM observations WHERE kind = ? AND target = ? GROUP BY unique_id) "
                "AS latest USING (id)", (kind, self._scope(kind)))
        }

    def latest_materialization_id(self) -> int:
        """The id of the newest build outcome of any target (0 if none): "did any build finish?", cheaply."""
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM materializations")[0][0])

    def latest_observation_id(self, kind: str) -> int:
        """The id of the newest observation of ``kind`` (0 if none): a cheap "anything new?" probe."""
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM observations WHERE kind = ? AND target = ?",
                               (kind, self._scope(kind)))[0][0])

    def _scope(self, kind: str) -> str:
        """The target an observation of ``kind`` is filed under: shared, or this store's."""
        return SHARED if kind in SHARED_KINDS else self.target

    def history(self, uid: UniqueId, limit: int = 20) -> list[HistoryEntry]:
        return [
            HistoryEntry(mid, run_id, status, finished_at, code_version, _versions(inputs), duration, rows, message)
            for mid, run_id, status, finished_at, code_version, inputs, duration, rows, message in self._query(
                "SELECT id, run_id, status, finished_at, code_version, inputs, duration, rows_affected, message "
                "FROM materializations WHERE unique_id = ? AND target = ? ORDER BY id DESC LIMIT ?",
                (uid, self.target, limit)
            )
        ]

    def observation_history(self, uid: UniqueId, limit: int = 20) -> list[tuple[str, str, str, Any]]:
        """(observed_at, data_version, kind, detail), newest first."""
        return [
            (at, version, kind, json.loads(detail))
            for at, version, kind, detail in self._query(
                "SELECT observed_at, data_version, kind, detail FROM observations "
                "WHERE unique_id = ? AND target IN (?, ?) ORDER BY id DESC LIMIT ?", (uid, SHARED, self.target, limit)
            )
        ]

    def runs(self, status: str | None = None) -> list[RunRecord]:
        where, params = ("AND status = ?", (self.target, status)) if status else ("", (self.target,))
        return [RunRecord(*row) for row in self._query(
            f"SELECT id, command, status, started_at, finished_at, pid, host FROM runs WHERE target = ? {where} "
            "ORDER BY id", params)]

    def outcomes_since(self, since: str) -> list[tuple[int, str | None, str | None, float | None]]:
        """(run id, asset, outcome status, dbt execution seconds) for every finished run of this target
        started at or after ``since``; a run that recorded no outcome appears once with asset and status None."""
        return [(run_id, uid, status, duration) for run_id, uid, status, duration in self._query(
            "SELECT r.id, m.unique_id, m.status, m.duration FROM runs r "
            "LEFT JOIN materializations m ON m.run_id = r.id "
            "WHERE r.target = ? AND r.started_at >= ? AND r.status != 'running' ORDER BY r.id, m.id",
            (self.target, since))]

    def build_durations(self) -> dict[UniqueId, list[float]]:
        """Every recorded dbt execution time of a successful build on this target, by asset."""
        durations: dict[UniqueId, list[float]] = {}
        for uid, duration in self._query("SELECT unique_id, duration FROM materializations "
                                         "WHERE target = ? AND status = 'success' AND duration IS NOT NULL",
                                         (self.target,)):
            durations.setdefault(UniqueId(uid), []).append(float(duration))
        return durations

    def counts(self) -> dict[str, int]:
        """Rows per table, for tests and diagnostics."""
        return {t: self._query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("runs", "materializations", "observations")}

    def integrity_check(self) -> str:
        try:
            return self.backend.integrity_check(self._db)
        except self.backend.errors as exc:
            raise self.backend.error(exc) from None

    # -- writing -------------------------------------------------------------------------

    def record_observation(self, uid: UniqueId, version: str, kind: str, at: str,
                           detail: Mapping[str, Any] | None = None) -> bool:
        """Store an observation if its data version differs from the latest one of the same kind.

        Comparing within a kind lets observers mix: after a loader's report, the file observer
        seeing the same files as before is no news, and must not hide the report.
        """
        scope = self._scope(kind)
        with self.transaction() as db:
            row = db.execute("SELECT data_version, id FROM observations WHERE unique_id = ? AND kind = ? "
                             "AND target = ? ORDER BY id DESC LIMIT 1", (uid, kind, scope)).fetchone()
            if row is not None and row[0] == version:
                db.execute("UPDATE observations SET checked_at = ? WHERE id = ?", (at, row[1]))
                return False
            db.execute("INSERT INTO observations (unique_id, observed_at, data_version, kind, detail, target) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (uid, at, version, kind, json.dumps(detail or {}, sort_keys=True), scope))
            return True

    def record_build(self, run_id: int, outcomes: Sequence[Outcome], checks: Sequence[CheckOutcome],
                     fingerprints: Iterable[Fingerprinted], ok: bool, at: str, log_path: str | None,
                     message: str | None, holder: str | None = None) -> dict[UniqueId, str]:
        """A build's outcomes, its checks' runs, the fingerprints of what it compiled and the run's end: one
        transaction. A check ran against its asset's materialization of this run, or else the one before.

        With ``holder`` (the build's name in the leases table), an asset whose lease another build
        has taken meanwhile (it expired: renewals failed) is not recorded: that build's outcome is the
        newer claim, and the asset is planned again. Returns those assets, each with who holds it now.
        """
        with self.transaction() as db:
            lost = self._leases_taken(db, holder, [o.unique_id for o in outcomes]) if holder else {}
            if lost:
                outcomes = [o for o in outcomes if o.unique_id not in lost]
                checks = [c for c in checks if c.unique_id not in lost]
                ok = False
                message = message or (f"lease lost to another build, outcome not recorded: {', '.join(sorted(lost))}")
            self.save_fingerprints(fingerprints, db)
            rebuilt: dict[UniqueId, Version] = {}  # what this run built: its inputs' new versions
            built_ids: dict[UniqueId, int] = {}
            for o in outcomes:
                inputs = {**o.inputs, **{p: rebuilt[p] for p in o.rebuilt_inputs if p in rebuilt}}
                new_id = self.insert_outcome(
                    db, uid=o.unique_id, run_id=run_id, status=o.status.value, finished_at=at,
                    code_version=o.code_version, inputs=inputs, duration=o.duration, rows_affected=o.rows_affected,
                    message=o.message, manifest_version=o.manifest_version, base_version=o.base_version,
                    added_columns=o.added_columns, old_rows_before=o.old_rows_before)
                if o.status is BuildStatus.SUCCESS:
                    built_ids[o.unique_id] = new_id
                    rebuilt[o.unique_id] = Version(DataVersionKind.BUILD.of(new_id), at, o.base_version or "",
                                                   o.added_columns)
            for c in checks:
                checked = built_ids.get(c.unique_id, c.previous_materialization)
                if checked is not None:  # never built: nothing it could have checked
                    self.insert_check_result(db, check_id=c.check_id, uid=c.unique_id, run_id=run_id,
                                             code_version=c.code_version, materialization_id=checked,
                                             status=c.status, finished_at=at, message=c.message)
            self.finish_run(db, run_id, "success" if ok else "error", at, log_path, message)
        return lost

    def _leases_taken(self, db: Connection, holder: str, assets: Sequence[UniqueId]) -> dict[UniqueId, str]:
        """Inside a :meth:`transaction`: which of ``holder``'s ``assets`` another build holds (or held) since.

        A lease that merely expired, unclaimed, still names ``holder``: nobody built since, so it counts as kept.
        """
        now = {UniqueId(uid): str(other) for uid, other in db.execute(
            "SELECT unique_id, holder FROM leases WHERE target = ?", (self.target,)).fetchall()}
        return {uid: now.get(uid, "a build that has finished since") for uid in assets if now.get(uid) != holder}

    def start_run(self, command: str, selected: Sequence[str], at: str) -> int:
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO runs (command, selected, status, started_at, pid, target, host) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?) RETURNING id",
                (command, json.dumps(list(selected)), at, os.getpid(), self.target, machine_name()),
            ).fetchone()
            return int(row[0])

    def finish_run(self, db: Connection, run_id: int, status: str, at: str,
                   log_path: str | None = None, message: str | None = None) -> None:
        """Inside a :meth:`transaction`: close a run (together with its outcomes)."""
        db.execute("UPDATE runs SET status = ?, finished_at = ?, log_path = ?, message = ? WHERE id = ?",
                   (status, at, log_path, message, run_id))

    def insert_outcome(self, db: Connection, *, uid: UniqueId, run_id: int, status: str, finished_at: str,
                       code_version: str, inputs: Mapping[UniqueId, Version], duration: float | None,
                       rows_affected: int | None, message: str | None, manifest_version: str | None = None,
                       base_version: str | None = None, added_columns: Iterable[str] = (),
                       old_rows_before: str | None = None) -> int:
        """Inside a :meth:`transaction`: one build outcome; returns its id (the new data version)."""
        cursor = db.execute(
            "INSERT INTO materializations (unique_id, run_id, status, finished_at, code_version, inputs, duration, "
            "rows_affected, message, manifest_version, base_version, added_columns, target, old_rows_before) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (uid, run_id, status, finished_at, code_version,
             json.dumps({p: _version_json(v) for p, v in inputs.items()}, sort_keys=True),
             duration, rows_affected, message, manifest_version, base_version, json.dumps(sorted(added_columns)),
             self.target, old_rows_before),
        )
        return int(cursor.fetchone()[0])

    @staticmethod
    def insert_check_result(db: Connection, *, check_id: UniqueId, uid: UniqueId, run_id: int,
                            code_version: str, materialization_id: int, status: str, finished_at: str,
                            message: str | None) -> None:
        """Inside a :meth:`transaction`: a check's run on one materialization of its asset."""
        db.execute(
            "INSERT INTO check_results (check_id, unique_id, run_id, code_version, materialization_id, status, "
            "finished_at, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (check_id, uid, run_id, code_version, materialization_id, status, finished_at, message),
        )

    # -- the fingerprint cache -----------------------------------------------------------

    def fingerprints(self, keys: Iterable[tuple[UniqueId, str]]) -> dict[UniqueId, CachedFingerprint]:
        """Cached semantic versions for (asset, manifest version) pairs; missing pairs are left out."""
        # One query for all of them: a status after a branch switch may look up thousands.
        rows = self._query(
            "SELECT f.unique_id, f.code_version, f.semantic, f.sql_hash, f.note "
            f"FROM {self.backend.json_pairs()} "
            "JOIN fingerprints AS f ON f.unique_id = k.a AND f.manifest_version = k.b",
            (json.dumps([list(key) for key in keys]),))
        return {UniqueId(uid): CachedFingerprint(code_version, bool(semantic), sql_hash, note or "")
                for uid, code_version, semantic, sql_hash, note in rows}

    def save_fingerprints(self, found: Iterable[Fingerprinted], db: Connection | None = None) -> None:
        """Remember fingerprints (each SQL text stored once): in ``db``'s open transaction, or in a new one."""
        found = list(found)
        if db is None:
            if found:
                with self.transaction() as db:
                    self.save_fingerprints(found, db)
            return
        for f in found:
            sql_hash = None
            if f.normalized_sql:
                sql_hash = hashlib.sha256(f.normalized_sql.encode()).hexdigest()[:24]
                db.execute("INSERT INTO compiled_sql VALUES (?, ?) ON CONFLICT DO NOTHING",
                           (sql_hash, f.normalized_sql))
            db.execute("INSERT INTO fingerprints VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (unique_id, manifest_version) "
                       "DO UPDATE SET code_version = excluded.code_version, semantic = excluded.semantic, "
                       "sql_hash = excluded.sql_hash, note = excluded.note",
                       (f.unique_id, f.manifest_version, f.code_version, int(f.semantic), sql_hash, f.note or None))

    def compiled_sql(self, sql_hash: str) -> str | None:
        rows = self._query("SELECT normalized_sql FROM compiled_sql WHERE sql_hash = ?", (sql_hash,))
        return str(rows[0][0]) if rows else None

    def interrupt_dead_runs(self, at: str) -> list[int]:
        """Mark runs left 'running' by a process that no longer exists as interrupted.

        A run of this machine is judged by its process id. One of another machine (a shared store)
        cannot be: it is dead once its process holds no live lease (see :mod:`dbtassets.state.leases`),
        that is, within a lease's expiry of its end.
        """
        here = machine_name()
        live = {tuple(str(holder).rsplit(":", 2)[:2]) for (holder,) in self._query(
            f"SELECT DISTINCT holder FROM leases WHERE expires_at >= {self.backend.now}")}
        dead = [run.id for run in self.runs("running")
                if (run.pid is None or not pid_alive(run.pid) if run.host in (None, here)
                    else (run.host, str(run.pid)) not in live)]
        if dead:
            with self.transaction() as db:
                db.executemany("UPDATE runs SET status = 'interrupted', finished_at = ?, "
                               "message = 'the process running this build ended before recording it' "
                               "WHERE id = ? AND status = 'running'", [(at, run_id) for run_id in dead])
        return dead


def _version_json(version: Version) -> list[Any]:
    if version.base or version.added:
        return [version.value, version.at, version.base, sorted(version.added)]
    return [version.value, version.at]


def _versions(inputs: str) -> dict[UniqueId, Version]:
    out = {}
    for uid, stored in json.loads(inputs).items():
        value, at, *rest = stored
        out[UniqueId(uid)] = Version(value, at, rest[0], frozenset(rest[1])) if rest else Version(value, at)
    return out


def machine_name() -> str:
    """This machine's name in runs and leases: ``DBTASSETS_HOST``, else the host name.

    Set ``DBTASSETS_HOST`` where host names are not unique among the machines sharing a store
    (containers started from one image with a fixed host name).
    """
    return os.environ.get("DBTASSETS_HOST") or socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine exists."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
