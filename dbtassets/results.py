"""The values the engine's verbs return: plain, frozen, and rendered by :mod:`dbtassets.report`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbtassets.building.runner import BuildResult
from dbtassets.model.manifest import UniqueId
from dbtassets.observe.observer import ObserveOutcome as ObserveOutcome  # Project.observe returns it
from dbtassets.rules.checks import CheckState
from dbtassets.rules.policies import Verdict
from dbtassets.rules.statuses import AssetStatus, ReasonCode
from dbtassets.state.heartbeats import Watching

if TYPE_CHECKING:  # the build's modules are imported by the builds, never by `status`
    from dbtassets.building.steps import BuildStep


@dataclass(frozen=True)
class Options:
    """Where the project, its profile, its state and its manifest are."""

    project_dir: Path = Path(".")
    profiles_dir: Path | None = None
    target: str | None = None
    state_path: Path | str | None = None  # a file, or a postgresql:// URL
    manifest_path: Path | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)  # dbt's --vars: over dbt_project.yml's, for every dbt command
    read_only: bool = False  # a command that answers questions: the state store is read, never written
    observe_timeout: float | None = None  # seconds; None: dbtassets.yml's observe.timeout, or its default


@dataclass(frozen=True)
class StatusReport:
    """``status``: each selected asset's status and reasons, the warnings met, and the policies' verdict."""

    statuses: Mapping[UniqueId, AssetStatus]
    selected: Sequence[UniqueId]
    warnings: Sequence[str]
    notes: Mapping[UniqueId, str] = field(default_factory=dict)
    verdict: Verdict | None = None  # the freshness policies' (None when they were not applied)
    watching: Watching | None = None  # this project's watchers on this target, from their heartbeats

    def unobserved(self) -> list[UniqueId]:
        """The selected sources with no way to be observed."""
        return [uid for uid in self.selected
                if any(r.code is ReasonCode.UNOBSERVED for r in self.statuses[uid].reasons)]

    def needing_build(self, *, all_stale: bool = False) -> list[UniqueId]:
        """The selected stale and missing assets that are due (all of them with ``all_stale``)."""
        due = self.verdict.schedule.is_due if self.verdict is not None and not all_stale else None
        return [uid for uid in self.selected if self.statuses[uid].needs_build and (due is None or due(uid))]

    def listed(self, uid: UniqueId) -> bool:
        """Whether ``status`` and ``check`` list ``uid``: stale, missing, a late source, a check failing, pending,
        missing from the manifest or removed."""
        status = self.statuses[uid]
        return status.needs_attention or (self.verdict is not None and uid in self.verdict.late) \
            or any(c.state is CheckState.REMOVED for c in status.checks)

    def failing(self, uid: UniqueId) -> bool:
        """Whether ``check`` fails on ``uid``: stale or missing and due (overdue), a source late past error_after,
        or a check on it failing or pending."""
        if self.statuses[uid].failing_checks or self.statuses[uid].pending_checks:
            return True
        if self.verdict is not None:
            return self.verdict.failing(uid)
        return self.statuses[uid].needs_build

    def needing_checks(self) -> list[UniqueId]:
        """The pending checks of selected assets that need no build (a build runs its asset's checks)."""
        pending = {c.check.unique_id for uid in self.selected for c in self.statuses[uid].pending_checks}
        return sorted(pending)


@dataclass(frozen=True)
class Explanation:
    """``why``: an asset's status, and for each reason naming an upstream, that upstream's explanation."""

    status: AssetStatus
    causes: Mapping[UniqueId, Explanation]
    observed: Mapping[str, Any] | None = None
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class SyncPlan:
    """What a sync runs: ``steps`` (usually one ``dbt build``) build ``to_build`` and run the pending ``checks``."""

    to_build: Sequence[UniqueId]
    selectors: Sequence[str]
    command: str
    statuses: Mapping[UniqueId, AssetStatus]
    verdict: Verdict | None = None  # what waits (and until when), and which sources are late
    checks: Sequence[UniqueId] = ()
    steps: Sequence[BuildStep] = ()
    leased: Mapping[UniqueId, str | None] = field(default_factory=dict)  # left to other builds: asset → holder
    # (None: downstream of an asset another build holds); set on a build's share (Builder.leased)

    @property
    def empty(self) -> bool:
        return not self.to_build and not self.checks


@dataclass(frozen=True)
class SyncResult:
    """``sync`` (and ``build``): what the plan built, what failed or was skipped, and what other builds hold."""

    plan: SyncPlan
    run_id: int | None = None
    built: Sequence[UniqueId] = ()
    failed: Mapping[UniqueId, str] = field(default_factory=dict)
    skipped: Sequence[UniqueId] = ()
    not_run: Sequence[UniqueId] = ()
    build: BuildResult | None = None
    left: Mapping[UniqueId, str] = field(default_factory=dict)  # left to other builds: asset → who holds it
    failed_checks: Mapping[UniqueId, str] = field(default_factory=dict)  # check → what failed
    lost: Mapping[UniqueId, str] = field(default_factory=dict)  # built, but another build took its lease: who

    @property
    def ok(self) -> bool:
        """The build went well (:func:`~dbtassets.building.recording.build_ok`) and built and recorded its plan."""
        from dbtassets.building.recording import build_ok

        crashed = self.build.crashed if self.build is not None else None
        return build_ok(self.failed, self.skipped, self.failed_checks, crashed) and not self.not_run and not self.lost
