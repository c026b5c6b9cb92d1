"""The dbtassets API: one :class:`Project` per dbt project, one method per command.

A ``Project`` loads lazily: ``assets`` needs only the manifest, ``status`` adds the state
store and the observers, ``sync`` adds the runner. Every boundary (the dbt runner, the clock)
is passed in, so tests can replace it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dbtassets.clock import Clock, SystemClock, timestamp
from dbtassets.errors import ManifestError, ObservationError, SelectionError
from dbtassets.graph import BUILDABLE, AssetGraph
from dbtassets.lock import BuildLock
from dbtassets.manifest import Manifest, Node, UniqueId, compiled_sql, load_manifest
from dbtassets.project import DbtProject, load_project
from dbtassets.runner import BuildResult, DbtTarget, Runner, SubprocessRunner, build_command, display
from dbtassets.selection import dbt_selectors, exact_selectors, select_assets
from dbtassets.sources import Observation, ObserverKind, Settings, load_settings, observe_files
from dbtassets.staleness import (
    AssetStatus,
    CodeChange,
    Materialization,
    ReasonCode,
    StateView,
    Status,
    Version,
    compute_statuses,
)
from dbtassets.state import CachedFingerprint, HistoryEntry, StateStore

STATE_ENV = "DBTASSETS_STATE"
_FAILED = frozenset({"error", "fail", "runtime error"})


@dataclass(frozen=True)
class Options:
    """Where the project, its profile, its state and its manifest are."""

    project_dir: Path = Path(".")
    profiles_dir: Path | None = None
    target: str | None = None
    state_path: Path | None = None
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

    def needing_build(self) -> list[UniqueId]:
        return [uid for uid in self.selected if self.statuses[uid].needs_build]


@dataclass(frozen=True)
class Explanation:
    """``why``: an asset's status, and for each reason naming an upstream, that upstream's explanation."""

    status: AssetStatus
    causes: Mapping[UniqueId, Explanation]
    observed: Mapping[str, Any] | None = None
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class SyncPlan:
    to_build: Sequence[UniqueId]
    selectors: Sequence[str]
    command: str
    statuses: Mapping[UniqueId, AssetStatus]


@dataclass(frozen=True)
class CodeVersions:
    """The current code version of every buildable asset, and how the changed ones changed."""

    versions: Mapping[UniqueId, str]
    changes: Mapping[UniqueId, CodeChange] = field(default_factory=dict)
    notes: Mapping[UniqueId, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncResult:
    plan: SyncPlan
    run_id: int | None = None
    built: Sequence[UniqueId] = ()
    failed: Mapping[UniqueId, str] = field(default_factory=dict)
    skipped: Sequence[UniqueId] = ()
    not_run: Sequence[UniqueId] = ()
    build: BuildResult | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.not_run and (
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
        self.target = DbtTarget(self.dbt, options.profiles_dir, options.target)
        self.runner: Runner = runner or SubprocessRunner(self.target)
        self.clock: Clock = clock or SystemClock()
        self.log = log or (lambda message: None)
        env_state = os.environ.get(STATE_ENV)
        self.state_path = (options.state_path or (Path(env_state) if env_state else None)
                           or self.dbt.directory / ".dbtassets" / "state.db")
        self._store: StateStore | None = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
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
            newest_mtime, newest = self.dbt.newest_file()
            manifest_mtime = path.stat().st_mtime if path.exists() else None
            if manifest_mtime is None or newest_mtime > manifest_mtime:
                why = "missing" if manifest_mtime is None else f"older than {newest}"
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
    def settings(self) -> Settings:
        return load_settings(self.dbt.directory, [n for n in self.graph.assets.values() if n.resource_type == "source"])

    def reload(self) -> None:
        """Forget the loaded manifest, graph and settings (after a re-parse or an edit of dbtassets.yml)."""
        for name in ("manifest", "graph", "settings"):
            self.__dict__.pop(name, None)

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore.open(self.state_path)
        return self._store

    @property
    def dialect(self) -> str | None:
        from dbtassets.fingerprint import dialect_of

        return dialect_of(self.manifest.adapter_type)

    def code_versions(self, state: StateView) -> CodeVersions:
        """Semantic code versions, compiling only the models whose manifest version moved since their build.

        A model whose file checksum, config, macros and inlined ephemeral models are as at its last
        build keeps that build's semantic version, so a large project is not compiled at all. The
        others are looked up in the fingerprint cache, and only the ones not there are compiled
        (one ``dbt compile`` for all of them) and fingerprinted.
        """
        versions: dict[UniqueId, str] = {}
        moved: list[UniqueId] = []
        for uid, node in self.graph.assets.items():
            if node.resource_type not in BUILDABLE:
                continue
            last = state.last_success.get(uid)
            if node.resource_type == "seed" or last is None:
                versions[uid] = node.code_version  # seeds: their content checksum; missing: irrelevant
            elif last.manifest_version == node.code_version:
                versions[uid] = last.code_version
            else:
                moved.append(uid)
        if not moved:
            return CodeVersions(versions)
        cached = self.store.fingerprints((uid, self.graph.assets[uid].code_version) for uid in moved)
        uncached = [uid for uid in moved if uid not in cached]
        if uncached:
            self.log(f"compiling {len(uncached)} changed model{'s' if len(uncached) > 1 else ''} to compare their SQL")
            compiled = self.runner.compile(exact_selectors(self.graph, uncached))
            with self.store.transaction() as db:
                for uid in uncached:
                    if uid in compiled:
                        self._remember(db, uid, compiled[uid])
            cached = self.store.fingerprints((uid, self.graph.assets[uid].code_version) for uid in moved)
        changes: dict[UniqueId, CodeChange] = {}
        notes: dict[UniqueId, str] = {}
        for uid in moved:
            node, last = self.graph.assets[uid], state.last_success[uid]
            entry = cached.get(uid)
            versions[uid] = entry.code_version if entry else node.code_version
            if entry is None:
                notes[uid] = "could not compile it to compare its SQL; using the file checksum"
            elif entry.note:
                notes[uid] = entry.note
            if versions[uid] != last.code_version:
                changes[uid] = self._classify(uid, last, entry)
        return CodeVersions(versions, changes, notes)

    def _remember(self, db: sqlite3.Connection, uid: UniqueId, compiled_code: str) -> str:
        """Fingerprint compiled SQL, cache it under the node's manifest version; return the code version."""
        from dbtassets.fingerprint import fingerprint

        node = self.graph.assets[uid]
        found = fingerprint(compiled_code, self.dialect, node.config_version, node.code_version)
        self.store.save_fingerprint(db, uid, node.code_version, found.value, found.semantic, found.normalized_sql,
                                    found.note)
        return found.value

    def _classify(self, uid: UniqueId, last: Materialization, entry: CachedFingerprint | None) -> CodeChange:
        node = self.graph.assets[uid]
        old = self._sql_of(uid, last.manifest_version) if last.manifest_version else None
        new = self.store.compiled_sql(entry.sql_hash) if entry and entry.sql_hash else None
        if old is None or new is None or node.resource_type != "model":
            return CodeChange(True)
        from dbtassets.fingerprint import classify, combine

        if combine(old, node.config_version) != last.code_version:
            return CodeChange(True, description="breaking: its configuration changed")
        change = classify(old, new, self.dialect)
        return CodeChange(change.breaking, frozenset(change.added_columns), change.describe())

    def _sql_of(self, uid: UniqueId, manifest_version: str) -> str | None:
        entry = self.store.fingerprints([(uid, manifest_version)]).get(uid)
        return self.store.compiled_sql(entry.sql_hash) if entry and entry.sql_hash else None

    def reads(self, child: UniqueId, parent: UniqueId, columns: frozenset[str]) -> bool:
        """Whether ``child``'s SQL (as last compiled) may read any of ``columns``; True when unknown."""
        from dbtassets.fingerprint import columns_read

        node = self.graph.assets[child]
        sql = self._sql_of(child, node.code_version) if node.resource_type == "model" else None
        return sql is None or columns_read(sql, self.dialect).any_of(columns)

    def now(self) -> str:
        return timestamp(self.clock.now())

    # -- commands ------------------------------------------------------------------------

    def select(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[UniqueId]:
        """The selected assets, upstream first."""
        return self.graph.topological_order(select_assets(self.graph, select, exclude))

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
        except ObservationError:
            if len(queries) == 1:
                uid, sql = next(iter(queries.items()))
                return [ObserveOutcome(uid, ObserverKind.QUERY, None, False,
                                       f"query failed: {sql} (see {self.dbt.dbt_log})")]
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
        code = self.code_versions(view)
        statuses = compute_statuses(self.graph, code.versions, view, observable, code.changes, self.reads)
        return StatusReport(statuses, selected, [*self.settings.warnings, *errors], code.notes)

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
        node = self.graph.assets[uid]
        sql = self._sql_of(uid, node.code_version) if node.resource_type == "model" else None
        if sql is not None:
            from dbtassets.fingerprint import undeclared_reads

            hidden = undeclared_reads(sql, self.dialect, self._declared_relations(uid))
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
             *, observe: bool = True) -> SyncPlan:
        """What ``sync`` would build: the stale and missing selected assets, and the dbt command."""
        report = self.status(select, exclude, observe=observe)
        to_build = [uid for uid in report.needing_build() if self.graph.assets[uid].resource_type in BUILDABLE]
        return self.plan_for(to_build, report.statuses, extra_args)

    def plan_for(self, to_build: Sequence[UniqueId], statuses: Mapping[UniqueId, AssetStatus],
                 extra_args: Sequence[str] = ()) -> SyncPlan:
        """The plan that builds exactly ``to_build`` (upstream first)."""
        selectors = dbt_selectors(self.graph, to_build)
        command = display(build_command(selectors, extra_args)) if to_build else ""
        return SyncPlan(list(to_build), selectors, command, statuses)

    def sync(self, select: Sequence[str] = (), exclude: Sequence[str] = (), extra_args: Sequence[str] = (),
             *, dry_run: bool = False) -> SyncResult:
        """Build the stale set once with one ``dbt build`` and record what it did."""
        if dry_run:
            return SyncResult(self.plan(select, exclude, extra_args))
        with BuildLock(self.dbt.directory / ".dbtassets" / "build.lock", "sync"):
            self.store.interrupt_dead_runs(self.now())
            plan = self.plan(select, exclude, extra_args)
            if not plan.to_build:
                return SyncResult(plan)
            return self.build(plan, extra_args)

    def build(self, plan: SyncPlan, extra_args: Sequence[str] = ()) -> SyncResult:
        """Run the plan's dbt build and record each asset's outcome. The caller holds the build lock."""
        run_id = self.store.start_run(plan.command, plan.to_build, self.now())
        result = self.runner.build(plan.selectors, extra_args)
        return self._record_build(plan, run_id, result)

    def _record_build(self, plan: SyncPlan, run_id: int, result: BuildResult) -> SyncResult:
        own: dict[UniqueId, str] = {}
        failed: dict[UniqueId, str] = {}
        durations: dict[UniqueId, tuple[float, int | None]] = {}
        for outcome in result.results:
            if outcome.unique_id in self.graph:
                own[outcome.unique_id] = outcome.status
                durations[outcome.unique_id] = (outcome.execution_time, outcome.rows_affected)
                if outcome.status in _FAILED:
                    failed[outcome.unique_id] = outcome.message or outcome.status
            elif outcome.status in _FAILED and outcome.unique_id in self.manifest.test_parents:
                test = self.manifest.test_names.get(outcome.unique_id, outcome.unique_id)
                for parent in self.manifest.test_parents[outcome.unique_id]:
                    failed.setdefault(parent, f"data test {test} failed: {outcome.message}")
        versions: dict[UniqueId, Version] = {
            uid: s.data_version for uid, s in plan.statuses.items() if s.data_version is not None}
        compiled = {r.unique_id: r.compiled_code for r in result.results if r.compiled_code}
        built, skipped = [], []
        at = self.now()
        with self.store.transaction() as db:
            for uid in self.graph.topological_order(own):
                node = self.graph.assets[uid]
                status = "error" if uid in failed else "success" if own[uid] == "success" else "skipped"
                inputs = {p: versions[p] for p in self.graph.parents(uid) if p in versions}
                duration, rows = durations[uid]
                code_version = node.code_version
                if uid in compiled and node.resource_type != "seed":
                    code_version = self._remember(db, uid, compiled[uid])
                # A rebuild whose only change was new columns keeps the version of the old ones.
                before = plan.statuses.get(uid)
                base, added = None, frozenset[str]()
                if status == "success" and before is not None and before.impact and before.data_version:
                    base, added = before.data_version.base_value, before.data_version.added | before.impact
                new_id = self.store.insert_outcome(
                    db, uid=uid, run_id=run_id, status=status, finished_at=at, code_version=code_version,
                    inputs=inputs, duration=duration, rows_affected=rows, message=failed.get(uid),
                    manifest_version=node.code_version, base_version=base, added_columns=added)
                if status == "success":
                    versions[uid] = Version(f"m{new_id}", at, base or "", added)
                    built.append(uid)
                elif status == "skipped":
                    skipped.append(uid)
            not_run = [uid for uid in plan.to_build if uid not in own]
            ok = not failed and not skipped and result.crashed is None
            self.store.finish_run(db, run_id, "success" if ok else "error", at, str(result.log_path),
                                  result.crashed)
        return SyncResult(plan, run_id, built, {u: m for u, m in failed.items() if u in own}, skipped, not_run,
                          result)

    def plan_against(self, other_path: Path, select: Sequence[str] = (),
                     exclude: Sequence[str] = ()) -> StatusReport:
        """What deploying this project over the one ``other_path`` describes would make stale, and why.

        The other manifest plays the part of the state: every asset it has counts as built from its
        code, so the same rules (and the same non-breaking classification) say what a deploy changes.
        Only assets whose manifest version differs are compiled and compared semantically.
        """
        from dbtassets.fingerprint import classify, fingerprint

        other = load_manifest(other_path.resolve())
        other_sql = compiled_sql(other_path.resolve())
        selected = self.select(select, exclude)
        candidates = [uid for uid, node in self.graph.assets.items() if node.resource_type in ("model", "snapshot")
                      and uid in other.nodes and other.nodes[uid].code_version != node.code_version]
        current_sql = self.runner.compile(exact_selectors(self.graph, candidates)) if candidates else {}
        when = f"{other.generated_at or other_path} (the other manifest)"
        # The other manifest's assets, numbered as if each had been built once from the other's inputs.
        deployed = [uid for uid, node in self.graph.assets.items()
                    if node.resource_type in BUILDABLE and uid in other.nodes]
        ids = {uid: -number - 1 for number, uid in enumerate(deployed)}

        def input_version(parent: UniqueId) -> Version:
            return Version(f"m{ids[parent]}", when) if parent in ids else Version(f"o:{parent}", when)

        versions: dict[UniqueId, str] = {}
        changes: dict[UniqueId, CodeChange] = {}
        notes: dict[UniqueId, str] = {}
        successes: dict[UniqueId, Materialization] = {}
        for uid in deployed:
            node = self.graph.assets[uid]
            before = other.nodes[uid]
            versions[uid] = node.code_version
            recorded = before.code_version
            if uid in candidates:
                old, new = other_sql.get(uid), current_sql.get(uid)
                if old is None or new is None:
                    notes[uid] = ("the other manifest has no compiled SQL for it (make it with `dbt compile`)"
                                  if old is None else "could not compile it") + "; comparing file checksums"
                else:
                    old_print = fingerprint(old, self.dialect, before.config_version, before.code_version)
                    new_print = fingerprint(new, self.dialect, node.config_version, node.code_version)
                    versions[uid], recorded = new_print.value, old_print.value
                    if recorded != versions[uid]:
                        if before.config_version != node.config_version:
                            changes[uid] = CodeChange(True, description="breaking: its configuration changed")
                        else:
                            change = classify(old, new, self.dialect)
                            changes[uid] = CodeChange(change.breaking, frozenset(change.added_columns),
                                                      change.describe())
            inputs = {p: input_version(p) for p in self.graph.parents(uid)}
            successes[uid] = Materialization(ids[uid], 0, when, recorded, inputs, before.code_version)
        observations = {uid: Version(f"o:{uid}", when) for uid, n in self.graph.assets.items()
                        if n.resource_type == "source"}
        view = StateView(successes, {}, observations)

        def reads(child: UniqueId, parent: UniqueId, columns: frozenset[str]) -> bool:
            from dbtassets.fingerprint import columns_read

            sql = current_sql.get(child) or other_sql.get(child)
            return sql is None or columns_read(sql, self.dialect).any_of(columns)

        for uid, node in self.graph.assets.items():
            if node.resource_type in BUILDABLE and uid not in versions:
                versions[uid] = node.code_version  # new in this project: missing from the other
        statuses = compute_statuses(self.graph, versions, view, set(observations), changes, reads)
        # Successes here are the other manifest's "builds": they are versions of it, not of this project.
        planned = {uid: AssetStatus(uid, s.status, s.reasons, None, s.impact) for uid, s in statuses.items()}
        return StatusReport(planned, selected, [], notes)

    def lint(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> dict[UniqueId, list[str]]:
        """Tables and files each selected model reads without a ``ref`` or ``source`` declaring them."""
        from dbtassets.fingerprint import undeclared_reads

        models = [uid for uid in self.select(select, exclude) if self.graph.assets[uid].resource_type == "model"]
        compiled = self.runner.compile(exact_selectors(self.graph, models)) if models else {}
        findings = {}
        for uid in models:
            if uid in compiled:
                found = undeclared_reads(compiled[uid], self.dialect, self._declared_relations(uid))
                if found:
                    findings[uid] = found
        return findings

    def _declared_relations(self, uid: UniqueId) -> list[str]:
        """Relation names a model may read: its refs and sources, and those of ephemeral models it inlines."""
        nodes = self.manifest.nodes
        declared, stack, seen = [], list(nodes[uid].depends_on), set()
        while stack:
            dep = stack.pop()
            if dep in seen or dep not in nodes:
                continue
            seen.add(dep)
            if nodes[dep].is_ephemeral:
                stack.extend(nodes[dep].depends_on)
            elif nodes[dep].relation_name:
                declared.append(nodes[dep].relation_name)
        return declared

    def needs_attention(self, report: StatusReport) -> bool:
        """True when ``check`` should fail: anything selected is stale or missing."""
        return any(report.statuses[uid].status is not Status.FRESH for uid in report.selected)


def unobserved(report: StatusReport) -> list[UniqueId]:
    """Sources in the report with no way to be observed."""
    return [uid for uid in report.selected
            if any(r.code is ReasonCode.UNOBSERVED for r in report.statuses[uid].reasons)]
