"""Benchmark ``dbtassets status`` on example_project when a source is observed by a query.

A copy of example_project gets a ``dbtassets.yml`` that observes ``raw.orders`` with a watermark
query (``every: 1h``) and is synced once with real dbt. Then, interleaved in every round so that
machine noise falls on all of them alike, each as a whole process (interpreter start-up and all):

- ``status`` (last observation fresh): the observation made by the previous run is younger than
  ``every:``, so it is reused: no ``dbt show``;
- ``status --observe``: forces a fresh read of the query source (one ``dbt show``);
- ``status --no-observe``: reads no source, for reference.

Usage::

    .venv/bin/python benchmarks/bench_query_status.py [--repeat 7] [--json out.json]
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "example_project"
CONFIG = """sources:
  raw.orders:
    query: "select count(*) from read_csv('data/raw/orders/*.csv', header = true)"
    every: 1h
"""


def dbtassets(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    return subprocess.run([sys.executable, "-m", "dbtassets", "--project-dir", str(project), *args],
                          capture_output=True, text=True, env=env, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each variant (default 7)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-query-status-") as scratch:
        project = Path(scratch) / "shopflow"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("target", "logs", ".dbtassets", "*.duckdb*"))
        (project / "dbtassets.yml").write_text(CONFIG)
        synced = dbtassets(project, "sync")
        if synced.returncode != 0:
            sys.exit(f"sync failed: {synced.stdout}{synced.stderr}")
        variants = {"status (last observation fresh)": ["status"], "status --observe": ["status", "--observe"],
                    "status --no-observe": ["status", "--no-observe"]}
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for args in variants.values():  # warm-up: caches, the first query observation
            dbtassets(project, *args)
        for round_number in range(options.repeat):
            names = list(variants)
            names = names[round_number % len(names):] + names[: round_number % len(names)]
            for name in names:
                start = time.perf_counter()
                result = dbtassets(project, *variants[name])
                samples[name].append(time.perf_counter() - start)
                if result.returncode != 0:
                    sys.exit(f"{name} failed: {result.stderr}")
                if name.startswith("status (last") and "dbt show" in result.stderr:
                    sys.exit("the fresh observation was not reused")
    rows = {name: {"median": statistics.median(s), "min": min(s), "samples": s} for name, s in samples.items()}
    print(f"## status with a query source, {options.repeat} interleaved rounds\n")
    print("```")
    print(f"{'variant':36} {'median s':>9} {'min s':>7}   ({options.repeat} runs each; {platform.node()}, "
          f"{os.cpu_count()} cpus, python {platform.python_version()})")
    for name, row in rows.items():
        print(f"{name:36} {row['median']:9.3f} {row['min']:7.3f}")
    print("```")
    if options.json:
        options.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
