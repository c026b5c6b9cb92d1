"""A plan's dbt invocations: usually one ``dbt build``; more when some models need ``--full-refresh``, when
a model reads a seed's (or model's) table through a source (dbt does not know to build that first), or
when checks run on assets the plan does not build (``dbt test``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from dbtassets.building.runner import BuildResult, NodeResult, NodeStatus, Runner, Verb
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Manifest, UniqueId
from dbtassets.model.selection import dbt_selectors


@dataclass(frozen=True)
class BuildStep:
    """One dbt invocation of a plan: a ``dbt build`` of assets, or a ``dbt test`` of checks on assets not built."""

    assets: Sequence[UniqueId]
    full_refresh: bool = False
    checks: Sequence[UniqueId] = ()  # checks run without building their assets
    verb: Verb = Verb.BUILD

    def selectors(self, graph: AssetGraph, manifest: Manifest, built: Collection[UniqueId] | None = None) -> list[str]:
        """dbt selectors for the checks and the assets (only those in ``built``, if given)."""
        assets = self.assets if built is None else [uid for uid in self.assets if uid in built]
        return [*(manifest.checks[c].name for c in self.checks), *dbt_selectors(graph, assets)]

    def args(self, extra_args: Sequence[str]) -> list[str]:
        """The user's extra dbt arguments (less those ``dbt test`` refuses, for a test) and ``--full-refresh``."""
        given = list(extra_args) if self.verb is Verb.BUILD else _test_args(extra_args)
        return [*given, *(["--full-refresh"] if self.full_refresh else [])]


# The options of `dbt build` that `dbt test` refuses (dbt 1.11; tests/test_dbt_contract.py compares), each
# with whether it takes a value: `sync -- --full-refresh` must not make the test step a usage error.
BUILD_ONLY = {"--empty": False, "--no-empty": False, "--event-time-start": True, "--event-time-end": True,
              "--export-saved-queries": False, "--no-export-saved-queries": False, "--full-refresh": False,
              "-f": False, "--include-saved-query": False, "--no-include-saved-query": False, "--sample": True,
              "--show": False}


def _test_args(extra_args: Sequence[str]) -> list[str]:
    """``extra_args`` without the options (and their values) that ``dbt test`` refuses."""
    kept: list[str] = []
    value_next = False
    for arg in extra_args:
        if value_next:
            value_next = False
            continue
        name, equals, _ = arg.partition("=")
        if name in BUILD_ONLY:
            value_next = BUILD_ONLY[name] and not equals
            continue
        kept.append(arg)
    return kept


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
        last = runner.build(selectors, step.args(extra_args), step.verb)
        results.extend(last.results)
        returncode = max(returncode, last.returncode)
        if last.crashed is not None:
            crashed = last.crashed
            break
    if last is None:
        return BuildResult(command, 1, tuple(results), Path(str(fallback_log)))
    return BuildResult(command, returncode, tuple(results), last.log_path, crashed, last.extra)
