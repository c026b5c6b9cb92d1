"""Benchmark ``dbtassets status`` on a synthetic project against merely loading its manifest JSON.

Each variant runs as a whole process (interpreter start-up, imports and all), the way a user
runs the command, timed with the wall clock and in CPU time (user + system time of the child, from
``resource.getrusage(RUSAGE_CHILDREN)`` before and after it: what the process itself spent, which a
loaded machine inflates less than the wall clock). The variants are interleaved in every round, in a
rotating order, so that machine noise falls on all of them alike:

- ``json.load``: ``python -c "import json; json.load(open(MANIFEST))"``, the baseline;
- ``status (warm)``: ``dbtassets status`` with the compact manifest cache in place;
- ``status (cold)``: the same with the caches deleted before each run, so the JSON is parsed;
- ``status --no-observe (warm)``: no source is read;
- ``status --format json (warm)``: the same answer as JSON;
- ``status (fresh state)`` and ``status --format json (fresh state)``: on a project with no state store yet
  (every asset missing, so every asset is listed), the first thing a user runs;
- ``python -c pass``: bare interpreter start-up, for reference;
- with ``--postgres``: ``status`` (warm) and ``status --no-observe`` (warm) again with the state
  store on a PostgreSQL server on loopback (team mode), populated the same way. The server is a
  private one started for the run, as the tests start it (tests/pg.py), unless
  ``--postgres-url`` names one (its database must be empty).

The state store is populated in-process with a fake dbt runner that reports every selected
model, seed and snapshot as built successfully: no dbt build runs (building thousands of models
with dbt takes far too long for a benchmark). ``status`` therefore finds every asset fresh,
which is the common case for a project in steady state.

Beside each figure is the 1-minute load average (``os.getloadavg``) read before each of that
variant's runs (median): the ratios are only as good as the machine was quiet. The children run
with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` is dropped from their environment): with it
set, an editable install compiles every module of the package on every run, which no user pays.

Usage::

    .venv/bin/python benchmarks/bench_status.py [--models 5000] [--repeat 7] [--json out.json] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from generate_project import generate, parse

import dbtassets
from dbtassets.building.runner import BuildResult, DbtTarget, NodeResult, NodeStatus, Verb, build_command, display
from dbtassets.engine import Options, Project
from dbtassets.model.graph import BUILDABLE, AssetGraph
from dbtassets.model.manifest import UniqueId
from dbtassets.model.project import load_project
from dbtassets.model.selection import select_assets
from dbtassets.rules.statuses import Status

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
# Written by dbtassets.model.manifest.load_manifest beside the manifest on the first load.
CACHE_NAME = "dbtassets-manifest.cache"
# Written beside it by dbtassets.model.graph.AssetGraph.compiled: the asset graph derived from the manifest.
GRAPH_CACHE_NAME = "dbtassets-graph.cache"
BASELINE = "json.load"
PG = "dbtassets --state postgresql://… (loopback)"


def start_postgres() -> Any:
    """A private PostgreSQL server, started the way the tests start theirs."""
    sys.path.insert(0, str(HERE.parent))
    from tests.pg import PostgresServer, binaries

    bin_dir = binaries()
    if bin_dir is None:
        raise SystemExit("--postgres: PostgreSQL is not installed here (no initdb); pass --postgres-url instead")
    return PostgresServer.start(bin_dir)


@dataclass
class Variant:
    """One command to time, and what to do (untimed) before each run of it."""

    name: str
    argv: list[str]
    drop_cache: bool = False
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system CPU seconds of each run's process
    loads: list[float] = field(default_factory=list)  # the 1-minute load average before each run


@dataclass(frozen=True)
class Row:
    variant: str
    median: float
    minimum: float
    ratio: float
    samples: list[float]
    load: float  # median 1-minute load average before its runs
    cpu_median: float  # user + system CPU seconds of the process (median)
    cpu_ratio: float  # cpu_median over json.load's
    cpu_samples: list[float]


class SuccessRunner:
    """A dbt runner that builds nothing and reports every selected buildable asset as a success,
    and every test of it as passed.

    Selectors are resolved the way dbt would for what ``dbt_selectors`` writes (``name``,
    ``dotted.fqn``, ``dotted.fqn,path:FILE``, each optionally with a trailing ``+``) through a
    name index, because ``select_assets`` scans every asset once per selector, which takes
    minutes for the thousands of selectors of a first build of a large project. Anything else
    falls back to ``select_assets``.
    """

    def __init__(self) -> None:
        self.project: Project | None = None
        self.builds = 0
        self.on_node: Callable[[NodeResult], None] | None = None  # never called, as by dbt in a subprocess

    def retarget(self, target: DbtTarget) -> None:
        pass  # it runs no dbt

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = (),
              verb: Verb = Verb.BUILD) -> BuildResult:
        assert self.project is not None, "SuccessRunner.project must be set before building"
        self.builds += 1
        graph = self.project.graph
        chosen = resolve_selectors(graph, selectors)
        manifest = self.project.manifest
        results: list[NodeResult] = []
        tested: set[UniqueId] = set()
        for uid in graph.topological_order(chosen):  # as `dbt build`: each asset, then its tests, all passing
            if graph.assets[uid].resource_type in BUILDABLE:
                results.append(NodeResult(uid, NodeStatus.SUCCESS, "OK", 0.0, 0))
                for check in manifest.checks_of(uid):  # so that no check is left pending
                    if check.unique_id not in tested:
                        tested.add(check.unique_id)
                        results.append(NodeResult(check.unique_id, NodeStatus.PASS, "", 0.0))
        return BuildResult(display(build_command(selectors, extra_args, verb)), 0, tuple(results),
                           self.project.dbt.dbt_log)

    def parse(self) -> None:
        # Only reached when the manifest is older than the project's files: parse for real.
        assert self.project is not None
        parse(self.project.dbt.directory)

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> dict[UniqueId, str]:
        return {}  # a state filled by this runner records manifest checksums: nothing to compare

    def query(self, sql: str, timeout: float | None = None) -> list[list[Any]]:
        return []  # the synthetic project's sources are observed through files (or, realistic, not at all)


def resolve_selectors(graph: AssetGraph, selectors: Sequence[str]) -> set[UniqueId]:
    by_name: dict[str, list[UniqueId]] = {}
    by_fqn: dict[str, list[UniqueId]] = {}
    for uid, node in graph.assets.items():
        if node.resource_type in BUILDABLE:
            by_name.setdefault(node.name, []).append(uid)
            by_fqn.setdefault(".".join(node.fqn), []).append(uid)
    chosen: set[UniqueId] = set()
    for selector in selectors:
        value, plus = (selector[:-1], True) if selector.endswith("+") else (selector, False)
        dotted, _, path = value.partition(",path:")
        candidates = by_fqn.get(dotted, []) if path else by_name.get(value) or by_fqn.get(value, [])
        if path:
            candidates = [uid for uid in candidates if graph.assets[uid].path == path]
        if len(candidates) != 1 or (not path and any(c in value for c in "@*?[]:")):
            chosen |= select_assets(graph, [selector])
            continue
        uid = candidates[0]
        chosen.add(uid)
        if plus:
            chosen |= graph.descendants(uid)
    return chosen


def ensure_project(models: int, sources: int | None, seeds: int | None, snapshots: int | None,
                   policies: bool = False, realistic: bool = False) -> Path:
    """benchmarks/.work/synth_<N> (synth_<N>_policies with freshness policies everywhere; a ``_realistic``
    suffix for ``generate_project.py --realistic``), generated and parsed if missing, re-parsed if stale."""
    project_dir = WORK / ((f"synth_{models}_policies" if policies else f"synth_{models}")
                          + ("_realistic" if realistic else ""))
    manifest = project_dir / "target" / "manifest.json"
    if not (project_dir / "dbt_project.yml").is_file() or not manifest.is_file():
        # No manifest: never generated, or generation stopped part-way. generate() starts afresh
        # (and refuses to touch a directory that is not a synthetic project).
        n_sources = sources if sources is not None else max(2, models // 50)
        n_seeds = seeds if seeds is not None else max(1, models // 200)
        n_snapshots = snapshots if snapshots is not None else max(1, models // 500)
        print(f"generating {project_dir} ({models} models, {n_sources} sources, {n_seeds} seeds, "
              f"{n_snapshots} snapshots) ...", flush=True)
        generate(project_dir, models, n_sources, n_seeds, n_snapshots, policies=policies, realistic=realistic)
    elif sources is not None or seeds is not None or snapshots is not None:
        print(f"note: reusing {project_dir}; --sources/--seeds/--snapshots apply only when generating",
              flush=True)
    newest_mtime, newest = load_project(project_dir).newest_file()
    if not manifest.is_file() or manifest.stat().st_mtime < newest_mtime:
        why = "missing" if not manifest.is_file() else f"older than {newest}"
        print(f"{manifest} is {why}: running dbt parse ...", flush=True)
        start = time.perf_counter()
        parse(project_dir)
        print(f"dbt parse took {time.perf_counter() - start:.1f}s", flush=True)
    return project_dir


def populate_state(project_dir: Path, state_path: Path | str) -> dict[str, Any]:
    """Record every buildable asset as materialized (fake build) and every source as observed."""
    runner = SuccessRunner()
    start = time.perf_counter()
    with Project(Options(project_dir, state_path=state_path), runner=runner) as project:
        runner.project = project
        result = project.sync()
        if not result.ok or result.not_run or len(result.built) != len(result.plan.to_build):
            raise SystemExit(f"fake sync did not record every asset: {len(result.built)} built of "
                             f"{len(result.plan.to_build)}, failed {len(result.failed)}, "
                             f"skipped {len(result.skipped)}, not run {len(result.not_run)}")
        outcomes = project.observe()
        errors = [o.error for o in outcomes if o.error]
        if errors:
            raise SystemExit(f"observing the sources failed: {errors[:3]}")
        report = project.status(observe=False)
        graph = project.graph
        counts = {s.value: 0 for s in Status}
        for status in report.statuses.values():
            counts[status.status.value] += 1
        kinds = {kind: sum(1 for n in graph.assets.values() if n.resource_type == kind)
                 for kind in ("model", "seed", "snapshot", "source")}
        info = {
            "assets": len(graph),
            "asset_kinds": kinds,
            "ephemeral_models": sum(1 for n in project.manifest.nodes.values() if n.is_ephemeral),
            "data_tests": len(project.manifest.test_names),
            "built": len(result.built),
            "builds": runner.builds,
            "sources_observed": len(outcomes),
            "statuses": counts,
            "dbt_version": project.manifest.dbt_version,
            "seconds": time.perf_counter() - start,
        }
    if counts[Status.FRESH.value] != info["assets"]:
        print(f"warning: after the fake build not every asset is fresh: {counts}", flush=True)
    return info


def cpu_seconds() -> float:
    """User + system CPU time of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(variant: Variant, cache: Path, env: dict[str, str]) -> tuple[float, float]:
    """One run of ``variant``: (wall seconds, CPU seconds of its process)."""
    if variant.drop_cache:
        cache.unlink(missing_ok=True)
        cache.with_name(GRAPH_CACHE_NAME).unlink(missing_ok=True)
    cpu = cpu_seconds()
    start = time.perf_counter()
    completed = subprocess.run(variant.argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    if completed.returncode != 0:
        raise SystemExit(f"{variant.name} failed with exit code {completed.returncode}: "
                         f"{' '.join(variant.argv)}\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    return elapsed, cpu


def time_variants(variants: list[Variant], repeat: int, cache: Path, env: dict[str, str]) -> None:
    """One untimed warm-up round, then ``repeat`` rounds with the order rotating each round."""
    for variant in variants:
        run_once(variant, cache, env)
    for round_no in range(repeat):
        shift = round_no % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            variant.loads.append(os.getloadavg()[0])
            wall, cpu = run_once(variant, cache, env)
            variant.samples.append(wall)
            variant.cpu.append(cpu)
        print(f"round {round_no + 1}/{repeat}: "
              + ", ".join(f"{v.name} {v.samples[-1]:.3f}s, CPU {v.cpu[-1]:.3f}s (load {v.loads[-1]:.2f})"
                          for v in variants), flush=True)


def markdown(rows: list[Row]) -> str:
    lines = ["| variant | median (s) | min (s) | ratio to json.load (median) | CPU median (s) | "
             "CPU ratio to json.load | load avg (1 min, median) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.variant} | {r.median:.3f} | {r.minimum:.3f} | {r.ratio:.2f}x | {r.cpu_median:.3f} | "
              f"{r.cpu_ratio:.2f}x | {r.load:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", type=int, default=5000, help="project size N (default: 5000)")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (default: 7)")
    parser.add_argument("--sources", type=int, help="when generating: default max(2, N // 50)")
    parser.add_argument("--seeds", type=int, help="when generating: default max(1, N // 200)")
    parser.add_argument("--snapshots", type=int, help="when generating: default max(1, N // 500)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers to PATH as JSON")
    parser.add_argument("--policies", action="store_true",
                        help="a project with dbt freshness policies on every model and source (synth_<N>_policies)")
    parser.add_argument("--with-policies", action="store_true",
                        help="also time status on synth_<N>_policies (the same project with build_after on every "
                             "model and warn/error_after on every source), interleaved with the rest")
    parser.add_argument("--realistic", action="store_true",
                        help="generate_project.py --realistic: packages of macros, docs, exposures, semantic models, "
                             "groups, versions, unread sources (synth_<N>_realistic)")
    parser.add_argument("--postgres", action="store_true",
                        help="also time status with the state store on a private PostgreSQL server on loopback")
    parser.add_argument("--postgres-url", metavar="URL", help="with --postgres: use this (empty) database instead")
    args = parser.parse_args(argv)
    if args.models < 1 or args.repeat < 1:
        parser.error("--models and --repeat must be at least 1")

    cli = Path(sys.executable).parent / "dbtassets"
    if not cli.is_file():
        raise SystemExit(f"{cli} not found: run this with the interpreter of the venv dbtassets is installed in")
    project_dir = ensure_project(args.models, args.sources, args.seeds, args.snapshots, args.policies,
                                 args.realistic)
    manifest = project_dir / "target" / "manifest.json"
    cache = manifest.with_name(CACHE_NAME)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DBTASSETS_STATE", "DBT_PROJECT_DIR", "DBT_PROFILES_DIR", "DBT_TARGET",
                        "PYTHONDONTWRITEBYTECODE")}
    if (project_dir / ".dbtassets" / "state.db").exists():
        raise SystemExit(f"{project_dir}/.dbtassets/state.db exists: the fresh-state variants need a project with no "
                         "default store; delete it (the benchmark's own stores live in a scratch directory)")

    server = None
    with tempfile.TemporaryDirectory(prefix="bench-status-") as scratch:
        state = Path(scratch) / "state.db"
        print(f"populating the state store {state} with a fake build (no dbt build runs) ...", flush=True)
        info = populate_state(project_dir, state)
        print(f"fake build of {info['built']} assets recorded in {info['seconds']:.1f}s", flush=True)
        extra: list[Variant] = []
        if args.with_policies and not args.policies:
            policed = ensure_project(args.models, args.sources, args.seeds, args.snapshots, policies=True,
                                     realistic=args.realistic)
            policed_state = Path(scratch) / "state-policies.db"
            populate_state(policed, policed_state)
            policed_status = [str(cli), "--project-dir", str(policed), "--state", str(policed_state), "status"]
            extra = [Variant("dbtassets status (warm cache), policies on every model", policed_status),
                     Variant("dbtassets status --no-observe (warm cache), policies on every model",
                             [*policed_status, "--no-observe"])]
            for variant in extra:
                run_once(variant, policed / "target" / CACHE_NAME, env)  # writes that project's cache
        pg_url = args.postgres_url
        if args.postgres and pg_url is None:
            server = start_postgres()
            pg_url = server.url(server.database("bench"))

        status = [str(cli), "--project-dir", str(project_dir), "--state", str(state), "status"]
        fresh = [str(cli), "--project-dir", str(project_dir), "status"]  # the default store, which does not exist
        variants = [
            Variant(BASELINE, [sys.executable, "-c", f"import json; json.load(open({str(manifest)!r}))"]),
            Variant("dbtassets status (warm cache)", status),
            Variant("dbtassets status (cold: cache deleted)", status, drop_cache=True),
            Variant("dbtassets status --no-observe (warm cache)", [*status, "--no-observe"]),
            Variant("dbtassets status --format json (warm cache)", [*status, "--format", "json"]),
            Variant("dbtassets status (fresh state: no store yet)", fresh),
            Variant("dbtassets status --format json (fresh state: no store yet)", [*fresh, "--format", "json"]),
            *extra,
            Variant("python -c pass", [sys.executable, "-c", "pass"]),
        ]
        try:
            if args.postgres:
                print("populating a PostgreSQL state store the same way ...", flush=True)
                pg_info = populate_state(project_dir, pg_url)
                print(f"fake build of {pg_info['built']} assets recorded in {pg_info['seconds']:.1f}s", flush=True)
                pg_status = [str(cli), "--project-dir", str(project_dir), "--state", pg_url, "status"]
                variants += [Variant(f"{PG} status (warm cache)", pg_status),
                             Variant(f"{PG} status --no-observe (warm cache)", [*pg_status, "--no-observe"])]
            check = subprocess.run(status, env=env, capture_output=True, text=True)
            if check.returncode != 0 or not cache.is_file():
                raise SystemExit(f"dbtassets status failed or wrote no cache ({cache}):\n{check.stdout}{check.stderr}")
            status_says = (check.stdout.strip().splitlines() or ["(no output)"])[-1]
            time_variants(variants, args.repeat, cache, env)
        finally:
            if server is not None:
                server.stop()

    base, cpu_base = statistics.median(variants[0].samples), statistics.median(variants[0].cpu)
    rows = [Row(v.name, statistics.median(v.samples), min(v.samples), statistics.median(v.samples) / base,
                v.samples, statistics.median(v.loads), statistics.median(v.cpu),
                statistics.median(v.cpu) / cpu_base, v.cpu) for v in variants]
    kinds = info["asset_kinds"]
    meta = {
        "models_requested": args.models,
        "realistic": args.realistic,
        "project_dir": str(project_dir),
        "manifest_mb": manifest.stat().st_size / 1_000_000,
        "cache_mb": cache.stat().st_size / 1_000_000,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "dbtassets": dbtassets.__version__,
        "dbtassets_dist": metadata.version("dbtassets"),
        "dbt_version_of_manifest": info["dbt_version"],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "state": "populated in-process by a fake runner (every asset built successfully); no dbt build ran",
        "status_output_last_line": status_says,
        **{k: v for k, v in info.items() if k not in ("dbt_version", "seconds")},
        "populate_seconds": info["seconds"],
    }

    print()
    print(f"## dbtassets status, N = {args.models} models\n")
    print(f"- project: {project_dir} ({kinds['model']} model assets + {info['ephemeral_models']} ephemeral, "
          f"{kinds['source']} sources, {kinds['seed']} seeds, {kinds['snapshot']} snapshots, "
          f"{info['data_tests']} data tests)")
    print(f"- manifest.json: {meta['manifest_mb']:.1f} MB (dbt {info['dbt_version']}); "
          f"dbtassets cache: {meta['cache_mb']:.1f} MB")
    print(f"- assets: {info['assets']}; after the fake build: {info['statuses']}; status says: {status_says}")
    print(f"- Python {meta['python']}, dbtassets {meta['dbtassets']} ({meta['platform']}, {meta['cpus']} CPUs)")
    print(f"- {args.repeat} interleaved rounds after one warm-up round; wall clock and CPU time (user + system, "
          "getrusage of the child) per whole process")
    print("- state store: every buildable asset recorded as built by an in-process fake runner and every source "
          "observed once; no dbt build ran (building this many models with dbt takes too long)")
    print()
    print(markdown(rows))
    if args.postgres:
        medians = {r.variant: r.median for r in rows}
        for what in ("status (warm cache)", "status --no-observe (warm cache)"):
            ratio = medians[f"{PG} {what}"] / medians[f"dbtassets {what}"]
            meta[f"postgres_over_sqlite {what}"] = ratio
            print(f"\nPostgreSQL store / SQLite store, {what}: {ratio:.2f}x (medians)", end="")
        print()
    if args.json is not None:
        args.json.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in rows]}, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
