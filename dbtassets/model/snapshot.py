"""What was loaded: one frozen :class:`Snapshot` of a dbt project, replaced whole on reload.

:func:`load_snapshot` is the only place that decides whether the manifest is current: it runs
``dbt parse`` first when ``target/manifest.json`` is missing, older than the project's files, made
for another target, or made from other files or env var values than there are now (the record of
:mod:`dbtassets.model.parsed`), then reads the manifest with the current values of vars and env vars
folded into code versions, draws the asset graph and reads ``dbtassets.yml``. A reload is one
assignment of a new snapshot; nothing is cached beside it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbtassets.errors import ManifestError
from dbtassets.model.declared import MissingCheck, missing_checks
from dbtassets.model.freshness import Policies
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Manifest, ResourceType, UniqueId, load_manifest
from dbtassets.model.parsed import files_now, forget_partial_parse, read_record, vars_digest, write_record
from dbtassets.model.project import DbtProject, ProjectFiles
from dbtassets.model.sources import Settings, load_settings
from dbtassets.model.targets import Targets, manifest_is_for
from dbtassets.model.values import Values
from dbtassets.words import plural


@dataclass(frozen=True)
class Snapshot:
    """A dbt project as loaded at one moment: its manifest, asset graph and dbtassets settings."""

    dbt: DbtProject
    manifest: Manifest
    graph: AssetGraph
    settings: Settings
    policies: Policies
    loaded_at: float | None  # mtime of the newest project file the manifest reflects; None: the caller's manifest
    # tests the project's YAML declares that the manifest lacks (never looked for in a caller's manifest)
    missing_checks: tuple[MissingCheck, ...] = ()

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
                  targets: Targets | None = None, warn: Callable[[str], None] = lambda message: None, *,
                  cli_vars: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                  reparse: bool = False) -> Snapshot:
    """Load ``manifest_path`` as is, or the project's own manifest after a ``parse()`` if it is stale:
    missing, older than the project's files, made for another target than ``targets``' selected one, or
    parsed from another set of files or under other env var values than now.

    Code versions include the values of the vars (``cli_vars`` over dbt_project.yml's) and env vars
    (``environ``, this process's by default) each node reads.

    Raises:
        ManifestError: the manifest cannot be read, or belongs to another project.
        ConfigError: dbtassets.yml is invalid.
        RunnerError: ``dbt parse`` failed.

    ``parse`` is called with why the manifest is stale (with "" for ``reparse``: parse whatever it is); ``warn`` with
    what the user should know about the manifest used (written by another dbt than the installed one).

    After a parse, the tests the YAML declares are looked for in the manifest: dbt's partial parsing can
    lose them (:mod:`dbtassets.model.declared`), so when some are missing it parses once more in full.
    Those still missing then are the snapshot's ``missing_checks``.
    """
    environ = os.environ if environ is None else environ
    values = Values.of(dbt, cli_vars, environ)
    loaded_at: float | None = None
    missing: tuple[MissingCheck, ...] = ()
    if manifest_path is not None:
        manifest = load_manifest(manifest_path.resolve(), values=values)
        if manifest_path.resolve() == dbt.manifest_path.resolve():  # the project's own, as is
            missing = _missing(dbt, manifest, dbt.files())
    else:
        loaded_at, walked, parsed = _make_current(dbt, parse, targets, environ, values.cli_vars, reparse)
        manifest = load_manifest(dbt.manifest_path, values=values)
        missing = _missing(dbt, manifest, walked)
        if missing and parsed:  # the record of what it parsed stands: the files are the same
            forget_partial_parse(dbt)
            parse(f"{dbt.manifest_path} lacks {plural(len(missing), 'test')} the YAML declares "
                  f"({missing[0].describe()}): dbt's partial parse lost them, parsing in full")
            manifest = load_manifest(dbt.manifest_path, values=values)
            missing = _missing(dbt, manifest, walked)
    if manifest.project_name and manifest.project_name != dbt.name:
        raise ManifestError(
            f"{manifest.path}: manifest of project {manifest.project_name!r}, but {dbt.directory} is "
            f"project {dbt.name!r}; pass the right --manifest or --project-dir"
        )
    foreign = foreign_dbt(manifest)
    if foreign is not None:
        warn(foreign)
    graph = AssetGraph.compiled(manifest)
    sources = [n for n in graph.assets.values() if n.resource_type == ResourceType.SOURCE]
    return Snapshot(dbt, manifest, graph, load_settings(dbt.directory, sources, graph.fed),
                    Policies.from_graph(graph), loaded_at, missing)


def _missing(dbt: DbtProject, manifest: Manifest, walked: ProjectFiles) -> tuple[MissingCheck, ...]:
    """The tests the project's YAML declares that ``manifest`` lacks, on its own assets."""
    def assets() -> dict[tuple[str, str], tuple[UniqueId, ...]]:
        found: dict[tuple[str, str], list[UniqueId]] = {}
        for uid, node in manifest.nodes.items():
            if node.package_name == dbt.name:
                name = node.display_name if node.resource_type == ResourceType.SOURCE else node.name
                found.setdefault((node.resource_type.value, name), []).append(uid)
        return {k: tuple(v) for k, v in found.items()}

    return missing_checks(dbt, walked.entries, manifest.test_keys, assets)


def foreign_dbt(manifest: Manifest) -> str | None:
    """What to say about ``manifest`` when another dbt than the installed one wrote it (a committed manifest,
    or one from before an upgrade): its code versions and lineage are that dbt's reading of the project."""
    installed = installed_dbt()
    if installed is None:  # dbt is not here: nothing else could have written it
        return None
    if not manifest.dbt_version or manifest.dbt_version == installed:
        return None
    return (f"{manifest.path} was written by dbt {manifest.dbt_version}, but dbt {installed} is installed: its code "
            "versions and lineage may not be what this dbt builds; write it again with `dbt parse`")


def installed_dbt() -> str | None:
    """The installed dbt-core's version: from the name of its ``dbt_core-VERSION.dist-info`` directory, the first on
    ``sys.path`` as importlib.metadata would find it, else (another kind of install) from importlib.metadata, whose
    import and distribution scan cost a tenth of a ``status`` on a large project."""
    for entry in sys.path:
        try:
            found = [name for name in os.listdir(entry or ".") if name.startswith("dbt_core-")
                     and name.endswith(".dist-info")]
        except OSError:
            continue
        if len(found) == 1:
            return found[0][len("dbt_core-"):-len(".dist-info")]
        if found:
            break  # two versions side by side: let importlib.metadata choose, as it would
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dbt-core")
    except PackageNotFoundError:
        return None


def _make_current(dbt: DbtProject, parse: Callable[[str], None], targets: Targets | None,
                  environ: Mapping[str, str], cli_vars: Mapping[str, Any],
                  reparse: bool = False) -> tuple[float, ProjectFiles, bool]:
    """``parse()`` if the project's manifest is stale (or ``reparse``), and keep what the files were (one
    walk); the newest file's mtime, the walk, and whether it parsed."""
    path = dbt.manifest_path
    walked = dbt.files()
    (newest_mtime, newest), profile_names = walked.newest, targets.env_names if targets else frozenset[str]()
    files = files_now(dbt, walked, targets.profiles_path if targets else None)
    record = read_record(dbt)
    try:
        stat: os.stat_result | None = path.stat()
    except OSError:
        stat = None
    why = None
    if reparse:
        why = ""
    elif stat is None:
        why = "is missing"
    elif newest_mtime > stat.st_mtime:
        why = f"is older than {newest}"
    elif targets is not None and not manifest_is_for(dbt, targets):
        why = f"was made for another target than {targets.selected.target!r}"
    elif record is not None:
        why = record.why_stale(files, stat, walked.newest_dir[0], profile_names, environ, vars_digest(cli_vars))
    elif walked.newest_dir[0] > stat.st_mtime:  # no record of what it saw: was a file added, removed or moved since?
        why = f"is older than a change in {walked.newest_dir[1]} (a file added, removed or renamed)"
    if why is not None:
        parse(f"{path} {why}" if why else "")
    if why is not None or record is None or record.files != files:
        write_record(dbt, files, profile_names, record, environ, vars_digest(cli_vars))
    return newest_mtime, walked, why is not None
