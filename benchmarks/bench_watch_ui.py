"""Benchmark ``watch`` with and without the page: what ``--ui`` costs, and that not using it costs nothing.

Three variants on copies of ``example_project`` (each its own copy, synced once by its own code),
interleaved in a rotating order over ``--repeat`` rounds after an untimed warm-up round:

- ``BEFORE`` (default ``a8a053b``, the last commit without the page), exported with ``git archive`` as
  ``bench_trees.py`` does and run with that tree first on ``PYTHONPATH``: ``watch``;
- this working tree: ``watch``;
- this working tree: ``watch --ui 127.0.0.1:0``.

Each round starts the watcher (``--format json``) and measures the seconds from the process start to
its ``watching`` event (start-up: imports, parse, the lock) and, once its first pass is idle, lands
two order batches one after the other (atomic rename) and times the second, from its rename to the
``build_finished`` that lists ``fact_sales`` (a pass and a build; the first build also loads dbt into
the watcher); then SIGTERM. Separately, each variant is started once under ``python -X importtime`` and
its imported modules counted, with those of ``dbtassets.ui`` and of the server's libraries
(``http.server``, ``prometheus_client``) named: without ``--ui`` there must be none.

Usage::

    .venv/bin/python benchmarks/bench_watch_ui.py [--before a8a053b] [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_trees import export
from bench_watch import OrderLoader, clean_env, copy_project

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_MODULES = ("dbtassets.ui", "http.server", "prometheus_client")


class Watcher:
    def __init__(self, tree: Path, project: Path, extra: list[str], importtime: bool = False) -> None:
        env = clean_env()
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "dbtassets", "--project-dir",
             str(project), "watch", "--format", "json", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=project)
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._out, daemon=True).start()
        threading.Thread(target=self._err, daemon=True).start()

    def _out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.events.put((time.monotonic(), json.loads(line)))

    def _err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def wait(self, kind: str, timeout: float = 120, where: Any = lambda e: True) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                at, event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event["event"] == kind and where(event):
                return at
        self.stop()
        raise SystemExit(f"no {kind} within {timeout}s; stderr: {''.join(self.stderr)[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def sync(tree: Path, project: Path) -> None:
    env = clean_env()
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", "dbtassets", "--project-dir", str(project), "sync"],
                          capture_output=True, text=True, env=env, timeout=600,
                          cwd=project)  # not the repository: ``-m`` puts the cwd first on sys.path
    if done.returncode != 0:
        raise SystemExit(f"sync exited {done.returncode}: {done.stderr[-1000:]}")


def one_round(tree: Path, project: Path, extra: list[str], loader: OrderLoader) -> tuple[float, float]:
    watcher = Watcher(tree, project, extra)
    try:
        startup = watcher.wait("watching") - watcher.started
        watcher.wait("fresh", where=lambda e: True)  # the first pass found nothing to build: idle
        for _ in range(2):  # the first build loads dbt into the watcher: the second is a pass and a build
            _, landed_at = loader.land()
            finished = watcher.wait("build_finished", where=lambda e: "fact_sales" in e.get("built", ()))
        # ``land`` takes time.time() just before the rename; compare on the monotonic clock from now
        return startup, finished - (time.monotonic() - (time.time() - landed_at))
    finally:
        watcher.stop()


def modules(tree: Path, project: Path, extra: list[str]) -> dict[str, Any]:
    watcher = Watcher(tree, project, extra, importtime=True)
    try:
        watcher.wait("watching")
        watcher.wait("fresh")
    finally:
        watcher.stop()
    names = [line.split("|")[-1].strip() for line in watcher.stderr if line.startswith("import time:")
             and "|" in line and not line.rstrip().endswith("imported package")]
    names = [n for n in names if n and n != "imported package"]
    server = sorted({n for n in names if n.startswith(SERVER_MODULES)})
    return {"modules": len(set(names)), "dbtassets": len({n for n in names if n.startswith("dbtassets")}),
            "server_modules": server}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="a8a053b")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    before = export(args.before)
    scratch = Path(tempfile.mkdtemp(prefix="bench_watch_ui_"))
    variants = {f"{args.before}: watch": (before, []), "this tree: watch": (ROOT, []),
                "this tree: watch --ui": (ROOT, ["--ui", "127.0.0.1:0"])}
    projects: dict[str, Path] = {}
    loaders: dict[str, OrderLoader] = {}
    for i, (name, (tree, _)) in enumerate(variants.items()):
        projects[name] = copy_project(scratch / f"v{i}")
        sync(tree, projects[name])
        loaders[name] = OrderLoader(projects[name], rows=5, seed=i)
    samples: dict[str, dict[str, list[float]]] = {n: {"startup": [], "landing": []} for n in variants}
    names = list(variants)
    for r in range(args.repeat + 1):
        for name in names[r % len(names):] + names[:r % len(names)]:
            tree, extra = variants[name]
            startup, landing = one_round(tree, projects[name], extra, loaders[name])
            if r:  # round 0 warms the caches, untimed
                samples[name]["startup"].append(startup)
                samples[name]["landing"].append(landing)
        print(f"round {r} done", flush=True)
    imports = {name: modules(tree, projects[name], extra) for name, (tree, extra) in variants.items()}
    shutil.rmtree(scratch, ignore_errors=True)
    base = statistics.median(samples[names[0]]["startup"])
    base_landing = statistics.median(samples[names[0]]["landing"])
    load = os.getloadavg()
    print(f"\n## watch with and without the page, side by side (example_project, {args.repeat} interleaved rounds)\n")
    print(f"Load average at the end: {load[0]:.1f}. Whole processes, `python -m dbtassets watch --format json`; "
          "start-up is process start to the `watching` event; landing is the rename of one order batch to the "
          "`build_finished` that lists `fact_sales` (the second landing of the round: the first loads dbt).\n")
    print("| variant | start-up: median (s) | min | / before | landing → built: median (s) | min | / before |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        s, la = samples[name]["startup"], samples[name]["landing"]
        print(f"| {name} | {statistics.median(s):.3f} | {min(s):.3f} | {statistics.median(s) / base:.2f}x | "
              f"{statistics.median(la):.3f} | {min(la):.3f} | {statistics.median(la) / base_landing:.2f}x |")
    print("\n| variant | modules imported | of them dbtassets' | page server modules imported |")
    print("|---|---:|---:|---|")
    for name in names:
        found = imports[name]
        shown = ", ".join(f"`{m}`" for m in found["server_modules"][:4]) or "none"
        more = len(found["server_modules"]) - 4
        shown += f" (+{more} more)" if more > 0 else ""
        print(f"| {name} | {found['modules']} | {found['dbtassets']} | {shown} |")
    result = {"before": args.before, "repeat": args.repeat, "samples": samples, "imports": imports,
              "load_end": load[0]}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    for name in names[:2]:
        if imports[name]["server_modules"]:
            raise SystemExit(f"{name} imported the page's server: {imports[name]['server_modules']}")


if __name__ == "__main__":
    main()
