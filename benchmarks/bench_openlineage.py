"""Benchmark a build pass with OpenLineage off against OpenLineage on a receiver that is down.

On a fresh copy of example_project (``dbt parse`` and a first ``sync`` done once), each round lands a
new orders file (so ``raw.orders`` moves and ``stg_orders`` and what reads it are stale) and runs
``dbtassets sync`` as a whole process, timed with the wall clock, in two variants interleaved in a
rotating order so that machine noise falls on both alike:

- ``off``: nothing configures OpenLineage;
- ``receiver down``: ``--openlineage http://127.0.0.1:PORT`` where nothing listens (connection refused).

The whole process is timed (wall clock, and the CPU time of its process tree, which a busy machine
disturbs less): it is what a user (or a scheduler) waits for, closing included (with the
receiver down, the sender gives up at once when the command ends, and says how many batches it dropped).
Beside each figure is the 1-minute load average read before each of that variant's runs (median). The children
run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` is dropped from their environment), as users run.

Usage::

    .venv/bin/python benchmarks/bench_openlineage.py [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "example_project"
HEADER = "order_id,customer_id,ordered_at,product,quantity,unit_price\n"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CPU: dict[str, list[float]] = {}  # user + system CPU seconds of each run's process tree, by variant
LOAD: dict[str, list[float]] = {}  # the 1-minute load average before each run, by variant
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
       "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def dbtassets(project: Path, *args: str, variant: str = "") -> float:
    LOAD.setdefault(variant, []).append(os.getloadavg()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dbtassets", "--project-dir", str(project), *args],
                          capture_output=True, text=True, env=ENV)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(variant, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"dbtassets {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "shopflow"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("target", ".dbtassets", "*.duckdb", "logs"))
        dbtassets(project, "sync")
        variants = {"off": [], "receiver down": [f"--openlineage=http://127.0.0.1:{free_port()}"]}
        times: dict[str, list[float]] = {name: [] for name in variants}
        landing = 0
        for round_ in range(args.repeat):
            order = list(variants)[round_ % 2:] + list(variants)[:round_ % 2]
            for name in order:
                landing += 1
                (project / "data" / "raw" / "orders" / f"orders_{landing + 1:04d}.csv").write_text(
                    HEADER + f"{1000 + landing},1,2026-11-02 09:00:00,notebook,1,4.50\n")
                times[name].append(dbtassets(project, "sync", *variants[name], variant=name))
    load = os.getloadavg()
    result = {"repeat": args.repeat, "python": platform.python_version(), "cpus": os.cpu_count(),
              "load_after": round(load[0], 2),
              "variants": {name: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
                                  "max_s": round(max(t), 3), "runs_s": [round(x, 3) for x in t],
                                  "cpu_median_s": round(statistics.median(CPU[name]), 3),
                                  "load_median": round(statistics.median(LOAD[name]), 2)}
                           for name, t in times.items()}}
    off, down = (result["variants"][n]["median_s"] for n in variants)  # type: ignore[index]
    result["difference_s"] = round(down - off, 3)
    print(f"## dbtassets sync after a landing, OpenLineage off and on a receiver that is down ({args.repeat} rounds)\n")
    print(f"- Python {result['python']}, {result['cpus']} CPUs; example_project (DuckDB), a new orders file before "
          "each sync\n")
    print("| OpenLineage | wall median (s) | min (s) | max (s) | CPU median (s) | load before (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in result["variants"].items():  # type: ignore[union-attr]
        print(f"| {name} | {row['median_s']:.2f} | {row['min_s']:.2f} | {row['max_s']:.2f} | "
              f"{row['cpu_median_s']:.2f} | {row['load_median']:.2f} |")
    ratio = down / off if off else float("nan")
    print(f"\nReceiver down / off, wall medians: {ratio:.3f}x ({result['difference_s']:+.2f} s); "
          f"load average after: {load[0]:.2f}")
    for name, row in result["variants"].items():  # type: ignore[union-attr]
        print(f"\nThe runs (s), {name}: {', '.join(f'{x:.2f}' for x in row['runs_s'])}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
