"""Where the state store lives: an SQLite file, or a PostgreSQL server (team mode).

The store's SQL is written once, in the subset both engines share (``?`` parameters,
``INSERT … ON CONFLICT``, ``RETURNING``); a :class:`Backend` is the small strategy for what
differs: connecting, the two column spellings of the migrations, a write transaction's start, a
few functions (the time now, a JSON list as a table), and turning a driver error into one line.

Every write is one transaction, and writers take turns on both engines: SQLite by
``BEGIN IMMEDIATE``, PostgreSQL by a transaction-scoped advisory lock taken first thing. So a
read-then-write (an observation compared with the latest one) never races, and ids are handed
out in commit order, as SQLite does.

    --state .dbtassets/state.db                  SQLite (the default, beside the project)
    --state postgresql://user@host:5432/db       PostgreSQL (psycopg2: the ``postgres`` extra)

The PostgreSQL driver is psycopg2 rather than psycopg 3: both wrap libpq, but importing psycopg 3
costs about 0.4 s (asyncio, importlib.metadata), a third of a whole ``status`` on a 5,000-model
project, and psycopg2 (0.05 s) is what dbt-postgres installs anyway.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from dbtassets.errors import StateError, StoreUnreachable

POSTGRES_SCHEMES = ("postgresql", "postgres")
_WRITE_LOCK = 0x64627461  # "dbta": the advisory lock every PostgreSQL write transaction takes first
_PLACEHOLDER = re.compile(r"\?")
# Connection errors that waiting does not cure: the user, the password or the database is wrong.
_LASTING = ("password", "does not exist", "pg_hba.conf", "permission denied")


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the store needs of a driver connection (sqlite3's, or a thin wrapper around psycopg's)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: str, parameters: Any) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Location:
    """Where a store is: a file path, or a PostgreSQL URL (shown without its password)."""

    path: Path | None = None
    url: str | None = None

    @staticmethod
    def parse(value: str | Path) -> Location:
        text = str(value)
        if urlsplit(text).scheme in POSTGRES_SCHEMES:
            return Location(url=text)
        if "://" in text:
            raise StateError(f"{_redact(text)}: unknown state store URL; --state takes a file path or "
                             "postgresql://user@host:5432/database")
        return Location(path=Path(value))

    @property
    def is_server(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        return _redact(self.url) if self.url is not None else str(self.path)


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc[1]}"))


class Backend:
    """The engine-specific part of the store. Subclasses: :class:`SQLiteBackend`, :class:`PostgresBackend`."""

    name = ""
    errors: tuple[type[Exception], ...] = ()
    begin_write = "BEGIN"
    now = ""  # SQL for the time now, in seconds since the epoch, by the store's own clock
    read_only = False  # its connections refuse writes (a reader's)

    def __init__(self, location: Location) -> None:
        self.location = location

    def connect(self) -> Connection:
        raise NotImplementedError

    def prepare(self, db: Connection) -> None:
        """Per-connection settings, before the first use."""

    def ddl(self, sql: str) -> str:
        """A migration statement, written with SQLite's column spellings, for this engine."""
        return sql

    def tables(self, db: Connection) -> set[str]:
        raise NotImplementedError

    def json_pairs(self) -> str:
        """A FROM item reading a ``?`` parameter, a JSON list of [a, b] pairs, as a table ``k(a, b)``."""
        raise NotImplementedError

    def integrity_check(self, db: Connection) -> str:
        return "ok"

    def in_transaction(self, db: Connection) -> bool:
        raise NotImplementedError

    def is_lost(self, db: Connection) -> bool:
        """True when the connection is gone for good and a new one is needed (a server restarted)."""
        return False

    def error(self, exc: Exception) -> StateError:
        """The driver's error as a StateError; a :class:`StoreUnreachable` if waiting may cure it."""
        return StateError(self.describe(exc))

    def describe(self, exc: Exception) -> str:
        """One line for a driver error: what went wrong, and what to do."""
        return f"{self.location}: state store error: {exc}"


class SQLiteBackend(Backend):
    """One SQLite file in WAL mode: a CLI reads while a watcher writes."""

    name = "sqlite"
    errors = (sqlite3.DatabaseError,)
    begin_write = "BEGIN IMMEDIATE"
    now = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, location: Location, busy_timeout: float = 30.0, read_only: bool = False) -> None:
        super().__init__(location)
        self.busy_timeout = busy_timeout
        self.read_only = read_only

    @property
    def path(self) -> Path:
        assert self.location.path is not None
        return self.location.path

    def connect(self) -> Connection:
        path = self.path
        if path.is_dir():
            raise StateError(f"{path}: is a directory; --state takes the path of a state file "
                             f"(e.g. {path}/state.db)")
        if self.read_only:
            return self._connect_read_only(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return sqlite3.connect(path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{path}: cannot open the state store: {exc}; "
                             "check the path and its permissions") from None

    def _connect_read_only(self, path: Path) -> Connection:
        """A connection that cannot write (``mode=ro``): for the commands that answer questions."""
        if not path.exists():
            raise StateError(f"{path}: no state store there (the --state path does not exist); pass the path of "
                             "an existing store, or run `dbtassets sync` or `dbtassets watch` to make one")
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.busy_timeout,
                                 isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise StateError(f"{path}: cannot open the state store to read it: {exc}; check the path and its "
                             "permissions") from None
        return db

    def prepare(self, db: Connection) -> None:
        if self.read_only:
            return  # its journal mode is the writers' to set
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")

    def tables(self, db: Connection) -> set[str]:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def json_pairs(self) -> str:
        return ("(SELECT json_extract(value, '$[0]') AS a, json_extract(value, '$[1]') AS b "
                "FROM json_each(?)) AS k")

    def integrity_check(self, db: Connection) -> str:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])

    def in_transaction(self, db: Connection) -> bool:
        assert isinstance(db, sqlite3.Connection)
        return db.in_transaction

    def describe(self, exc: Exception) -> str:
        path, text = self.path, str(exc)
        if "file is not a database" in text:
            return (f"{path}: is not a dbtassets state store (not an SQLite database); move it away or pass "
                    "another --state")
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


class PostgresBackend(Backend):
    """A PostgreSQL server shared by a team: several watchers, CI reading production's state."""

    name = "postgresql"
    now = "extract(epoch from clock_timestamp())"

    def __init__(self, location: Location, connect_timeout: float = 10.0, lock_timeout: float = 30.0,
                 read_only: bool = False) -> None:
        super().__init__(location)
        self.read_only = read_only
        try:
            import psycopg2
            import psycopg2.errors
        except ImportError:
            raise StateError(f"{location}: a PostgreSQL state store needs psycopg2; install it beside dbtassets "
                             "(pip install psycopg2-binary), or install dbtassets with its postgres extra") from None
        self._driver = psycopg2
        self.errors = (psycopg2.Error,)
        self.connect_timeout = connect_timeout
        self.lock_timeout = lock_timeout

    @property
    def begin_write(self) -> str:  # type: ignore[override]
        return f"BEGIN; SELECT pg_advisory_xact_lock({_WRITE_LOCK})"

    def connect(self) -> Connection:
        driver = self._driver
        assert self.location.url is not None
        try:
            # A reader's session refuses every write: the server enforces "readers never write".
            read_only = " -c default_transaction_read_only=on" if self.read_only else ""
            raw = driver.connect(self.location.url, connect_timeout=max(1, int(self.connect_timeout)),
                                 options=f"-c lock_timeout={int(self.lock_timeout * 1000)}{read_only}")
            raw.autocommit = True  # transactions are explicit: BEGIN … COMMIT
        except driver.Error as exc:
            raise self.error(exc) from None
        return _PostgresConnection(raw)

    def ddl(self, sql: str) -> str:
        sql = re.sub(r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql)
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)

    def tables(self, db: Connection) -> set[str]:
        return {row[0] for row in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}

    def json_pairs(self) -> str:
        return "(SELECT value->>0 AS a, value->>1 AS b FROM json_array_elements(CAST(? AS json))) AS k"

    def in_transaction(self, db: Connection) -> bool:
        assert isinstance(db, _PostgresConnection)
        return db.in_transaction

    def is_lost(self, db: Connection) -> bool:
        assert isinstance(db, _PostgresConnection)
        return bool(db.raw.closed)  # psycopg2 marks a connection the server dropped as closed

    def error(self, exc: Exception) -> StateError:
        driver = self._driver
        lost = isinstance(exc, (driver.OperationalError, driver.InterfaceError)) and not isinstance(
            exc, (driver.errors.LockNotAvailable, driver.errors.DiskFull))
        if lost and not any(words in str(exc) for words in _LASTING):  # down, restarting, the network
            return StoreUnreachable(self.describe(exc))
        return StateError(self.describe(exc))

    def describe(self, exc: Exception) -> str:
        where = str(self.location)
        text = " ".join(str(exc).split()) or type(exc).__name__
        driver = self._driver
        errors = driver.errors
        if isinstance(exc, errors.LockNotAvailable):
            return f"{where}: the state store stayed locked by another writer for {self.lock_timeout:g}s; try again"
        if isinstance(exc, errors.InsufficientPrivilege):
            return f"{where}: this user may not use the state store's tables ({text}); grant it, or use another user"
        if isinstance(exc, errors.DiskFull):
            return f"{where}: the PostgreSQL server's disk is full ({text}); free some space there and try again"
        if isinstance(exc, (driver.OperationalError, driver.InterfaceError)):
            if "password authentication failed" in text or "no password supplied" in text:
                return (f"{where}: the PostgreSQL server refused the password of this user; fix the password in "
                        "the URL (or PGPASSWORD / ~/.pgpass)")
            if "does not exist" in text:
                return f"{where}: {text}; create it first (createdb), or fix the URL"
            return (f"{where}: cannot reach the PostgreSQL state store ({text}); check that the server runs and "
                    "the URL's host and port")
        return f"{where}: state store error: {text}"


class _PostgresConnection:
    """psycopg2's connection speaking the store's ``?`` parameters, with sqlite3's ``execute``."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        cursor = self.raw.cursor()
        cursor.execute(_PLACEHOLDER.sub("%s", sql.replace("%", "%%")), tuple(parameters))
        return cursor

    def executemany(self, sql: str, parameters: Any) -> Any:
        cursor = self.raw.cursor()
        cursor.executemany(_PLACEHOLDER.sub("%s", sql.replace("%", "%%")), [tuple(p) for p in parameters])
        return cursor

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.closed == 0 and self.raw.info.transaction_status != 0)  # 0: idle

    def close(self) -> None:
        self.raw.close()


def backend_for(location: Location, *, busy_timeout: float = 30.0, read_only: bool = False) -> Backend:
    """The backend for ``location``; with ``read_only``, its connections cannot write."""
    if location.is_server:
        return PostgresBackend(location, read_only=read_only)
    return SQLiteBackend(location, busy_timeout, read_only)
