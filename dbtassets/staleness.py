"""What is stale, and why: a pure function of (graph, code versions, state).

The rules are DESIGN.md's. An asset is *missing* with no successful materialization; it is
*stale* when its code changed, an input's data version moved since it was built, an upstream
asset is itself stale or missing, or its last build failed; otherwise it is *fresh*. Every
rule that holds becomes a :class:`Reason`, so ``why`` can follow the chain to the source
that moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from dbtassets.graph import AssetGraph
from dbtassets.manifest import UniqueId


class Status(str, Enum):
    FRESH = "fresh"
    STALE = "stale"
    MISSING = "missing"


class ReasonCode(str, Enum):
    """Why an asset is not fresh (or, for UNOBSERVED, why its freshness is unknowable)."""

    NEVER_MATERIALIZED = "never_materialized"
    CODE_CHANGED = "code_changed"
    UPSTREAM_UPDATED = "upstream_updated"
    UPSTREAM_STALE = "upstream_stale"
    UPSTREAM_MISSING = "upstream_missing"
    LAST_BUILD_FAILED = "last_build_failed"
    UNOBSERVED = "unobserved"


@dataclass(frozen=True)
class Version:
    """A data version and when it came to be (observed, or materialized)."""

    value: str
    at: str


@dataclass(frozen=True)
class Materialization:
    """The last successful build of an asset, as the state store recorded it."""

    id: int
    run_id: int
    finished_at: str
    code_version: str
    inputs: Mapping[UniqueId, Version]

    @property
    def data_version(self) -> Version:
        return Version(f"m{self.id}", self.finished_at)


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


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str
    upstream: UniqueId | None = None

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code.value, "message": self.message}
        if self.upstream is not None:
            out["upstream"] = self.upstream
        return out


@dataclass(frozen=True)
class AssetStatus:
    unique_id: UniqueId
    status: Status
    reasons: tuple[Reason, ...]
    data_version: Version | None

    @property
    def needs_build(self) -> bool:
        return self.status is not Status.FRESH


def compute_statuses(
    graph: AssetGraph,
    code_versions: Mapping[UniqueId, str],
    state: StateView,
    observable: frozenset[UniqueId] | set[UniqueId] = frozenset(),
) -> dict[UniqueId, AssetStatus]:
    """The status of every asset in ``graph``, upstream first.

    Args:
        graph: the assets and their edges.
        code_versions: the current code version of each buildable asset.
        state: the last successful materializations, failures and source observations.
        observable: the sources that have some way to be observed; the others carry an
            ``unobserved`` reason so they are never silently taken as fresh.
    """
    statuses: dict[UniqueId, AssetStatus] = {}
    for uid in graph.topological_order():
        node = graph.assets[uid]
        if node.resource_type == "source":
            statuses[uid] = _source_status(uid, state, uid in observable)
        else:
            statuses[uid] = _built_status(uid, graph, code_versions[uid], state, statuses)
    return statuses


def _source_status(uid: UniqueId, state: StateView, observable: bool) -> AssetStatus:
    version = state.observations.get(uid)
    reasons: tuple[Reason, ...] = ()
    if version is None and not observable:
        reasons = (Reason(ReasonCode.UNOBSERVED,
                          "no observer: declare files, query or reported in dbtassets.yml; "
                          "changes to this source are not detected"),)
    return AssetStatus(uid, Status.FRESH, reasons, version)


def _built_status(
    uid: UniqueId,
    graph: AssetGraph,
    code_version: str,
    state: StateView,
    statuses: Mapping[UniqueId, AssetStatus],
) -> AssetStatus:
    last = state.last_success.get(uid)
    reasons: list[Reason] = []
    if last is None:
        reasons.append(Reason(ReasonCode.NEVER_MATERIALIZED, "never materialized"))
    else:
        if last.code_version != code_version:
            reasons.append(Reason(
                ReasonCode.CODE_CHANGED,
                f"code changed since the build at {last.finished_at} "
                f"(code version {last.code_version[:8]} → {code_version[:8]})",
            ))
        for parent in graph.parents(uid):
            current = statuses[parent].data_version
            built_from = last.inputs.get(parent)
            if current is not None and (built_from is None or built_from.value != current.value):
                name = graph.assets[parent].display_name
                if graph.assets[parent].resource_type == "source":
                    what = f"upstream {name} updated: new data observed at {current.at}"
                else:
                    what = f"upstream {name} updated: rebuilt at {current.at}"
                since = f"built from the version of {built_from.at}" if built_from else "a new input"
                reasons.append(Reason(ReasonCode.UPSTREAM_UPDATED, f"{what} ({since})", parent))
    for parent in graph.parents(uid):
        parent_status = statuses[parent].status
        name = graph.assets[parent].display_name
        if parent_status is Status.STALE:
            reasons.append(Reason(ReasonCode.UPSTREAM_STALE, f"upstream {name} is stale", parent))
        elif parent_status is Status.MISSING:
            reasons.append(Reason(ReasonCode.UPSTREAM_MISSING, f"upstream {name} was never materialized", parent))
    failure = state.last_failure.get(uid)
    if failure is not None and (last is None or failure.id > last.id):
        reasons.append(Reason(ReasonCode.LAST_BUILD_FAILED,
                              f"last build failed at {failure.finished_at}: {failure.message}"))
    status = Status.MISSING if last is None else Status.STALE if reasons else Status.FRESH
    return AssetStatus(uid, status, tuple(reasons), last.data_version if last else None)
