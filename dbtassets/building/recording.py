"""What a build did, as the state store will record it: a pure function of (plan, dbt's results, snapshot).

Nothing here reads a file or opens a transaction. The engine fingerprints the compiled SQL of
what was built first (sqlglot is slow at scale, and must not run while the store's write lock is
held), calls :func:`outcomes`, and hands the result to the store to write in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from dbtassets.building.runner import BuildResult, NodeResult, NodeStatus
from dbtassets.building.steps import BuildStep, full_refreshed
from dbtassets.model.manifest import CheckKind, Manifest, ResourceType, UniqueId
from dbtassets.rules.checks import RECORDED, one_line
from dbtassets.rules.refresh import old_rows_before, refresh_of
from dbtassets.rules.staleness import AssetStatus
from dbtassets.state.records import UNSETTLED, BuildStatus, CheckOutcome, Materialization, Outcome

if TYPE_CHECKING:
    from dbtassets.model.snapshot import Snapshot


class Planned(Protocol):
    """What :func:`outcomes` reads of the plan it recorded (a :class:`dbtassets.results.SyncPlan`)."""

    @property
    def to_build(self) -> Sequence[UniqueId]: ...

    @property
    def statuses(self) -> Mapping[UniqueId, AssetStatus]: ...

    @property
    def steps(self) -> Sequence[BuildStep]: ...


@dataclass(frozen=True)
class BuildRecord:
    """Everything one build leaves in the state store, and how the run ends."""

    outcomes: Sequence[Outcome]  # upstream first
    failed: Mapping[UniqueId, str] = field(default_factory=dict)  # asset -> what failed
    not_run: Sequence[UniqueId] = ()
    checks: Sequence[CheckOutcome] = ()
    failed_checks: Mapping[UniqueId, str] = field(default_factory=dict)  # check -> what failed

    def having(self, status: BuildStatus) -> list[UniqueId]:
        return [o.unique_id for o in self.outcomes if o.status is status]


def build_ok(failed: Collection[UniqueId], skipped: Collection[UniqueId], failed_checks: Collection[UniqueId],
             crashed: str | None) -> bool:
    """The one definition of a build that went well (its run is recorded ``success``): dbt finished,
    and no asset failed or was skipped, and no check failed."""
    return not failed and not skipped and not failed_checks and crashed is None


def outcomes(plan: Planned, result: BuildResult, snapshot: Snapshot, previous: Mapping[UniqueId, Materialization],
             at: str, *, code_versions: Mapping[UniqueId, str], unsettled: Collection[UniqueId] = ()) -> BuildRecord:
    """What to record for a build that finished at ``at``.

    Args:
        previous: each asset's last successful materialization before this build.
        code_versions: the semantic code version of each asset dbt compiled in this build
            (:meth:`dbtassets.sql.versions.CodeVersioner.of_build`).
        unsettled: assets built while their code changed on disk: recorded with code version ``?``,
            so that the next status rebuilds them whatever dbt read.
    """
    graph, manifest = snapshot.graph, snapshot.manifest
    own: dict[UniqueId, NodeStatus] = {}
    failed: dict[UniqueId, str] = {}
    checked: list[NodeResult] = []
    timings: dict[UniqueId, tuple[float, int | None]] = {}
    for node_result in result.results:
        uid = node_result.unique_id
        if uid in graph:
            own[uid] = node_result.status
            timings[uid] = (node_result.execution_time, node_result.rows_affected)
            if node_result.status.failed:
                failed[uid] = node_result.message or node_result.status
        elif uid in manifest.checks and node_result.status in RECORDED:
            checked.append(node_result)
            check = manifest.checks[uid]
            if check.kind is CheckKind.UNIT_TEST and node_result.status.failed:  # dbt did not build the model
                for model in check.assets:
                    failed.setdefault(model, f"{check.describe()} on {graph.assets[model].name} failed: "
                                             f"{one_line(node_result.message)}")
    refreshed = full_refreshed(plan.steps)
    planned = {uid: s.data_version for uid, s in plan.statuses.items() if s.data_version is not None}
    records = []
    for uid in graph.topological_order(own):
        node = graph.assets[uid]
        status = (BuildStatus.ERROR if uid in failed else
                  BuildStatus.SUCCESS if own[uid] is NodeStatus.SUCCESS else BuildStatus.SKIPPED)
        code_version: str = node.code_version
        manifest_version: str | None = node.code_version
        if uid in unsettled:
            code_version, manifest_version = UNSETTLED, None
        elif uid in code_versions and node.resource_type != ResourceType.SEED:
            code_version = code_versions[uid]
        # A rebuild whose only change was new columns keeps the version of the old ones.
        before = plan.statuses.get(uid)
        base, added = None, frozenset[str]()
        if status is BuildStatus.SUCCESS and before is not None and before.impact and before.data_version:
            base, added = before.data_version.base_value, before.data_version.added | before.impact
        last = previous.get(uid)
        old_rows = old_rows_before(
            refresh_of(node), full_refreshed=uid in refreshed,
            previous_code=last.code_version if last else None,
            previous_old_rows=last.old_rows_before if last else None,
            code_version=code_version, at=at) if status is BuildStatus.SUCCESS else None
        parents = graph.parents(uid)
        duration, rows = timings[uid]
        records.append(Outcome(
            uid, status, code_version, manifest_version, {p: planned[p] for p in parents if p in planned},
            tuple(p for p in parents if p in own), duration, rows, failed.get(uid), base, added, old_rows))
    # A unit test that stopped its model's build is that build's failure, not a check of the old table.
    checked = [r for r in checked if not (manifest.checks[r.unique_id].kind is CheckKind.UNIT_TEST
                                          and set(manifest.checks[r.unique_id].assets) & set(failed) & set(own))]
    checks, failed_checks = _checks(manifest, checked, previous)
    not_run = [uid for uid in plan.to_build if uid not in own]
    return BuildRecord(records, {u: m for u, m in failed.items() if u in own}, not_run, checks, failed_checks)


def _checks(manifest: Manifest, checked: Sequence[NodeResult], previous: Mapping[UniqueId, Materialization]
            ) -> tuple[list[CheckOutcome], dict[UniqueId, str]]:
    """Each check's run on each of its assets, and the failed checks."""
    runs: list[CheckOutcome] = []
    failed: dict[UniqueId, str] = {}
    for outcome in checked:
        check = manifest.checks[outcome.unique_id]
        message = one_line(outcome.message) if outcome.status is not NodeStatus.PASS else ""
        for asset in check.assets:
            last = previous.get(asset)
            runs.append(CheckOutcome(check.unique_id, asset, check.code_version, outcome.status, message,
                                     last.id if last is not None else None))
        if RECORDED[outcome.status].failing:
            failed[check.unique_id] = f"{check.describe()} failed: {message}"
    return runs, failed
