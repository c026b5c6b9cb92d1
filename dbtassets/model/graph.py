"""The asset graph: models, seeds, snapshots and sources, with the edges dbt's refs draw.

Ephemeral models are not assets (nothing is built for them), so the graph collapses them:
an asset that selects from an ephemeral model depends on whatever that ephemeral model
depends on. Their code still reaches the assets that inline them through the code version
(see :mod:`dbtassets.model.manifest`).

A source declared over the table a seed, model or snapshot builds (jaffle-shop's raw sources over
its seeds) is *fed* by it: dbt draws no edge between them, the graph does (the source's parent is
its feeder), so that staleness flows through it and builds are ordered by it (:meth:`AssetGraph.waves`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from graphlib import TopologicalSorter

from dbtassets.errors import SelectionError
from dbtassets.model import cache
from dbtassets.model.manifest import Manifest, Node, ResourceType, UniqueId

BUILDABLE = frozenset({ResourceType.MODEL, ResourceType.SEED, ResourceType.SNAPSHOT})


@dataclass(frozen=True)
class AssetGraph:
    """Assets and their direct dependencies. Build it with :meth:`from_manifest`."""

    assets: Mapping[UniqueId, Node]
    _parents: Mapping[UniqueId, tuple[UniqueId, ...]]
    _children: Mapping[UniqueId, tuple[UniqueId, ...]]
    fed: Mapping[UniqueId, UniqueId] = field(default_factory=dict)  # source -> the asset that builds its table

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> AssetGraph:
        nodes = manifest.nodes
        assets = {uid: node for uid, node in nodes.items() if not node.is_ephemeral}
        parents = {uid: manifest.ephemerals.upstream(uid).assets for uid in assets}
        fed = _link_fed_sources(assets, parents)
        children: dict[UniqueId, list[UniqueId]] = {uid: [] for uid in assets}
        for uid, found in parents.items():
            for parent in found:
                children[parent].append(uid)
        return cls(assets, parents, {uid: tuple(c) for uid, c in children.items()}, fed)

    @classmethod
    def compiled(cls, manifest: Manifest) -> AssetGraph:
        """:meth:`from_manifest`, through a cache beside the manifest's own compact cache and keyed as it is
        (the graph depends on the manifest alone): its edges, fed sources and topological order, which cost
        as much to derive as the rest of loading on a large project."""
        if manifest.cache_key is None:
            return cls.from_manifest(manifest)
        path, key = cache.cache_of(manifest.path, cache.GRAPH_NAME), (cache.GRAPH_FORMAT, *manifest.cache_key)
        stored = cache.read_cache(path, key)
        if stored is not None:
            uids, parents, children, fed, order = stored
            nodes = manifest.nodes
            if len(uids) == len(parents) == len(children) and all(uid in nodes for uid in uids):
                graph = cls({uid: nodes[uid] for uid in uids}, dict(zip(uids, parents, strict=True)),
                            dict(zip(uids, children, strict=True)), dict(fed))
                graph.__dict__["_order"] = order  # the cached_property, as computed when the cache was written
                return graph
        graph = cls.from_manifest(manifest)
        uids = tuple(graph.assets)
        cache.write_cache(path, key, (uids, tuple(graph._parents[u] for u in uids),
                                      tuple(graph._children[u] for u in uids), tuple(graph.fed.items()), graph._order))
        return graph

    def __contains__(self, uid: object) -> bool:
        return uid in self.assets

    def __iter__(self) -> Iterator[UniqueId]:
        return iter(self.assets)

    def __len__(self) -> int:
        return len(self.assets)

    def parents(self, uid: UniqueId) -> tuple[UniqueId, ...]:
        return self._parents[uid]

    def children(self, uid: UniqueId) -> tuple[UniqueId, ...]:
        return self._children[uid]

    def ancestors(self, *uids: UniqueId, depth: int | None = None) -> set[UniqueId]:
        """Every asset any of ``uids`` depends on, up to ``depth`` edges away (all when None)."""
        return self._walk(uids, self._parents, depth)

    def descendants(self, *uids: UniqueId, depth: int | None = None) -> set[UniqueId]:
        """Every asset that depends on any of ``uids``, up to ``depth`` edges away (all when None)."""
        return self._walk(uids, self._children, depth)

    @cached_property
    def _order(self) -> tuple[UniqueId, ...]:
        return tuple(TopologicalSorter({uid: self._parents[uid] for uid in self.assets}).static_order())

    def topological_order(self, subset: Iterable[UniqueId] | None = None) -> list[UniqueId]:
        """Upstream first; restricted to ``subset`` when given (order still respects the full graph)."""
        if subset is None:
            return list(self._order)
        wanted = set(subset)
        return [uid for uid in self._order if uid in wanted]

    def subgraph(self, nodes: Iterable[UniqueId]) -> AssetGraph:
        keep = {uid: self.assets[uid] for uid in nodes}
        return AssetGraph(
            keep,
            {uid: tuple(p for p in self._parents[uid] if p in keep) for uid in keep},
            {uid: tuple(c for c in self._children[uid] if c in keep) for uid in keep},
            {uid: feeder for uid, feeder in self.fed.items() if uid in keep and feeder in keep},
        )

    def waves(self, subset: Iterable[UniqueId]) -> list[list[UniqueId]]:
        """``subset`` split into builds run one after the other, each upstream first, so that an asset
        reading a fed source is built after the asset of ``subset`` that feeds it: dbt does not know
        that edge, and in one invocation may build the reader first. One wave when no feeder is built."""
        wanted = set(subset)
        wave: dict[UniqueId, int] = {}
        for uid in self._order:
            wave[uid] = max((wave[p] + (1 if self.fed.get(p) in wanted else 0) for p in self._parents[uid]),
                            default=0)
        groups: dict[int, list[UniqueId]] = {}
        for uid in self.topological_order(wanted):
            groups.setdefault(wave[uid], []).append(uid)
        return [groups[w] for w in sorted(groups)]

    def resolve(self, name: str) -> UniqueId:
        """The asset a user means by ``name``: a unique_id, a name, ``source_name.table`` for a source, or
        ``model.v2`` (or dbt's ``model_v2``) for a model version; a versioned model's plain name means its
        latest version, as ``ref()`` does.

        Raises:
            SelectionError: no asset or more than one matches; the message suggests close names.
        """
        if name in self.assets:
            return UniqueId(name)
        # `raw_items` is the seed even when a source `raw.raw_items` reads its table: a shown name first.
        matches = ([uid for uid, node in self.assets.items() if name == node.display_name]
                   or [uid for uid, node in self.assets.items() if name in _names(node)])
        versions = {(self.assets[uid].package_name, self.assets[uid].name) for uid in matches
                    if self.assets[uid].version}
        if len(matches) > 1 and len(versions) == 1 and all(self.assets[uid].version for uid in matches):
            matches = [uid for uid in matches if self.assets[uid].version == self.assets[uid].latest_version]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise SelectionError(f"{name!r} names {len(matches)} assets ({', '.join(sorted(matches))}); "
                                 "use the unique_id")
        known = sorted({node.display_name for node in self.assets.values()})
        import difflib  # imported where used: most commands never get here

        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else "; `dbtassets assets` lists them"
        raise SelectionError(f"no asset named {name!r}{hint}")

    @staticmethod
    def _walk(
        start: Iterable[UniqueId], edges: Mapping[UniqueId, tuple[UniqueId, ...]], depth: int | None
    ) -> set[UniqueId]:
        """The one breadth-first walk: what lies within ``depth`` edges of any of ``start``."""
        seen: set[UniqueId] = set()
        frontier = set(start)
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            frontier = {other for uid in frontier for other in edges[uid]} - seen
            seen |= frontier
        return seen


def _names(node: Node) -> tuple[str, ...]:
    """What a user may call ``node`` by."""
    if node.version:
        return node.name, node.display_name, f"{node.name}_v{node.version}"
    return node.name, node.display_name


def relation_key(relation_name: str) -> str:
    """A relation as dbt renders it (``"db"."raw"."items"``), unquoted and lower-cased, to compare two."""
    return _QUOTES.sub("", relation_name).lower()


_QUOTES = re.compile(r'["`\[\]]')


def _link_fed_sources(assets: Mapping[UniqueId, Node], parents: dict[UniqueId, tuple[UniqueId, ...]]
                      ) -> dict[UniqueId, UniqueId]:
    """Make each source whose relation a seed, model or snapshot builds a child of it; return source -> feeder.

    A feeder that reads the source itself (a model that appends to the table it reads) is not
    linked: that would be a cycle, and the source is then what it was, observed or not.
    """
    builds = {relation_key(node.relation_name): uid for uid, node in assets.items()
              if node.resource_type in BUILDABLE and node.relation_name}
    fed: dict[UniqueId, UniqueId] = {}
    for uid, node in assets.items():
        feeder = builds.get(relation_key(node.relation_name)) if node.resource_type == ResourceType.SOURCE else None
        if feeder is not None and not _reaches(parents, feeder, uid):
            parents[uid] = (feeder,)
            fed[uid] = feeder
    return fed


def _reaches(parents: Mapping[UniqueId, tuple[UniqueId, ...]], start: UniqueId, target: UniqueId) -> bool:
    """Whether ``target`` is ``start`` or one of its ancestors."""
    seen, stack = set(), [start]
    while stack:
        uid = stack.pop()
        if uid == target:
            return True
        if uid not in seen:
            seen.add(uid)
            stack.extend(parents.get(uid, ()))
    return False
