"""What a rebuild does to the rows already there: full refreshes of incremental models.

A table or view is rewritten whole by every build. An incremental model only adds and updates
rows, so after a change to its code the rows it kept still hold the old logic: dbtassets then
rebuilds it with ``--full-refresh`` (said in its reason), unless the user opted the model out
with dbt's ``full_refresh: false`` or ``meta: {dbtassets: {full_refresh: false}}``; then its
status says which rows keep the old logic. A snapshot is never fully refreshed (that would
erase its history): after a code change its history before the change came from the old code.

``dbt build --full-refresh`` applies to every incremental model it selects, so a build where
only some need it is split into the fewest invocations that keep dbt's order:
:func:`invocations`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Node, ResourceType, UniqueId


class Refresh(str, Enum):
    """How an asset's existing rows fare when it is built again."""

    REWRITTEN = "rewritten"  # tables, views, seeds: every build replaces every row
    FULL_ON_CHANGE = "full_on_change"  # incremental: a code change is rebuilt with --full-refresh
    KEPT = "kept"  # incremental, opted out of full refreshes: old rows keep the old logic
    HISTORY = "history"  # snapshot: never fully refreshed, its history keeps the old logic

    @property
    def keeps_rows(self) -> bool:
        return self is not Refresh.REWRITTEN


def refresh_of(node: Node) -> Refresh:
    if node.resource_type == ResourceType.SNAPSHOT:
        return Refresh.HISTORY
    if not is_incremental_model(node):
        return Refresh.REWRITTEN
    return Refresh.KEPT if _opted_out_by_dbt(node) or _opted_out_by_meta(node) else Refresh.FULL_ON_CHANGE


def is_incremental_model(node: Node) -> bool:
    """Whether ``node`` is an incremental model, whose SQL renders ``is_incremental()`` (unless fully refreshed)."""
    return node.resource_type == ResourceType.MODEL and node.materialized == "incremental"


def renders_incrementally(node: Node, *, full_refresh: bool) -> bool:
    """Whether a build of ``node`` may have rendered ``is_incremental()`` true, so that it ran only part of its SQL.

    An incremental model does when built without ``--full-refresh`` (once its table exists), and
    with it too when dbt's ``full_refresh: false`` keeps it incremental. A first build and a full
    refresh render it false: that form is the model's whole logic, and its code version.
    """
    return is_incremental_model(node) and (not full_refresh or _opted_out_by_dbt(node))


def _opted_out_by_dbt(node: Node) -> bool:
    """dbt's own ``full_refresh: false``: dbt itself then ignores ``--full-refresh`` for the model."""
    return node.config.get("full_refresh") is False


def _opted_out_by_meta(node: Node) -> bool:
    own = node.meta.get("dbtassets") if isinstance(node.meta, Mapping) else None
    return isinstance(own, Mapping) and own.get("full_refresh") is False


def opt_out_hint(node: Node) -> str:
    """How the user opted ``node`` out, for reasons."""
    return "full_refresh: false" if _opted_out_by_dbt(node) else "meta dbtassets.full_refresh: false"


def old_rows_before(refresh: Refresh, *, full_refreshed: bool, previous_code: str | None,
                    previous_old_rows: str | None, code_version: str, at: str) -> str | None:
    """After a successful build at ``at``: the time before which rows were built by older code, if any.

    Args:
        previous_code: the code version of the asset's last successful build (None: first build).
        previous_old_rows: that build's own answer to this question.
    """
    if not refresh.keeps_rows or full_refreshed or previous_code is None:
        return None
    return at if previous_code != code_version else previous_old_rows


@dataclass(frozen=True)
class Invocation:
    """One ``dbt build`` of a split build: these assets, with or without ``--full-refresh``."""

    assets: tuple[UniqueId, ...]
    full_refresh: bool


def invocations(graph: AssetGraph, to_build: Sequence[UniqueId], full: Collection[UniqueId]) -> list[Invocation]:
    """Split a build so that exactly the ``full`` assets are fully refreshed, in as few invocations as can be.

    An asset must not run with ``--full-refresh`` when it keeps rows and is not in ``full`` (unless
    dbt itself ignores the flag for it: snapshots, dbt's ``full_refresh: false``), nor a seed;
    every other asset may run in either kind. Each asset goes into the earliest invocation of its kind after
    all of its upstream assets in the build, so a single kind needs one invocation, and two kinds
    alternate only as often as the graph forces them to.
    """
    full = set(full) & set(to_build)
    if not full:
        return [Invocation(tuple(to_build), False)] if to_build else []
    must_not = {uid for uid in to_build if uid not in full and _flag_matters(graph.assets[uid])}
    if not must_not:
        return [Invocation(tuple(to_build), True)]
    building = set(to_build)
    phase: dict[UniqueId, int] = {}  # even: a plain build; odd: a --full-refresh one
    for uid in graph.topological_order(building):
        after = max((phase[a] for a in graph.ancestors(uid) & building), default=0)
        if uid in full:
            phase[uid] = after if after % 2 else after + 1
        elif uid in must_not:
            phase[uid] = after + 1 if after % 2 else after
        else:
            phase[uid] = after
    groups: dict[int, list[UniqueId]] = {}
    for uid in graph.topological_order(building):
        groups.setdefault(phase[uid], []).append(uid)
    return [Invocation(tuple(groups[p]), p % 2 == 1) for p in sorted(groups)]


def _flag_matters(node: Node) -> bool:
    """Whether ``--full-refresh`` changes how ``node`` is built (dbt ignores it for the others).

    A seed counts: with the flag dbt drops and recreates its table (``cascade`` on most warehouses,
    taking views that read it along) instead of truncating it.
    """
    refresh = refresh_of(node)
    return (refresh is Refresh.FULL_ON_CHANGE or node.resource_type == ResourceType.SEED
            or (refresh is Refresh.KEPT and not _opted_out_by_dbt(node)))
