"""The state store: runs, materializations and observations in one SQLite file.

WAL mode lets a CLI read while a watcher writes; every write is one ``BEGIN IMMEDIATE``
transaction, so concurrent writers queue (up to ``busy_timeout``) instead of failing, and a
process killed mid-write leaves the last committed state. Schema changes are named migrations
recorded in the ``migrations`` table. A file that is not a dbtassets store, or is corrupt, is
reported and never replaced.

A store is opened for one target (see :mod:`dbtassets.targets`): it files every run,
materialization and observation under that target's warehouse key and reads back only those, so
no answer mixes two warehouses. File observations are the exception: they read the project's
files, the same whichever warehouse is built, and are shared (filed under ``*``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbtassets.errors import StateError
from dbtassets.manifest import UniqueId
from dbtassets.staleness import Failure, Materialization, StateView, Version

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
class RunRecord:
    id: int
    command: str
    status: str
    started_at: str
    finished_at: str | None
    pid: int | None


class StateStore:
    """An open state store. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, path: Path, connection: sqlite3.Connection, target: str = "") -> None:
        self.path = path
        self.target = target
        self._db = connection

    @classmethod
    def open(cls, path: Path, *, target: str = "", default_target: str | None = None,
             busy_timeout: float = 30.0) -> StateStore:
        """Open (creating and migrating if needed) the store at ``path``, for the records of ``target``.

        Args:
            target: the warehouse key of the target whose records to read and write.
            default_target: the profile's default target's key, which owns records made before
                the store knew targets; without it they stay unfiled (and unseen) for now.

        Raises:
            StateError: ``path`` is a directory, not an SQLite file, another program's database,
                corrupt, or its directory cannot be created or written.
        """
        if path.is_dir():
            raise StateError(f"{path}: is a directory; --state takes the path of a state file "
                             f"(e.g. {path}/state.db)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{path}: cannot open the state store: {exc}; "
                             "check the path and its permissions") from None
        store = cls(path, db, target)
        try:
            store._prepare(default_target)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StateError(_describe(path, exc)) from None
        except BaseException:
            db.close()
            raise
        return store

    def _prepare(self, default_target: str | None) -> None:
        db = self._db
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "migrations" not in tables:
            raise StateError(
                f"{self.path}: is an SQLite database but not a dbtassets state store "
                f"(it has tables {', '.join(sorted(tables))}); pass another --state path"
            )
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
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
                        db.execute(statement)
                db.execute("INSERT INTO migrations VALUES (?, datetime('now'))", (name,))
        if default_target is not None and OLD_RECORDS_TO_DEFAULT_TARGET not in applied:
            self._file_old_records(default_target)

    def _file_old_records(self, default_target: str) -> None:
        """The named migration that files records made before targets under the default target."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM migrations WHERE name = ?", (OLD_RECORDS_TO_DEFAULT_TARGET,)).fetchone():
                return  # another process filed them while we waited for the lock
            db.execute("UPDATE runs SET target = ? WHERE target IS NULL", (default_target,))
            db.execute("UPDATE materializations SET target = ? WHERE target IS NULL", (default_target,))
            db.execute("UPDATE observations SET target = CASE WHEN kind IN (SELECT value FROM json_each(?)) "
                       "THEN ? ELSE ? END WHERE target IS NULL", (json.dumps(sorted(SHARED_KINDS)), SHARED,
                                                                  default_target))
            db.execute("INSERT INTO migrations VALUES (?, datetime('now'))", (OLD_RECORDS_TO_DEFAULT_TARGET,))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; waits for other writers, rolls back on any error."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise StateError(_describe(self.path, exc)) from None
        try:
            yield db
        except sqlite3.DatabaseError as exc:  # e.g. the disk filled up in the middle of the transaction
            self._rollback()
            raise StateError(_describe(self.path, exc)) from None
        except BaseException:
            self._rollback()
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback()
            raise StateError(_describe(self.path, exc)) from None

    def _rollback(self) -> None:
        """Undo the open transaction, unless SQLite already has (it does on SQLITE_FULL and some I/O errors)."""
        if self._db.in_transaction:
            with suppress(sqlite3.Error):  # the error being raised says more than a failed rollback
                self._db.execute("ROLLBACK")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StateError(_describe(self.path, exc)) from None

    # -- reading -------------------------------------------------------------------------

    def view(self) -> StateView:
        """Everything the staleness rules need, in three indexed queries."""
        successes = {
            UniqueId(uid): Materialization(mid, run_id, finished_at, code_version, _versions(inputs), manifest_version,
                                           base or "", frozenset(json.loads(added)) if added != "[]" else frozenset())
            for mid, uid, run_id, finished_at, code_version, inputs, manifest_version, base, added in self._query(
                "SELECT m.id, m.unique_id, m.run_id, m.finished_at, m.code_version, m.inputs, m.manifest_version, "
                "m.base_version, m.added_columns "
                "FROM materializations m JOIN (SELECT MAX(id) AS id FROM materializations "
                "WHERE target = ? AND status = 'success' GROUP BY unique_id) USING (id)", (self.target,)
            )
        }
        failures = {
            UniqueId(uid): Failure(fid, finished_at, message or "failed")
            for fid, uid, finished_at, message in self._query(
                "SELECT m.id, m.unique_id, m.finished_at, m.message "
                "FROM materializations m JOIN (SELECT MAX(id) AS id FROM materializations "
                "WHERE target = ? AND status = 'error' GROUP BY unique_id) USING (id)", (self.target,)
            )
        }
        return StateView(successes, failures, self.latest_observations())

    def latest_observations(self) -> dict[UniqueId, Version]:
        return {
            UniqueId(uid): Version(version, at)
            for uid, version, at in self._query(
                "SELECT o.unique_id, o.data_version, o.observed_at FROM observations o "
                "JOIN (SELECT MAX(id) AS id FROM observations WHERE target IN (?, ?) GROUP BY unique_id) USING (id)",
                (SHARED, self.target))
        }

    def last_checked(self, kind: str) -> dict[UniqueId, str]:
        """When each source was last read by an observer of ``kind`` (whether or not its data had moved)."""
        return {
            UniqueId(uid): at for uid, at in self._query(
                "SELECT o.unique_id, COALESCE(o.checked_at, o.observed_at) FROM observations o "
                "JOIN (SELECT MAX(id) AS id FROM observations WHERE kind = ? AND target = ? GROUP BY unique_id) "
                "USING (id)", (kind, self._scope(kind)))
        }

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
            f"SELECT id, command, status, started_at, finished_at, pid FROM runs WHERE target = ? {where} ORDER BY id",
            params)]

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
        return str(self._query("PRAGMA integrity_check")[0][0])

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

    def start_run(self, command: str, selected: Sequence[str], at: str) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (command, selected, status, started_at, pid, target) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (command, json.dumps(list(selected)), at, os.getpid(), self.target),
            )
            return int(cursor.lastrowid or 0)

    def finish_run(self, db: sqlite3.Connection, run_id: int, status: str, at: str,
                   log_path: str | None = None, message: str | None = None) -> None:
        """Inside a :meth:`transaction`: close a run (together with its outcomes)."""
        db.execute("UPDATE runs SET status = ?, finished_at = ?, log_path = ?, message = ? WHERE id = ?",
                   (status, at, log_path, message, run_id))

    def insert_outcome(self, db: sqlite3.Connection, *, uid: UniqueId, run_id: int, status: str, finished_at: str,
                       code_version: str, inputs: Mapping[UniqueId, Version], duration: float | None,
                       rows_affected: int | None, message: str | None, manifest_version: str | None = None,
                       base_version: str | None = None, added_columns: Iterable[str] = ()) -> int:
        """Inside a :meth:`transaction`: one build outcome; returns its id (the new data version)."""
        cursor = db.execute(
            "INSERT INTO materializations (unique_id, run_id, status, finished_at, code_version, inputs, duration, "
            "rows_affected, message, manifest_version, base_version, added_columns, target) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (uid, run_id, status, finished_at, code_version,
             json.dumps({p: _version_json(v) for p, v in inputs.items()}, sort_keys=True),
             duration, rows_affected, message, manifest_version, base_version, json.dumps(sorted(added_columns)),
             self.target),
        )
        return int(cursor.lastrowid or 0)

    # -- the fingerprint cache -----------------------------------------------------------

    def fingerprints(self, keys: Iterable[tuple[UniqueId, str]]) -> dict[UniqueId, CachedFingerprint]:
        """Cached semantic versions for (asset, manifest version) pairs; missing pairs are left out."""
        # One query for all of them: a status after a branch switch may look up thousands.
        rows = self._query(
            "SELECT f.unique_id, f.code_version, f.semantic, f.sql_hash, f.note FROM json_each(?) AS k "
            "JOIN fingerprints AS f ON f.unique_id = json_extract(k.value, '$[0]') "
            "AND f.manifest_version = json_extract(k.value, '$[1]')",
            (json.dumps([list(key) for key in keys]),))
        return {UniqueId(uid): CachedFingerprint(code_version, bool(semantic), sql_hash, note or "")
                for uid, code_version, semantic, sql_hash, note in rows}

    def save_fingerprint(self, db: sqlite3.Connection, uid: UniqueId, manifest_version: str, code_version: str,
                         semantic: bool, normalized_sql: str, note: str) -> None:
        """Inside a :meth:`transaction`: remember a fingerprint (and its SQL, stored once per text)."""
        sql_hash = None
        if normalized_sql:
            sql_hash = hashlib.sha256(normalized_sql.encode()).hexdigest()[:24]
            db.execute("INSERT OR IGNORE INTO compiled_sql VALUES (?, ?)", (sql_hash, normalized_sql))
        db.execute("INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?, ?, ?)",
                   (uid, manifest_version, code_version, int(semantic), sql_hash, note or None))

    def compiled_sql(self, sql_hash: str) -> str | None:
        rows = self._query("SELECT normalized_sql FROM compiled_sql WHERE sql_hash = ?", (sql_hash,))
        return str(rows[0][0]) if rows else None

    def interrupt_dead_runs(self, at: str) -> list[int]:
        """Mark runs left 'running' by a process that no longer exists as interrupted."""
        dead = [run.id for run in self.runs("running") if run.pid is None or not _alive(run.pid)]
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


_NEARLY_FULL = 256 * 1024  # bytes: less than SQLite may need to grow its WAL and WAL index


def _file_system_problem(directory: Path) -> str | None:
    """Why nothing can be written in ``directory``, if its file system is read-only or (nearly) full."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return f"the file system of {directory} is read-only; remount it read-write or pass another --state"
    free = stats.f_bavail * stats.f_frsize
    if free < _NEARLY_FULL:
        return f"the disk is full ({free // 1024} KiB free in {directory}); free some space and run the command again"
    return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(path: Path, exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "file is not a database" in text:
        return f"{path}: is not a dbtassets state store (not an SQLite database); move it away or pass another --state"
    if "malformed" in text or "corrupt" in text:
        return (f"{path}: the state store is corrupt ({text}); dbtassets will not replace it: inspect it with "
                f"`sqlite3 {path} 'PRAGMA integrity_check'`, or move it away to start afresh")
    # A full disk shows as "disk I/O error" when SQLite cannot grow its WAL index: look at the file system.
    problem = _file_system_problem(path.parent) if any(
        word in text for word in ("disk", "readonly", "read-only", "unable to open")) else None
    if problem is not None:
        return f"{path}: cannot write the state store ({text}): {problem}"
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return f"{path}: cannot write the state store ({text}); check the permissions of {path.parent}"
    if "disk" in text and "full" in text:
        return f"{path}: the disk is full ({text}); free some space and run the command again"
    return f"{path}: state store error: {text}"
