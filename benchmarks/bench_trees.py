"""Benchmark two versions of dbtassets side by side: the same commands, the same project, interleaved.

For a change that must not move the figures (a refactor), run it with the commit before the change
and the commit after: each is exported with ``git archive`` into ``benchmarks/.work/trees/<ref>``
and run as ``python -m dbtassets`` with that tree first on ``PYTHONPATH`` (same interpreter, same
installed dbt), on its own copy of the synthetic project (each version keeps its own manifest
cache) and of one populated state store. Every round runs every variant of every version, in a
rotating order, so machine noise falls on all of them alike. The state store is populated by this
checkout's code, as ``bench_status.py`` does (a fake build: every asset recorded built).

With ``--instructions``, each command also runs once per version under ``valgrind --tool=callgrind``
with ``PYTHONHASHSEED=0``, and the instructions it executed are compared: a count that does not move
with the machine's load, for when the machine is too busy for wall-clock medians to settle.

Usage::

    .venv/bin/python benchmarks/bench_trees.py BEFORE [AFTER] [--models 5000] [--repeat 7] [--instructions]

AFTER defaults to this working tree as it is (uncommitted changes included).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from bench_status import ensure_project, populate_state

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TREES = HERE / ".work" / "trees"
COMMANDS = {  # variant -> dbtassets arguments after --project-dir/--state
    "status --no-observe": ["status", "--no-observe"],
    "status": ["status"],
    "status --format json": ["status", "--format", "json"],
    "sync --dry-run": ["sync", "--dry-run"],
}


def export(ref: str) -> Path:
    """The package of ``ref`` (a commit, or ``.`` for the working tree), as a directory to put on PYTHONPATH."""
    if ref == ".":
        return ROOT
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    tree = TREES / commit
    if not (tree / "dbtassets" / "__init__.py").is_file():
        archive = subprocess.run(["git", "archive", "--format=tar", commit, "dbtassets"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    return tree


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("before", help="the commit to compare against")
    parser.add_argument("after", nargs="?", default=".", help="the other commit (default: this working tree)")
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--instructions", action="store_true", help="also count instructions under callgrind")
    args = parser.parse_args(argv)
    trees = {"before": export(args.before), "after": export(args.after)}
    project = ensure_project(args.models, None, None, None)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DBTASSETS_STATE", "DBT_PROJECT_DIR", "DBT_PROFILES_DIR", "DBT_TARGET", "PYTHONPATH")}
    samples: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-trees-") as scratch:
        state = Path(scratch) / "state.db"
        print(f"populating {state} with a fake build ...", flush=True)
        populate_state(project, state)
        runs = []
        for name, tree in trees.items():
            copy = Path(scratch) / f"project-{name}"
            shutil.copytree(project, copy, ignore=shutil.ignore_patterns("dbtassets-manifest.cache", "logs"))
            shutil.copy(state, Path(scratch) / f"state-{name}.db")
            for variant, command in COMMANDS.items():
                argv = [sys.executable, "-m", "dbtassets", "--project-dir", str(copy),
                        "--state", str(Path(scratch) / f"state-{name}.db"), *command]
                runs.append(((name, variant), argv, {**env, "PYTHONPATH": str(tree)}))
        def once(argv: list[str], run_env: dict[str, str]) -> float:
            start = time.perf_counter()
            done = subprocess.run(argv, env=run_env, capture_output=True, text=True, cwd=scratch)
            elapsed = time.perf_counter() - start
            if done.returncode not in (0, 1):  # 1: something needs attention (never here: all fresh)
                raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
            return elapsed
        for _, argv, run_env in runs:  # warm-up: writes each copy's manifest cache
            once(argv, run_env)
        for round_no in range(args.repeat):
            shift = round_no % len(runs)
            for key, argv, run_env in runs[shift:] + runs[:shift]:
                samples.setdefault(key, []).append(once(argv, run_env))
            print(f"round {round_no + 1}/{args.repeat} done", flush=True)
        counted: dict[tuple[str, str], int] = {}
        if args.instructions:
            for key, argv, run_env in runs:
                counted[key] = instructions(argv, {**run_env, "PYTHONHASHSEED": "0"}, scratch)
                print(f"{key[0]} {key[1]}: {counted[key]:,} instructions", flush=True)
    print(f"\n### {args.before} (before) and {args.after} (after), side by side, N = {args.models} models\n")
    print(f"{args.repeat} interleaved rounds after a warm-up; {platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}; whole process, `python -m dbtassets`\n")
    print("| command | before: median (s) | after: median (s) | after / before | before: min | after: min |")
    print("|---|---:|---:|---:|---:|---:|")
    for variant in COMMANDS:
        b, a = samples[("before", variant)], samples[("after", variant)]
        print(f"| `{variant}` | {statistics.median(b):.3f} | {statistics.median(a):.3f} | "
              f"{statistics.median(a) / statistics.median(b):.2f}x | {min(b):.3f} | {min(a):.3f} |")
    if counted:
        print("\n| command | before: instructions | after: instructions | after / before |")
        print("|---|---:|---:|---:|")
        for variant in COMMANDS:
            b_count, a_count = counted[("before", variant)], counted[("after", variant)]
            print(f"| `{variant}` | {b_count:,} | {a_count:,} | {a_count / b_count:.3f}x |")


def instructions(argv: list[str], run_env: dict[str, str], cwd: str) -> int:
    """The instructions one run of ``argv`` executes, counted by callgrind (its own process only)."""
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
                          env=run_env, capture_output=True, text=True, cwd=cwd)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode not in (0, 1) or found is None:
        raise SystemExit(f"callgrind run failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-2000:]}")
    return int(found.group(1))


if __name__ == "__main__":
    main()
