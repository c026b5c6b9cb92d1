"""Benchmark ``dbtassets watch`` on the example project: landing-to-fresh latency, idle cost, shutdown.

One run measures, on fresh copies of ``example_project`` in a scratch directory:

1. **Latency.** A watcher (``--runner``, default in-process) is started with ``--format json``,
   by default on a copy that ``dbtassets sync`` has just brought up to date (``--start synced``: the
   watcher's first pass must find nothing to build), or with ``--start empty`` on a never-built copy
   (its first pass builds everything); then ``--landings`` order batches land one at a time, each written to a
   hidden temporary file and renamed into ``data/raw/orders/``. ``t0 = time.time()`` is taken just
   before the rename. The latency is the ``at`` time of the ``build_finished`` event that lists
   ``fact_sales`` minus ``t0``; it is cross-checked against the new successful
   ``model.shopflow.fact_sales`` row in the state store, polled read-only every ``--poll`` seconds
   (its ``finished_at``, and the time the poller first saw it). Landings are ``--gap`` seconds
   apart once the previous build has finished, so builds never coalesce; every landing must give
   exactly one build. The other events (``new_data``, ``stale``, ``build_started``,
   ``node_finished`` per model) give a breakdown of where the time goes.
2. **Side by side.** ``dbt build --select stg_orders+`` as a subprocess (the venv's ``dbt``,
   ``--profiles-dir .``, warm partial parse after one untimed full build) on a second copy,
   ``max(3, landings // 3)`` times, each after a batch lands; and, unless ``--compare-landings 0``,
   a watcher with the other runner on a third copy for a few landings.
3. **Idle.** After the landings the first watcher is left alone for ``--idle`` seconds; its CPU use
   is the utime+stime delta of ``/proc/<pid>/stat`` over the wall time (percent of one core), with
   its RSS (``VmRSS``, ``VmHWM``) and the context switches of all its threads per second.
4. **Shutdown.** SIGTERM; the watcher must print ``stopped`` and exit 0.

It prints a Markdown table; ``--json PATH`` also writes every raw sample. Linux only (``/proc``).

Usage::

    .venv/bin/python benchmarks/bench_watch.py [--landings 15] [--runner in-process|subprocess] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fnmatch
import json
import os
import platform
import random
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from provenance import package_version

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "example_project"
FACT_SALES = "model.shopflow.fact_sales"
FACT_NAME = "fact_sales"
MODELS = ("stg_orders", "fact_sales", "dim_customer")  # what a new orders batch makes stale
# The events of one landing, each with the stage its step is measured from and what the step covers.
LAST_MODEL = "last model"
STAGES: dict[str, tuple[str, str]] = {
    "new_data": ("landing", "inotify event, `settle` quiet time, observing the files"),
    "stale": ("new_data", "planning"),
    "build_started": ("stale", "build lock, run row"),
    "node:stg_orders": ("build_started", "dbt invocation start, stg_orders"),
    "node:fact_sales": ("node:stg_orders", "fact_sales (in parallel with dim_customer)"),
    "node:dim_customer": ("node:stg_orders", "dim_customer (in parallel with fact_sales)"),
    "build_finished": (LAST_MODEL, "data tests, end of the dbt invocation, recording"),
}
COPY_IGNORE = ("target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal")
PRODUCTS = {"notebook": 4.50, "fountain pen": 32.00, "ink": 7.25, "pencil": 0.80, "desk lamp": 49.90}
FIELDS = ["order_id", "customer_id", "ordered_at", "product", "quantity", "unit_price"]
# Settings that would point dbt or dbtassets somewhere other than the project copy.
SCRUBBED_ENV = ("DBTASSETS_STATE", "DBT_PROJECT_DIR", "DBT_PROFILES_DIR", "DBT_TARGET", "SHOPFLOW_DUCKDB")

Event = dict[str, Any]


class BenchError(Exception):
    """The benchmark could not measure what it set out to (the message says why)."""


# -- helpers -------------------------------------------------------------------------------


def parse_time(text: str) -> float:
    """Seconds since the epoch of an ISO timestamp with an offset or a ``Z``."""
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if moment.tzinfo is None:
        raise BenchError(f"timestamp without a timezone: {text!r}")
    return moment.timestamp()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    minimum: float
    maximum: float
    p90: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(len(values), statistics.median(values), min(values), max(values), percentile(values, 0.9))


def copy_project(destination: Path) -> Path:
    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if any(fnmatch.fnmatch(n, p) for p in COPY_IGNORE)}

    shutil.copytree(EXAMPLE, destination, ignore=ignore)
    return destination


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return env


class OrderLoader:
    """Lands order batches the way ``ingest_orders.py`` does, timing the rename itself."""

    def __init__(self, project: Path, rows: int, seed: int) -> None:
        self.directory = project / "data" / "raw" / "orders"
        self.rows = rows
        self.rng = random.Random(seed)
        highest = 0
        for path in self.directory.glob("*.csv"):
            with path.open(newline="") as f:
                highest = max([highest, *(int(row["order_id"]) for row in csv.DictReader(f))])
        self.next_id = highest + 1

    def land(self) -> tuple[Path, float]:
        """Write a batch to a hidden file, fsync it, then rename it into place; (file, time before rename)."""
        now = datetime.now(timezone.utc)
        stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
        final = self.directory / f"orders_{stamp}.csv"
        temporary = self.directory / f".orders_{stamp}.csv.tmp"
        with temporary.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(FIELDS)
            for _ in range(self.rows):
                product = self.rng.choice(sorted(PRODUCTS))
                writer.writerow([self.next_id, self.rng.randint(1, 6), now.strftime("%Y-%m-%d %H:%M:%S"),
                                 product, self.rng.randint(1, 5), f"{PRODUCTS[product]:.2f}"])
                self.next_id += 1
            f.flush()
            os.fsync(f.fileno())
        t0 = time.time()
        os.replace(temporary, final)
        return final, t0


class StateReader:
    """A read-only connection to the watcher's state store (WAL: it never blocks the writer)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)

    def latest_success(self, unique_id: str) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM materializations "
                               "WHERE unique_id = ? AND status = 'success'", (unique_id,)).fetchone()
        return int(row[0])

    def success_after(self, unique_id: str, after_id: int) -> tuple[int, str] | None:
        row = self._db.execute("SELECT id, finished_at FROM materializations WHERE unique_id = ? "
                               "AND status = 'success' AND id > ? ORDER BY id LIMIT 1", (unique_id, after_id)
                               ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def close(self) -> None:
        self._db.close()


# -- the watcher process -------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One event of the stream, with the time this process read it off the pipe."""

    received: float
    event: Event

    @property
    def kind(self) -> str:
        return str(self.event["event"])

    @property
    def at(self) -> float:
        return parse_time(str(self.event["at"]))


class WatchProcess:
    """``dbtassets watch --format json`` as a subprocess; a thread collects its events as they come."""

    def __init__(self, project: Path, runner: str, stderr_path: Path, extra: Sequence[str] = ()) -> None:
        self.project = project
        self.argv = [sys.executable, "-m", "dbtassets", "--project-dir", str(project), "watch", "--format", "json",
                     "--runner", runner, *extra]
        self._stderr_file: TextIO = stderr_path.open("w")
        self.stderr_path = stderr_path
        self.started = time.time()
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._stderr_file, text=True,
                                        env=clean_env())
        self.events: list[Received] = []
        self._lock = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, name="watch-events", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            received = time.time()
            if not line.startswith("{"):
                continue
            with self._lock:
                self.events.append(Received(received, json.loads(line)))
                self._lock.notify_all()
        with self._lock:
            self._ended = True
            self._lock.notify_all()

    def cursor(self) -> int:
        with self._lock:
            return len(self.events)

    def since(self, cursor: int) -> list[Received]:
        with self._lock:
            return self.events[cursor:]

    def find(self, cursor: int, kind: str, where: Callable[[Event], bool] = lambda e: True) -> Received | None:
        return next((r for r in self.since(cursor) if r.kind == kind and where(r.event)), None)

    def wait_for(self, cursor: int, kind: str, where: Callable[[Event], bool] = lambda e: True,
                 timeout: float = 180.0) -> Received:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = next((r for r in self.events[cursor:] if r.kind == kind and where(r.event)), None)
                if found is not None:
                    return found
                if self._ended:
                    raise BenchError(f"the watcher exited ({self.process.wait()}) before a {kind!r} event; "
                                     f"{self.describe()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"no {kind!r} event within {timeout}s; {self.describe()}")
                self._lock.wait(remaining)

    def describe(self) -> str:
        kinds = [r.kind for r in self.since(0)]
        with contextlib.suppress(OSError):
            self._stderr_file.flush()
        tail = self.stderr_path.read_text(errors="replace")[-2000:] if self.stderr_path.exists() else ""
        return f"events so far: {kinds[-30:]}; stderr tail: {tail!r}"

    def terminate(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM, then wait; (exit code, seconds to exit). Kills it if it does not exit in time."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise BenchError(f"the watcher did not exit within {timeout}s of SIGTERM; {self.describe()}") from None
        seconds = time.monotonic() - start
        self._reader.join(timeout=10)
        return code, seconds

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr_file.close()


@contextlib.contextmanager
def watching(project: Path, runner: str, stderr_path: Path, extra: Sequence[str] = ()) -> Iterator[WatchProcess]:
    watcher = WatchProcess(project, runner, stderr_path, extra)
    try:
        yield watcher
    finally:
        watcher.close()


# -- measurements --------------------------------------------------------------------------


@dataclass
class Landing:
    """One batch landed in front of a running watcher, and what followed (times in epoch seconds)."""

    index: int
    file: str
    t0: float
    latency: float = 0.0  # build_finished "at" - t0
    latency_db: float = 0.0  # the row's finished_at - t0
    latency_poll: float = 0.0  # when the poller first saw the row - t0
    latency_received: float = 0.0  # when build_finished was read off the pipe - t0
    row_id: int = 0
    finished_at: str = ""
    stages: dict[str, float] = field(default_factory=dict)  # stage -> its event's "at" - t0
    node_seconds: dict[str, float] = field(default_factory=dict)  # model -> dbt's execution_time
    builds: int = 0
    built: list[str] = field(default_factory=list)
    build_seconds: float = 0.0
    newest: str = ""


@dataclass
class WatchRun:
    runner: str
    runner_class: str = ""
    settle: float = 0.0
    started_synced: bool = False  # started after `dbtassets sync` (--start synced)
    startup_to_watching: float = 0.0
    initial_build_seconds: float = 0.0
    startup_to_fresh: float = 0.0
    landings: list[Landing] = field(default_factory=list)
    idle: dict[str, float] = field(default_factory=dict)
    exit_code: int | None = None
    stopped_event: bool = False
    exit_seconds: float = 0.0


def sync_first(project: Path) -> None:
    """``dbtassets sync`` on ``project``: the watcher then starts on an up-to-date project."""
    done = subprocess.run([sys.executable, "-m", "dbtassets", "--project-dir", str(project), "sync"],
                          capture_output=True, text=True, env=clean_env(), timeout=600)
    if done.returncode != 0:
        raise BenchError(f"dbtassets sync exited {done.returncode}: {done.stderr.strip()[-500:]}")


def start_and_wait(watcher: WatchProcess, run: WatchRun, *, synced: bool) -> None:
    """Wait for ``watching`` and the first pass: ``fresh`` on a synced project, else the initial build."""
    watching_event = watcher.wait_for(0, "watching", timeout=120)
    run.runner_class = str(watching_event.event.get("runner", ""))
    run.settle = float(watching_event.event.get("settle", 0.0))
    run.startup_to_watching = watching_event.at - watcher.started
    if synced:
        first = watcher.wait_for(0, "fresh", timeout=300)
        if watcher.find(0, "build_started") is not None:
            raise BenchError("the watcher built something on a project that dbtassets sync had just brought up to date")
        run.startup_to_fresh = first.at - watcher.started
        return
    finished = watcher.wait_for(0, "build_finished", timeout=300)
    if finished.event.get("failed") or finished.event.get("error") or FACT_NAME not in finished.event["built"]:
        raise BenchError(f"the initial build did not build {FACT_NAME} cleanly: {finished.event}")
    run.initial_build_seconds = float(finished.event["seconds"])
    run.startup_to_fresh = finished.at - watcher.started


def measure_landing(watcher: WatchProcess, reader: StateReader, loader: OrderLoader, index: int,
                    poll: float, timeout: float) -> Landing:
    before = reader.latest_success(FACT_SALES)
    cursor = watcher.cursor()
    path, t0 = loader.land()
    landing = Landing(index, path.name, t0)
    deadline = time.monotonic() + timeout
    row: tuple[int, str] | None = None
    seen = 0.0
    finished: Received | None = None
    while row is None or finished is None:
        if time.monotonic() > deadline:
            raise BenchError(f"landing {index} ({path.name}): fact_sales not recorded within {timeout}s "
                             f"(row: {row}, build_finished: {finished is not None}); {watcher.describe()}")
        if row is None:
            row = reader.success_after(FACT_SALES, before)
            if row is not None:
                seen = time.time()
        if finished is None:
            finished = watcher.find(cursor, "build_finished", lambda e: FACT_NAME in e["built"])
        if finished is not None and finished.event.get("failed"):
            raise BenchError(f"landing {index}: the build failed: {finished.event}")
        if row is None or finished is None:
            time.sleep(poll)
    landing.row_id, landing.finished_at = row
    landing.latency = finished.at - t0
    landing.latency_db = parse_time(row[1]) - t0
    landing.latency_poll = seen - t0
    landing.latency_received = finished.received - t0
    landing.built = list(finished.event["built"])
    landing.build_seconds = float(finished.event["seconds"])
    events = watcher.since(cursor)
    landing.builds = sum(1 for r in events if r.kind == "build_started")
    for r in events:
        if r.received > finished.received:
            break
        key = f"node:{r.event.get('name')}" if r.kind == "node_finished" else r.kind
        if key in STAGES and key not in landing.stages:
            landing.stages[key] = r.at - t0
            if r.kind == "node_finished":
                landing.node_seconds[str(r.event["name"])] = float(r.event["seconds"])
        if r.kind == "new_data" and r.event.get("source") == "raw.orders":
            landing.newest = str(r.event.get("newest", ""))
    return landing


def check_landing(landing: Landing) -> list[str]:
    """Consistency problems with one landing's measurement (empty when it is sound)."""
    problems = []
    if landing.builds != 1:
        problems.append(f"{landing.builds} builds started (expected exactly 1)")
    if not landing.newest.endswith(landing.file):
        problems.append(f"new_data names {landing.newest!r}, not the landed {landing.file}")
    # finished_at has millisecond resolution and is recorded just before build_finished is emitted.
    if not -0.002 <= landing.latency - landing.latency_db <= 0.25:
        problems.append(f"build_finished at {landing.latency:.3f}s but the row's finished_at at "
                        f"{landing.latency_db:.3f}s")
    if landing.latency_poll < landing.latency_db - 0.002:
        problems.append("the poller saw the row before its finished_at")
    return problems


def cpu_ticks(pid: int) -> int:
    """utime + stime of the process (all its threads), in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[11]) + int(fields[12])


def read_status(path: Path) -> dict[str, str]:
    """A ``/proc/.../status`` file as a dict."""
    lines = path.read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all the process's threads (a proxy for wake-ups)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread may end while we look
            status = read_status(task / "status")
            total += int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])
    return total


def measure_idle(watcher: WatchProcess, seconds: float) -> dict[str, float]:
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    cursor = watcher.cursor()
    ticks0, switches0, wall0 = cpu_ticks(watcher.pid), context_switches(watcher.pid), time.monotonic()
    time.sleep(seconds)
    ticks1, switches1, wall1 = cpu_ticks(watcher.pid), context_switches(watcher.pid), time.monotonic()
    status = read_status(Path(f"/proc/{watcher.pid}/status"))
    wall = wall1 - wall0
    return {
        "seconds": wall,
        "cpu_ticks": ticks1 - ticks0,
        "clock_ticks_per_second": ticks_per_second,
        "cpu_percent": (ticks1 - ticks0) / ticks_per_second / wall * 100,
        "context_switches_per_second": (switches1 - switches0) / wall,
        "threads": int(status["Threads"]),
        "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
        "peak_rss_mib": int(status["VmHWM"].split()[0]) / 1024,
        "events_while_idle": len(watcher.since(cursor)),
    }


def run_watcher(project: Path, runner: str, landings: int, args: argparse.Namespace, scratch: Path,
                idle: float) -> WatchRun:
    run = WatchRun(runner)
    loader = OrderLoader(project, args.rows, args.seed)
    extra = ["--settle", str(args.settle)] if args.settle is not None else []
    synced = run.started_synced = args.start == "synced"
    if synced:
        sync_first(project)
    with watching(project, runner, scratch / f"watch-{runner}.stderr", extra) as watcher:
        print(f"[{runner}] starting: {shlex.join(watcher.argv)}", flush=True)
        start_and_wait(watcher, run, synced=synced)
        first = "found everything fresh" if synced else "initial build done"
        print(f"[{runner}] {first} after {run.startup_to_fresh:.1f}s; landing {landings} batches", flush=True)
        reader = StateReader(project / ".dbtassets" / "state.db")
        try:
            time.sleep(args.gap)
            for index in range(1, landings + 1):
                landing = measure_landing(watcher, reader, loader, index, args.poll, args.timeout)
                run.landings.append(landing)
                problems = check_landing(landing)
                print(f"[{runner}] landing {index:2}: {landing.latency:.3f}s (db {landing.latency_db:.3f}s, "
                      f"poll {landing.latency_poll:.3f}s)" + (f"  ! {'; '.join(problems)}" if problems else ""),
                      flush=True)
                time.sleep(args.gap)
        finally:
            reader.close()
        if idle > 0:
            print(f"[{runner}] idle for {idle:.0f}s ...", flush=True)
            run.idle = measure_idle(watcher, idle)
        cursor = watcher.cursor()
        run.exit_code, run.exit_seconds = watcher.terminate()
        run.stopped_event = watcher.find(cursor, "stopped") is not None
        print(f"[{runner}] SIGTERM: exit code {run.exit_code} after {run.exit_seconds:.2f}s", flush=True)
    return run


def time_dbt_builds(project: Path, count: int, args: argparse.Namespace) -> tuple[float, list[float]]:
    """One untimed full build, then ``count`` timed ``dbt build --select stg_orders+``, each after a landing."""
    dbt = Path(sys.executable).parent / "dbt"
    if not dbt.is_file():
        raise BenchError(f"{dbt} not found: run this with the interpreter of the venv dbt is installed in")
    env = clean_env()

    def build(*selection: str) -> float:
        argv = [str(dbt), "build", *selection, "--profiles-dir", "."]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise BenchError(f"{shlex.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
        return seconds

    print(f"[dbt] untimed full build of {project} ...", flush=True)
    full = build()
    loader = OrderLoader(project, args.rows, args.seed + 1)
    samples = []
    for index in range(1, count + 1):
        loader.land()
        samples.append(build("--select", "stg_orders+"))
        print(f"[dbt] build {index}: {samples[-1]:.3f}s", flush=True)
    return full, samples


# -- report --------------------------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value:.3f} s"


def summary_row(label: str, values: Sequence[float]) -> str:
    s = Summary.of(values)
    return f"| {label} | {seconds(s.median)} | {seconds(s.minimum)} | {seconds(s.maximum)} | {seconds(s.p90)} | {s.n} |"


def report(command: str, main: WatchRun, other: WatchRun | None, dbt_full: float, dbt_samples: list[float],
           environment: dict[str, str], poll: float) -> str:
    target_latency, target_cpu = 1.0, 1.0
    lat = Summary.of([x.latency for x in main.landings])
    lines = [
        f"Command: `{command}`",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items()),
        "",
        "| measurement | median | min | max | p90 | n |",
        "|---|---|---|---|---|---|",
        summary_row(f"landing → fact_sales recorded, `watch --runner {main.runner}` (settle {main.settle:g} s; "
                    "build_finished `at`)",
                    [x.latency for x in main.landings]),
        summary_row("  same, the state row's `finished_at`", [x.latency_db for x in main.landings]),
        summary_row(f"  same, first seen by the {poll * 1000:.0f} ms read-only DB poller",
                    [x.latency_poll for x in main.landings]),
        summary_row("  same, build_finished read off the watcher's stdout",
                    [x.latency_received for x in main.landings]),
        summary_row("  the build alone (build_finished `seconds`)", [x.build_seconds for x in main.landings]),
    ]
    if other is not None and other.landings:
        lines.append(summary_row(f"landing → fact_sales recorded, `watch --runner {other.runner}`",
                                 [x.latency for x in other.landings]))
        lines.append(summary_row(f"  the build alone, `--runner {other.runner}`",
                                 [x.build_seconds for x in other.landings]))
    lines.append(summary_row("`dbt build --select stg_orders+` subprocess (warm partial parse)", dbt_samples))
    lines += ["", "| measurement | value |", "|---|---|"]
    verdict = "met" if lat.median < target_latency else "MISSED"
    lines.append(f"| median latency, target < {target_latency:.1f} s | {seconds(lat.median)} ({verdict}) |")
    if main.idle:
        cpu = main.idle["cpu_percent"]
        verdict = "met" if cpu < target_cpu else "MISSED"
        lines += [
            f"| idle CPU over {main.idle['seconds']:.1f} s, % of one core, target < {target_cpu:.0f} % | "
            f"{cpu:.2f} % ({main.idle['cpu_ticks']:.0f} ticks at {main.idle['clock_ticks_per_second']:.0f} Hz) "
            f"({verdict}) |",
            f"| idle context switches (all {main.idle['threads']:.0f} threads) | "
            f"{main.idle['context_switches_per_second']:.1f} /s |",
            f"| events printed while idle | {main.idle['events_while_idle']:.0f} |",
            f"| RSS after the landings (VmRSS / VmHWM) | {main.idle['rss_mib']:.1f} MiB / "
            f"{main.idle['peak_rss_mib']:.1f} MiB |",
        ]
    lines += [
        (f"| start (after `dbtassets sync`) → `watching` / → first pass `fresh` | "
         f"{seconds(main.startup_to_watching)} / {seconds(main.startup_to_fresh)} |" if main.started_synced
         else f"| start → `watching` / → initial build recorded | {seconds(main.startup_to_watching)} / "
         f"{seconds(main.startup_to_fresh)} (initial build {seconds(main.initial_build_seconds)}) |"),
        f"| SIGTERM → exit | exit code {main.exit_code}, `stopped` event: {main.stopped_event}, "
        f"{seconds(main.exit_seconds)} |",
        f"| untimed first full `dbt build` (cold parse), for reference | {seconds(dbt_full)} |",
    ]
    if other is not None:
        lines.append(f"| `--runner {other.runner}` SIGTERM → exit | exit code {other.exit_code}, "
                     f"`stopped` event: {other.stopped_event} |")
    problems = [f"landing {x.index}: {p}" for x in main.landings for p in check_landing(x)]
    if other is not None:
        problems += [f"[{other.runner}] landing {x.index}: {p}" for x in other.landings for p in check_landing(x)]
    lines += ["", breakdown(main)]
    if other is not None and other.landings:
        lines += ["", breakdown(other)]
    if problems:
        lines += ["", "Consistency problems:", *(f"- {p}" for p in problems)]
    return "\n".join(lines)


def breakdown(run: WatchRun) -> str:
    """Where the time goes: each stage's event time after the landing, and its step from an earlier stage."""
    lines = [
        f"Breakdown, `--runner {run.runner}`: event `at` − t0 over {len(run.landings)} landings; "
        "step = median over landings of the time since the stage it follows (`last model`: the later of "
        "fact_sales and dim_customer); dbt = dbt's own execution_time for the model:",
        "",
        "| stage | after landing: median | min | max | step: median | from | covers | dbt (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def start(landing: Landing, parent: str) -> float | None:
        if parent == "landing":
            return 0.0
        if parent == LAST_MODEL:
            nodes = [v for k, v in landing.stages.items() if k.startswith("node:")]
            return max(nodes) if nodes else landing.stages.get("build_started")
        return landing.stages.get(parent)

    per_node = any(k.startswith("node:") for x in run.landings for k in x.stages)
    for stage, (parent, covers) in STAGES.items():
        values = [x.stages[stage] for x in run.landings if stage in x.stages]
        if not values:
            continue
        if parent == LAST_MODEL and not per_node:  # this runner reports no node_finished events
            parent, covers = "build_started", "the whole dbt build, recording"
        steps = [x.stages[stage] - begin for x in run.landings
                 if stage in x.stages and (begin := start(x, parent)) is not None]
        model = stage.removeprefix("node:")
        executions = [x.node_seconds[model] for x in run.landings if model in x.node_seconds]
        dbt = seconds(statistics.median(executions)) if executions else ""
        s = Summary.of(values)
        lines.append(f"| {stage} | {seconds(s.median)} | {seconds(s.minimum)} | {seconds(s.maximum)} | "
                     f"{seconds(statistics.median(steps))} | {parent} | {covers} | {dbt} |")
    return "\n".join(lines)


def environment() -> dict[str, str]:
    return {
        "host": f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs",
        "load": Path("/proc/loadavg").read_text().split(" ", 1)[0],
        "python": platform.python_version(),
        "dbtassets": package_version("dbtassets"),
        "dbt-core": package_version("dbt-core"),
        "dbt-duckdb": package_version("dbt-duckdb"),
        "duckdb": package_version("duckdb"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--landings", type=int, default=15, help="batches landed in front of the watcher (default 15)")
    parser.add_argument("--runner", choices=("in-process", "subprocess"), default="in-process",
                        help="the watcher's runner for the latency and idle measurements (default in-process)")
    parser.add_argument("--compare-landings", type=int, default=3, metavar="N",
                        help="landings for a watcher with the other runner (default 3; 0 skips it)")
    parser.add_argument("--start", choices=("synced", "empty"), default="synced",
                        help="start the watchers on a project just synced (default) or never built")
    parser.add_argument("--idle", type=float, default=10.0, metavar="SECONDS", help="idle measurement (default 10)")
    parser.add_argument("--gap", type=float, default=1.5, metavar="SECONDS",
                        help="pause after each build before the next landing (default 1.5)")
    parser.add_argument("--settle", type=float, metavar="SECONDS",
                        help="pass --settle to the watchers (default: not passed, so the project's setting, 0.2)")
    parser.add_argument("--poll", type=float, default=0.01, metavar="SECONDS", help="DB poll interval (default 0.01)")
    parser.add_argument("--rows", type=int, default=5, help="order lines per batch (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the batches (default 0)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one landing's build")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw samples to PATH as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (its path is printed)")
    args = parser.parse_args(argv)
    if args.landings < 1:
        parser.error("--landings must be at least 1")
    if not Path("/proc/self/stat").exists():
        raise SystemExit("this benchmark reads /proc: Linux only")
    command = shlex.join(["python", "benchmarks/bench_watch.py", *(sys.argv[1:] if argv is None else argv)])
    env_info = environment()
    other_runner = "subprocess" if args.runner == "in-process" else "in-process"
    dbt_count = max(3, args.landings // 3)

    scratch = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    print(f"scratch directory: {scratch}", flush=True)
    try:
        main_run = run_watcher(copy_project(scratch / "watch"), args.runner, args.landings, args, scratch, args.idle)
        dbt_full, dbt_samples = time_dbt_builds(copy_project(scratch / "dbt"), dbt_count, args)
        other_run = None
        if args.compare_landings > 0:
            other_run = run_watcher(copy_project(scratch / "watch-other"), other_runner, args.compare_landings,
                                    args, scratch, 0.0)
    except BenchError as exc:
        raise SystemExit(f"bench_watch: {exc}\n(scratch directory kept: {scratch})") from None
    text = report(command, main_run, other_run, dbt_full, dbt_samples, env_info, args.poll)
    print()
    print(text)
    if args.json:
        args.json.write_text(json.dumps({
            "command": command, "environment": env_info, "arguments": {k: str(v) for k, v in vars(args).items()},
            "watch": asdict(main_run), "watch_other_runner": asdict(other_run) if other_run else None,
            "dbt_build_full_untimed": dbt_full, "dbt_build_select_stg_orders_plus": dbt_samples,
        }, indent=2))
        print(f"\nraw samples written to {args.json}")
    failures = []
    if main_run.exit_code != 0 or not main_run.stopped_event:
        failures.append(f"the watcher exited {main_run.exit_code} (stopped event: {main_run.stopped_event})")
    if other_run is not None and (other_run.exit_code != 0 or not other_run.stopped_event):
        failures.append(f"the {other_run.runner} watcher exited {other_run.exit_code}")
    if args.keep or failures:
        print(f"scratch directory kept: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    if failures:
        raise SystemExit("bench_watch: " + "; ".join(failures))


if __name__ == "__main__":
    main()
