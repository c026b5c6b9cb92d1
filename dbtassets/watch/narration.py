"""A watcher's build told as typed events: what it builds and why, each node as dbt finishes it, how it ended.

Values in, events out: the watcher decides when to build and emits what these return. Assets are
named by their display names, data tests by their short names (``unique_stg_orders_order_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from dbtassets.building.runner import NodeResult, NodeStatus
from dbtassets.model.manifest import UniqueId
from dbtassets.model.snapshot import Snapshot
from dbtassets.results import ObserveOutcome, SyncPlan, SyncResult
from dbtassets.watch import events as ev
from dbtassets.words import noun


def stale(plan: SyncPlan, snapshot: Snapshot) -> ev.Stale:
    """The assets a build is about to build, each with its status and reasons."""
    return ev.Stale(tuple(ev.StaleAsset(snapshot.graph.assets[u].display_name, plan.statuses[u].status.value,
                                        tuple(r.message for r in plan.statuses[u].reasons)) for u in plan.to_build),
                    _pending(plan))


def _pending(plan: SyncPlan) -> dict[str, str]:
    """The pending checks a build runs, by short name, each with why it is pending (as ``status`` says it)."""
    wanted = set(plan.checks)
    return {c.check.name: c.describe() for s in plan.statuses.values() for c in s.pending_checks
            if c.check.unique_id in wanted}


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
        {snapshot.manifest.checks[c].name: m for c, m in result.failed_checks.items()}, len(plan.checks))


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
        self._failed: set[str] = set()  # the failed nodes said so far (assets and checks)
        self._checks: dict[str, set[str]] = {}  # an asset's name -> its checks that failed in this build

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
            self._failed.add(name)
            if node is None:  # a failing check: what it checks built, but holds what reads it
                for checked in (self._name(p) for p in parents if p in graph):
                    self._checks.setdefault(checked, set()).add(name)
        message = result.message
        if result.status is NodeStatus.SKIPPED:
            message = self._skipped_because(uid, parents)
        return ev.NodeFinished(name, result.status.value, round(result.execution_time, 2), message)

    def _skipped_because(self, uid: UniqueId, parents: Iterable[UniqueId]) -> str:
        """Which upstream asset failed, or which check failed on an upstream (or on this asset: a unit test)."""
        graph = self.snapshot.graph
        inside = [p for p in parents if p in graph]
        upstream = sorted({self._name(u) for u in {*inside, *graph.ancestors(*inside)}})
        culprits = [n for n in upstream if n in self._failed]
        own = [self._name(uid)] if uid in graph else []  # a failing unit test skips its own model
        checks = sorted({c for n in [*upstream, *own] for c in self._checks.get(n, ())})
        said = ([f"upstream {', '.join(culprits)} failed"] if culprits else []) + \
            ([f"{noun(len(checks), 'check')} {', '.join(checks)} failed"] if checks else [])
        return "; ".join(said) if said else "an upstream failed"

    def unsaid(self, failed: Mapping[UniqueId, str]) -> list[ev.NodeFinished]:
        """The failures not said as they happened (a runner that says nothing live says nothing of any)."""
        return [ev.NodeFinished(self._name(uid), NodeStatus.ERROR.value, 0.0, message)
                for uid, message in failed.items() if self._name(uid) not in self._failed | self._checks.keys()]

    def _name(self, uid: UniqueId) -> str:
        return self.snapshot.graph.assets[uid].display_name


def observed(outcomes: Sequence[ObserveOutcome], name: Callable[[UniqueId], str]) -> Iterator[ev.WatchEvent]:
    """What an observation says of each source: it failed, or it has new data. A warehouse that cannot be
    reached is left out: the watcher says it once, for all the sources it leaves unread."""
    for outcome in outcomes:
        if outcome.unreachable:
            continue
        if outcome.error:
            yield ev.ObserveFailed(name(outcome.unique_id), outcome.error)
        elif outcome.changed and outcome.observation is not None:
            detail = outcome.observation.detail
            yield ev.NewData(name(outcome.unique_id), outcome.kind.value, detail.get("files"), detail.get("bytes"),
                             detail.get("newest"), tuple(detail.get("in_progress", ())), detail.get("watermark"))
