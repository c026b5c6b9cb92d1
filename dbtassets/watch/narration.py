"""A watcher's build told as typed events: what it builds and why, each node as dbt finishes it, how it ended.

Values in, events out: the watcher decides when to build and emits what these return. Assets are
named by their display names, data tests by their short names (``unique_stg_orders_order_id``).
"""

from __future__ import annotations

from collections.abc import Mapping

from dbtassets.building.runner import NodeResult, NodeStatus
from dbtassets.model.manifest import UniqueId
from dbtassets.model.snapshot import Snapshot
from dbtassets.results import SyncPlan, SyncResult
from dbtassets.watch import events as ev


def stale(plan: SyncPlan, snapshot: Snapshot) -> ev.Stale:
    """The assets a build is about to build, each with its status and reasons."""
    return ev.Stale(tuple(ev.StaleAsset(snapshot.graph.assets[u].display_name, plan.statuses[u].status.value,
                                        tuple(r.message for r in plan.statuses[u].reasons)) for u in plan.to_build))


def finished(plan: SyncPlan, result: SyncResult, seconds: float, retry_in: Mapping[UniqueId, float],
             snapshot: Snapshot) -> ev.BuildFinished:
    """How a build ended; ``retry_in`` says when each failed asset is retried."""
    def name(uid: UniqueId) -> str:
        return snapshot.graph.assets[uid].display_name

    build = result.build
    return ev.BuildFinished(
        tuple(name(u) for u in result.built), {name(u): m for u, m in result.failed.items()},
        tuple(name(u) for u in result.skipped), round(seconds, 2), plan.command,
        build.crashed if build else None, str(build.log_path) if build else None,
        {name(u): s for u, s in retry_in.items()},
        {snapshot.manifest.checks[c].name: m for c, m in result.failed_checks.items()})


def removed_checks(before: Snapshot | None, after: Snapshot) -> list[ev.CheckRemoved]:
    """The checks a re-parse left out of the manifest (on assets it kept), and the declared tests it lacks that
    ``before`` had not lacked already."""
    if before is None:
        return []
    lacking = {m.asset for m in after.missing_checks}
    out = []
    for uid, check in sorted(before.manifest.checks.items()):
        for asset in (a for a in check.assets if a in after.graph and uid not in after.manifest.checks):
            state = "missing" if asset in lacking else "removed"
            why = ("the YAML still declares it: dbt's partial parse lost it; it does not run until "
                   "`dbt parse --no-partial-parse`" if state == "missing" else "no longer declared")
            out.append(ev.CheckRemoved(after.graph.assets[asset].display_name, check.name, state,
                                       f"{check.describe()} {state}: {why}"))
    said = {e.asset for e in out}
    for m in after.missing_checks:
        name = after.graph.assets[m.asset].display_name
        if name not in said and m not in before.missing_checks:
            out.append(ev.CheckRemoved(name, m.label, "missing", f"{m.describe()} is not in the manifest: it does not "
                                       "run until `dbt parse --no-partial-parse`"))
    return out


class Nodes:
    """Follows one build's nodes as dbt finishes them, to say why one was skipped, and each failure once."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._failed: set[str] = set()  # the failed nodes said so far, and the assets a failed test checks

    def finished(self, result: NodeResult) -> ev.NodeFinished | None:
        """dbt finished a node (in-process runner): an asset, or a failing data test by its short name."""
        graph, manifest = self.snapshot.graph, self.snapshot.manifest
        uid = result.unique_id
        node = graph.assets.get(uid)
        failed = result.status.failed
        if node is None and not failed:
            return None
        name = node.display_name if node is not None else manifest.test_names.get(uid, uid)
        parents = graph.parents(uid) if node is not None else manifest.test_parents.get(uid, ())
        if failed:
            self._failed.update([name, *(self._name(p) for p in parents if p in graph)])
        message = result.message
        if result.status is NodeStatus.SKIPPED:
            upstream = {*parents, *graph.ancestors(*(p for p in parents if p in graph))}
            culprits = sorted(n for n in (self._name(u) for u in upstream if u in graph) if n in self._failed)
            message = f"upstream {', '.join(culprits)} failed" if culprits else "an upstream failed"
        return ev.NodeFinished(name, result.status.value, round(result.execution_time, 2), message)

    def unsaid(self, failed: Mapping[UniqueId, str]) -> list[ev.NodeFinished]:
        """The failures not said as they happened (a runner that says nothing live says nothing of any)."""
        return [ev.NodeFinished(self._name(uid), NodeStatus.ERROR.value, 0.0, message)
                for uid, message in failed.items() if self._name(uid) not in self._failed]

    def _name(self, uid: UniqueId) -> str:
        return self.snapshot.graph.assets[uid].display_name
