"""The dbtassets API: one :class:`Project` per dbt project, one method per command.

A ``Project`` holds the boundaries (the dbt runner, the clock, the state store), all passed in
so tests can replace them, and a frozen :class:`~dbtassets.model.snapshot.Snapshot` of what was loaded.
Its verbs are the commands' (``status``, ``sync``…) and the watcher's (``observe``, ``plan``,
``leased``, ``build``, ``build_lock``, ``latest_build``, ``reparse``): nothing outside the engine
reaches into the store or the runner. Planning a build, running it and keeping its run's books
are :mod:`dbtassets.builder`'s, which ``plan_for``, ``leased`` and ``build`` delegate to.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dbtassets.building.lock import BuildLock
from dbtassets.building.runner import DbtTarget, NodeResult, Runner, SubprocessRunner
from dbtassets.clock import Clock, SystemClock, timestamp
from dbtassets.errors import ProjectError, SelectionError
from dbtassets.explain import explain
from dbtassets.model.freshness import Policies
from dbtassets.model.graph import BUILDABLE, AssetGraph
from dbtassets.model.manifest import Manifest, Node, UniqueId
from dbtassets.model.project import DbtProject, load_project
from dbtassets.model.selection import resolve_selection
from dbtassets.model.snapshot import Snapshot, load_snapshot
from dbtassets.model.sources import Observation, ObserverKind, Settings
from dbtassets.model.targets import Targets, profiles_file, resolve_targets
from dbtassets.observe.observer import Observer, record_report
from dbtassets.results import Explanation, ObserveOutcome, Options, StatusReport, SyncPlan, SyncResult
from dbtassets.rules.policies import Verdict
from dbtassets.rules.policies import apply as apply_policies
from dbtassets.rules.savings import Savings
from dbtassets.rules.savings import compute as compute_savings
from dbtassets.rules.staleness import compute_statuses
from dbtassets.rules.statuses import AssetStatus
from dbtassets.rules.vanished import with_vanished
from dbtassets.sql.versions import CodeVersioner
from dbtassets.state import heartbeats
from dbtassets.state.backends import Location
from dbtassets.state.readonly import open_store
from dbtassets.state.records import HistoryEntry
from dbtassets.state.store import StateStore

if TYPE_CHECKING:  # imported by the verbs that build: `status` never does
    from dbtassets.builder import Builder
    from dbtassets.state.leases import Leased

__all__ = ["STATE_ENV", "Explanation", "ObserveOutcome", "Options", "Project", "StatusReport", "SyncPlan",
           "SyncResult"]

STATE_ENV = "DBTASSETS_STATE"


class Project:
    """A dbt project seen as assets. Close it (or use ``with``) to release the state store.

    What was loaded (manifest, graph, settings) is one frozen :class:`Snapshot`, loaded on first
    use and replaced whole by :meth:`reload`; the rest talks to the world (the state store, the
    runner, the clock).
    """

    def __init__(
        self,
        options: Options,
        *,
        runner: Runner | None = None,
        clock: Clock | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self.dbt: DbtProject = load_project(options.project_dir)
        self.target = DbtTarget(self.dbt, options.profiles_dir, options.target, vars=options.vars)
        self.runner: Runner = runner or SubprocessRunner(self.target,
                                                         warn=lambda message: self.log(f"warning: {message}"))
        # Resolved now, reported when needed (`lineage` on a parsed project needs no profile), and
        # again when profiles.yml changes: dbt reads it at every invocation, a watcher must follow.
        self._targets: Targets | ProjectError = ProjectError("profiles.yml not read yet")
        self._profiles_stamp: tuple[str, int] | None = ("", -1)
        self._store: StateStore | None = None
        self._follow_profile()
        self.clock: Clock = clock or SystemClock()
        self.log = log or (lambda message: None)
        self.state = Location.parse(options.state_path or os.environ.get(STATE_ENV)
                                    or self.dbt.directory / ".dbtassets" / "state.db")
        self._snapshot: Snapshot | None = None
        self._warned: set[str] = set()
        self._builder: Builder | None = None

    @property
    def builder(self) -> Builder:  # planning, running and recording builds, and their listeners: made on first use
        from dbtassets.builder import Builder
        self._builder = self._builder or Builder(self)
        return self._builder

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- what was loaded -----------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The loaded project (loaded now, parsing first if the manifest is stale, on first use)."""
        if self._snapshot is None:
            self.reload()
            assert self._snapshot is not None
        return self._snapshot

    @property
    def loaded(self) -> Snapshot | None:
        """The snapshot if one was loaded (None before the first use, or if loading failed)."""
        return self._snapshot

    def reload(self, *, reparse: bool = False) -> Snapshot:
        """Load the project again (after an edit; parsing first with ``reparse``); replaces the snapshot once loaded."""
        targets = self._targets if isinstance(self._targets, Targets) else None
        self._snapshot = load_snapshot(self.dbt, self.options.manifest_path, self._parse, targets, self._warn_once,
                                       cli_vars=self.options.vars, reparse=reparse)
        return self._snapshot

    def _warn_once(self, message: str) -> None:  # the first time only: a watcher loads the project at every edit
        if message not in self._warned:
            self._warned.add(message)
            self.log(f"warning: {message}")

    def _parse(self, why: str) -> None:
        _ = self.targets  # dbt cannot parse without a profile: say where it was looked for, not dbt
        if why:  # no reason given: the watcher asked, and says so itself
            self.log(f"{why}: running dbt parse")
        self.runner.parse()

    def reparse(self) -> Snapshot:
        """Re-parse with dbt (partially where dbt can, in full when that lost tests the YAML declares), then reload."""
        if self.options.manifest_path is not None:  # a given manifest is used as is
            self.runner.parse()
        return self.reload(reparse=self.options.manifest_path is None)

    @property
    def manifest(self) -> Manifest:
        return self.snapshot.manifest

    @property
    def graph(self) -> AssetGraph:
        return self.snapshot.graph

    @property
    def settings(self) -> Settings:
        return self.snapshot.settings

    @property
    def policies(self) -> Policies:
        return self.snapshot.policies

    def _follow_profile(self) -> None:
        """Read the targets again if profiles.yml changed; a new warehouse gets its own records."""
        try:
            path = profiles_file(self.dbt, self.options.profiles_dir)
            stamp: tuple[str, int] | None = (str(path), path.stat().st_mtime_ns)
        except (ProjectError, OSError):
            stamp = None
        if stamp == self._profiles_stamp:
            return
        self._profiles_stamp = stamp
        before = self._targets.selected.key if isinstance(self._targets, Targets) else None
        try:
            self._targets = resolve_targets(self.dbt, self.options.profiles_dir, self.options.target)
        except ProjectError as exc:
            self._targets = exc
        after = self._targets.selected.key if isinstance(self._targets, Targets) else None
        own = self._targets.own if isinstance(self._targets, Targets) else ""  # a non-default one: its own target/
        if after != before or own != self.dbt.target_name:
            self.close()  # the store was opened for the other warehouse's records
            self.dbt = self.dbt.for_target(own)
            self.target = replace(self.target, project=self.dbt, warehouse=after or "")
            self.runner.retarget(self.target)

    @property
    def targets(self) -> Targets:
        """The selected target's warehouse (whose records the store shows) and the default one.

        Raises:
            ProjectError: profiles.yml, the profile or the target cannot be found.
        """
        if isinstance(self._targets, ProjectError):
            raise self._targets
        return self._targets

    @property
    def versions(self) -> CodeVersioner:
        """Code versions of the current snapshot (cheap: it compiles only when asked)."""
        snapshot = self.snapshot
        return CodeVersioner(snapshot.graph, snapshot.manifest, self.store, self.runner, self.log)

    @property
    def store(self) -> StateStore:
        """The state store; with ``options.read_only``, one that keeps what it records in memory: readers
        never write. A reader's default store that does not exist yet reads as empty; a --state must exist."""
        if self._store is None:
            implicit = not (self.options.state_path or os.environ.get(STATE_ENV))  # a project with no store yet
            self._store = open_store(self.state, self.targets.selected.key, self.targets.default.key,
                                     read_only=self.options.read_only, empty_if_missing=implicit)
        return self._store

    # -- the world, for the watcher ------------------------------------------------------

    def build_lock(self, purpose: str) -> BuildLock:
        """The lock every build of this project takes (``sync`` and a watcher's builds); not yet held."""
        return BuildLock(self.dbt.directory / ".dbtassets" / "build.lock", purpose)

    def watch_lock(self) -> BuildLock:
        """The lock that keeps a second watcher off this project; not yet held."""
        return BuildLock(self.dbt.directory / ".dbtassets" / "watch.lock", "watch")

    def heartbeat(self) -> heartbeats.Heartbeat:
        """This process's watcher record in the store, for the watcher to start, beat and stop."""
        return heartbeats.Heartbeat(lambda: self.store, self.dbt.name, self.clock.now)

    def recover(self) -> list[int]:
        """Close the runs that a dead process left 'running' (its assets stay stale)."""
        return self.store.interrupt_dead_runs(self.now())

    def latest_report(self) -> int:
        """A cheap "did a loader report anything?" probe: the id of the newest report."""
        return self.store.latest_observation_id(ObserverKind.REPORTED.value)

    def lateness_said(self, changes: Mapping[UniqueId, str | None] | None = None) -> dict[UniqueId, str]:
        """Record what a watcher said of sources' lateness (a severity, or None: recovered); what it has said."""
        return self.store.say_lateness(changes or {}, self.now())

    def latest_build(self) -> int:
        """A cheap "did any build record something?" probe: the id of the newest recorded outcome."""
        return self.store.latest_materialization_id()

    @property
    def runner_name(self) -> str:
        return type(self.runner).__name__

    def now(self) -> str:
        return timestamp(self.clock.now())

    # -- commands ------------------------------------------------------------------------

    def select(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[UniqueId]:
        """The selected assets, upstream first; a warning about each --exclude that leaves nothing out, once."""
        selection = resolve_selection(self.graph, select, exclude)
        for warning in selection.warnings:
            self._warn_once(warning)
        return self.graph.topological_order(selection.assets)

    def observe(self, sources: Iterable[UniqueId] | None = None, *, queries: bool = True,
                in_progress: Collection[str] | None = None, reuse_recent: bool = False) -> list[ObserveOutcome]:
        """Read the data version of each source (all by default) and record the ones that moved.

        ``reuse_recent``: leave out the query sources read within their ``every:`` (their last reading stands), so
        that ``status`` does not run a ``dbt show`` every time. ``in_progress``: files (relative to the project)
        still being written, which the file observers leave out (else they look twice at recent files)."""
        selected = self._targets.selected if isinstance(self._targets, Targets) else None
        timeout = self.options.observe_timeout or self.settings.observe_timeout
        outcomes = Observer(self.snapshot, self.store, self.runner, self.now, timeout,
            f"warehouse {selected.key} (target {selected.target!r})" if selected else "the warehouse",
        ).observe(set(sources) if sources is not None else None, queries, in_progress, reuse_recent)
        return self._builder.heard(outcomes) if self._builder is not None else outcomes  # no builder, no listener

    def report(self, source: str, version: str | None = None, note: str | None = None) -> Observation:
        """A loader says it loaded ``source``: record a new data version for it."""
        return record_report(self.graph, self.store, source, version, note, self.now())

    def status(self, select: Sequence[str] = (), exclude: Sequence[str] = (), *, observe: bool = True,
               queries: bool = True, force: bool = False) -> StatusReport:
        """Every selected asset's status with reasons, after observing the sources (unless told not to).
        A query source read within its ``every:`` keeps its last reading, unless ``force``."""
        self._follow_profile()
        selected = self.select(select, exclude)
        errors = []
        if observe:  # a warehouse that cannot be reached is one line, not one per source
            errors = list(dict.fromkeys(
                o.error if o.unreachable else f"source {self.graph.assets[o.unique_id].display_name}: {o.error}"
                for o in self.observe(queries=queries, reuse_recent=not force) if o.error))
        observable = {uid for uid, d in self.settings.sources.items() if d.observable} | set(self.graph.fed)
        view = self.store.view()
        versions = self.versions
        code = versions.current(view)
        statuses = compute_statuses(self.graph, code.versions, view, observable, code.changes, versions.reads,
                                    self.manifest.checks, versions.passes)
        statuses = with_vanished(statuses, self.snapshot.missing_checks, view, self.manifest.checks)
        verdict = apply_policies(self.graph, statuses, self.policies, now := self.clock.now())  # watchers too
        blind = self.policies.blind(self.graph, observable)
        return StatusReport(verdict.statuses, selected, [*self.settings.warnings, *blind, *errors], code.notes,
                            verdict, heartbeats.watching(self.store, self.dbt.name, now))

    def why(self, name: str, *, observe: bool = True) -> Explanation:
        uid = self.graph.resolve(name)
        return explain(self.snapshot, self.versions, self.store, self.status(observe=observe), uid)

    def lineage(self, name: str, *, upstream: bool = True, downstream: bool = True) -> tuple[UniqueId, AssetGraph]:
        uid = self.graph.resolve(name)
        nodes = {uid} | (self.graph.ancestors(uid) if upstream else set())
        return uid, self.graph.subgraph(nodes | (self.graph.descendants(uid) if downstream else set()))

    def history(self, name: str, limit: int = 20) -> tuple[Node, list[HistoryEntry]]:
        """An asset's builds, newest first; one no longer in the project (deleted, renamed) from its records."""
        try:
            uid = self.graph.resolve(name)
        except SelectionError:
            if len(gone := self.store.recorded(name)) != 1:
                raise
            return Node.gone(gone[0]), self.store.history(gone[0], limit)
        return self.graph.assets[uid], self.store.history(uid, limit)

    def plan(self, select: Sequence[str] = (), exclude: Sequence[str] = (), extra_args: Sequence[str] = (),
             *, observe: bool = True, all_stale: bool = False) -> SyncPlan:
        """What ``sync`` would build: the selected stale and missing assets that are due (all with
        ``all_stale``, whatever their freshness policies say), and the dbt command."""
        report = self.status(select, exclude, observe=observe, force=True)  # about to build: read every source
        to_build = [uid for uid in report.needing_build(all_stale=all_stale)
                    if self.graph.assets[uid].resource_type in BUILDABLE and not report.statuses[uid].held]
        return self.plan_for(to_build, report.statuses, extra_args, report.verdict, report.needing_checks())

    def plan_for(self, to_build: Sequence[UniqueId], statuses: Mapping[UniqueId, AssetStatus],
                 extra_args: Sequence[str] = (), verdict: Verdict | None = None,
                 checks: Sequence[UniqueId] = ()) -> SyncPlan:
        """The plan building exactly ``to_build`` (upstream first), running ``checks`` (:func:`.builder.plan_for`)."""
        return self.builder.plan_for(to_build, statuses, extra_args, verdict, checks)

    def sync(self, select: Sequence[str] = (), exclude: Sequence[str] = (), extra_args: Sequence[str] = (),
             *, dry_run: bool = False, all_stale: bool = False) -> SyncResult:
        """Build the due stale set (every stale asset with ``all_stale``) once with one ``dbt build``."""
        if dry_run:
            return SyncResult(self.plan(select, exclude, extra_args, all_stale=all_stale))
        with self.build_lock("sync"):
            self.recover()
            seen = self.latest_build()
            plan = self.plan(select, exclude, extra_args, all_stale=all_stale)
            if plan.empty:
                return SyncResult(plan)

            def replan() -> SyncPlan:
                return self.plan(select, exclude, extra_args, observe=False, all_stale=all_stale)

            with self.leased(plan, replan, seen, extra_args) as share:
                left = share.left_to()
                if share.plan.empty:
                    return SyncResult(share.plan, left=left)
                return replace(self.build(share.plan, extra_args, holder=share.claim.holder), left=left)

    def leased(self, plan: SyncPlan, replan: Callable[[], SyncPlan], seen: int,
               extra_args: Sequence[str] = ()) -> contextlib.AbstractContextManager[Leased[SyncPlan]]:
        """Claim ``plan``'s assets for one build and hold them until the block ends: its share of the plan.

        ``seen`` is :meth:`latest_build` from before ``plan`` was made: if another build recorded
        outcomes since, ``replan`` makes the plan again under the claim. The share builds only the
        assets this build holds, and says who holds the others (:func:`dbtassets.state.leases.leased`).
        """
        return self.builder.leased(plan, replan, seen, extra_args)

    def build(self, plan: SyncPlan, extra_args: Sequence[str] = (), *,
              on_node: Callable[[NodeResult], None] | None = None, holder: str | None = None) -> SyncResult:
        """Run the plan's dbt build and record each asset's outcome. The caller holds the build lock.

        ``on_node`` hears each node as dbt finishes it, where the runner can tell (in-process).
        ``holder`` names the build's leases (:meth:`leased`): an asset whose lease another build took
        meanwhile is not recorded, but reported in the result's ``lost``.
        """
        self._follow_profile()
        return self.builder.build(plan, extra_args, on_node=on_node, holder=holder)

    def plan_against(self, other_path: Path, select: Sequence[str] = (),
                     exclude: Sequence[str] = ()) -> StatusReport:
        """What deploying this project over the one ``other_path`` describes would make stale, and why."""
        impact = self.versions.plan_against(other_path)
        return StatusReport(impact.statuses, self.select(select, exclude), [], impact.notes)

    def lint(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> dict[UniqueId, list[str]]:
        """Tables and files each selected model reads without a ``ref`` or ``source`` declaring them."""
        return self.versions.lint(self.select(select, exclude))

    def savings(self, since: datetime) -> Savings:
        """What building only the stale set saved since ``since``, against a full ``dbt build`` at every run."""
        return compute_savings(self.graph, self.store.outcomes_since(timestamp(since)), self.store.build_durations(),
                               since, self.clock.now())

    def needs_attention(self, report: StatusReport) -> bool:
        """True when ``check`` should fail: anything selected is stale or missing and due (so overdue, for an
        asset with a freshness policy), a selected source is late past its error_after, or a check on a
        selected asset fails or has not run yet."""
        return any(report.failing(uid) for uid in report.selected)

