"""What freshness policies add to ``status``, in-process: reading them, and deciding what is due.

``bench_status.py --with-policies`` times whole ``dbtassets status`` processes on two projects,
which on a shared machine carries more noise than the cost being measured. This script times just
the policy steps on ``synth_<N>_policies`` (build_after on every model, warn/error_after on every
source), against ``Project.status`` itself, in one process:

- ``Policies.from_graph``: reading every model's and source's freshness config from the manifest;
- ``policies.apply``, all fresh: the steady state;
- ``policies.apply``, after new data in every source: nearly every model stale, each one decided;
- ``Project.status(observe=False)``: the whole status, policies included, for scale.

Usage::

    .venv/bin/python benchmarks/bench_policies.py [--models 5000] [--repeat 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bench_status import SuccessRunner, ensure_project

from dbtassets.engine import Options, Project
from dbtassets.model.freshness import Policies
from dbtassets.rules.policies import apply
from dbtassets.rules.staleness import compute_statuses
from dbtassets.state.records import StateView


def timed(repeat: int, work: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    project_dir = ensure_project(args.models, None, None, None, policies=True)
    with tempfile.TemporaryDirectory(prefix="bench-policies-") as scratch:
        runner = SuccessRunner()
        with Project(Options(project_dir, state_path=Path(scratch) / "state.db"), runner=runner) as project:
            runner.project = project
            assert project.sync().ok
            graph = project.graph
            view = project.store.view()
            code = project.versions.current(view)
            observable = {uid for uid, d in project.settings.sources.items() if d.observable}
            fresh = compute_statuses(graph, code.versions, view, observable, code.changes, project.versions.reads)
            later = project.clock.now() + timedelta(minutes=10)
            moved = {uid: replace(v, value=v.value + "-new") for uid, v in view.observations.items()}
            landed = compute_statuses(graph, code.versions, StateView(view.last_success, view.last_failure, moved),
                                      observable, code.changes, project.versions.reads)
            policies = Policies.from_graph(graph)
            stale = sum(1 for s in landed.values() if s.needs_build)
            waiting = len(apply(graph, landed, policies, later).schedule.waiting())
            rows = [
                ("Policies.from_graph", timed(args.repeat, lambda: Policies.from_graph(graph))),
                ("policies.apply, all fresh", timed(args.repeat, lambda: apply(graph, fresh, policies, later))),
                (f"policies.apply, new data in every source ({stale} stale, {waiting} waiting)",
                 timed(args.repeat, lambda: apply(graph, landed, policies, later))),
                ("Project.status(observe=False), policies included",
                 timed(args.repeat, lambda: project.status(observe=False))),
            ]
    print(f"\n## freshness policies in status, N = {args.models} models ({len(graph)} assets, "
          f"{len(policies.build_after)} build_after, {len(policies.slas)} source SLAs)\n")
    print("| step | median (ms) | min (ms) |\n|---|---:|---:|")
    for name, (median, minimum) in rows:
        print(f"| {name} | {median * 1000:.1f} | {minimum * 1000:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"models": args.models, "repeat": args.repeat, "results": [
            {"step": name, "median_s": median, "min_s": minimum} for name, (median, minimum) in rows]}, indent=2))


if __name__ == "__main__":
    main()
