"""Code versions: semantic where SQL is involved, compiled only where something may have changed.

:class:`CodeVersioner` answers, for a loaded project, "what is each asset's code version now,
and how did the changed ones change?" (for ``status``), fingerprints what a build ran (for
``sync``), says which columns a model reads (for non-breaking changes), compares the project
with another manifest (``plan --against``) and finds undeclared reads (``lint``).

An incremental model's code version is the fingerprint of its full-refresh form, with
``is_incremental()`` rendered false, as a first build and ``--full-refresh`` render it: its SQL in
an incremental build (or under a plain ``dbt compile`` once its table exists) holds only part of
its logic, and new rows must never look like a code change.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Protocol

from dbtassets.errors import DbtAssetsError, ManifestError
from dbtassets.model.graph import BUILDABLE, AssetGraph
from dbtassets.model.manifest import Manifest, Node, ResourceType, UniqueId, compiled_sql, load_manifest
from dbtassets.model.selection import exact_selectors
from dbtassets.model.sources import DataVersionKind
from dbtassets.model.values import changed_reads, describe
from dbtassets.rules.refresh import is_incremental_model, renders_incrementally
from dbtassets.rules.staleness import CodeChange, compute_statuses
from dbtassets.rules.statuses import AssetStatus
from dbtassets.sql.compiled import CompiledCache
from dbtassets.state.records import UNSETTLED, CachedFingerprint, Fingerprinted, Materialization, StateView, Version
from dbtassets.state.store import StateStore
from dbtassets.words import noun, plural

_EPHEMERAL_CTE = "__dbt__cte__"  # how dbt names an inlined ephemeral model
_UNSETTLED_CHANGE = CodeChange(True, description="the project was edited during that build, so which code it "
                                                 "ran is unknown: rebuilding to be sure")


def _values_changed(node: Node, last: Materialization) -> str:
    """``var('x') changed`` when only the values of the vars and env vars ``node`` reads moved since ``last``."""
    old = last.manifest_version or ""
    changed = changed_reads(old, node.code_version, node.reads) if node.reads else None
    return describe(changed) if changed else ""


class Compiler(Protocol):
    """What code versions need of the dbt runner (:class:`~dbtassets.building.runner.Runner` is one)."""

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> Mapping[UniqueId, str]:
        """The compiled SQL of the nodes ``selectors`` select (``dbt compile``, with ``--full-refresh``), by node."""
        ...


@dataclass(frozen=True)
class CodeVersions:
    """The current code version of every buildable asset, and how the changed ones changed."""

    versions: Mapping[UniqueId, str]
    changes: Mapping[UniqueId, CodeChange] = field(default_factory=dict)
    notes: Mapping[UniqueId, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildVersions:
    """The code versions of what a build ran, and the new fingerprints to remember for them."""

    versions: Mapping[UniqueId, str]
    fingerprints: Sequence[Fingerprinted]


@dataclass(frozen=True)
class Impact:
    """What deploying over another manifest would make stale (``plan --against``)."""

    statuses: Mapping[UniqueId, AssetStatus]
    notes: Mapping[UniqueId, str]


class CodeVersioner:
    """Code versions of one loaded project; cheap to create, it reads and compiles only on demand."""

    def __init__(self, graph: AssetGraph, manifest: Manifest, store: StateStore, compiler: Compiler,
                 log: Callable[[str], None]) -> None:
        self.graph = graph
        self.manifest = manifest
        self.store = store
        self.compiler = compiler
        self.log = log
        self._outputs: dict[UniqueId, list[str] | None] = {}  # output_columns, for this load of the project

    @cached_property
    def dialect(self) -> str | None:
        from dbtassets.sql.fingerprint import dialect_of

        return dialect_of(self.manifest.adapter_type)

    def current(self, state: StateView) -> CodeVersions:
        """Semantic code versions, compiling only the models whose manifest version moved since their build.

        A model whose file checksum, config, macros and inlined ephemeral models are as at its last
        build keeps that build's semantic version, so a large project is not compiled at all. The
        others are looked up in the fingerprint cache, and only the ones not there are compiled
        (one ``dbt compile`` for all of them) and fingerprinted.
        """
        versions: dict[UniqueId, str] = {}
        known: dict[UniqueId, CodeChange] = {}  # changes known without compiling: unsettled builds, values
        moved: list[UniqueId] = []
        for uid, node in self.graph.assets.items():
            if node.resource_type not in BUILDABLE:
                continue
            last = state.last_success.get(uid)
            if last is not None and last.code_version == UNSETTLED:
                versions[uid], known[uid] = node.code_version, _UNSETTLED_CHANGE
            elif node.resource_type == ResourceType.SEED or not node.compiled_compares or last is None:
                # seeds: their content checksum; Python and command-dependent models: their code as written,
                # normalized (see dbtassets.model.manifest); missing: irrelevant
                versions[uid] = node.code_version
                if last is not None and last.code_version != node.code_version and _values_changed(node, last):
                    known[uid] = CodeChange(True, description=_values_changed(node, last))
            elif last.manifest_version == node.code_version:
                versions[uid] = last.code_version
            else:
                moved.append(uid)
        if not moved:
            return CodeVersions(versions, known)
        cached = self.store.fingerprints((uid, self.graph.assets[uid].code_version) for uid in moved)
        uncached = [uid for uid in moved if uid not in cached]
        if uncached:
            self.store.save_fingerprints(self.fingerprints(self._compile(uncached, lambda count: self.log(
                f"compiling {plural(count, 'changed model')} to compare {noun(count, 'its', 'their')} SQL"))))
            cached = self.store.fingerprints((uid, self.graph.assets[uid].code_version) for uid in moved)
        changes: dict[UniqueId, CodeChange] = dict(known)
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
                values = _values_changed(node, last)
                if values:  # the code is as it was: say which value moved (and how the SQL changed with it)
                    description = changes[uid].description
                    changes[uid] = replace(changes[uid], description=f"{values}: {description}" if description
                                           else values)
        return CodeVersions(versions, changes, notes)

    def _compile(self, uids: Sequence[UniqueId], say: Callable[[int], None] = lambda count: None, *,
                 incremental: bool = True) -> dict[UniqueId, str]:
        """The SQL that is the code of ``uids``: incremental models compiled with ``--full-refresh`` (so that
        ``is_incremental()`` renders false; all as a plain ``dbt compile`` renders them without ``incremental``),
        the others as ``dbt compile`` renders them; one dbt invocation each, for the models the compiled-SQL
        cache (:mod:`dbtassets.sql.compiled`) lacks; ``say`` hears how many that is."""
        incremental_ones = {uid for uid in uids if incremental and is_incremental_model(self.graph.assets[uid])}
        cache = CompiledCache.beside(self.manifest)
        looked = {full_refresh: cache.lookup({uid: self.graph.assets[uid].code_version for uid in uids
                                              if (uid in incremental_ones) is full_refresh}, full_refresh=full_refresh)
                  for full_refresh in (False, True)}
        if any(missing for _, missing in looked.values()):
            say(sum(len(missing) for _, missing in looked.values()))
        compiled: dict[UniqueId, str] = {}
        for full_refresh, (found, missing) in looked.items():
            compiled.update(found)
            if missing:
                fresh = self.compiler.compile(exact_selectors(self.graph, missing), full_refresh=full_refresh)
                fresh = {uid: fresh[uid] for uid in missing if uid in fresh}
                cache.keep({uid: self.graph.assets[uid].code_version for uid in missing}, fresh,
                           full_refresh=full_refresh, live=self.graph.assets.keys())
                compiled.update(fresh)
        return compiled

    def of_build(self, compiled: Mapping[UniqueId, str], full_refreshed: Collection[UniqueId]) -> BuildVersions:
        """The code versions of what a build ran, from the SQL dbt compiled for it (``full_refreshed``: the
        assets it built with ``--full-refresh``); done before any write transaction opens, like :meth:`fingerprints`.

        A model built incrementally ran with ``is_incremental()`` true: that SQL is not its code. Its
        code version is its full-refresh form's, as remembered for its manifest version, or else
        compiled now (a model new to this state store); failing both, its manifest version.
        """
        partial = {uid for uid in compiled if uid in self.graph.assets and self.graph.assets[uid].compiled_compares
                   and renders_incrementally(self.graph.assets[uid], full_refresh=uid in full_refreshed)}
        found = self.fingerprints({uid: sql for uid, sql in compiled.items() if uid not in partial})
        versions = {f.unique_id: f.code_version for f in found}
        if partial:
            cached = self.store.fingerprints((uid, self.graph.assets[uid].code_version) for uid in partial)
            missing = sorted(uid for uid in partial if uid not in cached)
            if missing:
                self.log(f"compiling {plural(len(missing), 'incremental model')} as a full "
                         f"refresh renders {noun(len(missing), 'it', 'them')}, for "
                         f"{noun(len(missing), 'its', 'their')} code version")
                try:
                    canonical = self.fingerprints(self._compile(missing))
                except DbtAssetsError as exc:  # the build happened: record it, with the manifest versions
                    self.log(f"could not compile them ({exc}); recording their file checksums instead")
                    canonical = []
                found += canonical
                versions.update((f.unique_id, f.code_version) for f in canonical)
            versions.update((uid, entry.code_version) for uid, entry in cached.items())
        return BuildVersions(versions, found)

    def fingerprints(self, compiled: Mapping[UniqueId, str]) -> list[Fingerprinted]:
        """Fingerprint compiled SQL, keyed by each asset's manifest version: done before any write
        transaction opens, so that sqlglot never runs while the state store's write lock is held."""
        from dbtassets.sql.fingerprint import fingerprint

        found = []
        for uid, sql in compiled.items():
            node = self.graph.assets.get(uid)
            if node is None or node.resource_type == ResourceType.SEED or not node.compiled_compares:
                continue  # seeds: their content; Python and command-dependent models: their code as written
            print_ = fingerprint(sql, self.dialect, node.config_version, node.code_version)
            found.append(Fingerprinted(uid, node.code_version, print_.value, print_.semantic,
                                       print_.normalized_sql, print_.note))
        return found

    def _classify(self, uid: UniqueId, last: Materialization, entry: CachedFingerprint | None) -> CodeChange:
        node = self.graph.assets[uid]
        old = self.sql_of(uid, last.manifest_version) if last.manifest_version else None
        new = self.store.compiled_sql(entry.sql_hash) if entry and entry.sql_hash else None
        if old is None or new is None or node.resource_type != ResourceType.MODEL:
            return CodeChange(True)
        from dbtassets.sql.fingerprint import changed_ctes, classify, combine

        if combine(old, node.config_version) != last.code_version:
            return CodeChange(True, description="breaking: its configuration changed")
        change = classify(old, new, self.dialect)
        description = change.describe()
        inlined = changed_ctes(old, new, self.dialect, _EPHEMERAL_CTE)
        if inlined:
            names = ", ".join(inlined)
            description += f"; in the ephemeral {noun(len(inlined), 'model')} {names} it inlines"
        return CodeChange(change.breaking, frozenset(change.added_columns), description)

    def sql_of(self, uid: UniqueId, manifest_version: str) -> str | None:
        entry = self.store.fingerprints([(uid, manifest_version)]).get(uid)
        return self.store.compiled_sql(entry.sql_hash) if entry and entry.sql_hash else None

    def reads(self, child: UniqueId, columns: frozenset[str]) -> bool:
        """Whether ``child``'s SQL (as last compiled) may read any of ``columns``; True when unknown.

        Its stars are expanded over the output columns of the models it reads (see :mod:`dbtassets.sql.lineage`).
        """
        from dbtassets.sql.lineage import columns_read

        node = self.graph.assets[child]
        sql = self.sql_of(child, node.code_version) if node.resource_type == ResourceType.MODEL else None
        return sql is None or columns_read(sql, self.dialect, self._input_columns(child)).any_of(columns)

    def passes(self, child: UniqueId, parent: UniqueId, columns: frozenset[str]) -> frozenset[str] | None:
        """The output columns ``child`` (as last compiled) gains when ``parent`` gains ``columns``, if that is
        all that changes in it (see :func:`dbtassets.sql.lineage.columns_passed`); None when unknown."""
        from dbtassets.sql.lineage import columns_passed

        node = self.graph.assets[child]
        sql = self.sql_of(child, node.code_version) if node.resource_type == ResourceType.MODEL else None
        after = self._input_columns(child)
        relation = self.manifest.nodes[parent].relation_name
        if sql is None or relation not in after:
            return None
        before = {**after, relation: [c for c in after[relation] if c.lower() not in columns]}
        return columns_passed(sql, self.dialect, before, after)

    def output_columns(self, uid: UniqueId) -> list[str] | None:
        """The columns a model outputs now, from its compiled SQL (stars expanded); None when unknown."""
        if uid not in self._outputs:
            from dbtassets.sql.lineage import output_columns

            self._outputs[uid] = None  # guards against a (dbt-invalid) cycle
            node = self.manifest.nodes[uid]
            compiled = node.resource_type in (ResourceType.MODEL, ResourceType.SNAPSHOT)
            sql = self.sql_of(uid, node.code_version) if compiled else None
            if sql is not None:
                self._outputs[uid] = output_columns(sql, self.dialect, self._input_columns(uid))
        return self._outputs[uid]

    def _input_columns(self, uid: UniqueId) -> dict[str, list[str]]:
        """The relations a model reads (through the ephemeral models it inlines) and their known columns."""
        nodes = self.manifest.nodes
        schema: dict[str, list[str]] = {}
        for dep in self.manifest.ephemerals.upstream(uid).assets:
            if nodes[dep].relation_name:
                columns = self.output_columns(dep)
                if columns:
                    schema[nodes[dep].relation_name] = columns
        return schema

    def plan_against(self, other_path: Path) -> Impact:
        """What deploying this project over the one ``other_path`` describes would make stale, and why.

        The other manifest plays the part of the state: every asset it has counts as built from its
        code, so the same rules (and the same non-breaking classification) say what a deploy changes.
        Only assets whose manifest version differs are compiled and compared semantically.
        """
        from dbtassets.sql.fingerprint import classify, fingerprint

        if other_path.is_dir():  # a directory of artifacts, as `dbt compile --target-path DIR` writes it
            other_path = other_path / "manifest.json"
        if not other_path.exists():  # load_manifest's advice (`dbt parse`, --manifest) is for the project's own
            raise ManifestError(
                f"{other_path}: no manifest there; --against takes the manifest.json (or its directory) that "
                "`dbt compile` writes on production's checkout (it needs the compiled SQL)")
        other = load_manifest(other_path.resolve(), values=self.manifest.values)
        other_sql = compiled_sql(other_path.resolve())
        candidates = [uid for uid, node in self.graph.assets.items()
                      if node.resource_type in (ResourceType.MODEL, ResourceType.SNAPSHOT)
                      and uid in other.nodes and other.nodes[uid].code_version != node.code_version]
        uncompiled = sorted(self.graph.assets[uid].display_name for uid in candidates if uid not in other_sql)
        if uncompiled:
            # Checksums would call a reformat a change: a gate that fails for nothing is soon ignored.
            shown = ", ".join(uncompiled[:5]) + (f" and {len(uncompiled) - 5} more" if len(uncompiled) > 5 else "")
            raise ManifestError(
                f"{other_path}: has no compiled SQL for {shown}, which this project changes, so a reformat cannot "
                "be told from a logic change; make that manifest with `dbt compile` (or keep the one `dbt build` "
                "writes) on the deployed code and pass it, or its directory, to --against")
        current_sql = self._compile(candidates, incremental=False)
        when = f"{other.generated_at or other_path} (the other manifest)"
        # The other manifest's assets, numbered as if each had been built once from the other's inputs.
        deployed = [uid for uid, node in self.graph.assets.items()
                    if node.resource_type in BUILDABLE and uid in other.nodes]
        ids = {uid: -number - 1 for number, uid in enumerate(deployed)}

        def input_version(parent: UniqueId) -> Version:
            parent = self.graph.fed.get(parent, parent)  # a fed source holds what its feeder built
            if parent in ids:
                return Version(DataVersionKind.BUILD.of(ids[parent]), when)
            return Version(DataVersionKind.DEPLOYED.of(parent), when)

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
                    notes[uid] = "could not compile it; comparing file checksums"
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
        observations = {uid: Version(DataVersionKind.DEPLOYED.of(uid), when) for uid, n in self.graph.assets.items()
                        if n.resource_type == ResourceType.SOURCE}
        view = StateView(successes, {}, observations)

        def reads(child: UniqueId, columns: frozenset[str]) -> bool:
            from dbtassets.sql.lineage import columns_read

            sql = current_sql.get(child) or other_sql.get(child)
            return sql is None or columns_read(sql, self.dialect).any_of(columns)

        for uid, node in self.graph.assets.items():
            if node.resource_type in BUILDABLE and uid not in versions:
                versions[uid] = node.code_version  # new in this project: missing from the other
        statuses = compute_statuses(self.graph, versions, view, set(observations), changes, reads)
        # Successes here are the other manifest's "builds": they are versions of it, not of this project.
        planned = {uid: AssetStatus(uid, s.status, s.reasons, None, s.impact) for uid, s in statuses.items()}
        return Impact(planned, notes)

    def lint(self, selected: Sequence[UniqueId]) -> dict[UniqueId, list[str]]:
        """Tables and files each selected model reads without a ``ref`` or ``source`` declaring them."""
        from dbtassets.sql.fingerprint import undeclared_reads

        models = [uid for uid in selected if self.graph.assets[uid].resource_type == ResourceType.MODEL]
        compiled = self._compile(models, incremental=False)
        findings = {}
        for uid in models:
            if uid in compiled:
                found = undeclared_reads(compiled[uid], self.dialect, self.declared_relations(uid))
                if found:
                    findings[uid] = found
        return findings

    def declared_relations(self, uid: UniqueId) -> list[str]:
        """Relation names a model may read: its refs and sources, and those of ephemeral models it inlines."""
        nodes = self.manifest.nodes
        return [nodes[dep].relation_name for dep in self.manifest.ephemerals.upstream(uid).assets
                if nodes[dep].relation_name]
