"""The dbt project on disk: where it is, what dbt_project.yml says, and the files dbt parses.

The files dbt parses include those of installed packages (``dbt_packages/``, where a local package is a
link to its directory, perhaps outside the project): an edit of a package macro must be seen like an
edit of the project's own. One walk (:meth:`DbtProject.files`) finds them all, with each one's size and
time, for :mod:`dbtassets.model.parsed` to tell whether the manifest is current.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from dbtassets.errors import ProjectError
from dbtassets.model.yamlcache import YamlCache, cache_directory

_PATH_KEYS = {
    "model-paths": ["models"], "seed-paths": ["seeds"], "snapshot-paths": ["snapshots"],
    "macro-paths": ["macros"], "test-paths": ["tests"], "analysis-paths": ["analyses"],
}
_TOP_FILES = ("dbt_project.yml", "packages.yml", "dependencies.yml", "selectors.yml")


@dataclass(frozen=True)
class DbtProject:
    """A dbt project directory and the settings dbtassets needs from dbt_project.yml."""

    directory: Path
    name: str
    source_dirs: tuple[Path, ...]
    target_path: Path
    log_path: Path
    package_dirs: tuple[Path, ...] = ()  # the model/macro/... directories of installed packages, resolved
    profile: str = ""  # dbt_project.yml's `profile:` (dbt's default: the project's name)
    vars: Mapping[str, Any] = field(default_factory=dict, compare=False)  # dbt_project.yml's `vars:`
    # each installed package's own `vars:` (from its dbt_project.yml), by package name
    package_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)
    # the target whose own artifacts directory ``target_path`` is (:meth:`for_target`); "" for the shared one
    target_name: str = ""

    def for_target(self, name: str) -> DbtProject:
        """This project with the artifacts directory of target ``name``: ``target/dbtassets-NAME/`` (dbt's
        ``--target-path``), or the shared ``target/`` for "" (the profile's default target).

        dbt's manifest holds the target's relation names, and its partial parse state is thrown away when
        the target changes: with one directory per target, switching targets and back parses nothing.
        """
        shared = self.target_path.parent if self.target_name else self.target_path
        if not name:
            return replace(self, target_path=shared, target_name="")
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        return replace(self, target_path=shared / f"dbtassets-{safe}", target_name=name)

    @property
    def parsed_dirs(self) -> tuple[Path, ...]:
        """Every directory whose files dbt parses: the project's and its packages'."""
        return self.source_dirs + self.package_dirs

    @property
    def manifest_path(self) -> Path:
        return self.target_path / "manifest.json"

    @property
    def partial_parse_path(self) -> Path:
        """Where dbt keeps what it parsed last time, to parse only the files that changed since."""
        return self.target_path / "partial_parse.msgpack"

    @property
    def run_results_path(self) -> Path:
        return self.target_path / "run_results.json"

    @property
    def dbt_log(self) -> Path:
        return self.log_path / "dbt.log"

    def newest_file(self) -> tuple[float, Path | None]:
        """The most recently modified file dbt parses (mtime, path); (0, None) if there is none."""
        return self.files().newest

    def files(self) -> ProjectFiles:
        """Every file dbt parses (the project's top files, and those under its and its packages' directories),
        with its size and mtime, and the newest file and directory: one walk.

        Paths are relative to the project (``../helpers/macros/x.sql`` for a local package beside it), so a
        copy of the project with its ``target/`` finds the same paths.
        """
        entries: dict[str, tuple[int, int]] = {}
        newest_mtime, newest_path, newest_dir, newest_dir_path = 0.0, "", 0.0, ""
        for name in _TOP_FILES:
            try:
                stat = (self.directory / name).stat()
            except OSError:
                continue
            entries[name] = (stat.st_size, stat.st_mtime_ns)
            if stat.st_mtime > newest_mtime:
                newest_mtime, newest_path = stat.st_mtime, str(self.directory / name)
        for root in self.parsed_dirs:
            top = str(root)
            relative = os.path.relpath(top, self.directory)
            for path, stat, is_dir in _files_under(top):
                if is_dir:  # its mtime moves when a file in it is added, removed or renamed
                    if stat.st_mtime > newest_dir:
                        newest_dir, newest_dir_path = stat.st_mtime, path
                    continue
                entries[relative + path[len(top):]] = (stat.st_size, stat.st_mtime_ns)
                if stat.st_mtime > newest_mtime:
                    newest_mtime, newest_path = stat.st_mtime, path
        return ProjectFiles(entries, (newest_mtime, Path(newest_path) if newest_path else None),
                            (newest_dir, Path(newest_dir_path) if newest_dir_path else None))

    def files_changed_since(self, mtime: float) -> list[Path]:
        """The files dbt parses that were modified after ``mtime``."""
        changed = []
        for name in _TOP_FILES:
            with contextlib.suppress(OSError):
                if (self.directory / name).stat().st_mtime > mtime:
                    changed.append(self.directory / name)
        for root in self.parsed_dirs:
            changed.extend(Path(path) for path, stat, is_dir in _files_under(str(root))
                           if not is_dir and stat.st_mtime > mtime)
        return changed


@dataclass(frozen=True)
class ProjectFiles:
    """The files dbt parses as one walk found them."""

    entries: Mapping[str, tuple[int, int]]  # path relative to the project -> (size, mtime_ns)
    newest: tuple[float, Path | None]  # the newest file's (mtime, path); (0, None) when there is none
    # the newest directory holding them (mtime, path): its time moves when a file is added, removed or renamed
    newest_dir: tuple[float, Path | None]


def repository_prefix(directory: Path) -> str:
    """``directory`` relative to the top of the git repository holding it (``transform/``), "" at or outside one.

    Code review tools (GitHub annotations) name files from the repository's root, which is often
    not the dbt project's directory. Found by looking for ``.git`` above, without running git.
    """
    directory = directory.resolve()
    for top in (directory, *directory.parents):
        if (top / ".git").exists():
            relative = directory.relative_to(top).as_posix()
            return "" if relative == "." else f"{relative}/"
    return ""


def load_project(directory: Path) -> DbtProject:
    """Read ``directory/dbt_project.yml``.

    Raises:
        ProjectError: the directory or its dbt_project.yml is missing or malformed.
    """
    directory = directory.resolve()
    config_path = directory / "dbt_project.yml"
    if not directory.is_dir():
        raise ProjectError(f"{directory}: no such directory; pass the dbt project with --project-dir")
    if not config_path.is_file():
        raise ProjectError(
            f"{directory}: not a dbt project (no dbt_project.yml); run dbtassets in the project "
            "or pass --project-dir (or set DBT_PROJECT_DIR)"
        )
    cache = YamlCache(cache_directory(directory))
    try:
        config: Any = cache.load(config_path, lambda text: load_yaml(text, config_path))
    except (OSError, UnicodeDecodeError, YamlError) as exc:
        raise ProjectError(f"{config_path}: cannot read it: {yaml_problem(exc)}") from None
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise ProjectError(f"{config_path}: not a valid dbt_project.yml (it needs a `name:`)")
    target = os.environ.get("DBT_TARGET_PATH") or str(config.get("target-path") or "target")
    logs = os.environ.get("DBT_LOG_PATH") or str(config.get("log-path") or "logs")
    package_dirs, package_vars = _packages(directory, config, cache)
    cache.save()
    return DbtProject(directory, config["name"], _paths(directory, config), directory / target, directory / logs,
                      package_dirs, str(config.get("profile") or config["name"]), _vars(config), package_vars)


def _vars(config: dict[str, Any]) -> dict[str, Any]:
    """A dbt_project.yml's ``vars:`` (global ones, and dicts of package-scoped ones under a package's name)."""
    found = config.get("vars")
    return found if isinstance(found, dict) else {}


def _paths(directory: Path, config: dict[str, Any]) -> tuple[Path, ...]:
    """The directories a dbt_project.yml says dbt parses (models, macros, seeds, ...)."""
    found: list[Path] = []
    for key, default in _PATH_KEYS.items():
        values = config.get(key, default)
        if isinstance(values, list):
            found.extend(directory / str(v) for v in values)
    return tuple(found)


def _packages(directory: Path, config: dict[str, Any],
              cache: YamlCache) -> tuple[tuple[Path, ...], dict[str, dict[str, Any]]]:
    """The parsed directories of every installed package (links resolved) and of local packages, and each
    package's own ``vars:`` by its name.

    A package that cannot be read is left out: dbt itself reports it at the next parse.
    """
    install = os.environ.get("DBT_PACKAGES_INSTALL_PATH") or str(config.get("packages-install-path") or "dbt_packages")
    roots: list[Path] = []
    with contextlib.suppress(OSError):
        roots.extend(entry for entry in (directory / install).iterdir() if not entry.name.startswith("."))
    for name in ("packages.yml", "dependencies.yml"):
        with contextlib.suppress(OSError, UnicodeDecodeError, YamlError):
            listed = cache.load(directory / name, partial(load_yaml, name=directory / name))
            packages = listed.get("packages") if isinstance(listed, dict) else None
            for package in packages if isinstance(packages, list) else ():
                if isinstance(package, dict) and isinstance(package.get("local"), str):
                    roots.append(directory / package["local"])
    found: dict[Path, None] = {}
    package_vars: dict[str, dict[str, Any]] = {}
    for root in roots:
        try:
            resolved = root.resolve()
            package_config = cache.load(resolved / "dbt_project.yml", load_yaml)
        except (OSError, UnicodeDecodeError, YamlError):
            continue
        if isinstance(package_config, dict):
            found.update(dict.fromkeys(_paths(resolved, package_config)))
            if isinstance(package_config.get("name"), str):
                package_vars[package_config["name"]] = _vars(package_config)
    return tuple(found), package_vars


def _files_under(root: str) -> Iterator[tuple[str, os.stat_result, bool]]:
    """(path, stat, is a directory) of ``root`` and of everything under it, hidden entries (editors' swap
    files) left out.

    Plain strings and scandir keep this cheap: it runs before every command on every project file.
    """
    try:
        yield root, os.stat(root), True
    except OSError:
        return
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    yield entry.path, entry.stat(follow_symlinks=False), True
                else:
                    yield entry.path, entry.stat(), False
            except OSError:
                continue


class YamlError(ValueError):
    """A YAML document that does not parse; its message is the problem, on one line (:func:`yaml_problem`)."""


def yaml_problem(exc: Exception) -> str:
    """A YAML error as one line after its file's name: ``line 3, column 12: did not find expected ',' or ']'``."""
    if isinstance(exc, YamlError):
        return str(exc)
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or problem is None:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")


def load_yaml(text: str, name: str | Path = "") -> Any:
    """Safe YAML parsing, fast where the C extension is available.

    ``name``, the file the text came from, is what a syntax error names (``"<unicode string>"`` otherwise).

    Raises:
        YamlError: PyYAML's error, as its one-line problem.
    """
    import yaml  # imported where a file is parsed: a command whose YAML files are all cached never needs it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when PyYAML has it
    try:
        if not name:
            return yaml.load(text, Loader=loader)
        stream = io.StringIO(text)
        stream.name = str(name)  # PyYAML's marks read the stream's name
        return yaml.load(stream, Loader=loader)
    except yaml.YAMLError as exc:
        raise YamlError(yaml_problem(exc)) from exc
