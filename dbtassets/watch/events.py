"""What the watcher says: one frozen dataclass per kind of event.

The kinds and their fields are an interface (``watch --format json`` prints them, one per line,
and other programs read them): ``docs/events.md`` documents each one, and a test renders every
kind in every format and verbosity. Names are assets' display names (``raw.orders``,
``fact_sales``), times are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar


class EventKind(str, Enum):
    """The ``event`` field of each JSON line."""

    WATCHING = "watching"
    NEW_DATA = "new_data"
    OBSERVE_FAILED = "observe_failed"
    WAREHOUSE_UNREACHABLE = "warehouse_unreachable"
    REPORTED = "reported"
    PARSING = "parsing"
    PARSED = "parsed"
    STALE = "stale"
    BUILD_STARTED = "build_started"
    NODE_FINISHED = "node_finished"
    BUILD_FINISHED = "build_finished"
    FRESH = "fresh"
    BACKING_OFF = "backing_off"
    WAITING = "waiting"
    ERROR = "error"
    STOPPED = "stopped"
    NOT_DUE = "not_due"
    SOURCE_LATE = "source_late"
    SOURCE_RECOVERED = "source_recovered"
    STORE_UNREACHABLE = "store_unreachable"
    STORE_RECONNECTED = "store_reconnected"
    LEASE_LOST = "lease_lost"
    CHECK_REMOVED = "check_removed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class WatchEvent:
    """Something the watcher did or saw. Every subclass names its :class:`EventKind`."""

    kind: ClassVar[EventKind]


@dataclass(frozen=True)
class Watching(WatchEvent):
    """The watcher started: what it watches, and how."""

    kind = EventKind.WATCHING
    project: str
    assets: int
    sources: Mapping[str, str]  # source -> how it is observed
    runner: str  # "InProcessRunner" or "SubprocessRunner"
    settle: float
    stale: int  # assets not fresh at start (stale or missing)


@dataclass(frozen=True)
class NewData(WatchEvent):
    """A source's data version moved."""

    kind = EventKind.NEW_DATA
    source: str
    observer: str  # "files" or "query"
    files: int | None = None  # files observer: the complete files matching its globs
    bytes: int | None = None
    newest: str | None = None
    in_progress: tuple[str, ...] = ()  # files still being written, left out
    watermark: str | None = None  # query observer: what the query returned


@dataclass(frozen=True)
class ObserveFailed(WatchEvent):
    """A source could not be observed (its query failed)."""

    kind = EventKind.OBSERVE_FAILED
    source: str
    message: str


@dataclass(frozen=True)
class WarehouseUnreachable(WatchEvent):
    """The warehouse did not answer the sources' queries (down, or past ``observe.timeout``): they keep
    their recorded observations, and are asked again after a backoff."""

    kind = EventKind.WAREHOUSE_UNREACHABLE
    message: str  # the warehouse (adapter, location, target) and what failed
    sources: int  # query sources that kept their last reading
    retry_in: float


@dataclass(frozen=True)
class Reported(WatchEvent):
    """A loader reported new data (``dbtassets report``) from another process."""

    kind = EventKind.REPORTED


@dataclass(frozen=True)
class Parsing(WatchEvent):
    """Project files changed: dbt re-parses the project."""

    kind = EventKind.PARSING


@dataclass(frozen=True)
class Parsed(WatchEvent):
    kind = EventKind.PARSED
    seconds: float
    assets: int


@dataclass(frozen=True)
class StaleAsset:
    """One asset about to be built, and why."""

    name: str
    status: str  # "stale" or "missing"
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Stale(WatchEvent):
    """What the next build will build, and why."""

    kind = EventKind.STALE
    assets: tuple[StaleAsset, ...]
    checks: Mapping[str, str] = field(default_factory=dict)  # pending check it runs too (short name) -> why


@dataclass(frozen=True)
class BuildStarted(WatchEvent):
    kind = EventKind.BUILD_STARTED
    count: int
    command: str
    checks: int = 0  # pending checks it runs too


@dataclass(frozen=True)
class NodeFinished(WatchEvent):
    """dbt finished one node of the build (an asset or a data test), with the in-process runner."""

    kind = EventKind.NODE_FINISHED
    name: str  # an asset's name, or a data test's short name (unique_stg_orders_order_id)
    status: str  # dbt's: success, pass, error, fail, skipped, warn
    seconds: float
    message: str  # the error of a failure; why a skipped node was skipped


@dataclass(frozen=True)
class BuildFinished(WatchEvent):
    kind = EventKind.BUILD_FINISHED
    built: tuple[str, ...]
    failed: Mapping[str, str]  # asset -> its error
    skipped: tuple[str, ...]
    seconds: float
    command: str
    error: str | None  # dbt crashed: why
    log_path: str | None
    retry_in: Mapping[str, float]  # failed asset -> seconds until it is retried
    failed_checks: Mapping[str, str] = field(default_factory=dict)  # data test or unit test -> what failed
    checks: int = 0  # pending checks it ran


@dataclass(frozen=True)
class Fresh(WatchEvent):
    """A pass found nothing to build (said once until something changes)."""

    kind = EventKind.FRESH
    assets: int


@dataclass(frozen=True)
class BackingOff(WatchEvent):
    """Stale assets held after failures until their retry falls due."""

    kind = EventKind.BACKING_OFF
    assets: tuple[str, ...]
    retry_in: Mapping[str, float]  # failed asset -> seconds until its retry


@dataclass(frozen=True)
class Waiting(WatchEvent):
    """A build waits: for files still being written, for another process's build lock, or for assets another
    build holds a lease on (team mode)."""

    kind = EventKind.WAITING
    message: str
    assets: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Error(WatchEvent):
    """A whole pass failed (the state store cannot be written, the project does not parse): retried."""

    kind = EventKind.ERROR
    message: str
    retry_in: float


@dataclass(frozen=True)
class StoreUnreachable(WatchEvent):
    """The state store's server cannot be reached (stopped, restarting): the watcher waits and retries."""

    kind = EventKind.STORE_UNREACHABLE
    message: str  # the store's URL without its password, and what failed
    retry_in: float


@dataclass(frozen=True)
class StoreReconnected(WatchEvent):
    """The state store is reachable again, after ``down_for`` seconds: what landed meanwhile is observed now."""

    kind = EventKind.STORE_RECONNECTED
    down_for: float


@dataclass(frozen=True)
class LeaseLost(WatchEvent):
    """A build outlived its leases (renewals failed until they expired) and another build took some of its
    assets meanwhile: their outcomes are not recorded as this build's, and the watcher plans again."""

    kind = EventKind.LEASE_LOST
    assets: tuple[str, ...]
    holders: Mapping[str, str]  # asset -> the build that took it (host:pid:nonce)


@dataclass(frozen=True)
class CheckRemoved(WatchEvent):
    """A re-parse left a data test or unit test out of the manifest: ``missing`` when the YAML still declares it
    (dbt's partial parse lost it; ``check`` fails until a full parse brings it back), ``removed`` when it was
    deleted from the YAML (said once)."""

    kind = EventKind.CHECK_REMOVED
    asset: str
    check: str  # its short name (unique_stg_orders_order_id), or what the YAML declares (unique on dim_customer.id)
    state: str  # "missing" or "removed"
    message: str


@dataclass(frozen=True)
class Stopped(WatchEvent):
    kind = EventKind.STOPPED


@dataclass(frozen=True)
class NotDue(WatchEvent):
    """Stale assets wait for their freshness policy (dbt's ``freshness.build_after``)."""

    kind = EventKind.NOT_DUE
    assets: tuple[str, ...]
    next_due_at: str | None  # when the first of them falls due (UTC, ``2026-11-25T10:00:00Z``)


@dataclass(frozen=True)
class SourceLate(WatchEvent):
    """A source crossed its ``warn_after`` or ``error_after`` (said once per severity)."""

    kind = EventKind.SOURCE_LATE
    source: str
    severity: str  # "warn" or "error"
    message: str
    last_data_at: str
    late_for: float  # seconds since its last new data
    threshold: Mapping[str, object]  # the crossed threshold: {"count": 1, "period": "hour"}


@dataclass(frozen=True)
class SourceRecovered(WatchEvent):
    """A late source has new data again."""

    kind = EventKind.SOURCE_RECOVERED
    source: str
    last_data_at: str | None


EVENT_TYPES: Mapping[EventKind, type[WatchEvent]] = {
    cls.kind: cls for cls in (Watching, NewData, ObserveFailed, Reported, Parsing, Parsed, Stale, BuildStarted,
                              NodeFinished, BuildFinished, Fresh, BackingOff, Waiting, Error, Stopped, NotDue,
                              SourceLate, SourceRecovered, StoreUnreachable, StoreReconnected, LeaseLost,
                              CheckRemoved, WarehouseUnreachable)}
