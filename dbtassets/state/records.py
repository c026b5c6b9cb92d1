"""The records the state store writes and reads back: builds, their checks, observations, runs.

Defined here, below everything that makes or reads them: the build code (:mod:`dbtassets.building`)
makes :class:`Outcome` and :class:`CheckOutcome`, the rules (:mod:`dbtassets.rules`) read a
:class:`StateView`, and the store (:mod:`dbtassets.state.store`) turns both into rows and back.
Plain frozen values: nothing here touches a database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from dbtassets.model.manifest import UniqueId
from dbtassets.model.sources import DataVersionKind

SHARED = "*"  # the target of observations every target shares
SHARED_KINDS = frozenset({"files"})  # observers reading the project's files, not a warehouse
UNSETTLED = "?"  # the code version of a build during which the project changed: dbt may have read either


class RunStatus(str, Enum):
    """How a run (one ``sync``, one watcher pass) stands in the ``runs`` table."""

    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    INTERRUPTED = "interrupted"  # its process ended (or was stopped) before it recorded an outcome

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Version:
    """A data version and when it came to be (observed, or materialized).

    ``base`` is the version of the columns that existed before ``added`` were appended by
    non-breaking rebuilds; it is ``value`` itself for any other build.
    """

    value: str
    at: str
    base: str = ""
    added: frozenset[str] = frozenset()
    data_at: str | None = None  # an observed source's newest data's own time (a timestamp watermark), if known

    @property
    def data_time(self) -> str:
        """When the data is from: its own timestamp where the observer read one, else when it was observed
        (what a source's freshness SLA is measured from, as ``dbt source freshness`` does)."""
        return self.data_at or self.at

    @property
    def base_value(self) -> str:
        return self.base or self.value


@dataclass(frozen=True)
class Materialization:
    """The last successful build of an asset, as the state store recorded it."""

    id: int
    run_id: int
    finished_at: str
    code_version: str
    inputs: Mapping[UniqueId, Version]
    manifest_version: str | None = None
    base: str = ""
    added: frozenset[str] = frozenset()
    old_rows_before: str | None = None  # rows built before this time came from older code (dbtassets.rules.refresh)
    relation_name: str | None = None  # where it was built (None: unknown, recorded before dbtassets kept it)

    @property
    def data_version(self) -> Version:
        return Version(DataVersionKind.BUILD.of(self.id), self.finished_at, self.base, self.added)


@dataclass(frozen=True)
class Failure:
    """A failed build attempt."""

    id: int
    finished_at: str
    message: str


@dataclass(frozen=True)
class StateView:
    """What the staleness rules need from the state store."""

    last_success: Mapping[UniqueId, Materialization] = field(default_factory=dict)
    last_failure: Mapping[UniqueId, Failure] = field(default_factory=dict)
    observations: Mapping[UniqueId, Version] = field(default_factory=dict)
    check_results: Mapping[UniqueId, Mapping[UniqueId, CheckResult]] = field(default_factory=dict)  # asset → check


@dataclass(frozen=True)
class CheckResult:
    """The last recorded run of a check on an asset."""

    code_version: str
    materialization_id: int
    status: str
    finished_at: str
    message: str = ""



class BuildStatus(str, Enum):
    """What became of one planned asset in one build."""

    SUCCESS = "success"
    ERROR = "error"  # it failed, or one of its data tests did
    SKIPPED = "skipped"  # dbt skipped it (an upstream failed)
    NOT_RUN = "not_run"  # dbt never got to it (it crashed, or an interrupt): nothing is recorded

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Outcome:
    """One asset's build outcome, ready to insert into the state store."""

    unique_id: UniqueId
    status: BuildStatus
    code_version: str
    manifest_version: str | None
    inputs: Mapping[UniqueId, Version]  # the data version of each input as planned
    rebuilt_inputs: tuple[UniqueId, ...]  # inputs built earlier in this run: their new versions replace those
    duration: float | None = None
    rows_affected: int | None = None
    message: str | None = None
    base_version: str | None = None
    added_columns: frozenset[str] = frozenset()
    old_rows_before: str | None = None  # rows built before this time came from older code (dbtassets.rules.refresh)
    relation_name: str | None = None  # where it was built (dbt's relation name)
    # Inputs that are sources fed by an asset built earlier in this run (dbtassets.model.graph) -> that asset:
    # its new version replaces the planned one, as for rebuilt_inputs.
    fed_inputs: Mapping[UniqueId, UniqueId] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckOutcome:
    """A check's run against one of its assets, ready to insert into the state store."""

    check_id: UniqueId
    unique_id: UniqueId  # the asset it checked
    code_version: str
    status: str  # dbt's: pass, fail, warn, error
    message: str
    previous_materialization: int | None  # what it checked, unless this build rebuilt the asset


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
    """One run as the ``runs`` table holds it."""

    id: int
    command: str
    status: RunStatus
    started_at: str
    finished_at: str | None
    pid: int | None
    host: str | None = None  # the machine of ``pid`` (None: recorded before team mode, so this one)


def version_json(version: Version) -> list[Any]:
    """A data version as stored in a materialization's ``inputs``: [value, at] or [value, at, base, added]."""
    if version.base or version.added:
        return [version.value, version.at, version.base, sorted(version.added)]
    return [version.value, version.at]


def versions_from_json(inputs: str) -> dict[UniqueId, Version]:
    """A materialization's stored ``inputs`` read back (see :func:`version_json`)."""
    out = {}
    for uid, stored in json.loads(inputs).items():
        value, at, *rest = stored
        out[UniqueId(uid)] = Version(value, at, rest[0], frozenset(rest[1])) if rest else Version(value, at)
    return out


def many_versions_from_json(stored: Sequence[str]) -> list[dict[UniqueId, Version]]:
    """Many materializations' stored ``inputs`` read back at once, as :func:`versions_from_json` reads each.

    One JSON parse for all of them, and one :class:`Version` for each distinct plain [value, at] (a model read
    by many children is the same value in each of their inputs): per-row decoding was most of what reading a
    large project's state cost ``status``.
    """
    shared: dict[tuple[str, str], Version] = {}
    out = []
    for inputs in json.loads("[" + ",".join(stored) + "]"):
        for uid, versioned in inputs.items():
            if len(versioned) == 2:
                key = (versioned[0], versioned[1])
                version = shared.get(key)
                if version is None:
                    version = shared[key] = Version(*key)
            else:
                value, at, *rest = versioned
                version = Version(value, at, rest[0], frozenset(rest[1]))
            inputs[uid] = version
        out.append(cast("dict[UniqueId, Version]", inputs))  # its keys are the unique ids the build read
    return out
