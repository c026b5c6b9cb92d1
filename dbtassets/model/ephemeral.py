"""Seeing through ephemeral models, which dbt inlines as CTEs into the nodes that read them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dbtassets.model.ids import UniqueId


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
