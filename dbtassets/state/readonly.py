"""A state store opened by a command that answers questions: it reads the store and never writes it.

``status``, ``check``, ``why`` and the other readers observe the sources and compute code
versions as writers do, but what they observe and fingerprint stays in this process: it is laid
over what the store returns, so their answer is the one they would give after recording it, and
the store they were pointed at (perhaps production's, from a CI job) is left byte for byte as it
was. It is opened so that it cannot be written at all: an SQLite file with ``mode=ro`` and
``query_only``, a PostgreSQL session with ``default_transaction_read_only``. It is never migrated: an
SQLite store an older dbtassets wrote is copied into memory and migrated there (so a CI gate reading
production's store keeps working the day dbtassets is upgraded, before production's watcher is); a
PostgreSQL one is refused with a line saying to run a writer of this version once.

A reader pointed at a store that does not exist is refused too (a mistyped path would otherwise
answer from an empty store); only the default store of a project that has none yet reads as
empty, in memory.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dbtassets.errors import StateError
from dbtassets.model.manifest import UniqueId
from dbtassets.state.backends import Connection, Location, SQLiteBackend, backend_for
from dbtassets.state.migrations import migrate, not_applied, older_store
from dbtassets.state.records import CachedFingerprint, Fingerprinted, Version
from dbtassets.state.store import StateStore, sql_hash

_MEMORY = ":memory:"


class ReadOnlyStore(StateStore):
    """A :class:`StateStore` that keeps what it is asked to record in memory. Use :meth:`open_reader`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._observed: list[tuple[UniqueId, str, str, str, Mapping[str, Any]]] = []  # uid, version, kind, at, detail
        self._checked: dict[tuple[UniqueId, str], str] = {}  # (uid, kind) → when last read, unchanged
        self._fingerprints: dict[tuple[UniqueId, str], Fingerprinted] = {}
        self._tidy_up: Path | None = None  # an SQLite store whose -wal and -shm files reading it may make

    @classmethod
    def open_reader(cls, where: Path | str | Location, *, target: str = "", default_target: str | None = None,
                    empty_if_missing: bool = False) -> ReadOnlyStore:
        """Open the store at ``where`` to read it; ``empty_if_missing``: an empty store (in memory) if there is none.

        Raises:
            StateError: it does not exist (unless ``empty_if_missing``), is not a dbtassets store, or
                an older or newer dbtassets wrote it; the server cannot be reached.
        """
        location = where if isinstance(where, Location) else Location.parse(where)
        if location.path is not None and not location.path.exists() and empty_if_missing:
            empty = cls(SQLiteBackend(Location(path=Path(_MEMORY))), sqlite3.connect(_MEMORY, isolation_level=None),
                        target)
            migrate(empty._db, empty.backend, super(ReadOnlyStore, empty).transaction, location, default_target)
            return empty
        idle = location.path is not None and not any(_side_files(location.path))  # nobody has it open
        backend = backend_for(location, read_only=True)
        db = backend.connect()
        store = cls(backend, db, target)
        store._tidy_up = location.path if idle else None
        try:
            missing = not_applied(db, backend, location, default_target)
            if missing and not isinstance(db, sqlite3.Connection):
                raise older_store(location, missing)
        except backend.errors as exc:
            store.close()
            raise backend.error(exc) from None
        except BaseException:
            store.close()
            raise
        return store._upgraded(location, default_target) if missing else store

    def _upgraded(self, location: Location, default_target: str | None) -> ReadOnlyStore:
        """An SQLite store an older dbtassets wrote, copied into memory and migrated there: read as this
        version reads, while the file stays as it was (the next writer upgrades it)."""
        copy = sqlite3.connect(_MEMORY, isolation_level=None, check_same_thread=False)
        assert isinstance(self._db, sqlite3.Connection)  # open_reader's test: only SQLite stores are copied
        try:
            self._db.backup(copy)
        finally:
            self.close()
        upgraded = type(self)(SQLiteBackend(Location(path=Path(_MEMORY))), copy, self.target)
        migrate(copy, upgraded.backend, super(ReadOnlyStore, upgraded).transaction, location, default_target)
        return upgraded

    def close(self) -> None:
        super().close()
        self._tidy()

    def _tidy(self) -> None:
        """Remove the -wal and -shm files that reading a WAL store made, as its last connection does.

        SQLite creates them for any reader, even a read-only one, and leaves them behind. A
        connection that may write, closing last, removes them, with SQLite's own locking; it
        changes nothing else (the log is empty: nobody wrote). Another process using the store
        keeps them, and removes them itself.
        """
        path, self._tidy_up = self._tidy_up, None
        if path is None or not all(_side_files(path)):
            return
        with contextlib.suppress(sqlite3.Error):
            db = sqlite3.connect(path, isolation_level=None)
            try:
                db.execute("PRAGMA query_only = ON")
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            finally:
                db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        raise StateError(f"{self.path}: opened read-only, by a command that must not write to the state store")
        yield self._db  # pragma: no cover  (a generator, for contextmanager)

    # -- observations, in memory ---------------------------------------------------------

    def record_observation(self, uid: UniqueId, version: str, kind: str, at: str,
                           detail: Mapping[str, Any] | None = None) -> bool:
        """As :meth:`StateStore.record_observation`, in memory: True if ``version`` is news for ``kind``."""
        latest = next((v for u, v, k, _, _ in reversed(self._observed) if u == uid and k == kind), None)
        if latest is None:
            rows = self._query("SELECT data_version FROM observations WHERE unique_id = ? AND kind = ? "
                               "AND target = ? ORDER BY id DESC LIMIT 1", (uid, kind, self._scope(kind)))
            latest = rows[0][0] if rows else None
        if latest == version:
            self._checked[(uid, kind)] = at
            return False
        self._observed.append((uid, version, kind, at, dict(detail or {})))
        self._checked.pop((uid, kind), None)
        return True

    def latest_observations(self) -> dict[UniqueId, Version]:
        found = super().latest_observations()
        found.update((uid, Version(version, at, data_at=detail.get("data_at")))
                     for uid, version, _, at, detail in self._observed)
        return found

    def last_checked(self, kind: str) -> dict[UniqueId, str]:
        found = super().last_checked(kind)
        found.update((uid, at) for uid, _, k, at, _ in self._observed if k == kind)
        found.update((uid, at) for (uid, k), at in self._checked.items() if k == kind)
        return found

    def latest_observation_id(self, kind: str) -> int:
        return super().latest_observation_id(kind) + sum(1 for *_, k, _, _ in self._observed if k == kind)

    def observation_history(self, uid: UniqueId, limit: int = 20) -> list[tuple[str, str, str, Any]]:
        mine = [(at, version, kind, detail) for u, version, kind, at, detail in reversed(self._observed) if u == uid]
        return [*mine, *super().observation_history(uid, limit)][:limit]

    def counts(self) -> dict[str, int]:
        found = super().counts()
        return {**found, "observations": found["observations"] + len(self._observed)}

    # -- fingerprints, in memory ---------------------------------------------------------

    def save_fingerprints(self, found: Iterable[Fingerprinted], db: Connection | None = None) -> None:
        self._fingerprints.update(((f.unique_id, f.manifest_version), f) for f in found)

    def fingerprints(self, keys: Iterable[tuple[UniqueId, str]]) -> dict[UniqueId, CachedFingerprint]:
        keys = list(keys)
        found = super().fingerprints(keys)
        for key in keys:
            if key in self._fingerprints:
                f = self._fingerprints[key]
                found[key[0]] = CachedFingerprint(f.code_version, f.semantic, sql_hash(f.normalized_sql), f.note or "")
        return found

    def compiled_sql(self, hashed: str) -> str | None:
        mine = next((f.normalized_sql for f in self._fingerprints.values() if sql_hash(f.normalized_sql) == hashed),
                    None)
        return mine if mine is not None else super().compiled_sql(hashed)



def _side_files(path: Path) -> list[bool]:
    """Whether the -wal and -shm files of the SQLite store at ``path`` exist."""
    return [Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm")]


def open_store(where: Path | str | Location, target: str, default_target: str, *, read_only: bool,
               empty_if_missing: bool = False) -> StateStore:
    """The store at ``where``: to read only (:meth:`ReadOnlyStore.open_reader`), or to read and write."""
    if read_only:
        return ReadOnlyStore.open_reader(where, target=target, default_target=default_target,
                                         empty_if_missing=empty_if_missing)
    return StateStore.open(where, target=target, default_target=default_target)
