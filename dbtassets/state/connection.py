"""An open connection to a state store: opening (and migrating), transactions, reconnecting.

The queries that read and write records are :class:`dbtassets.state.store.StateStore`'s, which is
this plus them; this part knows nothing of runs or builds. Every write is one transaction and
writers take turns (see :mod:`dbtassets.state.backends`), so concurrent writers queue instead of
failing, and a process killed mid-write leaves the last committed state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from dbtassets.state.backends import Backend, Connection, Location, backend_for
from dbtassets.state.migrations import migrate

_Self = TypeVar("_Self", bound="Database")


class Database:
    """An open store database. Use :meth:`open`; close it (or use ``with``) when done."""

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
    def open(cls: type[_Self], where: Path | str | Location, *, target: str = "", default_target: str | None = None,
             busy_timeout: float = 30.0) -> _Self:
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
        migrate(self._db, self.backend, self.transaction, self.path, default_target)

    def close(self) -> None:
        self._db.close()

    def __enter__(self: _Self) -> _Self:
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
