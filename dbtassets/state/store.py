"""The state store: runs, materializations, observations, check results and the fingerprint cache.

The rows are read and written here, as the records of :mod:`dbtassets.state.records`; opening the
database, migrating it and the transactions are :mod:`dbtassets.state.connection`'s, the schema is
:mod:`dbtassets.state.migrations`', and the SQL that differs between SQLite and PostgreSQL is
:mod:`dbtassets.state.backends`'. A database that is not a dbtassets store, or is corrupt, is
reported and never replaced.

A store is opened for one target (see :mod:`dbtassets.model.targets`): it files every run,
materialization and observation under that target's warehouse key and reads back only those, so
no answer mixes two warehouses. File observations are the exception: they read the project's
files, the same whichever warehouse is built, and are shared (filed under ``*``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dbtassets.model.manifest import UniqueId
from dbtassets.model.sources import DataVersionKind
from dbtassets.state.backends import Connection
from dbtassets.state.connection import Database
from dbtassets.state.hosts import machine_name, pid_alive
from dbtassets.state.records import (
    SHARED,
    SHARED_KINDS,
    BuildStatus,
    CachedFingerprint,
    CheckOutcome,
    CheckResult,
    Failure,
    Fingerprinted,
    HistoryEntry,
    Materialization,
    Outcome,
    RunRecord,
    RunStatus,
    StateView,
    Version,
    many_versions_from_json,
    version_json,
    versions_from_json,
)


def sql_hash(normalized_sql: str) -> str | None:
    """What the fingerprint cache names a normalized SQL text by (None: there is none)."""
    return hashlib.sha256(normalized_sql.encode()).hexdigest()[:24] if normalized_sql else None


class StateStore(Database):
    """An open state store: the records' queries over a :class:`Database`. Use :meth:`open`; close it
    (or use ``with``) when done."""

    # -- reading -------------------------------------------------------------------------

    def view(self) -> StateView:
        """Everything the staleness rules need, in three indexed queries."""
        rows = self._query(
            "SELECT m.id, m.unique_id, m.run_id, m.finished_at, m.code_version, m.inputs, m.manifest_version, "
            "m.base_version, m.added_columns, m.old_rows_before, m.relation_name "
            "FROM materializations m JOIN (SELECT MAX(id) AS id FROM materializations "
            "WHERE target = ? AND status = 'success' GROUP BY unique_id) AS latest USING (id)", (self.target,)
        )
        successes = {
            UniqueId(uid): Materialization(mid, run_id, finished_at, code_version, inputs, manifest_version, base or "",
                                           frozenset(json.loads(added)) if added != "[]" else frozenset(), old_rows,
                                           relation)
            for (mid, uid, run_id, finished_at, code_version, _, manifest_version, base, added, old_rows, relation),
            inputs in zip(rows, many_versions_from_json([row[5] for row in rows]), strict=True)
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
            UniqueId(uid): Version(version, at, data_at=json.loads(detail).get("data_at") if "data_at" in detail
                                   else None)
            for uid, version, at, detail in self._query(
                "SELECT o.unique_id, o.data_version, o.observed_at, o.detail FROM observations o "
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

    def lateness_said(self) -> dict[UniqueId, str]:
        """The sources a watcher of this target said were late, and how late (``warn``, ``error``)."""
        return {UniqueId(uid): severity for uid, severity in self._query(
            "SELECT unique_id, severity FROM lateness_said WHERE target = ?", (self.target,))}

    def say_lateness(self, changes: Mapping[UniqueId, str | None], at: str) -> dict[UniqueId, str]:
        """Record what a watcher said, a source late (its severity) or recovered (None); all it has said."""
        if not changes:
            return self.lateness_said()
        with self.transaction() as db:
            for uid, severity in changes.items():
                db.execute("DELETE FROM lateness_said WHERE target = ? AND unique_id = ?", (self.target, uid))
                if severity is not None:
                    db.execute("INSERT INTO lateness_said (target, unique_id, severity, said_at) VALUES (?, ?, ?, ?)",
                               (self.target, uid, severity, at))
        return self.lateness_said()

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
            HistoryEntry(mid, run_id, status, finished_at, code_version, versions_from_json(inputs), duration, rows,
                         message)
            for mid, run_id, status, finished_at, code_version, inputs, duration, rows, message in self._query(
                "SELECT id, run_id, status, finished_at, code_version, inputs, duration, rows_affected, message "
                "FROM materializations WHERE unique_id = ? AND target = ? ORDER BY id DESC LIMIT ?",
                (uid, self.target, limit)
            )
        ]

    def recorded(self, name: str) -> list[UniqueId]:
        """The assets with builds recorded on this target that ``name`` names (a unique_id, or its last part)."""
        rows = self._query("SELECT DISTINCT unique_id FROM materializations WHERE target = ? AND unique_id LIKE ?",
                           (self.target, f"%{name}"))  # LIKE's `_` matches any one character: filtered below
        return sorted(UniqueId(u) for (u,) in rows if name in (u, u.rsplit(".", 1)[-1]))

    def observation_history(self, uid: UniqueId, limit: int = 20) -> list[tuple[str, str, str, Any]]:
        """(observed_at, data_version, kind, detail), newest first."""
        return [
            (at, version, kind, json.loads(detail))
            for at, version, kind, detail in self._query(
                "SELECT observed_at, data_version, kind, detail FROM observations "
                "WHERE unique_id = ? AND target IN (?, ?) ORDER BY id DESC LIMIT ?", (uid, SHARED, self.target, limit)
            )
        ]

    def runs(self, status: RunStatus | None = None) -> list[RunRecord]:
        where, params = ("AND status = ?", (self.target, RunStatus(status).value)) if status else ("", (self.target,))
        rows = self._query(f"SELECT id, command, status, started_at, finished_at, pid, host FROM runs "
                           f"WHERE target = ? {where} ORDER BY id", params)
        return [RunRecord(run_id, command, RunStatus(status), *rest) for run_id, command, status, *rest in rows]

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
                inputs = {**o.inputs, **{p: rebuilt[p] for p in o.rebuilt_inputs if p in rebuilt},
                          **{p: rebuilt[f] for p, f in o.fed_inputs.items() if f in rebuilt}}
                new_id = self.insert_outcome(
                    db, uid=o.unique_id, run_id=run_id, status=o.status.value, finished_at=at,
                    code_version=o.code_version, inputs=inputs, duration=o.duration, rows_affected=o.rows_affected,
                    message=o.message, manifest_version=o.manifest_version, base_version=o.base_version,
                    added_columns=o.added_columns, old_rows_before=o.old_rows_before, relation_name=o.relation_name)
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
            self.finish_run(db, run_id, RunStatus.SUCCESS if ok else RunStatus.ERROR, at, log_path, message)
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
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (command, json.dumps(list(selected)), RunStatus.RUNNING.value, at, os.getpid(), self.target,
                 machine_name()),
            ).fetchone()
            return int(row[0])

    def finish_run(self, db: Connection, run_id: int, status: RunStatus, at: str,
                   log_path: str | None = None, message: str | None = None) -> None:
        """Inside a :meth:`transaction`: close a run (together with its outcomes)."""
        db.execute("UPDATE runs SET status = ?, finished_at = ?, log_path = ?, message = ? WHERE id = ?",
                   (RunStatus(status).value, at, log_path, message, run_id))

    def insert_outcome(self, db: Connection, *, uid: UniqueId, run_id: int, status: str, finished_at: str,
                       code_version: str, inputs: Mapping[UniqueId, Version], duration: float | None,
                       rows_affected: int | None, message: str | None, manifest_version: str | None = None,
                       base_version: str | None = None, added_columns: Iterable[str] = (),
                       old_rows_before: str | None = None, relation_name: str | None = None) -> int:
        """Inside a :meth:`transaction`: one build outcome; returns its id (the new data version)."""
        cursor = db.execute(
            "INSERT INTO materializations (unique_id, run_id, status, finished_at, code_version, inputs, duration, "
            "rows_affected, message, manifest_version, base_version, added_columns, target, old_rows_before, "
            "relation_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (uid, run_id, status, finished_at, code_version,
             json.dumps({p: version_json(v) for p, v in inputs.items()}, sort_keys=True),
             duration, rows_affected, message, manifest_version, base_version, json.dumps(sorted(added_columns)),
             self.target, old_rows_before, relation_name),
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
            hashed = sql_hash(f.normalized_sql)
            if hashed is not None:
                db.execute("INSERT INTO compiled_sql VALUES (?, ?) ON CONFLICT DO NOTHING",
                           (hashed, f.normalized_sql))
            db.execute("INSERT INTO fingerprints VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (unique_id, manifest_version) "
                       "DO UPDATE SET code_version = excluded.code_version, semantic = excluded.semantic, "
                       "sql_hash = excluded.sql_hash, note = excluded.note",
                       (f.unique_id, f.manifest_version, f.code_version, int(f.semantic), hashed, f.note or None))

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
        dead = [run.id for run in self.runs(RunStatus.RUNNING)
                if (run.pid is None or not pid_alive(run.pid) if run.host in (None, here)
                    else (run.host, str(run.pid)) not in live)]
        if dead:
            with self.transaction() as db:
                db.executemany("UPDATE runs SET status = 'interrupted', finished_at = ?, "
                               "message = 'the process running this build ended before recording it' "
                               "WHERE id = ? AND status = 'running'", [(at, run_id) for run_id in dead])
        return dead
