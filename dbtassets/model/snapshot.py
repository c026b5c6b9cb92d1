"""What was loaded: one frozen :class:`Snapshot` of a dbt project, replaced whole on reload.

:func:`load_snapshot` is the only place that decides whether the manifest is current: it runs
``dbt parse`` first when ``target/manifest.json`` is missing or older than the project's files,
then reads the manifest, draws the asset graph and reads ``dbtassets.yml``. A reload is one
assignment of a new snapshot; nothing is cached beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from dbtassets.errors import ManifestError
from dbtassets.model.freshness import Policies
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Manifest, ResourceType, UniqueId, load_manifest
from dbtassets.model.project import DbtProject
from dbtassets.model.sources import Settings, load_settings
from dbtassets.model.targets import Targets, manifest_is_for


@dataclass(frozen=True)
class Snapshot:
    """A dbt project as loaded at one moment: its manifest, asset graph and dbtassets settings."""

    dbt: DbtProject
    manifest: Manifest
    graph: AssetGraph
    settings: Settings
    policies: Policies
    loaded_at: float | None  # mtime of the newest project file the manifest reflects; None: the caller's manifest

    def edited_since_load(self, built: Collection[UniqueId]) -> tuple[frozenset[UniqueId], list[Path]]:
        """Which of ``built`` may have been built from code edited after this snapshot was loaded (say,
        during the build), and the project files edited since (none for a caller's manifest).

        dbt may have built either version of their code, so what they were built from is unknown.
        An edited model, seed or snapshot file concerns that node and the assets that inline it (if
        ephemeral); any other edited file (YAML, a macro, dbt_project.yml) may concern them all.
        """
        changed = [] if self.loaded_at is None else self.dbt.files_changed_since(self.loaded_at)
        if not changed:
            return frozenset(), changed
        built = {uid for uid in built if uid in self.graph}
        nodes = self.manifest.nodes
        by_path = {self.dbt.directory / n.path: uid for uid, n in nodes.items()
                   if n.resource_type != ResourceType.SOURCE}
        if not all(path in by_path for path in changed):
            return frozenset(built), changed
        edited = {by_path[path] for path in changed}
        walk = self.manifest.ephemerals
        edited |= {uid for uid in built if edited.intersection(walk.upstream(uid).inlined)}
        return frozenset(edited & built), changed


def load_snapshot(dbt: DbtProject, manifest_path: Path | None, parse: Callable[[str], None],
                  targets: Targets | None = None, warn: Callable[[str], None] = lambda message: None) -> Snapshot:
    """Load ``manifest_path`` as is, or the project's own manifest after a ``parse()`` if it is stale:
    missing, older than the project's files, or made for another target than ``targets``' selected one.

    Raises:
        ManifestError: the manifest cannot be read, or belongs to another project.
        ConfigError: dbtassets.yml is invalid.
        RunnerError: ``dbt parse`` failed.

    ``parse`` is called with why the manifest is stale; ``warn`` with what the user should know about the
    manifest used (written by another dbt than the installed one).
    """
    loaded_at: float | None = None
    if manifest_path is not None:
        manifest = load_manifest(manifest_path.resolve())
    else:
        path = dbt.manifest_path
        loaded_at, newest = dbt.newest_file()
        manifest_mtime = path.stat().st_mtime if path.exists() else None
        why = None
        if manifest_mtime is None:
            why = "missing"
        elif loaded_at > manifest_mtime:
            why = f"older than {newest}"
        elif targets is not None and not manifest_is_for(dbt, targets):
            why = f"made for another target than {targets.selected.target!r}"
        if why is not None:
            parse(f"{path} is {why}")
        manifest = load_manifest(path)
    if manifest.project_name and manifest.project_name != dbt.name:
        raise ManifestError(
            f"{manifest.path}: manifest of project {manifest.project_name!r}, but {dbt.directory} is "
            f"project {dbt.name!r}; pass the right --manifest or --project-dir"
        )
    foreign = foreign_dbt(manifest)
    if foreign is not None:
        warn(foreign)
    graph = AssetGraph.from_manifest(manifest)
    sources = [n for n in graph.assets.values() if n.resource_type == ResourceType.SOURCE]
    return Snapshot(dbt, manifest, graph, load_settings(dbt.directory, sources, graph.fed),
                    Policies.from_graph(graph), loaded_at)


def foreign_dbt(manifest: Manifest) -> str | None:
    """What to say about ``manifest`` when another dbt than the installed one wrote it (a committed manifest,
    or one from before an upgrade): its code versions and lineage are that dbt's reading of the project."""
    try:
        installed = version("dbt-core")
    except PackageNotFoundError:  # dbt is not here: nothing else could have written it
        return None
    if not manifest.dbt_version or manifest.dbt_version == installed:
        return None
    return (f"{manifest.path} was written by dbt {manifest.dbt_version}, but dbt {installed} is installed: its code "
            "versions and lineage may not be what this dbt builds; write it again with `dbt parse`")
