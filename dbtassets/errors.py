"""The one exception family of dbtassets.

Every error the library raises on purpose derives from :class:`DbtAssetsError`; the CLI turns
it into one line on stderr and exit code 2. Anything else escaping is a bug.

    DbtAssetsError
    ├── ProjectError       the project directory is not a usable dbt project
    ├── ManifestError      manifest.json is missing, unreadable or of an unsupported shape
    ├── ConfigError        dbtassets.yml is invalid
    ├── StateError         the state store cannot be opened, is corrupt, or cannot be written
    │   └── StoreUnreachable   its server cannot be reached for now (down, restarting): a watcher waits
    ├── SelectionError     a --select/--exclude expression or an asset name is invalid
    ├── ObservationError   a source could not be observed
    │   └── WarehouseUnreachable   the warehouse did not answer (down, unreachable, past the time budget)
    ├── RunnerError        dbt could not be run at all (not: a model failed)
    └── LockError          another dbtassets process is already building this project

:class:`Interrupted` stands apart: not an error but SIGINT or SIGTERM asking the process to stop.
It derives from BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it,
and the CLI exits with 128 + the signal's number (130, 143).
"""

from __future__ import annotations


class DbtAssetsError(Exception):
    """Base class of every error dbtassets raises deliberately."""


class ProjectError(DbtAssetsError):
    """The project directory is missing or is not a dbt project."""


class ManifestError(DbtAssetsError):
    """The manifest is missing, unreadable, truncated or of an unsupported schema."""


class ConfigError(DbtAssetsError):
    """dbtassets.yml has an unknown key, a wrong type or names an unknown source."""


class StateError(DbtAssetsError):
    """The state store cannot be opened, read or written."""


class StoreUnreachable(StateError):
    """The state store's server cannot be reached for now (stopped, restarting, the network broke).

    Worth waiting for, unlike a wrong password or a missing database: a watcher retries with a
    backoff and reconnects; one-shot commands fail as for any StateError.
    """


class SelectionError(DbtAssetsError):
    """A selector or asset name does not parse or matches nothing it must match."""


class ObservationError(DbtAssetsError):
    """A source asset could not be observed."""


class WarehouseUnreachable(ObservationError):
    """The warehouse could not be reached or did not answer within the observation's time budget.

    No source's query is to blame: asking again source by source would only wait longer. The
    sources keep their recorded observations; a watcher backs off before it asks again.
    """


class RunnerError(DbtAssetsError):
    """dbt itself could not be started or crashed before producing results."""


class LockError(DbtAssetsError):
    """Another dbtassets process holds the build lock of this project."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; raised by the CLI's signal handler in the main thread."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.run_id: int | None = None  # the build run it stopped, once recorded as interrupted

    @property
    def signal_name(self) -> str:
        import signal

        return signal.Signals(self.signum).name
