"""Read dbt's ``manifest.json``: with :mod:`~dbtassets.model.rows` and :mod:`~dbtassets.model.code`, the only
modules that know its keys.

The manifest of a large project is tens of megabytes of JSON, and ``status`` should not pay to
parse it every time. :func:`load_manifest` therefore keeps a compact, marshalled extract beside
the manifest (:mod:`dbtassets.model.cache`), keyed by the manifest's size and modification time,
and reads that instead when it is current. The extract holds plain tuples, so building it once
costs one JSON parse. The code versions it holds are the manifest-based ones of
:mod:`dbtassets.model.code`; the values of the vars and env vars a node reads are folded in on every
load (:mod:`dbtassets.model.values`), since they change without the manifest changing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any

from dbtassets.errors import ManifestError
from dbtassets.model import cache
from dbtassets.model.code import Macros, data_test_version, unit_test_version
from dbtassets.model.ephemeral import EphemeralWalk
from dbtassets.model.ids import UniqueId as UniqueId
from dbtassets.model.rows import compact_nodes, text, texts
from dbtassets.model.values import Read, Values, versioned

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
_SCHEMA_VERSION = re.compile(r"/manifest/v(\d+)\.json$")


Period = tuple[int, str]  # (count, "minute" | "hour" | "day") as dbt writes it


@dataclass(frozen=True, slots=True)
class FreshnessConfig:
    """dbt's own ``freshness`` config, as parsed into the manifest (dbt resolves its precedence).

    Models carry ``build_after`` (``config.freshness.build_after``: ``count``/``period`` may be
    absent, since dbt 1.11 allows ``updates_on`` alone); sources carry ``warn_after``/``error_after``
    and may name a ``loaded_at_query``. Interpreting it is :mod:`dbtassets.model.freshness`' job.
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
    version: str = ""  # a versioned model's version ("2" for stg_customers.v2); "" when unversioned
    latest_version: str = ""  # the version a plain ref() to a versioned model means
    reads: tuple[Read, ...] = ()  # the vars and env vars its SQL reads (their values are in code_version)

    @property
    def compiled_compares(self) -> bool:
        """Whether its compiled SQL, from ``dbt compile`` or ``dbt build`` alike, says what it computes."""
        return self.language == "sql" and not self.varies_by_command

    @property
    def is_ephemeral(self) -> bool:
        return self.resource_type == ResourceType.MODEL and self.materialized == "ephemeral"

    @property
    def display_name(self) -> str:
        """``raw.orders`` for a source, ``stg_customers.v2`` for a model version (as ``dbt ls`` names it,
        the latest one too), the plain name for everything else."""
        if self.resource_type == ResourceType.SOURCE:
            return f"{self.source_name}.{self.name}"
        return f"{self.name}.v{self.version}" if self.version else self.name

    @classmethod
    def gone(cls, uid: UniqueId) -> Node:
        """An asset the manifest no longer has, known only by its ``unique_id`` (its builds are still recorded)."""
        kind, package, name = uid.split(".")[:3]
        return cls(uid, name, ResourceType(kind), package, (), "", (), "", (), "")


class CheckKind(str, Enum):
    DATA_TEST = "data test"
    UNIT_TEST = "unit test"


@dataclass(frozen=True, slots=True)
class Check:
    """A data test or unit test, a check on the assets it is attached to.

    ``code_version`` covers what the test runs: its SQL or generic test and arguments, the
    configuration that decides when it fails, and the macros it calls (for a unit test: its
    fixtures and expectations; the model's own code is the model's code version). ``reads`` are
    the assets whose data it reads (dbt's ``depends_on``): a relationships test on
    ``stg_order_items`` reads ``stg_orders`` too, and fails when either holds data it rejects.
    """

    unique_id: UniqueId
    name: str
    kind: CheckKind
    assets: tuple[UniqueId, ...]
    code_version: str
    reads: tuple[UniqueId, ...] = ()

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
    values: Values | None = field(default=None, compare=False)  # what its code versions include (None: no values)
    # every data test and unit test it holds, enabled or not, as its YAML declares it (model.declared.TestKey)
    test_keys: tuple[tuple[str, str, str], ...] = ()
    # the key of the compact cache it was loaded through (None: built otherwise); what is derived from it alone,
    # the asset graph, is cached under the same key (model.graph.AssetGraph.compiled)
    cache_key: tuple[Any, ...] | None = field(default=None, compare=False)

    def checks_of(self, asset: UniqueId) -> list[Check]:
        """The checks attached to ``asset``, by name."""
        return sorted((c for c in self.checks.values() if asset in c.assets), key=lambda c: c.name)

    @cached_property
    def ephemerals(self) -> EphemeralWalk:
        """What each node reads once its ephemeral models are inlined."""
        nodes = self.nodes
        return EphemeralWalk(lambda uid: nodes[uid].depends_on if uid in nodes else (),
                             lambda uid: uid in nodes and nodes[uid].is_ephemeral)


def load_manifest(path: Path, *, use_cache: bool = True, values: Values | None = None) -> Manifest:
    """Load ``path``, from the compact cache beside it when that is current.

    With ``values``, each node's code version includes the values of the vars and env vars it reads;
    without, it is the manifest's alone.

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
    cache_path = cache.cache_of(path)
    key = cache.key_of(path, stat)
    if use_cache:
        compact = cache.read_cache(cache_path, key)
        if compact is not None:
            return _from_compact(path, compact, values, key)
    compact = _extract(path, _read_json(path, stat.st_size))
    if use_cache:
        cache.write_cache(cache_path, key, compact)
    return _from_compact(path, compact, values, key if use_cache else None)


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
        macros = Macros.from_manifest(raw["macros"])
        builtin = {"dbt", f"dbt_{metadata.get('adapter_type') or ''}"}  # dbt's own macros and its adapter's
        nodes: dict[str, dict[str, Any]] = {}
        tests: list[tuple[str, str, tuple[str, ...], str, str, tuple[str, ...]]] = []
        for uid, node in raw["nodes"].items():
            where[0] = uid
            config = node.get("config") or {}
            if config.get("enabled", True) is False:
                continue
            rtype = node["resource_type"]
            if rtype == "test":
                attached = node.get("attached_node")
                read = texts(node["depends_on"]["nodes"])
                parents = (attached,) if attached else read
                tests.append((uid, text(node["name"]), texts(parents), CheckKind.DATA_TEST.value,
                              data_test_version(node, config, macros, builtin), read))
            elif rtype in ASSET_TYPES:
                nodes[uid] = node
        where[0] = "test keys"
        keys = _test_keys(raw)
        for uid, test in (raw.get("unit_tests") or {}).items():
            where[0] = uid
            if (test.get("config") or {}).get("enabled", True) is False:
                continue
            read = texts(test["depends_on"]["nodes"])
            tests.append((uid, text(test["name"]), read, CheckKind.UNIT_TEST.value, unit_test_version(test), read))
        sources = {uid: s for uid, s in raw["sources"].items() if (s.get("config") or {}).get("enabled", True)}
        rows = compact_nodes(nodes, sources, macros, where)
        where[0] = "tests"
        compact_tests = tuple((uid, name, tuple(p for p in parents if p in nodes), kind, version,
                               tuple(r for r in read if r in nodes))
                              for uid, name, parents, kind, version, read in tests)
        return (
            str(metadata.get("project_name") or ""),
            str(metadata.get("dbt_version") or ""),
            version,
            str(metadata.get("adapter_type") or ""),
            str(metadata.get("generated_at") or ""),
            rows,
            compact_tests,
            keys,
        )
    except ManifestError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ManifestError(
            f"{path}: unexpected manifest shape at {where[0]} ({detail}); re-run `dbt parse` to write it again"
        ) from None


def _test_keys(raw: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """(YAML file, ``file_key_name``, test name) of each generic data test and unit test, disabled ones too.

    Not the disabled tests attached to nothing: that is where dbt's partial parse leaves the tests it lost
    (their model's file moved away and back), not where ``enabled: false`` puts a test.
    """
    disabled = raw.get("disabled") or {}
    every = [*raw["nodes"].values(), *(raw.get("unit_tests") or {}).values(),
             *(n for found in disabled.values() if isinstance(found, list) for n in found
               if isinstance(n, dict) and (n.get("attached_node") or (n.get("depends_on") or {}).get("nodes")))]
    keys = []
    for node in every:
        if not isinstance(node, dict):
            continue
        path = node.get("original_file_path")
        if node.get("resource_type") == "unit_test" and isinstance(node.get("name"), str):
            keys.append((str(path), "unit_tests", node["name"]))
        elif node.get("resource_type") == "test" and isinstance(node.get("test_metadata"), dict):
            keys.append((str(path), str(node.get("file_key_name")), str(node["test_metadata"].get("name"))))
    return tuple(keys)


def _from_compact(path: Path, compact: tuple[Any, ...], values: Values | None,
                  key: cache.Key | None = None) -> Manifest:
    project_name, dbt_version, version, adapter_type, generated_at, nodes, tests, keys = compact
    test_parents: dict[UniqueId, tuple[UniqueId, ...]] = {}
    test_names: dict[UniqueId, str] = {}
    checks: dict[str, list[str]] = {}
    check_records: dict[UniqueId, Check] = {}
    for uid, name, parents, kind, check_version, read in tests:
        assets = tuple(UniqueId(p) for p in parents)
        check_records[UniqueId(uid)] = Check(UniqueId(uid), name, CheckKind(kind), assets, check_version,
                                             tuple(UniqueId(r) for r in read))
        if kind != CheckKind.DATA_TEST.value:
            continue
        test_parents[UniqueId(uid)] = assets
        test_names[UniqueId(uid)] = name
        for parent in parents:
            checks.setdefault(parent, []).append(name)
    built = {
        UniqueId(row[0]): Node(
            UniqueId(row[0]), row[1], _RESOURCE_TYPES[row[2]], row[3], row[4], row[5], row[6], row[7],
            tuple(UniqueId(p) for p in row[8]), versioned(row[9], row[21], values),
            tuple(sorted(checks.get(row[0], ()))), row[15], row[10], row[11], row[12], row[13], row[14],
            FreshnessConfig(*row[16]) if row[16] is not None else None, row[17], row[18], row[19], row[20], row[21],
        )
        for row in nodes
    }
    return Manifest(path, project_name, dbt_version, version, adapter_type, generated_at, built,
                    test_parents, test_names, check_records, values, keys, key)
