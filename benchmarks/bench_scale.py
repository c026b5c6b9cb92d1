"""Benchmark how dbtassets scales with the project: ``status``, ``sync --dry-run`` and ``watch``.

For each project size N (a synthetic project from ``generate_project.py``, see ``--sizes``) it
measures, as whole processes the way a user runs them:

a. ``dbtassets --project-dir P --state S status`` with the compact manifest cache warm: wall
   time, CPU time and peak RSS;
b. ``dbtassets ... sync --dry-run --format json`` after about 1% of the sources received a new
   file (``--changed-share``): wall time, CPU time, peak RSS and how many assets it would build;
c. ``dbtassets ... watch --format json --runner in-process``: time from start to its "watching"
   and first "fresh" events (the initial pass: every source observed, everything found fresh,
   nothing built), its ``VmRSS``/``VmHWM`` and thread count from ``/proc/<pid>/status`` once
   idle, its idle CPU (utime+stime delta of ``/proc/<pid>/stat`` over ``--idle`` seconds, percent
   of one core), then SIGTERM: it must print "stopped" and exit 0. Should the watcher plan a
   build instead (it would really run dbt, far too slow at this size), it is stopped at once
   and the row says so.

Peak RSS. ``ru_maxrss`` of a child is not only its own peak: on Linux, ``exec`` folds the
high-water RSS of the address space it replaces (the forked copy of the parent) into the
child's ``maxrss``, so a child of a big parent reports at least the parent's peak. (This script
checks it: a child of a parent holding 400 MB reports ~410 MB for ``python -c pass``.) Every
a/b sample therefore runs through a fresh, small intermediate ``python -S -c`` process that
starts the command, waits for it and prints ``getrusage(RUSAGE_CHILDREN)``: its only child is
the measured command, so ``ru_maxrss`` is that command's peak (floored at the intermediate's
own ~10 MB). The wall time is taken inside the intermediate around the child alone. The watcher
is read from ``/proc`` directly; ``VmHWM`` is per address space and starts afresh at ``exec``.

Isolation. Each project is copied (with its mtimes, so the manifest stays current) into a
scratch directory, and everything runs on the copy: the shared ``benchmarks/.work/synth_*``
projects are never written to. The state store is populated once per project, in a separate
process, exactly as ``bench_status.py`` does (a fake in-process runner records every model,
seed and snapshot as built; every source observed; no dbt build runs), and that pristine
store is copied back before every sample, so every sample does the same work. For a dry-run
sample the changed sources get a new file, ``batch_9999.csv``, back-dated ``--landed-ago``
seconds (so the observers' look-twice-at-recent-files pause does not fire: data that landed a
moment ago, not data still being written), which is removed after the sample.

Noise. The machine may be shared: every round runs the three measurements in a rotating order,
after one untimed warm-up round, and the table gives medians; CPU time (user+sys) is reported
beside the wall time because it is less sensitive to other load.

Code under test. By default the processes import the working tree's ``dbtassets``; others may
commit or edit it during a run (the report then says the revision changed, and a sample that had
to rewrite the manifest cache is discarded and taken again). ``--snapshot`` measures the committed
HEAD instead: ``git archive HEAD dbtassets`` (read-only) into a scratch directory put first on
PYTHONPATH for every measured process.

Usage::

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,5000,20000] [--repeat 3] [--snapshot] [--json PATH]

A size ``N:S`` means N models and S sources, in ``benchmarks/.work/synth_N_sS`` (generated and
parsed if missing); a plain ``N`` is ``benchmarks/.work/synth_N`` as ``bench_status.py`` makes it.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench_status import CACHE_NAME, WORK, ensure_project, populate_state
from generate_project import generate, parse

import dbtassets
from dbtassets.model.project import load_project

HERE = Path(__file__).resolve().parent
SCRUBBED_ENV = ("DBTASSETS_STATE", "DBT_PROJECT_DIR", "DBT_PROFILES_DIR", "DBT_TARGET", "DBT_TARGET_PATH",
                "DBT_LOG_PATH")
NEW_FILE = "batch_9999.csv"
MIB = 1024 * 1024
TARGETS = {"status_s": 2.0, "watcher_rss_mib": 1000.0}  # at 20,000 models (issue 5); 1 GB ~ 954 MiB

# Runs one command and reports its own resource usage; see the module docstring ("Peak RSS").
PROBE = r"""
import json, resource, subprocess, sys, time
argv = json.loads(sys.argv[1])
with open(sys.argv[2], "wb") as out, open(sys.argv[3], "wb") as err:
    start = time.perf_counter()
    rc = subprocess.call(argv, stdout=out, stderr=err)
    wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "maxrss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}))
"""


# -- projects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    models: int
    sources: int | None  # None: bench_status's synth_<N> with whatever sources it has

    @classmethod
    def parse(cls, text: str) -> Size:
        models, _, sources = text.strip().partition(":")
        return cls(int(models), int(sources) if sources else None)

    @property
    def label(self) -> str:
        return f"{self.models}" if self.sources is None else f"{self.models}:{self.sources}"


def ensure_sized_project(size: Size, realistic: bool = False) -> Path:
    """The shared synthetic project for ``size`` (``generate_project.py --realistic`` with ``realistic``,
    in a directory with a ``_realistic`` suffix), generated and parsed if missing or stale."""
    if size.sources is None:
        return ensure_project(size.models, None, None, None, realistic=realistic)
    project_dir = WORK / (f"synth_{size.models}_s{size.sources}" + ("_realistic" if realistic else ""))
    manifest = project_dir / "target" / "manifest.json"
    if not (project_dir / "dbt_project.yml").is_file() or not manifest.is_file():
        seeds, snapshots = max(1, size.models // 200), max(1, size.models // 500)
        print(f"generating {project_dir} ({size.models} models, {size.sources} sources, {seeds} seeds, "
              f"{snapshots} snapshots) ...", flush=True)
        generate(project_dir, size.models, size.sources, seeds, snapshots, realistic=realistic)
    newest_mtime, newest = load_project(project_dir).newest_file()
    if not manifest.is_file() or manifest.stat().st_mtime < newest_mtime:
        print(f"{manifest} is missing or older than {newest}: running dbt parse ...", flush=True)
        start = time.perf_counter()
        parse(project_dir)
        print(f"dbt parse took {time.perf_counter() - start:.1f}s", flush=True)
    return project_dir


def copy_project(source: Path, destination: Path) -> Path:
    """A private copy of the project, mtimes kept (copy2) so its manifest stays current."""
    ignore = shutil.ignore_patterns("logs", ".dbtassets", "*.duckdb", "*.duckdb.wal", f".{CACHE_NAME}.*")
    shutil.copytree(source, destination, ignore=ignore, symlinks=True)
    manifest = destination / "target" / "manifest.json"
    newest_mtime, newest = load_project(destination).newest_file()
    if manifest.stat().st_mtime < newest_mtime:
        raise SystemExit(f"the copy's manifest is older than {newest}; was the project edited meanwhile?")
    return destination


def source_dirs(project: Path) -> list[Path]:
    return sorted(p for p in (project / "data" / "raw").iterdir() if p.is_dir())


def changed_sources(project: Path, share: float) -> list[Path]:
    """About ``share`` of the source directories (at least one), spread evenly over them."""
    dirs = source_dirs(project)
    count = max(1, round(share * len(dirs)))
    return [dirs[i * len(dirs) // count] for i in range(count)]


@contextlib.contextmanager
def landed(directories: Sequence[Path], ago: float) -> Iterator[None]:
    """A new CSV batch in each directory, modified ``ago`` seconds ago; removed afterwards."""
    written = []
    try:
        when = time.time() - ago
        for directory in directories:
            path = directory / NEW_FILE
            existing = sorted(directory.glob("*.csv"))
            path.write_bytes(existing[0].read_bytes() if existing else b"id,value,loaded_at\n")
            os.utime(path, (when, when))
            written.append(path)
        yield
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def populate(project: Path, state: Path, env: dict[str, str]) -> dict[str, Any]:
    """bench_status.populate_state in a child process, so this process stays small."""
    completed = subprocess.run([sys.executable, __file__, "_populate", str(project), str(state)],
                               capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        raise SystemExit(f"populating {state} failed:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}")
    info: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return info


# -- a and b: one-shot commands through the probe --------------------------------------------


@dataclass
class Sample:
    wall: float
    cpu: float
    maxrss_mib: float
    stdout: str


def probe(argv: Sequence[str], env: dict[str, str], scratch: Path) -> Sample:
    out, err = scratch / "probe.out", scratch / "probe.err"
    completed = subprocess.run([sys.executable, "-S", "-c", PROBE, json.dumps(list(argv)), str(out), str(err)],
                               env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"the probe failed: {completed.stderr[-2000:]}")
    usage = json.loads(completed.stdout)
    stdout = out.read_text()
    if usage["rc"] != 0:
        raise SystemExit(f"exit code {usage['rc']}: {' '.join(argv)}\n{stdout[-2000:]}{err.read_text()[-2000:]}")
    return Sample(usage["wall"], usage["cpu"], usage["maxrss_kib"] / 1024, stdout)


def check_probe(env: dict[str, str], scratch: Path) -> dict[str, float]:
    """Show why the probe exists: a child of a big process inherits its peak RSS, the probe's does not."""
    ballast = bytearray(400 * MIB)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    proc = subprocess.Popen([sys.executable, "-S", "-c", "pass"], env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    direct = usage.ru_maxrss / 1024
    through = probe([sys.executable, "-S", "-c", "pass"], env, scratch).maxrss_mib
    del ballast
    return {"direct_child_of_400MiB_parent_mib": round(direct, 1), "through_probe_mib": round(through, 1)}


# -- c: the watcher --------------------------------------------------------------------------


@dataclass
class WatcherSample:
    ok: bool
    note: str = ""
    watching_s: float | None = None
    fresh_s: float | None = None
    vm_rss_mib: float | None = None
    vm_hwm_mib: float | None = None
    threads: int | None = None
    open_fds: int | None = None
    idle_cpu_pct: float | None = None
    shutdown_s: float | None = None
    exit_code: int | None = None
    stopped_event: bool = False
    built: bool = False
    events: list[str] = field(default_factory=list)


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def kib(value: str) -> float:
    return int(value.split()[0]) / 1024


def run_watcher(argv: Sequence[str], env: dict[str, str], idle: float, timeout: float) -> WatcherSample:
    sample = WatcherSample(ok=False)
    events: queue.SimpleQueue[tuple[float, dict[str, Any] | None]] = queue.SimpleQueue()
    stderr: list[str] = []
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                events.put((time.perf_counter(), json.loads(line)))
            except json.JSONDecodeError:
                stderr.append(f"(stdout) {line}")
        events.put((time.perf_counter(), None))

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=lambda: stderr.extend(proc.stderr or ()), daemon=True)]
    for reader in readers:
        reader.start()

    def next_event(deadline: float) -> tuple[float, dict[str, Any] | None] | None:
        try:
            return events.get(timeout=max(0.0, deadline - time.perf_counter()))
        except queue.Empty:
            return None

    def stop(signals: int = 1) -> None:
        stopped_at = time.perf_counter()
        for _ in range(signals):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
        try:
            sample.exit_code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            sample.exit_code = proc.wait()
            sample.note += " (SIGKILLed after 60 s)"
        sample.shutdown_s = time.perf_counter() - stopped_at
        for reader in readers:
            reader.join(timeout=5)
        while (item := next_event(time.perf_counter())) is not None and item[1] is not None:
            sample.events.append(item[1]["event"])
            sample.stopped_event |= item[1]["event"] == "stopped"

    deadline = start + timeout
    while True:
        item = next_event(deadline)
        if item is None:
            sample.note = f"no 'fresh' event within {timeout:g} s"
            stop(2)
            return sample
        at, event = item
        if event is None:
            sample.exit_code = proc.wait()
            sample.note = f"exited early with code {sample.exit_code}: " + " ".join("".join(stderr).split())[-600:]
            return sample
        kind = event["event"]
        sample.events.append(kind)
        if kind == "watching":
            sample.watching_s = at - start
        elif kind == "fresh":
            sample.fresh_s = at - start
            break
        elif kind in ("stale", "build_started", "parsing", "error", "backing_off"):
            sample.built = kind in ("stale", "build_started")
            sample.note = f"the initial pass emitted {kind!r} instead of 'fresh'" + (
                ": it would run dbt for real, stopped" if sample.built else f": {event}")
            stop(2)  # a second SIGTERM interrupts a build in flight
            return sample

    time.sleep(1.0)  # let the initial pass's garbage and the observer threads settle
    pid = proc.pid
    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
    time.sleep(idle)
    cpu_after, wall_after = cpu_seconds(pid), time.perf_counter()
    status = proc_status(pid)
    sample.idle_cpu_pct = 100 * (cpu_after - cpu_before) / (wall_after - wall_before)
    sample.vm_rss_mib, sample.vm_hwm_mib = kib(status["VmRSS"]), kib(status["VmHWM"])
    sample.threads = int(status["Threads"])
    with contextlib.suppress(OSError):
        sample.open_fds = len(os.listdir(f"/proc/{pid}/fd"))
    late = [e for e in sample.events if e not in ("watching", "fresh")]
    stop()
    sample.ok = sample.exit_code == 0 and sample.stopped_event and not late
    if not sample.ok:
        sample.note = (f"exit code {sample.exit_code}, events {sample.events}; "
                       + " ".join("".join(stderr).split())[-600:])
    return sample


# -- one project -------------------------------------------------------------------------------


@dataclass
class Result:
    size: str
    models: int
    sources: int
    assets: int
    project: str
    manifest_mb: float
    changed_sources: int
    status_wall: list[float] = field(default_factory=list)
    status_cpu: list[float] = field(default_factory=list)
    status_rss: list[float] = field(default_factory=list)
    dry_wall: list[float] = field(default_factory=list)
    dry_cpu: list[float] = field(default_factory=list)
    dry_rss: list[float] = field(default_factory=list)
    would_build: list[int] = field(default_factory=list)
    dry_selectors: list[int] = field(default_factory=list)
    watchers: list[WatcherSample] = field(default_factory=list)
    status_last_line: str = ""
    cold_discarded: int = 0
    populate: dict[str, Any] = field(default_factory=dict)

    def med(self, name: str) -> float | None:
        values = [v for v in getattr(self, name) if v is not None]
        return statistics.median(values) if values else None

    def watcher_med(self, name: str) -> float | None:
        values = [getattr(w, name) for w in self.watchers if w.ok and getattr(w, name) is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict[str, Any]:
        return {
            "status_s": self.med("status_wall"), "status_cpu_s": self.med("status_cpu"),
            "status_peak_mib": self.med("status_rss"),
            "dry_run_s": self.med("dry_wall"), "dry_run_cpu_s": self.med("dry_cpu"),
            "dry_run_peak_mib": self.med("dry_rss"), "would_build": self.med("would_build"),
            "watcher_watching_s": self.watcher_med("watching_s"), "watcher_fresh_s": self.watcher_med("fresh_s"),
            "watcher_rss_mib": self.watcher_med("vm_rss_mib"), "watcher_hwm_mib": self.watcher_med("vm_hwm_mib"),
            "watcher_threads": self.watcher_med("threads"), "watcher_idle_cpu_pct": self.watcher_med("idle_cpu_pct"),
            "watcher_shutdown_s": self.watcher_med("shutdown_s"),
            "watchers_ok": sum(w.ok for w in self.watchers), "watchers_run": len(self.watchers),
        }


def bench_size(size: Size, args: argparse.Namespace, cli: Path, env: dict[str, str]) -> Result:
    shared = ensure_sized_project(size, args.realistic)
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{size.models}-") as tmp:
        scratch = Path(tmp)
        started = time.perf_counter()
        project = copy_project(shared, scratch / "project")
        print(f"[{size.label}] copied {shared} to {project} in {time.perf_counter() - started:.1f}s", flush=True)
        pristine, state = scratch / "pristine.db", scratch / "state.db"
        info = populate(project, pristine, env)
        print(f"[{size.label}] fake build of {info['built']} assets recorded in {info['seconds']:.1f}s; "
              f"statuses {info['statuses']}", flush=True)
        changed = changed_sources(project, args.changed_share)
        kinds = info["asset_kinds"]
        result = Result(size.label, size.models, kinds["source"], info["assets"],
                        str(shared), (project / "target" / "manifest.json").stat().st_size / 1e6, len(changed),
                        populate={k: v for k, v in info.items() if k != "statuses"})

        base = [str(cli), "--project-dir", str(project), "--state", str(state)]
        status_argv = [*base, "status"]
        dry_argv = [*base, "sync", "--dry-run", "--format", "json"]
        watch_argv = [*base, "watch", "--format", "json", "--runner", "in-process"]

        def fresh_state() -> None:
            shutil.copyfile(pristine, state)
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{state}{suffix}").unlink(missing_ok=True)

        cache = project / "target" / CACHE_NAME

        def cache_stamp() -> tuple[int, int] | None:
            with contextlib.suppress(OSError):
                stat = cache.stat()
                return stat.st_mtime_ns, stat.st_size
            return None

        def warm_probe(argv: Sequence[str], prepare: Callable[[], contextlib.AbstractContextManager[Any]]) -> Sample:
            """A sample with the manifest cache warm: one that had to rewrite it (dbtassets changed its
            cache format meanwhile, say) is thrown away and taken again."""
            for _ in range(3):
                fresh_state()
                before = cache_stamp()
                with prepare():
                    sample = probe(argv, env, scratch)
                if cache_stamp() == before:
                    return sample
                result.cold_discarded += 1
                print(f"[{size.label}] discarded a sample that rewrote the manifest cache "
                      f"({sample.wall:.2f}s, {sample.maxrss_mib:.0f}MiB)", flush=True)
            raise SystemExit(f"[{size.label}] the manifest cache is rewritten on every run: {' '.join(argv)}")

        def do_status(record: bool) -> str:
            sample = warm_probe(status_argv, contextlib.nullcontext)
            if record:
                result.status_wall.append(sample.wall)
                result.status_cpu.append(sample.cpu)
                result.status_rss.append(sample.maxrss_mib)
            result.status_last_line = (sample.stdout.strip().splitlines() or [""])[-1]
            return f"status {sample.wall:.2f}s {sample.maxrss_mib:.0f}MiB"

        def do_dry_run(record: bool) -> str:
            sample = warm_probe(dry_argv, lambda: landed(changed, args.landed_ago))
            plan = json.loads(sample.stdout)
            if not plan["assets"]:
                raise SystemExit(f"[{size.label}] sync --dry-run planned nothing after {len(changed)} sources changed")
            if record:
                result.dry_wall.append(sample.wall)
                result.dry_cpu.append(sample.cpu)
                result.dry_rss.append(sample.maxrss_mib)
                result.would_build.append(len(plan["assets"]))
                result.dry_selectors.append(len(plan["selectors"]))
            return f"dry-run {sample.wall:.2f}s {sample.maxrss_mib:.0f}MiB ({len(plan['assets'])} to build)"

        def do_watch(record: bool) -> str:
            for _ in range(3):
                fresh_state()
                before = cache_stamp()
                sample = run_watcher(watch_argv, env, args.idle, args.watch_timeout)
                if cache_stamp() == before:
                    break
                result.cold_discarded += 1
                print(f"[{size.label}] discarded a watcher that rewrote the manifest cache", flush=True)
            if record:
                result.watchers.append(sample)
            if not sample.ok:
                return f"watch FAILED: {sample.note}"
            return (f"watch fresh at {sample.fresh_s:.2f}s, RSS {sample.vm_rss_mib:.0f}MiB, "
                    f"idle CPU {sample.idle_cpu_pct:.1f}%, {sample.threads} threads")

        variants: list[Callable[[bool], str]] = [do_status, do_dry_run]
        if not args.no_watch:
            variants.append(do_watch)
        fresh_state()  # status reads a store and makes none (a missing --state path is an error)
        probe(status_argv, env, scratch)  # the copy's first run writes its manifest cache (keyed by path)
        warm = [v(False) for v in variants]
        print(f"[{size.label}] warm-up: " + "; ".join(warm), flush=True)
        if not args.no_watch and "FAILED" in warm[-1]:
            print(f"[{size.label}] the watcher fails: recording one more attempt, then leaving it out", flush=True)
            do_watch(True)
            variants.remove(do_watch)
        for round_no in range(args.repeat):
            shift = round_no % len(variants)
            said = [v(True) for v in variants[shift:] + variants[:shift]]
            print(f"[{size.label}] round {round_no + 1}/{args.repeat}: " + "; ".join(said), flush=True)
    return result


# -- report ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def per_k(value: float | None, models: int) -> float | None:
    return None if value is None else value / models * 1000


def main_table(results: Sequence[Result]) -> str:
    head = ("| N models | sources | status s (median) | status peak MiB | dry-run s | dry-run peak MiB "
            "| dry-run would build | watcher startup s | watcher RSS MiB | idle CPU % "
            "| status s / 1k models | status MiB / 1k | dry-run s / 1k | watcher startup s / 1k "
            "| watcher MiB / 1k |")
    lines = [head, "|" + "---:|" * head.count(" | ") + "---:|"]
    for r in results:
        s = r.summary()
        lines.append(
            f"| {r.models:,} | {r.sources:,} | {fmt(s['status_s'])} | {fmt(s['status_peak_mib'], 0)} "
            f"| {fmt(s['dry_run_s'])} | {fmt(s['dry_run_peak_mib'], 0)} "
            f"| {fmt(s['would_build'], 0)} of {r.assets - r.sources:,} "
            f"| {fmt(s['watcher_fresh_s'])} | {fmt(s['watcher_rss_mib'], 0)} | {fmt(s['watcher_idle_cpu_pct'], 1)} "
            f"| {fmt(per_k(s['status_s'], r.models), 3)} | {fmt(per_k(s['status_peak_mib'], r.models), 1)} "
            f"| {fmt(per_k(s['dry_run_s'], r.models), 3)} | {fmt(per_k(s['watcher_fresh_s'], r.models), 3)} "
            f"| {fmt(per_k(s['watcher_rss_mib'], r.models), 1)} |")
    return "\n".join(lines)


def detail_table(results: Sequence[Result]) -> str:
    lines = ["| N models | sources | status CPU s | dry-run CPU s | dry-run selectors | watcher 'watching' s "
             "| watcher VmHWM MiB | watcher threads | watcher fds | shutdown s | watchers ok |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        s = r.summary()
        fds = [w.open_fds for w in r.watchers if w.ok and w.open_fds is not None]
        lines.append(
            f"| {r.models:,} | {r.sources:,} | {fmt(s['status_cpu_s'])} | {fmt(s['dry_run_cpu_s'])} "
            f"| {fmt(r.med('dry_selectors'), 0)} | {fmt(s['watcher_watching_s'])} | {fmt(s['watcher_hwm_mib'], 0)} "
            f"| {fmt(s['watcher_threads'], 0)} | {fmt(statistics.median(fds) if fds else None, 0)} "
            f"| {fmt(s['watcher_shutdown_s'])} | {s['watchers_ok']}/{s['watchers_run']} |")
    return "\n".join(lines)


METRICS = {
    "status s": "status_s", "status CPU s": "status_cpu_s", "status peak MiB": "status_peak_mib",
    "dry-run s": "dry_run_s", "dry-run CPU s": "dry_run_cpu_s", "dry-run peak MiB": "dry_run_peak_mib",
    "watcher startup s": "watcher_fresh_s", "watcher RSS MiB": "watcher_rss_mib",
}


def slope(a: Result, b: Result, key: str, per: str = "models") -> float | None:
    """Marginal cost per 1,000 models (or sources) going from project a to project b."""
    va: float | None = a.summary()[key]
    vb: float | None = b.summary()[key]
    da: int = getattr(a, per)
    db: int = getattr(b, per)
    if va is None or vb is None or da == db:
        return None
    return (vb - va) / (db - da) * 1000


def linearity(results: Sequence[Result]) -> tuple[str, list[str]]:
    """Marginal costs between sizes, and a verdict per metric.

    A fixed cost (interpreter, imports) makes total/N fall with N, so linearity is judged on the
    marginal cost per 1,000 models: worse-than-linear growth shows as a later slope clearly above
    an earlier one. The plain sizes grow models and sources together (20, 100 and 2,000 sources
    here), so an ``N:S`` row with the sources of a bigger plain size isolates the models (same
    sources, fewer models) and one with the models of a plain size isolates the sources.
    """
    plain = sorted((r for r in results if ":" not in r.size), key=lambda r: r.models)
    extra = [r for r in results if ":" in r.size]
    by_models = list(itertools.pairwise(plain))
    fixed_sources = [tuple(sorted((x, r), key=lambda q: q.models)) for x in extra for r in results
                     if r is not x and r.sources == x.sources and r.models != x.models]
    fixed_models = [tuple(sorted((x, r), key=lambda q: q.sources)) for x in extra for r in results
                    if r is not x and r.models == x.models and r.sources != x.sources]
    columns = ([(a, b, "models", f"{a.models:,} → {b.models:,} models") for a, b in by_models]
               + [(a, b, "models", f"{a.models:,} → {b.models:,} models at {a.sources:,} sources")
                  for a, b in fixed_sources]
               + [(a, b, "sources", f"{a.sources:,} → {b.sources:,} sources at {a.models:,} models (per 1,000 sources)")
                  for a, b in fixed_models])
    if not columns:
        return "", []
    lines = ["| marginal cost per 1,000 | " + " | ".join(c[3] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    verdicts = []
    for label, key in METRICS.items():
        slopes = [slope(a, b, key, per) for a, b, per, _ in columns]
        lines.append(f"| {label} | " + " | ".join(fmt(v, 3) for v in slopes) + " |")
        if not by_models:
            continue
        first = slopes[0]
        # The later step: at fixed sources when measured, else the last plain step.
        later_at = len(by_models) if fixed_sources else len(by_models) - 1
        if later_at == 0:
            continue
        later = slopes[later_at]
        if first is None or later is None:
            continue
        where = columns[later_at][3]
        if later <= first or later - first < 0.005:
            kind = "no worse than linear"
        else:
            ratio = later / first if first > 0 else float("inf")
            kind = f"x{ratio:.2f}, " + ("no worse than linear (within noise)" if ratio <= 1.25
                                        else "mildly worse than linear" if ratio <= 2 else "WORSE THAN LINEAR")
        verdicts.append(f"{label}: {first:.3f} per 1k models ({columns[0][3]}), {later:.3f} ({where}): {kind}")
    return "\n".join(lines), verdicts


def targets(results: Sequence[Result]) -> list[str]:
    out = []
    for r in results:
        if r.models < 20000 or ":" in r.size:
            continue
        s = r.summary()
        if s["status_s"] is not None:
            ok = s["status_s"] < TARGETS["status_s"]
            out.append(f"status at {r.models:,} models: {s['status_s']:.2f} s (target < 2 s): "
                       + ("met" if ok else "MISSED"))
        rss = s["watcher_rss_mib"]
        if rss is not None:
            ok = rss * MIB < 1e9
            out.append(f"watcher RSS at {r.models:,} models: {rss:.0f} MiB (target < 1 GB): "
                       + ("met" if ok else "MISSED"))
        else:
            notes = "; ".join(sorted({w.note for w in r.watchers if not w.ok}))
            out.append(f"watcher at {r.models:,} models: NOT MEASURED, it failed: {notes}")
    return out


def code_revision() -> str:
    """The commit of the dbtassets being measured, ``+dirty`` when dbtassets/ has uncommitted edits."""
    repo = HERE.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "dbtassets"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def snapshot_code(destination: Path, env: dict[str, str]) -> str:
    """Extract the committed dbtassets/ of HEAD (``git archive``, read-only) into ``destination`` and
    put it first on PYTHONPATH in ``env``: every measured process then runs that commit, however the
    working tree changes meanwhile. Returns the commit."""
    repo = HERE.parent
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", head, "dbtassets"],
                             capture_output=True, check=True).stdout
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    env["PYTHONPATH"] = os.pathsep.join([str(destination), *filter(None, [env.get("PYTHONPATH")])])
    found = subprocess.run([sys.executable, "-c", "import dbtassets; print(dbtassets.__file__)"], env=env,
                           cwd=destination, capture_output=True, text=True).stdout.strip()
    if not Path(found).is_relative_to(destination):
        raise SystemExit(f"--snapshot: the measured processes would import {found}, not the snapshot")
    return head


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_populate"]:  # internal: populate a state store in this (child) process
        info = populate_state(Path(argv[1]), Path(argv[2]))
        print(json.dumps(info))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,5000,20000",
                        help="comma-separated N or N:SOURCES (default: 1000,5000,20000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per size (default: 3)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle watcher to measure (default: 5)")
    parser.add_argument("--changed-share", type=float, default=0.01,
                        help="share of sources that get a new file for the dry run (default: 0.01, at least 1)")
    parser.add_argument("--landed-ago", type=float, default=30.0,
                        help="back-date the new files by this many seconds (default: 30)")
    parser.add_argument("--watch-timeout", type=float, default=600.0,
                        help="give up on a watcher's initial pass after this many seconds (default: 600)")
    parser.add_argument("--no-watch", action="store_true", help="skip the watcher measurements")
    parser.add_argument("--realistic", action="store_true",
                        help="generate_project.py --realistic projects (packages of macros, docs, exposures, "
                             "semantic models, groups, versions, unread sources), in synth_*_realistic")
    parser.add_argument("--snapshot", action="store_true",
                        help="measure the committed HEAD of dbtassets/ (extracted with git archive and put first "
                             "on PYTHONPATH), not the working tree, which others may edit during the run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every sample to PATH as JSON")
    args = parser.parse_args(argv)
    sizes = [Size.parse(s) for s in args.sizes.split(",") if s.strip()]
    if args.repeat < 1 or not sizes or any(s.models < 1 for s in sizes):
        parser.error("--repeat must be at least 1 and --sizes must name at least one size >= 1")

    cli = Path(sys.executable).parent / "dbtassets"
    if not cli.is_file():
        raise SystemExit(f"{cli} not found: run this with the interpreter of the venv dbtassets is installed in")
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"

    with tempfile.TemporaryDirectory(prefix="bench-scale-probe-") as tmp:
        probe_check = check_probe(env, Path(tmp))
    print(f"peak-RSS method check (python -S -c pass): {probe_check}", flush=True)

    with contextlib.ExitStack() as stack:
        if args.snapshot:
            code_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-code-")))
            revision = f"{snapshot_code(code_dir, env)} (snapshot of HEAD)"
        else:
            revision = code_revision()
        print(f"dbtassets at {revision}", flush=True)
        results = []
        for size in sizes:
            results.append(bench_size(size, args, cli, env))
        revision_end = revision if args.snapshot else code_revision()
    if revision_end != revision:
        print(f"warning: dbtassets changed during the run ({revision} -> {revision_end}); the numbers mix versions",
              flush=True)

    marginal, verdicts = linearity(results)
    load = os.getloadavg()
    print()
    print("## dbtassets at scale\n")
    changed = f" (changed to {revision_end} during the run)" if revision_end != revision else ""
    print(f"- dbtassets {revision}{changed}")
    print(f"- Python {platform.python_version()}, dbtassets {dbtassets.__version__}, {platform.platform()}, "
          f"{os.cpu_count()} CPUs, load average at the end {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    print(f"- {args.repeat} rotating rounds per size after an untimed warm-up round; medians; each project run "
          "on a private copy with a state store in which every asset was recorded built by a fake runner")
    print(f"- dry run: {', '.join(f'{r.changed_sources} of {r.sources:,} sources' for r in results)} got a new file")
    print(f"- peak RSS: ru_maxrss of the command through a fresh intermediate process ({probe_check}); "
          "watcher RSS: VmRSS from /proc once idle; idle CPU: percent of one core over "
          f"{args.idle:g} s")
    for r in results:
        discarded = f" ({r.cold_discarded} samples discarded: cache rewritten)" if r.cold_discarded else ""
        print(f"- N={r.size}: {r.assets:,} assets, manifest {r.manifest_mb:.1f} MB, status says: {r.status_last_line}"
              + discarded)
    print()
    print(main_table(results))
    print()
    print(detail_table(results))
    if marginal:
        print()
        print(marginal)
    print()
    for line in [*verdicts, *targets(results)]:
        print(f"- {line}")
    for r in results:
        for w in r.watchers:
            if not w.ok:
                print(f"- watcher at N={r.size} failed: {w.note}")
    if args.json is not None:
        payload = {
            "meta": {"python": platform.python_version(), "dbtassets": dbtassets.__version__,
                     "dbtassets_dist": metadata.version("dbtassets"), "platform": platform.platform(),
                     "cpus": os.cpu_count(), "loadavg_end": load, "args": {k: str(v) for k, v in vars(args).items()},
                     "probe_check": probe_check, "revision": revision, "revision_end": revision_end},
            "results": [{**asdict(r), "summary": r.summary()} for r in results],
            "verdicts": verdicts, "targets": targets(results),
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
