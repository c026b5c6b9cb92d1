"""Which warehouse a dbt target is: the key every record in the state store is filed under.

A materialization in one warehouse says nothing about another, so runs, materializations and
query observations are recorded against the warehouse they concern. A :class:`Warehouse` is
read from profiles.yml the way dbt finds it, without importing dbt: the adapter type plus what
locates the data (a DuckDB file, or host/database/schema). Two targets that resolve to the same
warehouse share their records; two that do not, never do. A DuckDB file inside the project is
named relative to it, so a state store copied from another checkout (CI reading production's
store) still finds its records.

dbt writes ``target/manifest.json`` for whatever target it last ran with, and node code versions
include relation names, so a manifest is only current for the warehouse it was made for:
:func:`note_manifest` records that after each dbt invocation, :func:`manifest_is_for` checks it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from dbtassets.errors import ProjectError
from dbtassets.model.project import DbtProject, YamlError, load_yaml, yaml_problem
from dbtassets.model.values import env_digest, env_names_in
from dbtassets.model.yamlcache import YamlCache, cache_directory

# The profile keys that say where the data is, by adapter family; the first present ones are used.
_LOCATION_KEYS = ("account", "host", "port", "project", "catalog", "database", "dbname", "dataset", "schema")
_ENV_VAR = re.compile(r"""\{\{\s*env_var\(\s*(['"])(?P<name>[^'"]+)\1\s*"""
                      r"""(?:,\s*(['"])(?P<default>[^'"]*)\3\s*)?\)\s*\}\}""")
_MARKER = "manifest-target.json"


@dataclass(frozen=True)
class Warehouse:
    """The warehouse a dbt target resolves to."""

    profile: str
    target: str
    adapter: str
    location: str

    @property
    def key(self) -> str:
        """What records in the state store are filed under, e.g. ``duckdb:shopflow.duckdb``."""
        return f"{self.adapter}:{self.location}"

    def describe(self) -> str:
        return f"target {self.target!r} of profile {self.profile!r} ({self.key})"


@dataclass(frozen=True)
class Targets:
    """The selected target's warehouse and the profile's default one (which owns records made before targets)."""

    selected: Warehouse
    default: Warehouse
    profiles_path: Path
    # the env vars the selected target's settings read: dbt renders them into the manifest (schema, database)
    env_names: frozenset[str] = frozenset()

    @property
    def own(self) -> str:
        """The selected target's name when it is not the default (it keeps its own artifacts directory), else ""."""
        return self.selected.target if self.selected.target != self.default.target else ""


def profiles_file(project: DbtProject, profiles_dir: Path | None) -> Path:
    """Where dbt will read profiles.yml: ``--profiles-dir``, else the project (dbt runs there), else ~/.dbt.

    Raises:
        ProjectError: naming every place looked in, and how to point at the right one.
    """
    candidates = [profiles_dir] if profiles_dir is not None else [project.directory, Path.home() / ".dbt"]
    for directory in candidates:
        if (directory / "profiles.yml").is_file():
            return directory / "profiles.yml"
    looked = " or ".join(str(d / "profiles.yml") for d in candidates)
    raise ProjectError(f"no profiles.yml: looked for {looked}; pass --profiles-dir DIR "
                       "(or set DBT_PROFILES_DIR) to the directory that holds it")


def resolve_targets(project: DbtProject, profiles_dir: Path | None, target: str | None) -> Targets:
    """The warehouses of ``target`` (the profile's default when None) and of the default target.

    Raises:
        ProjectError: no profiles.yml, no such profile or target, or a location that cannot be read.
    """
    path = profiles_file(project, profiles_dir)
    cache = YamlCache(cache_directory(project.directory))

    def resolved(text: str) -> tuple[Any, ...]:  # what is kept: the warehouses, never the credentials beside them
        targets = _resolve(project, path, load_yaml(text, path), target)
        return (*(astuple(w) for w in (targets.selected, targets.default)), sorted(targets.env_names))

    def context(text: str) -> list[str]:  # what else the result depends on: the env vars it may read, hashed
        return [project.profile, target or "", str(project.directory), os.path.expanduser("~"),
                *(f"{n}={env_digest(n, os.environ.get(n))}" for n in sorted(env_names_in(text)))]

    try:
        selected, default, env_names = cache.load(path, resolved, context)
    except (OSError, UnicodeDecodeError, YamlError) as exc:
        raise ProjectError(f"{path}: cannot read it: {yaml_problem(exc)}") from None
    cache.save()
    return Targets(Warehouse(*selected), Warehouse(*default), path, frozenset(env_names))


def _resolve(project: DbtProject, path: Path, profiles: Any, target: str | None) -> Targets:
    profile = profiles.get(project.profile) if isinstance(profiles, dict) else None
    if not isinstance(profile, dict) or not isinstance(profile.get("outputs"), dict):
        names = ", ".join(str(k) for k in profiles if k != "config") if isinstance(profiles, dict) else ""
        raise ProjectError(f"{path}: no profile {project.profile!r} with outputs (dbt_project.yml's `profile:`); "
                           f"{'it has ' + names if names else 'it has no profiles'}")
    outputs: Mapping[str, Any] = profile["outputs"]
    default_name = _render(path, "target", profile.get("target", "default"))

    def warehouse(name: str) -> Warehouse:
        output = outputs.get(name)
        if not isinstance(output, dict):
            raise ProjectError(f"{path}: profile {project.profile!r} has no target {name!r}; its targets are "
                               f"{', '.join(map(str, outputs))}; pass one of them with --target")
        adapter = _render(path, f"{name}.type", output.get("type", ""))
        return Warehouse(project.profile, name, adapter, _location(project, path, name, adapter, output))

    selected = target or default_name
    env_names = env_names_in(json.dumps([profile.get("target"), outputs.get(selected)], default=str))
    return Targets(warehouse(selected), warehouse(default_name), path, env_names)


def _location(project: DbtProject, path: Path, name: str, adapter: str, output: Mapping[str, Any]) -> str:
    if adapter == "duckdb":
        file = _render(path, f"{name}.path", output.get("path", ":memory:"))
        if file.startswith(":memory:") or file.startswith("md:"):
            return file if file.startswith("md:") else f":memory:{project.profile}.{name}"
        resolved = Path(os.path.normpath(project.directory / Path(file).expanduser()))
        return str(resolved.relative_to(project.directory)) if resolved.is_relative_to(project.directory) \
            else str(resolved)
    parts = [f"{key}={_render(path, f'{name}.{key}', output[key])}" for key in _LOCATION_KEYS if key in output]
    # Without anything locating the data, the profile and target names are all that tells targets apart.
    return "/".join(parts) if parts else f"{project.profile}.{name}"


def _render(path: Path, key: str, value: Any) -> str:
    """A profiles.yml value as dbt renders it: ``env_var()`` here; other Jinja through jinja2 (rare, slower)."""
    text = str(value)
    if "{{" not in text and "{%" not in text:
        return text

    def env_var(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ProjectError(f"{path}: {key} reads the environment variable {name}, which is not set; set it")
        return default

    text = _ENV_VAR.sub(env_var, text)
    if "{{" not in text and "{%" not in text:
        return text
    import jinja2  # dbt's own dependency; only for profiles with more than env_var()

    def jinja_env_var(name: str, default: str | None = None) -> str:
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ProjectError(f"{path}: {key} reads the environment variable {name}, which is not set; set it")
        return default

    environment = jinja2.Environment()
    # dbt's native-type filters (profiles use them for ports and flags); the key only needs the text.
    environment.filters.update({name: lambda value: value for name in ("as_number", "as_bool", "as_native",
                                                                          "as_text")})
    try:
        return environment.from_string(text).render(env_var=jinja_env_var, var=lambda n, d="": d)
    except jinja2.TemplateError as exc:
        raise ProjectError(f"{path}: {key}: cannot render {text!r}: {exc}") from None


def _marker(project: DbtProject) -> Path:
    """The note of the target directory's manifest: one per directory (:meth:`DbtProject.for_target`)."""
    name = f"manifest-target-{project.target_path.name}.json" if project.target_name else _MARKER
    return project.directory / ".dbtassets" / name


def note_manifest(project: DbtProject, warehouse_key: str) -> None:
    """Record that target/manifest.json, as it is now, was written by dbt running for ``warehouse_key``."""
    try:
        mtime = project.manifest_path.stat().st_mtime_ns
        marker = _marker(project)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"warehouse": warehouse_key, "manifest_mtime_ns": mtime}))
    except OSError:
        pass  # without the note, the next command for another target parses again: slower, not wrong


def manifest_is_for(project: DbtProject, targets: Targets) -> bool:
    """Whether target/manifest.json was made for the selected target.

    A manifest dbtassets did not note (a user's own ``dbt`` command wrote it) is taken to be the
    default target's, as a plain ``dbt parse`` makes it.
    """
    try:
        noted = json.loads(_marker(project).read_text())
        current = project.manifest_path.stat().st_mtime_ns
    except (OSError, ValueError):
        noted, current = None, None
    if isinstance(noted, dict) and current is not None and noted.get("manifest_mtime_ns") == current:
        return bool(noted.get("warehouse") == targets.selected.key)
    return targets.selected.key == targets.default.key
