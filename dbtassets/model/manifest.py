"""Read dbt's ``manifest.json``: the only module that knows its keys.

The manifest of a large project is tens of megabytes of JSON, and ``status`` should not pay to
parse it every time. :func:`load_manifest` therefore keeps a compact, marshalled extract beside
the manifest, keyed by the manifest's size and modification time, and reads that instead when
it is current. The extract holds plain tuples, so building it once costs one JSON parse.

Code versions computed here are the manifest-based ones: the file checksum, the configuration
that changes the built object, the macros a node calls (transitively) and the code versions of
the ephemeral models it inlines. A Python model's is its code as ``ast`` parses it (comments and
layout left out) and its configuration: the macros dbt lists for it differ between a manifest from
``dbt parse`` and one from ``dbt build`` (``py_script_postfix``), so they must not count. A model whose
Jinja (or a macro it calls) looks at the dbt command renders differently under ``dbt compile`` than
under ``dbt build``, so its compiled SQL cannot be compared across the two: its version is its Jinja
source and its macros' as the Jinja lexer reads them (layout inside tags left out).
"""

from __future__ import annotations

import ast
import hashlib
import json
import marshal
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any, NewType

from dbtassets.errors import ManifestError

UniqueId = NewType("UniqueId", str)

SUPPORTED_SCHEMAS = range(10, 13)  # v10 (dbt 1.6) to v12 (dbt 1.8 - 1.11)


class ResourceType(str, Enum):
    """The dbt resource types that are assets (a test is a check on one, not an asset)."""

    MODEL = "model"
    SEED = "seed"
    SNAPSHOT = "snapshot"
    SOURCE = "source"

    def __str__(self) -> str:
        return self.value


ASSET_TYPES = tuple(t.value for t in ResourceType)
_RESOURCE_TYPES = {t.value: t for t in ResourceType}
_CACHE_FORMAT = 8
_CACHE_NAME = "dbtassets-manifest.cache"

# Configuration that changes the object dbt builds (not docs, tags or meta).
_BUILD_CONFIG_KEYS = (
    "materialized", "incremental_strategy", "unique_key", "on_schema_change", "contract",
    "pre-hook", "post-hook", "partition_by", "cluster_by", "strategy", "check_cols", "updated_at",
    "invalidate_hard_deletes", "hard_deletes", "snapshot_meta_column_names", "dbt_valid_to_current",
    "column_types", "delimiter", "quote_columns", "full_refresh", "incremental_predicates",
    "merge_update_columns", "merge_exclude_columns", "batch_size", "lookback", "begin", "event_time",
)
# Test configuration that changes what a data test checks or when it fails.
_TEST_CONFIG_KEYS = ("severity", "where", "limit", "fail_calc", "warn_if", "error_if")
_SCHEMA_VERSION = re.compile(r"/manifest/v(\d+)\.json$")
# Jinja that renders differently under `dbt compile` than under `dbt build` (a real package's macros do).
_READS_COMMAND = re.compile(r"flags\s*\.\s*which|invocation_args_dict|\binvocation_command\b", re.IGNORECASE)


Period = tuple[int, str]  # (count, "minute" | "hour" | "day") as dbt writes it


@dataclass(frozen=True, slots=True)
class FreshnessConfig:
    """dbt's own ``freshness`` config, as parsed into the manifest (dbt resolves its precedence).

    Models carry ``build_after`` (``config.freshness.build_after``: ``count``/``period`` may be
    absent, since dbt 1.11 allows ``updates_on`` alone); sources carry ``warn_after``/``error_after``
    and may name a ``loaded_at_query``. Interpreting it is :mod:`dbtassets.rules.policies`' job.
    """

    build_after: Period | None = None
    updates_on: str = ""  # "" when the model has no build_after at all
    warn_after: Period | None = None
    error_after: Period | None = None
    loaded_at_query: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    """One dbt resource that matters to dbtassets: an asset, or an ephemeral model between assets."""

    unique_id: UniqueId
    name: str
    resource_type: ResourceType
    package_name: str
    fqn: tuple[str, ...]
    path: str
    tags: tuple[str, ...]
    materialized: str
    depends_on: tuple[UniqueId, ...]
    code_version: str
    checks: tuple[str, ...] = ()
    config_version: str = ""
    source_name: str = ""
    loaded_at_field: str = ""
    relation_name: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    freshness: FreshnessConfig | None = None
    language: str = "sql"
    varies_by_command: bool = False  # its SQL (or a macro it calls) looks at which dbt command runs

    @property
    def compiled_compares(self) -> bool:
        """Whether its compiled SQL, from ``dbt compile`` or ``dbt build`` alike, says what it computes."""
        return self.language == "sql" and not self.varies_by_command

    @property
    def is_ephemeral(self) -> bool:
        return self.resource_type == ResourceType.MODEL and self.materialized == "ephemeral"

    @property
    def display_name(self) -> str:
        """``raw.orders`` for a source, the plain name for everything else."""
        return f"{self.source_name}.{self.name}" if self.resource_type == ResourceType.SOURCE else self.name


class CheckKind(str, Enum):
    DATA_TEST = "data test"
    UNIT_TEST = "unit test"


@dataclass(frozen=True, slots=True)
class Check:
    """A data test or unit test, a check on the assets it is attached to.

    ``code_version`` covers what the test runs: its SQL or generic test and arguments, the
    configuration that decides when it fails, and the macros it calls (for a unit test: its
    fixtures and expectations; the model's own code is the model's code version).
    """

    unique_id: UniqueId
    name: str
    kind: CheckKind
    assets: tuple[UniqueId, ...]
    code_version: str

    def describe(self) -> str:
        """``data test not_null_orders_id`` for messages."""
        return f"{self.kind.value} {self.name}"


@dataclass(frozen=True)
class Manifest:
    """The parts of a dbt manifest that dbtassets uses."""

    path: Path
    project_name: str
    dbt_version: str
    schema_version: int
    adapter_type: str
    generated_at: str
    nodes: Mapping[UniqueId, Node]
    test_parents: Mapping[UniqueId, tuple[UniqueId, ...]]
    test_names: Mapping[UniqueId, str]
    checks: Mapping[UniqueId, Check] = field(default_factory=dict)

    def checks_of(self, asset: UniqueId) -> list[Check]:
        """The checks attached to ``asset``, by name."""
        return sorted((c for c in self.checks.values() if asset in c.assets), key=lambda c: c.name)

    @cached_property
    def ephemerals(self) -> EphemeralWalk:
        """What each node reads once its ephemeral models are inlined."""
        nodes = self.nodes
        return EphemeralWalk(lambda uid: nodes[uid].depends_on if uid in nodes else (),
                             lambda uid: uid in nodes and nodes[uid].is_ephemeral)


@dataclass(frozen=True)
class Upstream:
    """A node's direct inputs once ephemeral models (which dbt inlines as CTEs) are seen through."""

    assets: tuple[UniqueId, ...]  # the non-ephemeral nodes it reads, directly or through ephemeral models
    inlined: tuple[UniqueId, ...]  # the ephemeral models whose code it inlines, transitively


class EphemeralWalk:
    """The one walk through ephemeral models, memoised: the asset graph's edges, code versions, declared reads
    and the assets an edited ephemeral model reaches all come from :meth:`upstream`."""

    def __init__(self, depends_on: Callable[[UniqueId], Iterable[UniqueId]],
                 is_ephemeral: Callable[[UniqueId], bool]) -> None:
        self._depends_on = depends_on
        self._is_ephemeral = is_ephemeral
        self._memo: dict[UniqueId, Upstream] = {}

    def upstream(self, uid: UniqueId) -> Upstream:
        if uid in self._memo:
            return self._memo[uid]
        self._memo[uid] = Upstream((), ())  # a (dbt-invalid) cycle ends here
        assets: dict[UniqueId, None] = {}
        inlined: dict[UniqueId, None] = {}
        for parent in self._depends_on(uid):
            if self._is_ephemeral(parent):
                inlined[parent] = None
                through = self.upstream(parent)
                assets.update(dict.fromkeys(through.assets))
                inlined.update(dict.fromkeys(through.inlined))
            else:
                assets[parent] = None
        self._memo[uid] = Upstream(tuple(assets), tuple(inlined))
        return self._memo[uid]


def load_manifest(path: Path, *, use_cache: bool = True) -> Manifest:
    """Load ``path``, from the compact cache beside it when that is current.

    Raises:
        ManifestError: the file is missing, not JSON, truncated, of the wrong shape or of a schema
            version this release does not read.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ManifestError(
            f"{path}: no manifest there; run `dbt parse` in the project or pass --manifest PATH"
        ) from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror}") from None
    if path.is_dir():
        raise ManifestError(f"{path}: is a directory; --manifest takes the path of a manifest.json file")
    cache_path = path.with_name(_CACHE_NAME)
    key = (_CACHE_FORMAT, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if use_cache:
        compact = _read_cache(cache_path, key)
        if compact is not None:
            return _from_compact(path, compact)
    compact = _extract(path, _read_json(path, stat.st_size))
    if use_cache:
        _write_cache(cache_path, key, compact)
    return _from_compact(path, compact)


def compiled_sql(path: Path) -> dict[UniqueId, str]:
    """The compiled SQL a manifest holds (after ``dbt compile``/``build``), by node; not cached.

    Raises:
        ManifestError: as :func:`load_manifest`.
    """
    raw = _read_json(path, path.stat().st_size if path.exists() else 0)
    nodes = raw.get("nodes") if isinstance(raw, dict) else None
    if not isinstance(nodes, dict):
        raise ManifestError(f"{path}: not a dbt manifest (key 'nodes' is missing or not an object)")
    return {UniqueId(uid): node["compiled_code"] for uid, node in nodes.items()
            if isinstance(node, dict) and isinstance(node.get("compiled_code"), str)}


def _read_json(path: Path, size: int) -> Any:
    if size == 0:
        raise ManifestError(f"{path}: the manifest is empty; re-run `dbt parse` to write it again")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        hint = "truncated" if exc.pos >= size - 1 else "not valid JSON"
        raise ManifestError(
            f"{path}: the manifest is {hint} (line {exc.lineno}, column {exc.colno}); "
            "re-run `dbt parse` to write it again"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc}") from None


def schema_version(path: Path, raw: Mapping[str, Any]) -> int:
    """The manifest schema version (10 for ``.../manifest/v10.json``), checked to be supported."""
    metadata = raw.get("metadata")
    url = metadata.get("dbt_schema_version") if isinstance(metadata, dict) else None
    match = _SCHEMA_VERSION.search(url) if isinstance(url, str) else None
    if match is None:
        raise ManifestError(
            f"{path}: not a dbt manifest (metadata.dbt_schema_version is missing); "
            "point --manifest at the manifest.json that `dbt parse` writes under target/"
        )
    version = int(match.group(1))
    if version not in SUPPORTED_SCHEMAS:
        dbt_version = metadata.get("dbt_version", "unknown") if isinstance(metadata, dict) else "unknown"
        raise ManifestError(
            f"{path}: manifest schema v{version} (dbt {dbt_version}) is not supported; dbtassets reads "
            f"v{SUPPORTED_SCHEMAS.start}-v{SUPPORTED_SCHEMAS.stop - 1} (dbt 1.6 and newer): "
            "re-run `dbt parse` with a supported dbt"
        )
    return version


def _extract(path: Path, raw: Any) -> tuple[Any, ...]:
    """Turn the parsed JSON into the compact tuple form that the cache stores."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: not a dbt manifest (expected a JSON object, got {type(raw).__name__})")
    version = schema_version(path, raw)
    for key in ("nodes", "sources", "macros"):
        if not isinstance(raw.get(key), dict):
            raise ManifestError(f"{path}: not a dbt manifest (key {key!r} is missing or not an object)")
    metadata = raw["metadata"]
    where = ["metadata"]  # the part being read, for the error message
    try:
        macros = _Macros.from_manifest(raw["macros"])
        builtin = {"dbt", f"dbt_{metadata.get('adapter_type') or ''}"}  # dbt's own macros and its adapter's
        nodes: dict[str, dict[str, Any]] = {}
        tests: list[tuple[str, str, tuple[str, ...], str, str]] = []
        for uid, node in raw["nodes"].items():
            where[0] = uid
            config = node.get("config") or {}
            if config.get("enabled", True) is False:
                continue
            rtype = node["resource_type"]
            if rtype == "test":
                attached = node.get("attached_node")
                parents = (attached,) if attached else tuple(node["depends_on"]["nodes"])
                tests.append((uid, _text(node["name"]), _texts(parents), CheckKind.DATA_TEST.value,
                              _test_version(node, config, macros, builtin)))
            elif rtype in ASSET_TYPES:
                nodes[uid] = node
        for uid, test in (raw.get("unit_tests") or {}).items():
            where[0] = uid
            if (test.get("config") or {}).get("enabled", True) is False:
                continue
            tests.append((uid, _text(test["name"]), _texts(test["depends_on"]["nodes"]), CheckKind.UNIT_TEST.value,
                          _digest([test.get(k) for k in ("checksum", "given", "expect", "overrides", "versions")])))
        sources = {uid: s for uid, s in raw["sources"].items() if (s.get("config") or {}).get("enabled", True)}
        compact_nodes = _compact_nodes(nodes, sources, macros, where)
        where[0] = "tests"
        compact_tests = tuple((uid, name, tuple(p for p in parents if p in nodes), kind, version)
                              for uid, name, parents, kind, version in tests)
        return (
            str(metadata.get("project_name") or ""),
            str(metadata.get("dbt_version") or ""),
            version,
            str(metadata.get("adapter_type") or ""),
            str(metadata.get("generated_at") or ""),
            compact_nodes,
            compact_tests,
        )
    except ManifestError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ManifestError(
            f"{path}: unexpected manifest shape at {where[0]} ({detail}); re-run `dbt parse` to write it again"
        ) from None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _test_version(node: Mapping[str, Any], config: Mapping[str, Any], macros: _Macros, builtin: set[str]) -> str:
    """A data test's code version: its SQL (or generic test and arguments), failure config and macros.

    dbt's own macros and its adapter's are left out: running a test adds the test materialization's
    helpers to its ``depends_on`` in the manifest ``dbt build`` writes, which ``dbt parse`` then drops
    again, so they would make every test look changed after each build.
    """
    metadata = node.get("test_metadata") or {}
    macro_versions = [macros.versions[m] for m in sorted(macros.closure(node["depends_on"].get("macros", ())))
                      if m.split(".")[1] not in builtin]
    return _digest([node.get("raw_code") or "", (node.get("checksum") or {}).get("checksum") or "",
                    metadata.get("name"), metadata.get("namespace"), metadata.get("kwargs"),
                    {k: config.get(k) for k in _TEST_CONFIG_KEYS}, macro_versions])


def _compact_nodes(
    nodes: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, Mapping[str, Any]],
    macros: _Macros,
    where: list[str],
) -> tuple[tuple[Any, ...], ...]:
    code_versions: dict[str, str] = {}
    ephemerals = EphemeralWalk(
        lambda uid: (UniqueId(p) for p in nodes[uid]["depends_on"].get("nodes", ()) if p in nodes),
        lambda uid: (nodes[uid].get("config") or {}).get("materialized") == "ephemeral")

    def varies_by_command(node: Mapping[str, Any]) -> bool:
        if _READS_COMMAND.search(str(node.get("raw_code") or "")):
            return True
        return any(macros.reads_command[m] for m in macros.closure(node["depends_on"].get("macros", ())))

    def own_version(uid: str) -> str:
        """Its code (the checksum; a Python model's code; the Jinja of SQL that depends on the command),
        build config and the macros it calls."""
        node = nodes[uid]
        digest = hashlib.sha256()
        if node.get("language") == "python":
            digest.update(_python_code(node).encode())
            digest.update(config_version(node).encode())
            return digest.hexdigest()
        varies = varies_by_command(node)
        code = jinja_text(str(node.get("raw_code") or "")) if varies else node["checksum"]["checksum"]
        digest.update(code.encode())
        digest.update(config_version(node).encode())
        for macro in sorted(macros.closure(node["depends_on"].get("macros", ()))):
            digest.update(macros.jinja_version(macro).encode() if varies else macros.versions[macro].encode())
        return digest.hexdigest()

    def code_version(uid: str) -> str:
        """Its own version, plus those of the ephemeral models it inlines."""
        if uid not in code_versions:
            own = own_version(uid)
            python = nodes[uid].get("language") == "python"
            inlined = () if python else ephemerals.upstream(UniqueId(uid)).inlined
            if inlined:
                own = hashlib.sha256("".join([own, *(own_version(e) for e in inlined)]).encode()).hexdigest()
            code_versions[uid] = own[:16]
        return code_versions[uid]

    def config_version(node: Mapping[str, Any]) -> str:
        """The configuration that changes the built object, and where it is built."""
        config = node.get("config") or {}
        build_config = {k: config[k] for k in _BUILD_CONFIG_KEYS if config.get(k) not in (None, [], {})}
        text = json.dumps([build_config, node.get("relation_name")], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    compact: list[tuple[Any, ...]] = []
    for uid, node in nodes.items():
        where[0] = uid
        config = node.get("config") or {}
        compact.append((
            uid, _text(node["name"]), _text(node["resource_type"]), _text(node["package_name"]), _texts(node["fqn"]),
            _text(node["original_file_path"]), _texts(node.get("tags") or ()), str(config.get("materialized") or ""),
            tuple(p for p in _texts(node["depends_on"].get("nodes", ())) if p in nodes or p in sources),
            code_version(uid), "", "", str(node.get("relation_name") or ""),
            _plain({**(node.get("meta") or {}), **(config.get("meta") or {})}),
            _plain_config(config), config_version(node), _model_freshness(config.get("freshness")),
            str(node.get("language") or "sql"), varies_by_command(node),
        ))
    for uid, source in sources.items():
        where[0] = uid
        config = source.get("config") or {}
        meta = {**(source.get("source_meta") or {}), **(source.get("meta") or {}), **(config.get("meta") or {})}
        compact.append((
            uid, _text(source["name"]), "source", _text(source["package_name"]), _texts(source["fqn"]),
            _text(source["original_file_path"]), _texts(source.get("tags") or ()), "", (), "",
            _text(source["source_name"]), str(source.get("loaded_at_field") or config.get("loaded_at_field") or ""),
            str(source.get("relation_name") or ""), _plain(meta), _plain_config(config), "",
            _source_freshness(source.get("freshness") or config.get("freshness"),
                              source.get("loaded_at_query") or config.get("loaded_at_query")),
            "sql", False,
        ))
    return tuple(compact)


def _period(value: Any) -> tuple[int, str] | None:
    """``{count: 1, period: hour}`` as ``(1, "hour")``; None when either part is missing."""
    if not isinstance(value, dict) or value.get("count") is None or value.get("period") is None:
        return None
    count, period = value["count"], value["period"]
    if isinstance(count, bool) or not isinstance(count, int) or not isinstance(period, str):
        raise ValueError(f"freshness period {{count: {count!r}, period: {period!r}}} is not a count and a period")
    return count, period


def _model_freshness(freshness: Any) -> tuple[Any, ...] | None:
    build_after = freshness.get("build_after") if isinstance(freshness, dict) else None
    if not isinstance(build_after, dict):
        return None
    return (_period(build_after), str(build_after.get("updates_on") or "any"), None, None, "")


def _source_freshness(freshness: Any, loaded_at_query: Any) -> tuple[Any, ...] | None:
    freshness = freshness if isinstance(freshness, dict) else {}
    warn, error = _period(freshness.get("warn_after")), _period(freshness.get("error_after"))
    query = loaded_at_query if isinstance(loaded_at_query, str) else ""
    if warn is None and error is None and not query:
        return None
    return (None, "", warn, error, query)


@dataclass(frozen=True)
class _Macros:
    """Each macro's SQL fingerprint, the macros it calls, and whether it looks at the dbt command."""

    versions: Mapping[str, str]
    calls: Mapping[str, tuple[str, ...]]
    reads_command: Mapping[str, bool]
    sql: Mapping[str, str]
    _jinja: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, macros: Mapping[str, Mapping[str, Any]]) -> _Macros:
        return cls(
            {uid: hashlib.sha256((m.get("macro_sql") or "").encode()).hexdigest()[:16] for uid, m in macros.items()},
            {uid: tuple(m.get("depends_on", {}).get("macros", ())) for uid, m in macros.items()},
            {uid: bool(_READS_COMMAND.search(m.get("macro_sql") or "")) for uid, m in macros.items()},
            {uid: str(m.get("macro_sql") or "") for uid, m in macros.items()},
        )

    def jinja_version(self, uid: str) -> str:
        """The macro's fingerprint as the Jinja lexer reads it: layout inside its tags does not count."""
        if uid not in self._jinja:
            self._jinja[uid] = hashlib.sha256(jinja_text(self.sql[uid]).encode()).hexdigest()[:16]
        return self._jinja[uid]

    def closure(self, roots: Iterable[str]) -> set[str]:
        """The macros in ``roots`` and every macro they call, transitively."""
        seen: set[str] = set()
        stack = [m for m in roots if m in self.versions]
        while stack:
            macro = stack.pop()
            if macro not in seen:
                seen.add(macro)
                stack.extend(m for m in self.calls.get(macro, ()) if m not in seen)
        return seen


_QUOTED_OR_SPACE = re.compile(r"'(?:[^']|'')*'|\s+")


def jinja_text(source: str) -> str:
    """A Jinja template's tokens, without whitespace inside tags or comments; runs of spaces in its text are one.

    Text inside single quotes keeps its spaces (it may be a SQL string). Unlexable Jinja is kept as is.
    """
    from jinja2 import Environment, TemplateSyntaxError

    try:
        tokens = list(Environment().lex(source))
    except TemplateSyntaxError:
        return source
    kept = []
    for _, kind, value in tokens:
        if kind in ("whitespace", "comment_begin", "comment", "comment_end"):
            continue
        if kind == "data":
            value = _QUOTED_OR_SPACE.sub(lambda m: m.group(0) if m.group(0).startswith("'") else " ", value)
        kept.append(f"{kind}:{value}")
    return "\n".join(kept)


def _python_code(node: Mapping[str, Any]) -> str:
    """A Python model's code as ``ast`` sees it (no comments, no layout); its checksum if it does not parse."""
    try:
        return ast.dump(ast.parse(str(node.get("raw_code") or "")))
    except (SyntaxError, ValueError, RecursionError):
        return str(node["checksum"]["checksum"])


def _text(value: Any) -> str:
    """A manifest field that must be text (a ValueError names what it was instead)."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, found {type(value).__name__} {value!r:.40}")
    return value


def _texts(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list | tuple):
        raise ValueError(f"expected a list of text, found {type(values).__name__}")
    return tuple(_text(v) for v in values)


def _plain(value: Any) -> Any:
    """Only what marshal can store: JSON-like values, with tuples for lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar config values, for `config.KEY:value` selection."""
    return {k: v for k, v in config.items() if isinstance(v, str | int | float | bool)}


def _from_compact(path: Path, compact: tuple[Any, ...]) -> Manifest:
    project_name, dbt_version, version, adapter_type, generated_at, nodes, tests = compact
    test_parents: dict[UniqueId, tuple[UniqueId, ...]] = {}
    test_names: dict[UniqueId, str] = {}
    checks: dict[str, list[str]] = {}
    check_records: dict[UniqueId, Check] = {}
    for uid, name, parents, kind, check_version in tests:
        assets = tuple(UniqueId(p) for p in parents)
        check_records[UniqueId(uid)] = Check(UniqueId(uid), name, CheckKind(kind), assets, check_version)
        if kind != CheckKind.DATA_TEST.value:
            continue
        test_parents[UniqueId(uid)] = assets
        test_names[UniqueId(uid)] = name
        for parent in parents:
            checks.setdefault(parent, []).append(name)
    built = {
        UniqueId(row[0]): Node(
            UniqueId(row[0]), row[1], _RESOURCE_TYPES[row[2]], row[3], row[4], row[5], row[6], row[7],
            tuple(UniqueId(p) for p in row[8]), row[9], tuple(sorted(checks.get(row[0], ()))), row[15],
            row[10], row[11], row[12], row[13], row[14],
            FreshnessConfig(*row[16]) if row[16] is not None else None, row[17], row[18],
        )
        for row in nodes
    }
    return Manifest(path, project_name, dbt_version, version, adapter_type, generated_at, built,
                    test_parents, test_names, check_records)


def _read_cache(cache_path: Path, key: tuple[Any, ...]) -> tuple[Any, ...] | None:
    try:
        # One read, then loads: marshal.load on a file object makes many small reads (10x slower).
        stored_key, compact = marshal.loads(cache_path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return compact if stored_key == key else None


def _write_cache(cache_path: Path, key: tuple[Any, ...], compact: tuple[Any, ...]) -> None:
    """Best effort: a read-only target directory just means no cache."""
    temporary = cache_path.with_name(f".{cache_path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as f:
            marshal.dump((key, compact), f)
        os.replace(temporary, cache_path)
    except (OSError, ValueError):
        temporary.unlink(missing_ok=True)
