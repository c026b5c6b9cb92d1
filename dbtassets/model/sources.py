"""Source assets: how each is observed (its declaration) and the observers that read data versions.

A source is observed by one of three kinds of observer:

- ``files``: one or more globs under the project; the data version fingerprints the matching
  files (path, size, modification time). Hidden and temporary files (``.x.csv.tmp``,
  ``*.part``) never count, and a file modified within the last ``settle`` seconds (or with an
  mtime ahead of the clock) is looked at twice so that one still being written is left out
  until it is complete.
- ``query``: SQL that returns a watermark, run through the project's own dbt profile; the
  default for a source with dbt's ``loaded_at_query`` is that query, and for one with
  ``loaded_at_field`` ``select max(<field>) from <source>``.
- ``reported``: a loader says "I loaded it" (``dbtassets report``); each report is a new version.

Declarations come from ``dbtassets.yml`` beside ``dbt_project.yml``; without one, a dbt-duckdb
``external_location`` that reads local files becomes a ``files`` observer and a
``loaded_at_field`` a ``query`` observer.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from dbtassets.errors import ConfigError
from dbtassets.model.manifest import Node, UniqueId
from dbtassets.model.project import YamlError, load_yaml, yaml_problem
from dbtassets.model.yamlcache import YamlCache, cache_directory
from dbtassets.words import noun, plural

CONFIG_FILE = "dbtassets.yml"
DEFAULT_QUERY_EVERY = 60.0
DEFAULT_SETTLE = 0.2
DEFAULT_OBSERVE_TIMEOUT = 10.0  # seconds the watermark queries of one observation may take, once dbt connects
_TEMPORARY_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".swp", "~")
_QUOTED = re.compile(r"'([^']+)'")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class DataVersionKind(str, Enum):
    """What a data version identifies: its value is this prefix followed by an identifier."""

    BUILD = "m"  # a materialization in the state store: m<its id>
    FILES = "f"  # a files observation: f<fingerprint of the files' names, sizes and mtimes>
    QUERY = "q"  # a watermark query: q<its result>
    REPORT = "r"  # a loader's report: r<the version it gave, or the time>
    DEPLOYED = "o:"  # ``plan --against``: the other manifest's version of an asset

    def of(self, identifier: object) -> str:
        return f"{self.value}{identifier}"

    @staticmethod
    def shown(data_version: str) -> str:
        """A data version as messages show it: a loader's report as the version it gave (``v42``, not ``rv42``)."""
        report = DataVersionKind.REPORT.value
        return data_version[len(report):] if data_version.startswith(report) else data_version



class ObserverKind(str, Enum):
    FILES = "files"
    QUERY = "query"
    REPORTED = "reported"
    NONE = "none"


@dataclass(frozen=True)
class SourceDeclaration:
    """How one source asset is observed, and where that was declared."""

    unique_id: UniqueId
    name: str
    kind: ObserverKind
    origin: str
    globs: tuple[str, ...] = ()
    query: str = ""
    every: float = DEFAULT_QUERY_EVERY

    @property
    def observable(self) -> bool:
        return self.kind is not ObserverKind.NONE

    def describe(self) -> str:
        if self.kind is ObserverKind.FILES:
            return f"files {', '.join(self.globs)}"
        if self.kind is ObserverKind.QUERY:
            return f"query every {self.every:g}s"
        return str(self.kind.value)


@dataclass(frozen=True)
class WatchSettings:
    """Knobs of ``dbtassets watch`` (the ``watch:`` section of dbtassets.yml)."""

    settle: float = DEFAULT_SETTLE
    backoff_initial: float = 5.0
    backoff_max: float = 300.0
    lease: float = 30.0  # how long a build's claim on its assets outlives its last renewal (dbtassets.state.leases)


@dataclass(frozen=True)
class Settings:
    """Everything dbtassets.yml (or its absence) says about a project."""

    sources: Mapping[UniqueId, SourceDeclaration]
    watch: WatchSettings = WatchSettings()
    warnings: tuple[str, ...] = ()
    observe_timeout: float = DEFAULT_OBSERVE_TIMEOUT  # ``observe: {timeout: 10s}``
    unobserved: tuple[str, ...] = ()  # the sources nothing observes, by name (one warning says how many)
    # ``openlineage: URL | file:PATH``, or a mapping given to the OpenLineage client as its config; None: not set
    openlineage: str | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Observation:
    """A source's data version as read just now."""

    unique_id: UniqueId
    data_version: str
    kind: ObserverKind
    detail: Mapping[str, Any] = field(default_factory=dict)


def load_settings(project_dir: Path, sources: Sequence[Node], fed: Collection[UniqueId] = ()) -> Settings:
    """Read dbtassets.yml (if any) and declare an observer for every source.

    A ``fed`` source (over a table the project builds: :mod:`dbtassets.model.graph`) needs none.

    Raises:
        ConfigError: the file is not valid YAML, has unknown keys or wrong types, or names a
            source dbt does not know; the message names the file and the key.
    """
    path = project_dir / CONFIG_FILE
    raw: Any = {}
    if path.exists():
        try:
            cache = YamlCache(cache_directory(project_dir))
            raw = cache.load(path, lambda text: load_yaml(text, path)) or {}
            cache.save()
        except (OSError, UnicodeDecodeError, YamlError) as exc:
            raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    config = _Config(path, raw)
    by_name = {source.display_name: source for source in sources}
    declared = config.source_entries(by_name)
    watch = config.watch_settings()
    observe_timeout = config.observe_timeout()
    declarations = {}
    warnings = list(config.warnings)
    unobserved = []
    for source in sources:
        entry = declared.get(source.display_name)
        declaration = _declare(source, entry, path) if entry is not None else _default(source)
        declarations[source.unique_id] = declaration
        if not declaration.observable and source.unique_id not in fed:
            unobserved.append(source.display_name)
        elif declaration.kind is ObserverKind.FILES and not any(
            glob.glob(str(project_dir / g), recursive=True) for g in declaration.globs
        ):
            warnings.append(f"source {source.display_name}: no file matches {', '.join(declaration.globs)} yet")
    if unobserved:  # one line, however many: a project of 250 such sources is not 250 lines on every command
        listed = ", ".join(unobserved[:3]) + (", …" if len(unobserved) > 3 else "")
        them = "it" if len(unobserved) == 1 else "them"
        warnings.insert(0, f"{plural(len(unobserved), 'source')} {noun(len(unobserved), 'has', 'have')} no observer "
                           f"({listed}): changes to {them} are not detected; `dbtassets lint` lists {them}; declare "
                           f"files, query or reported for {them} in {CONFIG_FILE}")
    return Settings(declarations, watch, tuple(warnings), observe_timeout=observe_timeout,
                    unobserved=tuple(unobserved), openlineage=config.openlineage())


class _Config:
    """Validation of the raw YAML, every problem named with the file and the key."""

    def __init__(self, path: Path, raw: Any) -> None:
        self.path = path
        self.warnings: list[str] = []
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
        self.raw = raw
        self._only_keys(raw, {"version", "sources", "watch", "observe", "openlineage"}, "")

    def _only_keys(self, mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                import difflib  # imported where used: most commands never get here

                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"
                raise ConfigError(f"{self.path}: unknown key {where}{key!r}{hint}")

    def source_entries(self, known: Mapping[str, Node]) -> dict[str, Mapping[str, Any]]:
        sources = self.raw.get("sources") or {}
        if not isinstance(sources, dict):
            raise ConfigError(f"{self.path}: `sources` must be a mapping of source name to observer")
        for name, entry in sources.items():
            if name not in known:
                import difflib  # imported where used: most commands never get here

                close = difflib.get_close_matches(str(name), sorted(known), n=1)
                hint = f"; did you mean {close[0]}?" if close else f"; dbt knows {', '.join(sorted(known)) or 'none'}"
                raise ConfigError(f"{self.path}: sources.{name}: dbt knows no source {name!r}{hint}")
            if not isinstance(entry, dict):
                raise ConfigError(f"{self.path}: sources.{name}: expected a mapping such as `files: data/*.csv`")
            self._only_keys(entry, {"files", "query", "reported", "every"}, f"sources.{name}.")
            kinds = [k for k in ("files", "query", "reported") if k in entry]
            if len(kinds) != 1:
                raise ConfigError(
                    f"{self.path}: sources.{name}: give exactly one of files, query or reported "
                    f"(found {', '.join(kinds) or 'none'})"
                )
        return sources

    def openlineage(self) -> str | Mapping[str, Any] | None:
        """Where OpenLineage events go (docs/openlineage.md): a URL, ``file:PATH``, or the client's own config."""
        value = self.raw.get("openlineage")
        if isinstance(value, dict) and not (isinstance(value.get("transport"), dict)
                                            and isinstance(value["transport"].get("type"), str)):
            raise ConfigError(f"{self.path}: openlineage: expected a transport: mapping with its type (http, file, "
                              "console, kafka…), as the OpenLineage client's configuration has it")
        if value is None or (isinstance(value, str) and value.strip()) or isinstance(value, dict):
            return value.strip() if isinstance(value, str) else value
        raise ConfigError(f"{self.path}: openlineage: expected a URL, file:PATH or a mapping such as "
                          f"`transport: {{type: http, url: http://localhost:5000}}`, got {value!r}")

    def observe_timeout(self) -> float:
        observe = self.raw.get("observe") or {}
        if not isinstance(observe, dict):
            raise ConfigError(f"{self.path}: `observe` must be a mapping (timeout)")
        self._only_keys(observe, {"timeout"}, "observe.")
        if "timeout" not in observe:
            return DEFAULT_OBSERVE_TIMEOUT
        seconds = duration(self.path, "observe.timeout", observe["timeout"])
        if seconds <= 0:
            raise ConfigError(f"{self.path}: observe.timeout: expected a duration above 0 such as 10s, "
                              f"got {observe['timeout']!r}")
        return seconds

    def watch_settings(self) -> WatchSettings:
        watch = self.raw.get("watch") or {}
        if not isinstance(watch, dict):
            raise ConfigError(f"{self.path}: `watch` must be a mapping (settle, backoff_initial, backoff_max, lease)")
        keys = ("settle", "backoff_initial", "backoff_max", "lease")
        self._only_keys(watch, set(keys), "watch.")
        defaults = WatchSettings()
        settings = WatchSettings(**{
            key: duration(self.path, f"watch.{key}", watch[key]) if key in watch else getattr(defaults, key)
            for key in keys
        })
        if settings.lease < 1:
            raise ConfigError(f"{self.path}: watch.lease: a lease must last at least 1s (it is renewed every third "
                              f"of it), got {watch['lease']!r}")
        return settings


def duration(path: Path, key: str, value: Any) -> float:
    """Seconds from ``5``, ``2.5``, ``500ms``, ``30s``, ``5m`` or ``1h``."""
    if isinstance(value, bool):
        match = None
    elif isinstance(value, int | float):
        match = _DURATION.match(str(value))
    else:
        match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{path}: {key}: expected a duration such as 30s, 500ms or 5m, got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _declare(source: Node, entry: Mapping[str, Any], path: Path) -> SourceDeclaration:
    key = f"sources.{source.display_name}"
    if "files" in entry:
        globs = entry["files"]
        globs = [globs] if isinstance(globs, str) else globs
        if not isinstance(globs, list) or not globs or not all(isinstance(g, str) and g for g in globs):
            raise ConfigError(f"{path}: {key}.files: expected a glob or a list of globs, got {entry['files']!r}")
        return SourceDeclaration(source.unique_id, source.display_name, ObserverKind.FILES, CONFIG_FILE,
                                 globs=tuple(globs))
    if "query" in entry:
        query = entry["query"]
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"{path}: {key}.query: expected SQL returning one value, got {query!r}")
        every = duration(path, f"{key}.every", entry.get("every", DEFAULT_QUERY_EVERY))
        return SourceDeclaration(source.unique_id, source.display_name, ObserverKind.QUERY, CONFIG_FILE,
                                 query=query.strip().rstrip(";"), every=every)
    if entry["reported"] is not True:
        raise ConfigError(f"{path}: {key}.reported: expected `true`, got {entry['reported']!r}")
    return SourceDeclaration(source.unique_id, source.display_name, ObserverKind.REPORTED, CONFIG_FILE)


def _default(source: Node) -> SourceDeclaration:
    """What dbt's own source definition implies: local external files, or loaded_at_field."""
    location = source.meta.get("external_location") if isinstance(source.meta, Mapping) else None
    if isinstance(location, str):
        match = _QUOTED.search(source.relation_name) or _QUOTED.search(location)
        if match and "://" not in match.group(1):
            return SourceDeclaration(source.unique_id, source.display_name, ObserverKind.FILES,
                                     "external_location", globs=(match.group(1),))
    loaded_at_query = source.freshness.loaded_at_query if source.freshness is not None else ""
    if loaded_at_query.strip():  # dbt's own freshness query (dbt 1.10+), run through dbt like any query observer
        return SourceDeclaration(source.unique_id, source.display_name, ObserverKind.QUERY, "loaded_at_query",
                                 query=loaded_at_query.strip().rstrip(";"))
    if source.loaded_at_field and source.relation_name:
        query = f"select max({source.loaded_at_field}) from {source.relation_name}"
        return SourceDeclaration(source.unique_id, source.display_name, ObserverKind.QUERY, "loaded_at_field",
                                 query=query)
    return SourceDeclaration(source.unique_id, source.display_name, ObserverKind.NONE, "")


def observe_files(
    project_dir: Path,
    declaration: SourceDeclaration,
    settle: float = DEFAULT_SETTLE,
    sleep: Callable[[float], None] = time.sleep,
    in_progress: Collection[str] | None = None,
) -> Observation:
    """Fingerprint the complete files matching the declaration's globs.

    Args:
        in_progress: paths (relative to ``project_dir``) known to be still being written. When
            not known, a file modified within ``settle`` seconds is looked at again after
            ``settle`` seconds and left out if it changed in between.
    """
    first = _stat_matches(project_dir, declaration.globs)
    now = time.time()
    if in_progress is not None:
        recent: set[str] = set()
        writing = sorted(p for p in first if p in in_progress)
        first = {p: s for p, s in first.items() if p not in in_progress}
    else:
        # An mtime ahead of this clock (the writer's clock is ahead: NFS, a VM) may be a write just now.
        recent = {p for p, (_, mtime_ns) in first.items() if now - mtime_ns / 1e9 < settle}
        writing = []
    if recent:
        sleep(settle)
        second = _stat_matches(project_dir, declaration.globs)
        writing = sorted(p for p in recent if second.get(p) != first[p])
        first = {p: s for p, s in second.items() if p not in writing and p in first}
    digest = hashlib.sha256()
    for path in sorted(first):
        size, mtime_ns = first[path]
        digest.update(f"{path}\0{size}\0{mtime_ns}\n".encode())
    newest = max(first, key=lambda p: first[p][1], default=None)
    detail: dict[str, Any] = {"files": len(first), "bytes": sum(s for s, _ in first.values())}
    if newest is not None:
        detail["newest"] = newest
    if writing:
        detail["in_progress"] = writing
    return Observation(declaration.unique_id, DataVersionKind.FILES.of(digest.hexdigest()[:20]), ObserverKind.FILES,
                       detail)


def _stat_matches(project_dir: Path, globs: Sequence[str]) -> dict[str, tuple[int, int]]:
    found = {}
    for pattern in globs:
        for match in glob.glob(os.path.join(project_dir, pattern), recursive=True):
            if os.path.basename(match).endswith(_TEMPORARY_SUFFIXES):
                continue
            try:
                stat = os.stat(match)
            except OSError:
                continue  # removed between glob and stat
            if os.path.isfile(match):
                found[os.path.relpath(match, project_dir)] = (stat.st_size, stat.st_mtime_ns)
    return found

