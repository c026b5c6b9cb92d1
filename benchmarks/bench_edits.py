"""Benchmark what a user waits for while editing: ``status`` after an edit, ``lint``, ``check --against`` and a
``--target`` switch, on copies of example_project, against the dbt command each one wraps.

Every variant runs as a whole process, the way a user runs it, timed with the wall clock, in
interleaved rounds (the order rotates every round) so that machine noise falls on all alike:

- ``dbt parse`` after editing one model, and ``dbt compile`` of the unchanged project: the yardsticks;
- ``status`` after editing one model (the project was synced once with real dbt, so the edited model
  is compiled to compare its SQL);
- ``lint`` of the unchanged project, and ``lint`` after editing one model;
- ``check --against`` production's artifacts (``dbt compile --target-path`` of the unedited project)
  after editing one model;
- ``status --no-observe`` switching ``--target`` (dev, prod, dev, …: every run a switch).

Each variant has its own copy of the project, so one's parse never serves another. An edit appends a
new comment line to ``models/staging/stg_orders.sql`` before the run (untimed). With ``--baseline DIR``
(a checkout of another revision's package, e.g. ``git archive 851a507 dbtassets | tar -x -C DIR``)
every dbtassets variant also runs with that code, in the same rounds, on copies of its own.

Usage::

    .venv/bin/python benchmarks/bench_edits.py [--repeat 5] [--baseline DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXAMPLE = REPO / "example_project"
EDITED = Path("models/staging/stg_orders.sql")
_SKIP = shutil.ignore_patterns("target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal", "__pycache__")


@dataclass
class Variant:
    """One command to time in its own copy of the project, and what to do (untimed) before each run."""

    name: str
    project: Path
    argv: Callable[[int], list[str]]  # the command of run N
    code: Path | None  # PYTHONPATH for dbtassets' code (None: dbt itself)
    edit: bool = False
    samples: list[float] = field(default_factory=list)


def run(argv: list[str], project: Path, code: Path | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBT_PROFILES_DIR": str(project), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
    if check and result.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv)} failed in {project} ({result.returncode}): {result.stderr[-2000:]}")
    return result


def dbtassets(*args: str) -> list[str]:
    return [sys.executable, "-m", "dbtassets", *args]


def dbt(*args: str) -> list[str]:
    return [sys.executable, "-m", "dbt.cli.main", *args]


def edit(project: Path, number: int) -> None:
    with (project / EDITED).open("a") as f:
        f.write(f"-- edit {number}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a directory holding another revision's dbtassets package, timed alongside")
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    codes = {"": REPO, **({" (baseline)": options.baseline.resolve()} if options.baseline else {})}
    load_before = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-edits-") as scratch:
        work = Path(scratch)
        synced = work / "synced"
        shutil.copytree(EXAMPLE, synced, ignore=_SKIP)
        run(dbtassets("sync"), synced, REPO)  # real dbt: every asset built once
        artifacts = work / "prod-artifacts"
        run(dbt("compile", "--target-path", str(artifacts)), synced, None)
        for stale in ("dbtassets-manifest.cache", "dbtassets-parse.record", "dbtassets-declared.cache"):
            (synced / "target" / stale).unlink(missing_ok=True)

        def copy(name: str) -> Path:
            target = work / name.replace(" ", "_").replace("(", "").replace(")", "")
            shutil.copytree(synced, target, symlinks=True)
            return target

        variants = [
            Variant("dbt parse, after an edit", copy("dbt parse"), lambda n: dbt("parse"), None, edit=True),
            Variant("dbt compile", copy("dbt compile"), lambda n: dbt("compile"), None),
        ]
        for suffix, code in codes.items():
            variants += [
                Variant(f"status, after an edit{suffix}", copy(f"status{suffix}"), lambda n: dbtassets("status"), code,
                        edit=True),
                Variant(f"lint{suffix}", copy(f"lint{suffix}"), lambda n: dbtassets("lint"), code),
                Variant(f"lint, after an edit{suffix}", copy(f"lint edit{suffix}"), lambda n: dbtassets("lint"), code,
                        edit=True),
                Variant(f"check --against, after an edit{suffix}", copy(f"check{suffix}"),
                        lambda n: dbtassets("check", "--no-observe", "--against", str(artifacts)), code, edit=True),
                Variant(f"status --no-observe, switching --target{suffix}", copy(f"switch{suffix}"),
                        lambda n: dbtassets("--target", "prod" if n % 2 == 0 else "dev", "status", "--no-observe"),
                        code),
            ]
        counter = 0
        for variant in variants:  # warm-up: the page cache, each copy's first parse and caches
            counter += 1
            if variant.edit:
                edit(variant.project, counter)
            run(variant.argv(1), variant.project, variant.code)
        for round_number in range(options.repeat):
            order = variants[round_number % len(variants):] + variants[: round_number % len(variants)]
            for variant in order:
                counter += 1
                if variant.edit:
                    edit(variant.project, counter)
                start = time.perf_counter()
                run(variant.argv(len(variant.samples)), variant.project, variant.code)
                variant.samples.append(time.perf_counter() - start)
    load_after = os.getloadavg()
    rows = {v.name: {"median": statistics.median(v.samples), "min": min(v.samples), "samples": v.samples}
            for v in variants}
    print(f"## edits on example_project, {options.repeat} interleaved rounds\n")
    print(f"- {platform.node()}, {os.cpu_count()} cpus, python {platform.python_version()}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{(time.time() - started) / 60:.1f} min\n")
    print("| variant | median (s) | min (s) |")
    print("|---|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['median']:.2f} | {row['min']:.2f} |")
    if options.baseline:
        print("\n| operation | this revision / baseline (medians) |")
        print("|---|---:|")
        for name, row in rows.items():
            if f"{name} (baseline)" in rows:
                print(f"| {name} | {row['median'] / rows[f'{name} (baseline)']['median']:.2f}x |")
    if options.json:
        options.json.write_text(json.dumps({"load": [load_before, load_after], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
