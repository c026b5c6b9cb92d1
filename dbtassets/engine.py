"""The dbtassets API: one :class:`Project` per dbt project, one method per command.

A ``Project`` loads lazily: ``assets`` needs only the manifest, ``status`` adds the state
store and the observers, ``sync`` adds the runner. Every boundary (the dbt runner, the clock)
is passed in, so tests can replace it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from dbtassets.backends import Connection, Location
from dbtassets.checks import RECORDED, one_line
from dbtassets.clock import Clock, SystemClock, timestamp
from dbtassets.errors import (
    DbtAssetsError,
    Interrupted,
    ManifestError,
    ObservationError,
    ProjectError,
    SelectionError,
)
from dbtassets.graph import BUILDABLE, AssetGraph
from dbtassets.leases import leased
from dbtassets.lock import BuildLock
from dbtassets.manifest import CheckKind, Manifest, Node, UniqueId, load_manifest
from dbtassets.policies import Policies, Verdict
from dbtassets.policies import apply as apply_policies
from dbtassets.project import DbtProject, load_project
from dbtassets.refresh import invocations, old_rows_before, refresh_of
from dbtassets.runner import BuildResult, DbtTarget, NodeResult, Runner, SubprocessRunner, build_command, display
from dbtassets.savings import Savings
from dbtassets.savings import compute as compute_savings
from dbtassets.selection import dbt_selectors, resolve_selection
from dbtassets.sources import Observation, ObserverKind, Settings, load_settings, observe_files
from dbtassets.staleness import (
    AssetStatus,
    ReasonCode,
    Version,
    compute_statuses,
)
from dbtassets.state import HistoryEntry, StateStore
from dbtassets.targets import Targets, manifest_is_for, resolve_targets
from dbtassets.versions import UNSETTLED, CodeVersioner

STATE_ENV = "DBTASSETS_STATE"
_FAILED = frozenset({"error", "fail", "runtime error"})


@dataclass(frozen=True)
class Options:
    """Where the project, its profile, its state and its manifest are."""

    project_dir: Path = Path(".")
    profiles_dir: Path | None = None
    target: str | None = None
    state_path: Path | str | None = None  # a file, or a postgresql:// URL
    manifest_path: Path | None = None


@dataclass(frozen=True)
class ObserveOutcome:
    """One source observed: its new data version, or why it could not be read."""

    unique_id: UniqueId
    kind: ObserverKind
    observation: Observation | None
    changed: bool
    error: str | None = None


@dataclass(frozen=True)
class StatusReport:
    statuses: Mapping[UniqueId, AssetStatus]
    selected: Sequence[UniqueId]
    warnings: Sequence[str]
    notes: Mapping[UniqueId, str] = field(default_factory=dict)
    verdict: Verdict | None = None  # the freshness policies' (None when they were not applied)

    def needing_build(self, *, all_stale: bool = False) -> list[UniqueId]:
        """The selected stale and missing assets that are due (all of them with ``all_stale``)."""
        due = self.verdict.schedule.is_due if self.verdict is not None and not all_stale else None
        return [uid for uid in self.selected if self.statuses[uid].needs_build and (due is None or due(uid))]

    def listed(self, uid: UniqueId) -> bool:
        """Whether ``status`` and ``check`` list ``uid``: stale, missing, a late source, a check failing or pending."""
        return self.statuses[uid].needs_attention or (self.verdict is not None and uid in self.verdict.late)

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

    @property
    def empty(self) -> bool:
        return not self.to_build and not self.checks


@dataclass(frozen=True)
class BuildStep:
    """One ``dbt build`` of a plan; a plan has several only when some of its models need ``--full-refresh``."""

    assets: Sequence[UniqueId]
    full_refresh: bool = False
    checks: Sequence[UniqueId] = ()  # checks run without building their assets

    def selectors(self, graph: AssetGraph, manifest: Manifest, built: Collection[UniqueId] | None = None) -> list[str]:
        """dbt selectors for the checks and the assets (only those in ``built``, if given)."""
        assets = self.assets if built is None else [uid for uid in self.assets if uid in built]
        return [*(manifest.checks[c].name for c in self.checks), *dbt_selectors(graph, assets)]

    def args(self, extra_args: Sequence[str]) -> list[str]:
        return [*extra_args, *(["--full-refresh"] if self.full_refresh else [])]


@dataclass(frozen=True)
class SyncResult:
    plan: SyncPlan
    run_id: int | None = None
    built: Sequence[UniqueId] = ()
    failed: Mapping[UniqueId, str] = field(default_factory=dict)
    skipped: Sequence[UniqueId] = ()
    not_run: Sequence[UniqueId] = ()
    build: BuildResult | None = None
    left: Mapping[UniqueId, str] = field(default_factory=dict)  # left to other builds: asset → who holds it
    failed_checks: Mapping[UniqueId, str] = field(default_factory=dict)  # check → what failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.not_run and not self.failed_checks and (
            self.build is None or self.build.crashed is None)


class Project:
    """A dbt project seen as assets. Close it (or use ``with``) to release the state store."""

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
        # Resolved now, reported when needed: `lineage` on a parsed project needs no profile.
        self._targets: Targets | ProjectError
        try:
            self._targets = resolve_targets(self.dbt, options.profiles_dir, options.target)
        except ProjectError as exc:
            self._targets = exc
        warehouse = self._targets.selected.key if isinstance(self._targets, Targets) else ""
        self.target = DbtTarget(self.dbt, options.profiles_dir, options.target, warehouse)
        self.runner: Runner = runner or SubprocessRunner(self.target)
        self.clock: Clock = clock or SystemClock()
        self.log = log or (lambda message: None)
        self.state = Location.parse(options.state_path or os.environ.get(STATE_ENV)
                                    or self.dbt.directory / ".dbtassets" / "state.db")
        self._store: StateStore | None = None
        self._warned: set[str] = set()
        self._files_at_load: tuple[float, Path | None] | None = None  # the newest project file, for build()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.__dict__.pop("versions", None)  # it holds the store
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- loading -------------------------------------------------------------------------

    @cached_property
    def manifest(self) -> Manifest:
        """The manifest, parsed first when it is missing or older than the project's files."""
        if self.options.manifest_path is not None:
            manifest = load_manifest(self.options.manifest_path.resolve())
        else:
            path = self.dbt.manifest_path
            newest_mtime, newest = self._files_at_load = self.dbt.newest_file()
            manifest_mtime = path.stat().st_mtime if path.exists() else None
            why = None
            if manifest_mtime is None:
                why = "missing"
            elif newest_mtime > manifest_mtime:
                why = f"older than {newest}"
            elif isinstance(self._targets, Targets) and not manifest_is_for(self.dbt, self._targets):
                why = f"made for another target than {self._targets.selected.target!r}"
            if why is not None:
                _ = self.targets  # dbt cannot parse without a profile: say where it was looked for, not dbt
                self.log(f"{path} is {why}: running dbt parse")
                self.runner.parse()
            manifest = load_manifest(path)
        if manifest.project_name and manifest.project_name != self.dbt.name:
            raise ManifestError(
                f"{manifest.path}: manifest of project {manifest.project_name!r}, but {self.dbt.directory} is "
                f"project {self.dbt.name!r}; pass the right --manifest or --project-dir"
            )
        return manifest

    @cached_property
    def graph(self) -> AssetGraph:
        return AssetGraph.from_manifest(self.manifest)

    @cached_property
    def policies(self) -> Policies:
        """Every model's build_after and every source's warn_after/error_after, from the manifest."""
        return Policies.from_graph(self.graph)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.dbt.directory, [n for n in self.graph.assets.values() if n.resource_type == "source"])

    def reload(self) -> None:
        """Forget the loaded manifest, graph and settings (after a re-parse or an edit of dbtassets.yml)."""
        for name in ("manifest", "graph", "policies", "settings", "versions"):
            self.__dict__.pop(name, None)

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
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore.open(self.state, target=self.targets.selected.key,
                                          default_target=self.targets.default.key)
        return self._store

    @cached_property
    def versions(self) -> CodeVersioner:
        return CodeVersioner(self.graph, self.manifest, self.store, self.runner, self.log)

    def now(self) -> str:
        return timestamp(self.clock.now())

    # -- commands ------------------------------------------------------------------------

    def select(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[UniqueId]:
        """The selected assets, upstream first; a warning about each --exclude that leaves nothing out, once."""
        selection = resolve_selection(self.graph, select, exclude)
        for warning in selection.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                self.log(f"warning: {warning}")
        return self.graph.topological_order(selection.assets)

    def observe(self, sources: Iterable[UniqueId] | None = None, *, queries: bool = True,
                in_progress: Collection[str] | None = None) -> list[ObserveOutcome]:
        """Read the data version of each source (all by default) and record the ones that moved.

        Args:
            in_progress: files (relative to the project) known to be still being written, which
                the file observers then leave out; without it they look twice at recent files.
        """
        wanted = set(sources) if sources is not None else None
        outcomes: list[ObserveOutcome] = []
        query_sources = []
        for uid, declaration in self.settings.sources.items():
            if wanted is not None and uid not in wanted:
                continue
            if declaration.kind is ObserverKind.FILES:
                observation = observe_files(self.dbt.directory, declaration, self.settings.watch.settle,
                                            in_progress=in_progress)
                outcomes.append(self._record(observation))
            elif declaration.kind is ObserverKind.QUERY and queries:
                query_sources.append(declaration)
        if query_sources:
            outcomes.extend(self._observe_queries({d.unique_id: d.query for d in query_sources}))
        return outcomes

    def _observe_queries(self, queries: Mapping[UniqueId, str]) -> list[ObserveOutcome]:
        """All watermark queries in one ``dbt show``; one at a time only to name a failing one."""
        union = " union all ".join(
            f"select '{uid}' as source, cast(({sql}) as varchar) as watermark" for uid, sql in queries.items())
        try:
            rows = {str(row[0]): row[1] for row in self.runner.query(union)}
        except ObservationError as exc:
            if len(queries) == 1:  # the database's error inline, then the query and where dbt logged the rest
                uid, sql = next(iter(queries.items()))
                return [ObserveOutcome(uid, ObserverKind.QUERY, None, False,
                                       f"{exc} (query: {sql}; dbt log: {self.dbt.dbt_log})")]
            return [o for uid, sql in queries.items() for o in self._observe_queries({uid: sql})]
        return [
            self._record(Observation(uid, f"q{rows.get(uid)}", ObserverKind.QUERY, {"watermark": rows.get(uid)}))
            for uid in queries
        ]

    def _record(self, observation: Observation) -> ObserveOutcome:
        changed = self.store.record_observation(observation.unique_id, observation.data_version,
                                                observation.kind.value, self.now(), observation.detail)
        return ObserveOutcome(observation.unique_id, observation.kind, observation, changed)

    def report(self, source: str, version: str | None = None, note: str | None = None) -> Observation:
        """A loader says it loaded ``source``: record a new data version for it."""
        uid = self.graph.resolve(source)
        if self.graph.assets[uid].resource_type != "source":
            raise SelectionError(f"{source!r} is a {self.graph.assets[uid].resource_type}, not a source; "
                                 "report takes a source such as raw.orders")
        at = self.now()
        detail = {"note": note} if note else {}
        observation = Observation(uid, f"r{version}" if version else f"r{at}", ObserverKind.REPORTED, detail)
        self.store.record_observation(uid, observation.data_version, ObserverKind.REPORTED.value, at, detail)
        return observation

    def status(self, select: Sequence[str] = (), exclude: Sequence[str] = (), *, observe: bool = True,
               queries: bool = True) -> StatusReport:
        """Every selected asset's status with reasons, after observing the sources (unless told not to)."""
        selected = self.select(select, exclude)
        errors = []
        if observe:
            errors = [f"source {self.graph.assets[o.unique_id].display_name}: {o.error}"
                      for o in self.observe(queries=queries) if o.error]
        observable = {uid for uid, d in self.settings.sources.items() if d.observable}
        view = self.store.view()
        code = self.versions.current(view)
        statuses = compute_statuses(self.graph, code.versions, view, observable, code.changes,
                                    self.versions.reads, self.manifest.checks)
        verdict = apply_policies(self.graph, statuses, self.policies, self.clock.now())
        return StatusReport(verdict.statuses, selected, [*self.settings.warnings, *errors], code.notes, verdict)

    def why(self, name: str, *, observe: bool = True) -> Explanation:
        uid = self.graph.resolve(name)
        report = self.status(observe=observe)
        return self._explain(uid, report, set())

    def _explain(self, uid: UniqueId, report: StatusReport, seen: set[UniqueId]) -> Explanation:
        seen.add(uid)
        statuses = report.statuses
        causes = {}
        for reason in statuses[uid].reasons:
            if reason.upstream is not None and reason.upstream not in seen:
                causes[reason.upstream] = self._explain(reason.upstream, report, seen)
        notes = [report.notes[uid]] if uid in report.notes else []
        if uid in self.policies.build_after:
            notes.append(f"freshness policy: {self.policies.build_after[uid].describe()} (dbt's freshness.build_after)")
        if uid in self.policies.slas:
            notes.append(f"freshness policy: {self.policies.slas[uid].describe()}")
        node = self.graph.assets[uid]
        sql = self.versions.sql_of(uid, node.code_version) if node.resource_type == "model" else None
        if sql is not None:
            from dbtassets.fingerprint import undeclared_reads

            hidden = undeclared_reads(sql, self.versions.dialect, self.versions.declared_relations(uid))
            if hidden:
                notes.append(f"it also reads {', '.join(hidden)}, which no ref() or source() declares: "
                             "changes there are not seen (`dbtassets lint`)")
        observed = None
        if self.graph.assets[uid].resource_type == "source":
            latest = self.store.observation_history(uid, 1)
            if latest:
                at, version, kind, detail = latest[0]
                observed = {"at": at, "data_version": version, "kind": kind, **detail}
        return Explanation(statuses[uid], causes, observed, notes)

    def lineage(self, name: str, *, upstream: bool = True, downstream: bool = True) -> tuple[UniqueId, AssetGraph]:
        uid = self.graph.resolve(name)
        nodes = {uid}
        if upstream:
            nodes |= self.graph.ancestors(uid)
        if downstream:
            nodes |= self.graph.descendants(uid)
        return uid, self.graph.subgraph(nodes)

    def history(self, name: str, limit: int = 20) -> tuple[Node, list[HistoryEntry]]:
        uid = self.graph.resolve(name)
        return self.graph.assets[uid], self.store.history(uid, limit)

    def plan(self, select: Sequence[str] = (), exclude: Sequence[str] = (), extra_args: Sequence[str] = (),
             *, observe: bool = True, all_stale: bool = False) -> SyncPlan:
        """What ``sync`` would build: the selected stale and missing assets that are due (all with
        ``all_stale``, whatever their freshness policies say), and the dbt command."""
        report = self.status(select, exclude, observe=observe)
        to_build = [uid for uid in report.needing_build(all_stale=all_stale)
                    if self.graph.assets[uid].resource_type in BUILDABLE and not report.statuses[uid].held]
        return self.plan_for(to_build, report.statuses, extra_args, report.verdict, report.needing_checks())

    def plan_for(self, to_build: Sequence[UniqueId], statuses: Mapping[UniqueId, AssetStatus],
                 extra_args: Sequence[str] = (), verdict: Verdict | None = None,
                 checks: Sequence[UniqueId] = ()) -> SyncPlan:
        """The plan that builds exactly ``to_build`` (upstream first) and runs ``checks``.

        Models whose rebuild must be a full refresh get ``--full-refresh`` and no other model does,
        which may take more than one ``dbt build`` (:func:`dbtassets.refresh.invocations`). Checks
        whose assets are not built are selected by name in the first one.
        """
        full = [uid for uid in to_build if statuses[uid].full_refresh]
        steps = [BuildStep(i.assets, i.full_refresh) for i in invocations(self.graph, to_build, full)]
        if checks:
            first = steps[0] if steps else BuildStep(())
            steps[:1] = [BuildStep(first.assets, first.full_refresh, tuple(checks))]
        selectors = [s.selectors(self.graph, self.manifest) for s in steps]
        command = " && ".join(display(build_command(sel, s.args(extra_args))) for s, sel in zip(steps, selectors,
                                                                                                  strict=True))
        return SyncPlan(list(to_build), [one for sel in selectors for one in sel], command, statuses,
                        verdict=verdict, checks=list(checks), steps=steps)

    def sync(self, select: Sequence[str] = (), exclude: Sequence[str] = (), extra_args: Sequence[str] = (),
             *, dry_run: bool = False, all_stale: bool = False) -> SyncResult:
        """Build the due stale set (every stale asset with ``all_stale``) once with one ``dbt build``."""
        if dry_run:
            return SyncResult(self.plan(select, exclude, extra_args, all_stale=all_stale))
        with BuildLock(self.dbt.directory / ".dbtassets" / "build.lock", "sync"):
            self.store.interrupt_dead_runs(self.now())
            seen = self.store.latest_materialization_id()
            plan = self.plan(select, exclude, extra_args, all_stale=all_stale)
            if plan.empty:
                return SyncResult(plan)
            def replan() -> SyncPlan:
                return self.plan(select, exclude, extra_args, observe=False, all_stale=all_stale)

            with leased(self, plan, replan, seen, extra_args) as share:
                left = share.left_to()
                if share.plan.empty:
                    return SyncResult(share.plan, left=left)
                return replace(self.build(share.plan, extra_args), left=left)

    def build(self, plan: SyncPlan, extra_args: Sequence[str] = ()) -> SyncResult:
        """Run the plan's dbt build and record each asset's outcome. The caller holds the build lock."""
        run_id = self.store.start_run(plan.command, plan.to_build, self.now())
        try:
            result = self._run_steps(plan, extra_args)
            return self._record_build(plan, run_id, result, unsettled=self._edited_since_load(result))
        except DbtAssetsError as exc:  # no outcome recorded: close the run rather than leave it 'running'
            with contextlib.suppress(DbtAssetsError), self.store.transaction() as db:
                self.store.finish_run(db, run_id, "error", self.now(), None, f"nothing recorded: {exc}")
            raise
        except Interrupted as stop:  # the runner has stopped dbt; say so now, not at the next command
            with contextlib.suppress(DbtAssetsError), self.store.transaction() as db:
                self.store.finish_run(db, run_id, "interrupted", self.now(), None,
                                      f"stopped by {stop.signal_name}; nothing recorded")
                stop.run_id = run_id
            raise

    def _run_steps(self, plan: SyncPlan, extra_args: Sequence[str]) -> BuildResult:
        """Run each step's ``dbt build`` in turn, as one result; what a failure upstream blocks is skipped."""
        results: list[NodeResult] = []
        returncode, crashed, last = 0, None, None
        for step in plan.steps:
            broken = {r.unique_id for r in results if r.status in _FAILED or r.status == "skipped"}
            blocked = {uid for uid in step.assets if broken & self.graph.ancestors(uid)}
            results.extend(NodeResult(uid, "skipped", "an upstream asset failed", 0.0) for uid in blocked)
            selectors = step.selectors(self.graph, self.manifest, set(step.assets) - blocked)
            if not selectors:
                continue
            last = self.runner.build(selectors, step.args(extra_args))
            results.extend(last.results)
            returncode = max(returncode, last.returncode)
            if last.crashed is not None:
                crashed = last.crashed
                break
        if last is None:
            return BuildResult(plan.command, 1, tuple(results), self.dbt.dbt_log)
        return BuildResult(plan.command, returncode, tuple(results), last.log_path, crashed, last.extra)

    def _edited_since_load(self, result: BuildResult) -> frozenset[UniqueId]:
        """The built assets whose code may have changed after the loaded manifest was made (say, mid-build).

        dbt may have built either version of their code, so what they were built from is unknown.
        An edited model, seed or snapshot file concerns that node (and, if ephemeral, the assets
        that inline it); any other edited file (YAML, a macro, dbt_project.yml) may concern them all.
        """
        if self._files_at_load is None or "manifest" not in self.__dict__:
            return frozenset()  # a --manifest given by the caller: the caller vouches for it
        changed = self.dbt.files_changed_since(self._files_at_load[0])
        if not changed:
            return frozenset()
        # dbt may have rewritten target/manifest.json from code read before the edit: make it look
        # older than the edit, so that the next command parses again rather than trusting it.
        with contextlib.suppress(OSError):
            os.utime(self.dbt.manifest_path, (self._files_at_load[0], self._files_at_load[0]))
        built = {r.unique_id for r in result.results if r.unique_id in self.graph}
        nodes = self.manifest.nodes
        by_path = {self.dbt.directory / n.path: uid for uid, n in nodes.items() if n.resource_type != "source"}
        if not all(path in by_path for path in changed):
            edited = set(built)
        else:
            edited = {by_path[path] for path in changed}
            inlined = {uid for uid in edited if nodes[uid].is_ephemeral}
            while inlined:  # the assets (and ephemeral models) that select from an edited ephemeral model
                inlined = {uid for uid, n in nodes.items() if uid not in edited and inlined.intersection(n.depends_on)}
                edited |= inlined
        unsettled = frozenset(edited & built)
        if unsettled:
            names = ", ".join(sorted(str(p.relative_to(self.dbt.directory)) for p in changed))
            self.log(f"{names} changed during the build: {len(unsettled)} asset(s) will be built again to be sure")
        return unsettled

    def _record_build(self, plan: SyncPlan, run_id: int, result: BuildResult, *,
                      unsettled: Collection[UniqueId] = ()) -> SyncResult:
        """Record the build's outcomes; ``unsettled`` ones were built from code that changed meanwhile."""
        own: dict[UniqueId, str] = {}
        failed: dict[UniqueId, str] = {}
        checked: list[NodeResult] = []
        durations: dict[UniqueId, tuple[float, int | None]] = {}
        for outcome in result.results:
            if outcome.unique_id in self.graph:
                own[outcome.unique_id] = outcome.status
                durations[outcome.unique_id] = (outcome.execution_time, outcome.rows_affected)
                if outcome.status in _FAILED:
                    failed[outcome.unique_id] = outcome.message or outcome.status
            elif outcome.unique_id in self.manifest.checks and outcome.status in RECORDED:
                checked.append(outcome)
                check = self.manifest.checks[outcome.unique_id]
                if check.kind is CheckKind.UNIT_TEST and outcome.status in _FAILED:  # dbt did not build the model
                    for model in check.assets:
                        failed.setdefault(model, f"{check.describe()} on {self.graph.assets[model].name} failed: "
                                                 f"{one_line(outcome.message)}")
        previous = self.store.view().last_success
        full_refreshed = {uid for step in plan.steps if step.full_refresh for uid in step.assets}
        versions: dict[UniqueId, Version] = {
            uid: s.data_version for uid, s in plan.statuses.items() if s.data_version is not None}
        compiled = {r.unique_id: r.compiled_code for r in result.results if r.compiled_code}
        built, skipped = [], []
        materialized = {uid: m.id for uid, m in previous.items()}  # each asset's materialization, after this run
        at = self.now()
        with self.store.transaction() as db:
            for uid in self.graph.topological_order(own):
                node = self.graph.assets[uid]
                status = "error" if uid in failed else "success" if own[uid] == "success" else "skipped"
                inputs = {p: versions[p] for p in self.graph.parents(uid) if p in versions}
                duration, rows = durations[uid]
                code_version: str = node.code_version
                manifest_version: str | None = node.code_version
                if uid in unsettled:  # the next status sees a code change whatever dbt read: a rebuild, to be sure
                    code_version, manifest_version = UNSETTLED, None
                elif uid in compiled and node.resource_type != "seed":
                    code_version = self.versions.remember(db, uid, compiled[uid])
                # A rebuild whose only change was new columns keeps the version of the old ones.
                before = plan.statuses.get(uid)
                base, added = None, frozenset[str]()
                if status == "success" and before is not None and before.impact and before.data_version:
                    base, added = before.data_version.base_value, before.data_version.added | before.impact
                before_this = previous.get(uid)
                old_rows = old_rows_before(
                    refresh_of(node), full_refreshed=uid in full_refreshed,
                    previous_code=before_this.code_version if before_this else None,
                    previous_old_rows=before_this.old_rows_before if before_this else None,
                    code_version=code_version, at=at) if status == "success" else None
                new_id = self.store.insert_outcome(
                    db, uid=uid, run_id=run_id, status=status, finished_at=at, code_version=code_version,
                    inputs=inputs, duration=duration, rows_affected=rows, message=failed.get(uid),
                    manifest_version=manifest_version, base_version=base, added_columns=added,
                    old_rows_before=old_rows)
                if status == "success":
                    versions[uid] = Version(f"m{new_id}", at, base or "", added)
                    materialized[uid] = new_id
                    built.append(uid)
                elif status == "skipped":
                    skipped.append(uid)
            # A unit test that stopped its model's build is that build's failure, not a check of the old table.
            checked = [r for r in checked if not (self.manifest.checks[r.unique_id].kind is CheckKind.UNIT_TEST
                                                  and set(self.manifest.checks[r.unique_id].assets) & set(failed)
                                                  & set(own))]
            failed_checks = self._record_checks(db, run_id, checked, materialized, at)
            not_run = [uid for uid in plan.to_build if uid not in own]
            ok = not failed and not skipped and not failed_checks and result.crashed is None
            self.store.finish_run(db, run_id, "success" if ok else "error", at, str(result.log_path),
                                  result.crashed)
        return SyncResult(plan, run_id, built, {u: m for u, m in failed.items() if u in own}, skipped, not_run,
                          result, failed_checks=failed_checks)

    def _record_checks(self, db: Connection, run_id: int, checked: Sequence[NodeResult],
                       materialized: Mapping[UniqueId, int], at: str) -> dict[UniqueId, str]:
        """Record each check's run on the materialization of its assets it ran against; return the failed ones."""
        failed: dict[UniqueId, str] = {}
        for outcome in checked:
            check = self.manifest.checks[outcome.unique_id]
            message = one_line(outcome.message) if outcome.status != "pass" else ""
            for asset in check.assets:
                if asset not in materialized:
                    continue  # never built: nothing it could have checked
                self.store.insert_check_result(
                    db, check_id=check.unique_id, uid=asset, run_id=run_id, code_version=check.code_version,
                    materialization_id=materialized[asset], status=outcome.status, finished_at=at, message=message)
            if RECORDED[outcome.status].failing:
                failed[check.unique_id] = f"{check.describe()} failed: {message}"
        return failed

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


def unobserved(report: StatusReport) -> list[UniqueId]:
    """Sources in the report with no way to be observed."""
    return [uid for uid in report.selected
            if any(r.code is ReasonCode.UNOBSERVED for r in report.statuses[uid].reasons)]
