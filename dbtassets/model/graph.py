"""The asset graph: models, seeds, snapshots and sources, with the edges dbt's refs draw.

Ephemeral models are not assets (nothing is built for them), so the graph collapses them:
an asset that selects from an ephemeral model depends on whatever that ephemeral model
depends on. Their code still reaches the assets that inline them through the code version
(see :mod:`dbtassets.model.manifest`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from graphlib import TopologicalSorter

from dbtassets.errors import SelectionError
from dbtassets.model.manifest import Manifest, Node, ResourceType, UniqueId

BUILDABLE = frozenset({ResourceType.MODEL, ResourceType.SEED, ResourceType.SNAPSHOT})


@dataclass(frozen=True)
class AssetGraph:
    """Assets and their direct dependencies. Build it with :meth:`from_manifest`."""

    assets: Mapping[UniqueId, Node]
    _parents: Mapping[UniqueId, tuple[UniqueId, ...]]
    _children: Mapping[UniqueId, tuple[UniqueId, ...]]

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> AssetGraph:
        nodes = manifest.nodes
        assets = {uid: node for uid, node in nodes.items() if not node.is_ephemeral}
        parents = {uid: manifest.ephemerals.upstream(uid).assets for uid in assets}
        children: dict[UniqueId, list[UniqueId]] = {uid: [] for uid in assets}
        for uid, found in parents.items():
            for parent in found:
                children[parent].append(uid)
        return cls(assets, parents, {uid: tuple(c) for uid, c in children.items()})

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
        )

    def resolve(self, name: str) -> UniqueId:
        """The asset a user means by ``name``: a unique_id, a name, ``source_name.table`` for a source, or
        ``model.v2`` (or dbt's ``model_v2``) for a model version; a versioned model's plain name means its
        latest version, as ``ref()`` does.

        Raises:
            SelectionError: no asset or more than one matches; the message suggests close names.
        """
        if name in self.assets:
            return UniqueId(name)
        matches = [uid for uid, node in self.assets.items() if name in _names(node)]
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
