"""A plan's ``dbt build`` invocations: usually one; more when some models need ``--full-refresh``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from dbtassets.building.runner import BuildResult, NodeResult, NodeStatus, Runner
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Manifest, UniqueId
from dbtassets.model.selection import dbt_selectors


@dataclass(frozen=True)
class BuildStep:
    """One ``dbt build`` of a plan; a plan has several only when some of its models need ``--full-refresh``."""

    assets: Sequence[UniqueId]
    full_refresh: bool = False
    checks: Sequence[UniqueId] = ()  # checks run without building their assets

    def selectors(self, graph: AssetGraph, manifest: Manifest, built: Collection[UniqueId] | None = None) -> list[str]:
        """dbt selectors for the checks and the assets (only those in ``built``, if given)."""
        assets = self.assets if built is None else [uid for uid in self.assets if uid in built]
        return [*(manifest.checks[c].name for c in self.checks), *dbt_selectors(graph, assets)]

    def args(self, extra_args: Sequence[str]) -> list[str]:
        return [*extra_args, *(["--full-refresh"] if self.full_refresh else [])]


def full_refreshed(steps: Sequence[BuildStep]) -> frozenset[UniqueId]:
    """The assets that ``steps`` build with ``--full-refresh``."""
    return frozenset(uid for step in steps if step.full_refresh for uid in step.assets)


def run_steps(runner: Runner, graph: AssetGraph, manifest: Manifest, steps: Sequence[BuildStep], command: str,
              extra_args: Sequence[str], fallback_log: object) -> BuildResult:
    """Run each step's ``dbt build`` in turn, as one result; what a failure upstream blocks is skipped."""
    from pathlib import Path

    results: list[NodeResult] = []
    returncode, crashed, last = 0, None, None
    for step in steps:
        broken = {r.unique_id for r in results if r.status.failed or r.status is NodeStatus.SKIPPED}
        blocked = {uid for uid in step.assets if broken & graph.ancestors(uid)}
        results.extend(NodeResult(uid, NodeStatus.SKIPPED, "an upstream asset failed", 0.0) for uid in blocked)
        selectors = step.selectors(graph, manifest, set(step.assets) - blocked)
        if not selectors:
            continue
        last = runner.build(selectors, step.args(extra_args))
        results.extend(last.results)
        returncode = max(returncode, last.returncode)
        if last.crashed is not None:
            crashed = last.crashed
            break
    if last is None:
        return BuildResult(command, 1, tuple(results), Path(str(fallback_log)))
    return BuildResult(command, returncode, tuple(results), last.log_path, crashed, last.extra)
