"""Building a plan: the plan's dbt invocations, its leases, and its run's bookkeeping in the state store.

:class:`~dbtassets.engine.Project` stays the one facade the commands and the watcher call; its
``plan_for``, ``leased`` and ``build`` delegate to a :class:`Builder`, which sees the project only
through the small :class:`Workshop` protocol (so this module imports nothing of the engine's).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from dbtassets.building import recording
from dbtassets.building.runner import BuildResult, NodeResult, Runner, Verb, build_command, display, listening
from dbtassets.building.steps import BuildStep, full_refreshed, run_steps
from dbtassets.errors import DbtAssetsError, Interrupted
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Manifest, UniqueId
from dbtassets.model.project import DbtProject
from dbtassets.model.snapshot import Snapshot
from dbtassets.observe.observer import ObserveOutcome
from dbtassets.results import SyncPlan, SyncResult
from dbtassets.rules.policies import Verdict
from dbtassets.rules.refresh import invocations
from dbtassets.rules.statuses import AssetStatus
from dbtassets.sql.versions import CodeVersioner
from dbtassets.state import leases
from dbtassets.state.leases import Leased
from dbtassets.state.records import BuildStatus, RunStatus
from dbtassets.state.store import StateStore
from dbtassets.words import plural

__all__ = ["BuildListener", "Builder", "Workshop", "plan_for"]


class Workshop(Protocol):
    """What building needs of a project (:class:`~dbtassets.engine.Project` is one)."""

    @property
    def dbt(self) -> DbtProject: ...

    @property
    def runner(self) -> Runner: ...

    @property
    def snapshot(self) -> Snapshot: ...

    @property
    def store(self) -> StateStore: ...

    @property
    def versions(self) -> CodeVersioner: ...

    def log(self, message: str, /) -> None: ...

    def now(self) -> str: ...


class BuildListener(Protocol):
    """Told of each build and of each observation (the OpenLineage emitter is one). It must return at once and
    never raise: a listener that raises is reported once as a warning and the build goes on."""

    def build_started(self, plan: SyncPlan, snapshot: Snapshot, run_id: int, at: str) -> None: ...

    def build_finished(self, plan: SyncPlan, snapshot: Snapshot, result: SyncResult | None, error: str | None,
                       at: str) -> None: ...

    def observed(self, outcomes: Sequence[ObserveOutcome], snapshot: Snapshot, at: str) -> None: ...


def plan_for(graph: AssetGraph, manifest: Manifest, to_build: Sequence[UniqueId],
             statuses: Mapping[UniqueId, AssetStatus], extra_args: Sequence[str] = (), verdict: Verdict | None = None,
             checks: Sequence[UniqueId] = ()) -> SyncPlan:
    """The plan that builds exactly ``to_build`` (upstream first) and runs ``checks``.

    Models whose rebuild must be a full refresh get ``--full-refresh`` and no other model does,
    which may take more than one ``dbt build`` (:func:`dbtassets.rules.refresh.invocations`); so
    does building an asset and what reads its table through a source (:meth:`AssetGraph.waves`).
    Checks whose assets are not built run first, by name, in a ``dbt test`` of their own: ``dbt
    build`` runs no unit test whose model it does not build.
    """
    full = [uid for uid in to_build if statuses[uid].full_refresh]
    steps = [BuildStep(i.assets, i.full_refresh)
             for wave in graph.waves(to_build) for i in invocations(graph, wave, full)]
    if checks:
        steps.insert(0, BuildStep((), checks=tuple(checks), verb=Verb.TEST))
    selectors = [s.selectors(graph, manifest) for s in steps]
    command = " && ".join(display(build_command(sel, s.args(extra_args), s.verb))
                          for s, sel in zip(steps, selectors, strict=True))
    return SyncPlan(list(to_build), [one for sel in selectors for one in sel], command, statuses,
                    verdict=verdict, checks=list(checks), steps=steps)


class Builder:
    """Runs plans' builds for one project and records them; keeps the runs it could not close yet."""

    def __init__(self, project: Workshop) -> None:
        self.project = project
        self._unclosed: dict[int, tuple[RunStatus, str]] = {}  # runs to close once the store can be reached again
        self.listeners: list[BuildListener] = []  # told of each build and observation (dbtassets.openlineage)

    def tell(self, event: str, *args: object) -> None:
        """Call ``event`` on every listener; one that raises is a warning, never a failed build."""
        for listener in self.listeners:
            try:
                getattr(listener, event)(*args)
            except Exception as exc:  # a listener's bug must not stop a build: say it, go on
                self.project.log(f"warning: {type(listener).__name__}.{event} failed: {exc}")

    def heard(self, outcomes: list[ObserveOutcome]) -> list[ObserveOutcome]:
        """Observations just made: told to the listeners, returned as they are."""
        if self.listeners:
            self.tell("observed", outcomes, self.project.snapshot, self.project.now())
        return outcomes

    def plan_for(self, to_build: Sequence[UniqueId], statuses: Mapping[UniqueId, AssetStatus],
                 extra_args: Sequence[str] = (), verdict: Verdict | None = None,
                 checks: Sequence[UniqueId] = ()) -> SyncPlan:
        snapshot = self.project.snapshot
        return plan_for(snapshot.graph, snapshot.manifest, to_build, statuses, extra_args, verdict, checks)

    def leased(self, plan: SyncPlan, replan: Callable[[], SyncPlan], seen: int,
               extra_args: Sequence[str] = ()) -> contextlib.AbstractContextManager[Leased[SyncPlan]]:
        """``plan``'s assets claimed for one build (:func:`dbtassets.state.leases.leased`), narrowed to those held."""
        def narrowed(plan: SyncPlan, allowed: list[UniqueId]) -> SyncPlan:
            return self.plan_for(allowed, plan.statuses, extra_args, plan.verdict, plan.checks)

        return _telling_leases(leases.leased(self.project.store, plan, self.project.snapshot.settings.watch.lease,
                                             seen=seen, replan=replan, narrowed=narrowed,
                                             descendants=lambda uid: self.project.snapshot.graph.descendants(uid)))

    def build(self, plan: SyncPlan, extra_args: Sequence[str] = (), *,
              on_node: Callable[[NodeResult], None] | None = None, holder: str | None = None) -> SyncResult:
        """Run the plan's dbt build and record each asset's outcome (see :meth:`dbtassets.engine.Project.build`)."""
        project = self.project
        snapshot = project.snapshot
        self.close_runs()
        run_id = project.store.start_run(plan.command, plan.to_build, project.now())
        if self.listeners:  # (the clock is read only for them: a fake clock's ticks stay the tests')
            self.tell("build_started", plan, snapshot, run_id, project.now())
        try:
            with listening(project.runner, on_node):
                result = run_steps(project.runner, snapshot.graph, snapshot.manifest, plan.steps, plan.command,
                                   extra_args, project.dbt.dbt_log)
            unsettled = self._edited_during(snapshot, result)
            # Code versions first: sqlglot (and dbt) must not run while the store's write lock is held.
            built = project.versions.of_build({r.unique_id: r.compiled_code for r in result.results
                                               if r.compiled_code and r.unique_id not in unsettled},
                                              full_refreshed(plan.steps))
            at = project.now()
            record = recording.outcomes(plan, result, snapshot, project.store.view().last_success, at,
                                        unsettled=unsettled, code_versions=built.versions)
            ok = recording.build_ok(record.failed, record.having(BuildStatus.SKIPPED), record.failed_checks,
                                    result.crashed) and not record.not_run
            lost = project.store.record_build(run_id, record.outcomes, record.checks, built.fingerprints, ok, at,
                                              str(result.log_path), result.crashed or _unanswered(snapshot, record),
                                              holder)
        except (DbtAssetsError, Interrupted) as exc:
            if self.listeners:
                self.tell("build_finished", plan, snapshot, None, str(exc) or type(exc).__name__, project.now())
            self._close_failed(run_id, exc)
            raise
        done = SyncResult(plan, run_id, [u for u in record.having(BuildStatus.SUCCESS) if u not in lost],
                          record.failed, record.having(BuildStatus.SKIPPED), record.not_run, result,
                          failed_checks=record.failed_checks, lost=lost)
        self.tell("build_finished", plan, snapshot, done, None, at)
        return done

    def _close_failed(self, run_id: int, exc: DbtAssetsError | Interrupted) -> None:
        """Close a run that recorded nothing (dbt or the store failed, or a signal stopped it)."""
        if isinstance(exc, DbtAssetsError):  # no outcome recorded: close the run rather than leave it 'running'
            self.close_runs({run_id: (RunStatus.ERROR, f"nothing recorded: {exc}")})
        elif self.close_runs({run_id: (RunStatus.INTERRUPTED, f"stopped by {exc.signal_name}; nothing recorded")}):
            exc.run_id = run_id  # the runner has stopped dbt; say so now, not at the next command

    def close_runs(self, runs: Mapping[int, tuple[RunStatus, str]] | None = None) -> bool:
        """Close ``runs`` (id → status, message), which recorded nothing, with those not closed before.

        A store that cannot be reached (its server restarting) keeps them for the next build; the
        assets stay stale meanwhile, so nothing is lost. True once they are closed.
        """
        self._unclosed.update(runs or {})
        if not self._unclosed:
            return True
        try:
            store = self.project.store
            with store.transaction() as db:
                for run_id, (status, message) in self._unclosed.items():
                    store.finish_run(db, run_id, status, self.project.now(), None, message)
        except DbtAssetsError:
            return False
        self._unclosed.clear()
        return True

    def _edited_during(self, snapshot: Snapshot, result: BuildResult) -> frozenset[UniqueId]:
        """The built assets whose code was edited during the build (see :meth:`Snapshot.edited_since_load`)."""
        dbt = self.project.dbt
        unsettled, changed = snapshot.edited_since_load({r.unique_id for r in result.results})
        if changed and snapshot.loaded_at is not None:
            # dbt may have rewritten target/manifest.json from code read before the edit: make it look
            # older than the edit, so that the next command parses again rather than trusting it.
            with contextlib.suppress(OSError):
                os.utime(dbt.manifest_path, (snapshot.loaded_at, snapshot.loaded_at))
        if unsettled:
            names = ", ".join(sorted(str(p.relative_to(dbt.directory)) for p in changed))
            self.project.log(f"{names} changed during the build: {plural(len(unsettled), 'asset')} will be built again "
                             "to be sure")
        return unsettled


@contextlib.contextmanager
def _telling_leases(claimed: contextlib.AbstractContextManager[Leased[SyncPlan]]) -> Iterator[Leased[SyncPlan]]:
    """The share, its plan saying what it leaves to other builds and to whom (for the listeners)."""
    with claimed as share:
        held = share.claim.held_by_others
        left = {uid: held[uid][0] if uid in held else None for uid in share.left}
        yield replace(share, plan=replace(share.plan, leased=left)) if left else share


def _unanswered(snapshot: Snapshot, record: recording.BuildRecord) -> str | None:
    """The run's message when dbt left out assets or checks it was asked for: their names."""
    names = [snapshot.graph.assets[uid].display_name for uid in record.not_run]
    names += [snapshot.manifest.checks[uid].name for uid in record.unanswered]
    return f"dbt reported no result for {', '.join(names)}" if names else None
