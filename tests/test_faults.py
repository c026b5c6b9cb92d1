"""Fault injection: dbtassets under kill -9, broken dbt, storms, slow writers, skewed clocks, full disks.

Every test runs on a private copy of example_project with real dbt and DuckDB (a fake runner
only where the state store itself is hammered), and fails if the behaviour it names regresses.
Tests wait on the watcher's JSON events, on process exit or on observable state (a process's
children, a row in the state store), always with a deadline; the only sleeps are the faults' own
timing (a loader's pace, a random kill point).
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dbtassets.building.runner import Verb
from tests.conftest import REPO, dbtassets
from tests.watcher import Event, WatchProcess

EVERYTHING = {"country_codes", "stg_orders", "stg_customers", "fact_sales", "dim_customer", "customers_snapshot"}
ORDERS_LINEAGE = {"stg_orders", "fact_sales", "dim_customer"}
CUSTOMERS_LINEAGE = {"stg_customers", "dim_customer", "customers_snapshot"}
ORDERS_HEADER = "order_id,customer_id,ordered_at,product,quantity,unit_price"
BASE_ORDERS = 6  # rows in example_project's data/raw/orders/orders_0001.csv
BASE_CUSTOMERS = 6


# -- helpers ---------------------------------------------------------------------------------


def order_lines(first_id: int, rows: int) -> str:
    return "".join(f"{first_id + i},1,2026-11-20 10:00:00,ink,1,7.25\n" for i in range(rows))


def land(project: Path, name: str, first_id: int, rows: int = 2, mtime: float | None = None) -> Path:
    """Land a batch of orders atomically (written beside, then renamed), optionally with a given mtime."""
    directory = project / "data/raw/orders"
    temporary = directory / f".{name}.tmp"
    temporary.write_text(ORDERS_HEADER + "\n" + order_lines(first_id, rows))
    if mtime is not None:
        os.utime(temporary, (mtime, mtime))
    os.replace(temporary, directory / name)
    return directory / name


def built(event: Event) -> set[str]:
    return set(event["built"])


def at(event: Event) -> datetime:
    return datetime.fromisoformat(event["at"])


def parse_utc(stamp: str) -> datetime:
    """A state-store timestamp (``2026-11-25T09:10:03.123Z``) as an aware datetime."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def state_rows(project: Path, sql: str, params: tuple[Any, ...] = (), *,
               state: Path | None = None) -> list[tuple[Any, ...]]:
    """Rows from the project's state store (or ``state``), through a read-only connection closed at once."""
    uri = f"file:{state or project / '.dbtassets/state.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        return db.execute(sql, params).fetchall()


def warehouse_count(project: Path, table: str, where: str = "") -> int:
    """Rows in a warehouse table. Only call it while nothing builds: DuckDB admits one process at a time."""
    with duckdb.connect(str(project / "shopflow.duckdb"), read_only=True) as con:
        row = con.execute(f"select count(*) from {table} {where}").fetchone()
    assert row is not None
    return int(row[0])


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def dbt_child(pid: int, timeout: float = 30) -> int:
    """The dbt process that ``pid`` starts (waiting for it to appear)."""
    deadline = time.monotonic() + timeout
    while not (found := children(pid)):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} started no dbt within {timeout}s")
        time.sleep(0.02)
    return found[0]


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def wait_until(condition: Any, timeout: float, what: str, step: float = 0.02) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(step)


def stale_reasons(project: Path) -> dict[str, list[str]]:
    result = dbtassets(project, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {a["name"]: [r["code"] for r in a["reasons"]] for a in json.loads(result.stdout)["assets"]}


def write_settings(project: Path) -> None:
    """dbtassets.yml with a fast backoff: 1s, doubling up to 4s."""
    (project / "dbtassets.yml").write_text("watch:\n  backoff_initial: 1s\n  backoff_max: 4s\n")


@contextmanager
def watching(project: Path, *args: str) -> Iterator[WatchProcess]:
    """A watcher that must still be alive at the end of the block, and is then stopped cleanly."""
    with WatchProcess(project, *args) as watcher:
        yield watcher
        assert watcher.process.poll() is None, "the watcher died"
        assert watcher.stop() == 0


# -- 1. kill -9 of the watcher in the middle of a build ---------------------------------------


@pytest.mark.slow
def test_kill_9_mid_build_leaves_no_phantom_build_and_the_restart_rebuilds_it(project_dir: Path) -> None:
    with WatchProcess(project_dir) as first:
        assert built(first.wait_for("build_finished")) == EVERYTHING
        land(project_dir, "orders_b.csv", 100, rows=3)
        first.wait_for("build_started")
        first.wait_for("node_finished")  # mid-build: dbt has rebuilt a model, nothing is recorded yet
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(timeout=30) == -signal.SIGKILL
    killed_pid = first.process.pid

    # Nothing of the killed run was recorded: its run is still 'running', it has no outcomes.
    assert state_rows(project_dir, "select id, status, pid from runs order by id") == [
        (1, "success", killed_pid), (2, "running", killed_pid)]
    assert state_rows(project_dir, "select count(*) from materializations where run_id = 2") == [(0,)]
    # What it was building is stale (its input moved), and only that.
    assert stale_reasons(project_dir) == {"stg_orders": ["upstream_updated"], "fact_sales": ["upstream_stale"],
                                          "dim_customer": ["upstream_stale"]}

    with watching(project_dir) as second:  # the kernel released the dead watcher's locks: it starts
        rebuilt = second.wait_for("build_finished")
        assert built(rebuilt) == ORDERS_LINEAGE and rebuilt["failed"] == {}

    runs = state_rows(project_dir, "select id, status, message from runs order by id")
    assert [(r[0], r[1]) for r in runs] == [(1, "success"), (2, "interrupted"), (3, "success")]
    assert "ended before recording it" in runs[1][2]
    # Every success row is one real build: run 1 built everything once, run 3 the orders lineage once.
    outcomes = state_rows(project_dir, "select run_id, unique_id, status from materializations order by id")
    by_run: dict[int, list[str]] = {}
    for run_id, uid, status in outcomes:
        assert status == "success"
        by_run.setdefault(run_id, []).append(uid.rsplit(".", 1)[1])
    assert sorted(by_run) == [1, 3]
    assert sorted(by_run[1]) == sorted(EVERYTHING) and sorted(by_run[3]) == sorted(ORDERS_LINEAGE)
    last_run = json.loads((project_dir / "target/run_results.json").read_text())
    assert {r["unique_id"].rsplit(".", 1)[1] for r in last_run["results"]
            if r["unique_id"].startswith("model.") and r["status"] == "success"} == ORDERS_LINEAGE
    assert warehouse_count(project_dir, "fact_sales") == BASE_ORDERS + 3
    assert stale_reasons(project_dir) == {}


@pytest.mark.slow
def test_kill_9_of_a_subprocess_runner_watcher_takes_its_dbt_child_down_too(project_dir: Path) -> None:
    """A dbt child outliving its killed watcher would build alongside the restarted one."""
    with WatchProcess(project_dir, "--runner", "subprocess") as first:
        first.wait_for("build_started", timeout=120)
        dbt = dbt_child(first.process.pid)
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(timeout=30) == -signal.SIGKILL
        wait_until(lambda: not alive(dbt), 2, f"the orphaned dbt build (pid {dbt}) ends")
    with watching(project_dir, "--runner", "subprocess") as second:
        assert built(second.wait_for("build_finished", timeout=120)) == EVERYTHING
    assert [r[0] for r in state_rows(project_dir, "select status from runs order by id")] == [
        "interrupted", "success"]


# -- 2. kill -9 while the state store is being written ---------------------------------------

_WRITER = """
import sys
from pathlib import Path
from dbtassets.engine import Options, Project
from tests.conftest import FakeRunner

runner = FakeRunner()
project = Project(Options(Path(sys.argv[1])), runner=runner)
runner.project = project
note = "x" * 20_000  # observations spanning several pages
project.status(observe=False)  # connected and migrated: the kills land in the loop of writes
print("ready", flush=True)
for n in range(int(sys.argv[2]), 10**9):
    observation = project.report("raw.orders", version=f"{n}", note=note)
    print("observation", observation.data_version, flush=True)  # committed: report() has returned
    result = project.sync()
    print("run", result.run_id, len(result.built), flush=True)
"""


@pytest.mark.slow
def test_kill_9_at_random_points_of_state_writes_never_loses_a_commit_or_corrupts_the_store(
        project_dir: Path, state_location: str) -> None:
    from dbtassets.engine import Options, Project
    from dbtassets.state.store import StateStore

    rng = random.Random(5)
    state = state_location
    with Project(Options(project_dir)) as project:
        target = project.targets.selected.key  # runs are filed under the project's warehouse
    committed_runs: dict[int, int] = {}
    committed_observations: list[str] = []
    left_running = 0
    for kill in range(20):
        child = subprocess.Popen([sys.executable, "-c", _WRITER, str(project_dir), str(kill * 1_000_000)],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "DBTASSETS_STATE": state})
        assert child.stdout is not None and child.stderr is not None
        with child:
            assert child.stdout.readline() == "ready\n", child.stderr.read()
            time.sleep(rng.uniform(0.05, 0.6))  # the fault: a kill at a random point of the loop
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
            # Only whole lines count: a kill at a random point may cut the writer's last line short.
            output = child.stdout.read().split("\n")[:-1]
        for line in output:
            kind, *values = line.split()
            if kind == "run" and len(values) == 2 and values[0] != "None":
                committed_runs[int(values[0])] = int(values[1])
            elif kind == "observation":
                committed_observations.append(values[0])
        with StateStore.open(state, target=target) as store:
            assert store.integrity_check() == "ok", f"after kill {kill}"
            runs = {r.id: r.status for r in store.runs()}
            left_running += sum(1 for r in store.runs("running") if r.pid == child.pid)
            outcomes = dict(store._query("select run_id, count(*) from materializations group by run_id"))
            versions = {v for (v,) in store._query("select data_version from observations")}
        assert all(runs.get(run_id) == "success" for run_id in committed_runs), (kill, runs)
        # A run's outcomes and its closing are one transaction: all or nothing, never a torn run.
        assert {run_id: n for run_id, n in outcomes.items() if run_id in committed_runs} == committed_runs
        assert all(runs[run_id] in ("success", "error") for run_id in outcomes), (kill, runs, outcomes)
        assert set(committed_observations) <= versions, f"after kill {kill}"
    assert len(committed_runs) >= 20 and len(committed_observations) >= 20
    # Every run a kill cut short is marked interrupted by the next start, none is left 'running'.
    with StateStore.open(state, target=target) as store:
        store.interrupt_dead_runs("2026-11-25T00:00:00.000Z")
        assert sum(1 for r in store.runs() if r.status == "interrupted") == left_running
        assert store.runs("running") == []
    print(f"20 kills: {len(committed_runs)} runs and {len(committed_observations)} observations committed "
          f"and found; {left_running} kills left a run open")


# -- 3. dbt fails: model error, failing test, crash, locked warehouse, unreachable target ------

DBT_FAULTS = {
    # case: (what sync and the watcher must say, the assets whose retries are counted)
    "sql_error": ('Referenced column "no_such_column" not found', {"fact_sales"}),
    "dbt_killed": ("without writing run results", EVERYTHING),
    "warehouse_locked": ("Could not set lock on file", EVERYTHING),
    "target_unreachable": ("No such file or directory", EVERYTHING),
}


class _WarehouseHolder:
    """Another process holding the DuckDB file open (read-write), as a notebook or loader would."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
             "sys.stdin.read()", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline() == "held\n"

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            assert self.process.wait(timeout=30) == 0
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _break(case: str, project: Path) -> _WarehouseHolder | None:
    if case == "sql_error":
        (project / "models/marts/fact_sales.sql").write_text("select no_such_column from {{ ref('stg_orders') }}")
    elif case == "failing_test":
        land(project, "orders_dup.csv", 1, rows=1)  # order_id 1 again: stg_orders' unique test fails
    elif case == "warehouse_locked":
        return _WarehouseHolder(project / "shopflow.duckdb")
    elif case == "target_unreachable":
        profiles = project / "profiles.yml"
        profiles.write_text(profiles.read_text().replace("'shopflow.duckdb'", "'missing_dir/shopflow.duckdb'"))
    return None


def _fix(case: str, project: Path, holder: _WarehouseHolder | None) -> None:
    if case == "sql_error":
        (project / "models/marts/fact_sales.sql").write_text(
            (REPO / "example_project/models/marts/fact_sales.sql").read_text())
    elif case == "failing_test":
        (project / "data/raw/orders/orders_dup.csv").unlink()
    elif case == "target_unreachable":
        (project / "profiles.yml").write_text((REPO / "example_project/profiles.yml").read_text())
    elif case == "warehouse_locked":
        assert holder is not None
        holder.release()


def _kill_dbt_child_of(pid: int) -> None:
    os.kill(dbt_child(pid), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DBT_FAULTS))
def test_a_dbt_failure_is_reported_with_command_and_log_and_retried_with_backoff(case: str,
                                                                                  project_dir: Path) -> None:
    needle, retried = DBT_FAULTS[case]
    write_settings(project_dir)
    log = project_dir / "logs/dbt.log"
    holder = _break(case, project_dir)
    try:
        # sync: exit 1, and the text names the failure, the dbt command and the dbt log.
        if case == "dbt_killed":
            sync = subprocess.Popen([sys.executable, "-m", "dbtassets", "--project-dir", str(project_dir), "sync"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _kill_dbt_child_of(sync.pid)
            stdout, stderr = sync.communicate(timeout=120)
            returncode = sync.returncode
        else:
            result = dbtassets(project_dir, "sync")
            stdout, stderr, returncode = result.stdout, result.stderr, result.returncode
        assert returncode == 1, stdout + stderr
        assert "Traceback" not in stderr
        assert needle in stdout
        assert "with: dbt build --select " in stdout.splitlines()[0]
        assert stdout.splitlines()[-1] == f"dbt log: {log}"

        # watch: each attempt's build_finished names it too; retries wait 1s, 2s, 4s; the watcher lives on.
        args = ("--runner", "subprocess") if case == "dbt_killed" else ()
        with watching(project_dir, *args) as watcher:
            attempts: list[tuple[Event, Event]] = []
            for _ in range(3):
                started = watcher.wait_for("build_started", timeout=120)
                if case == "dbt_killed":
                    _kill_dbt_child_of(watcher.process.pid)
                finished = watcher.wait_for("build_finished", timeout=120)
                attempts.append((started, finished))
            for n, (started, finished) in enumerate(attempts):
                assert needle in " ".join([*finished["failed"].values(), finished["error"] or ""]), finished
                assert finished["command"] == started["command"] and finished["command"].startswith("dbt build")
                assert finished["log_path"] == str(log)
                assert set(finished["retry_in"]) >= retried
                assert {finished["retry_in"][name] for name in retried} == {float(2 ** n)}, finished["retry_in"]
            for (_, before), (after, _) in itertools.pairwise(attempts):
                waited = (at(after) - at(before)).total_seconds()
                expected = before["retry_in"][min(retried)]
                assert expected - 0.05 <= waited <= expected + 1.5, (waited, expected)
            window = watcher.events[watcher.events.index(attempts[0][1]):watcher.events.index(attempts[2][1]) + 1]
            assert sum(1 for e in window if e["event"] == "build_started") == 2  # over >= 3 s: no extra attempt
            assert len(window) < 40, [e["event"] for e in window]  # and no spinning loop flooding the log
            assert log.exists()

            _fix(case, project_dir, holder)
            recovered = watcher.wait_for("build_finished", lambda e: not e["failed"] and not e["error"], timeout=120)
            assert built(recovered) >= retried
    finally:
        if holder is not None:
            holder.release()
    assert stale_reasons(project_dir) == {}


@pytest.mark.slow
def test_a_broken_profile_is_one_line_and_the_watcher_waits_for_the_fix(project_dir: Path) -> None:
    """A profile whose default target does not exist is a configuration error (exit 2), not a dbt failure."""
    write_settings(project_dir)
    profiles = project_dir / "profiles.yml"
    good = profiles.read_text()
    profiles.write_text(good.replace("target: dev", "target: nowhere"))
    for command in ("sync", "watch"):  # refused at the start, in one line
        result = dbtassets(project_dir, command, *(["--once"] if command == "watch" else []))
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr == (f"dbtassets: error: {profiles}: profile 'shopflow' has no target 'nowhere'; its "
                                 "targets are dev, prod, pg; pass one of them with --target\n")
    profiles.write_text(good)
    with watching(project_dir) as watcher:
        assert built(watcher.wait_for("build_finished")) == EVERYTHING
        profiles.write_text(good.replace("target: dev", "target: nowhere"))  # broken while it runs
        (project_dir / "seeds" / "country_codes.csv").write_text(
            (project_dir / "seeds" / "country_codes.csv").read_text() + "IT,Italy\n")
        error = watcher.wait_for("error", timeout=120)
        assert "'nowhere'" in error["message"] and error["retry_in"] > 0, error  # dbt's or ours
        profiles.write_text(good)  # fixed: the next retry builds, and records it for dev
        recovered = watcher.wait_for("build_finished", lambda e: not e["failed"] and not e["error"], timeout=240)
        assert "country_codes" in built(recovered)
    assert stale_reasons(project_dir) == {}


@pytest.mark.slow
def test_a_failing_data_test_is_not_retried_and_holds_downstream_until_the_data_changes(project_dir: Path) -> None:
    """A failing test is a failing check, not a failed build: retrying it on the same rows cannot help."""
    write_settings(project_dir)
    with watching(project_dir) as watcher:
        assert built(watcher.wait_for("build_finished")) == EVERYTHING
        _break("failing_test", project_dir)
        failing = watcher.wait_for("build_finished", lambda e: bool(e["failed_checks"]), timeout=120)
        assert failing["failed_checks"] == {
            "unique_stg_orders_order_id": "data test unique_stg_orders_order_id failed: Got 1 result, configured to "
                                          "fail if != 0"}
        assert failing["built"] == ["stg_orders"] and not failing["failed"] and not failing["retry_in"]
        time.sleep(5)  # five backoff_initial periods: a retry loop would have built again by now
        assert watcher.builds()[-1] == failing
        _fix("failing_test", project_dir, None)
        recovered = watcher.wait_for("build_finished", lambda e: not e["failed_checks"] and not e["failed"],
                                     timeout=120)
        assert built(recovered) == ORDERS_LINEAGE
    assert stale_reasons(project_dir) == {}


# -- 4. an event storm: 2,000 files in a burst ------------------------------------------------

STORM_FILES = 1_000  # per source
STORM_BUILD_BOUND = 3  # builds the storm may cause after the initial one


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.slow
def test_an_event_storm_of_2000_files_gives_few_builds_all_the_data_and_flat_memory(project_dir: Path) -> None:
    orders, customers = project_dir / "data/raw/orders", project_dir / "data/raw/customers"
    with watching(project_dir) as watcher:
        assert built(watcher.wait_for("build_finished")) == EVERYTHING
        initial = len(watcher.builds())
        rss_before = rss_mb(watcher.process.pid)

        started = time.monotonic()
        for i in range(STORM_FILES):  # written in place (create, write, close), the two sources interleaved
            (orders / f"storm_{i:04d}.csv").write_text(f"{ORDERS_HEADER}\n{order_lines(10_000 + i, 1)}")
            (customers / f"storm_{i:04d}.csv").write_text(f"customer_id,name,country_code\n{1_000 + i},C{i},GB\n")
        burst = time.monotonic() - started

        complete = STORM_FILES + 1
        def settled(event: Event) -> bool:
            seen = {e["source"] for e in watcher.events if e["event"] == "new_data" and e.get("files") == complete}
            return seen == {"raw.orders", "raw.customers"} and not event["failed"]
        watcher.wait_for("build_finished", settled, timeout=180)
        rss_after = rss_mb(watcher.process.pid)
        storm_builds = len(watcher.builds()) - initial

        assert set().union(*(built(e) for e in watcher.builds()[initial:])) == ORDERS_LINEAGE | CUSTOMERS_LINEAGE
        assert 1 <= storm_builds <= STORM_BUILD_BOUND, [e["built"] for e in watcher.builds()]
        assert all(not e["failed"] and not e["error"] for e in watcher.builds())
        # Idle now: every file is in the warehouse, once.
        assert warehouse_count(project_dir, "fact_sales") == BASE_ORDERS + STORM_FILES
        assert warehouse_count(project_dir, "stg_customers") == BASE_CUSTOMERS + STORM_FILES
        assert warehouse_count(project_dir, "dim_customer") == BASE_CUSTOMERS + STORM_FILES
        assert rss_after - rss_before < 100, (rss_before, rss_after)
    print(f"storm: {2 * STORM_FILES} files in {burst:.2f}s -> {storm_builds} builds; "
          f"RSS {rss_before:.0f} MB -> {rss_after:.0f} MB")


# -- 5. a file written slowly, in place --------------------------------------------------------

SLOW_ROWS = 30
SLOW_FIRST_ID = 5_000


@pytest.mark.slow
def test_a_file_appended_over_3s_is_never_built_half_written(project_dir: Path) -> None:
    # A check inside every build: the slow batch is either absent from stg_orders or complete.
    (project_dir / "tests/slow_batch_is_whole.sql").write_text(
        f"select count(*) as n from {{{{ ref('stg_orders') }}}} "
        f"where order_id between {SLOW_FIRST_ID} and {SLOW_FIRST_ID + SLOW_ROWS - 1} "
        f"having count(*) not in (0, {SLOW_ROWS})\n")
    text = ORDERS_HEADER + "\n" + order_lines(SLOW_FIRST_ID, SLOW_ROWS)
    pieces = [text[i * len(text) // 7:(i + 1) * len(text) // 7] for i in range(7)]  # cut mid-row
    slow = project_dir / "data/raw/orders/slow.csv"
    with watching(project_dir) as watcher:
        watcher.wait_for("build_finished")
        with slow.open("w") as f:  # the loader: 7 appends 0.5 s apart (longer than settle) to one open file
            first_append = datetime.now().astimezone()
            for n, piece in enumerate(pieces):
                if n:
                    time.sleep(0.5)
                f.write(piece)
                f.flush()
                if n == 2:  # meanwhile, complete batches land in both sources
                    land(project_dir, "orders_meanwhile.csv", 6_000)
                    (project_dir / "data/raw/customers/customers_meanwhile.csv").write_text(
                        "customer_id,name,country_code\n900,Meanwhile,NL\n")
                    # The loader pauses, file open, until the customers batch is built (however loaded the
                    # machine): a fixed 2 s was not always long enough for that build.
                    watcher.wait_for("build_finished", lambda e: "stg_customers" in e["built"], timeout=120)
            last_append = datetime.now().astimezone()
        final = watcher.wait_for("build_finished", lambda e: "stg_orders" in e["built"])

        during = [e for e in watcher.events if first_append < at(e) < last_append]
        builds_during = [e for e in during if e["event"] == "build_finished"]
        assert builds_during, "no build ran while the file was written"  # the customers batch was built...
        assert all(not built(e) & ORDERS_LINEAGE for e in builds_during), builds_during  # ...not orders
        assert any(e["event"] == "waiting" and e["files"] == ["data/raw/orders/slow.csv"] for e in during)
        for event in during:
            if event["event"] == "new_data" and event["source"] == "raw.orders":
                assert event["in_progress"] == ["data/raw/orders/slow.csv"], event
        assert at(final) > last_append
        assert all(not e["failed"] and not e["error"] for e in watcher.builds()), watcher.builds()
        assert warehouse_count(project_dir, "fact_sales") == BASE_ORDERS + 2 + SLOW_ROWS
        assert warehouse_count(project_dir, "stg_customers") == BASE_CUSTOMERS + 1


# -- 6. two watchers, and a watcher plus a CLI sync, on one project ---------------------------


def run_intervals(project: Path) -> list[tuple[int, int | None, datetime, datetime]]:
    return [(run_id, pid, parse_utc(start), parse_utc(end)) for run_id, pid, start, end in state_rows(
        project, "select id, pid, started_at, finished_at from runs order by id")]


@pytest.mark.slow
def test_two_watchers_or_a_watcher_and_a_sync_never_run_two_builds_at_once(project_dir: Path) -> None:
    # dbt as a subprocess: each build takes seconds (dbt's import alone), so the overlaps below are real.
    with watching(project_dir, "--runner", "subprocess") as first:
        first.wait_for("build_started")
        second = dbtassets(project_dir, "watch", "--format", "json")
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert "already has a running dbtassets watch" in second.stderr
        assert f"pid {first.process.pid}" in second.stderr
        sync = dbtassets(project_dir, "sync")
        refused_at = datetime.now().astimezone()
        assert sync.returncode == 2 and "Traceback" not in sync.stderr
        assert sync.stderr.startswith(f"dbtassets: error: this project already has a running dbtassets watch build "
                                      f"(pid {first.process.pid}")
        assert "stop it or wait for it" in sync.stderr
        assert at(first.wait_for("build_finished")) > refused_at  # refused while the watcher's build ran
    assert [r[1] for r in run_intervals(project_dir)] == [first.process.pid]  # the refused sync recorded nothing

    # The other way round: a CLI sync is building when the watcher wants to.
    land(project_dir, "orders_c.csv", 200)
    sync_process = subprocess.Popen([sys.executable, "-m", "dbtassets", "--project-dir", str(project_dir), "sync"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with sync_process:
        wait_until(lambda: sync_process.pid in _running_pids(project_dir), 60, "the sync starts building")
        with watching(project_dir, "--runner", "subprocess") as watcher:
            waiting = watcher.wait_for("waiting")
            assert f"running dbtassets sync (pid {sync_process.pid}" in waiting["message"]
            assert sync_process.wait(timeout=120) == 0
            # Having waited, the watcher plans again: the sync built the new orders, nothing is left to build.
            watcher.wait_for("fresh", timeout=30)
            assert [e for e in watcher.events if e["event"] == "build_started"] == []
            land(project_dir, "orders_d.csv", 300)
            assert built(watcher.wait_for("build_finished")) == ORDERS_LINEAGE
    runs = run_intervals(project_dir)
    assert [pid for _, pid, _, _ in runs] == [first.process.pid, sync_process.pid, watcher.process.pid]
    for (_, _, _, end), (_, _, start, _) in itertools.pairwise(runs):
        assert end <= start, runs  # each build began after the previous one was recorded
    assert len(state_rows(project_dir, "select 1 from materializations where unique_id like '%stg_orders'")) == 3


def _running_pids(project: Path) -> set[int]:
    if not (project / ".dbtassets/state.db").exists():
        return set()
    return {pid for (pid,) in state_rows(project, "select pid from runs where status = 'running'")}


# -- 7. clock skew: source files with mtimes in the future or the past ------------------------

DAY = 86_400.0


@pytest.mark.slow
def test_files_with_future_or_past_mtimes_are_new_data_for_sync_and_watch(project_dir: Path) -> None:
    skewed = {"future": time.time() + DAY, "past": datetime(2001, 1, 1).timestamp()}
    with watching(project_dir) as watcher:
        watcher.wait_for("build_finished")
        for n, (when, mtime) in enumerate(skewed.items()):
            path = land(project_dir, f"orders_{when}.csv", 400 + 10 * n, mtime=mtime)
            assert path.stat().st_mtime == mtime
            event = watcher.wait_for("build_finished")
            assert built(event) == ORDERS_LINEAGE, when
        assert warehouse_count(project_dir, "fact_sales") == BASE_ORDERS + 4

    # sync sees each one on its own too: the past one, then (after it is gone again) the future one.
    would_build = ["Would build 3 assets (stg_orders, fact_sales, dim_customer) with:",
                   "dbt build --select stg_orders+"]
    past = land(project_dir, "orders_sync_past.csv", 500, mtime=skewed["past"])
    assert dbtassets(project_dir, "sync", "--dry-run").stdout.splitlines() == would_build
    past.unlink()
    assert dbtassets(project_dir, "sync", "--dry-run").stdout.splitlines() == [
        "Nothing to build: every selected asset is fresh."]
    land(project_dir, "orders_sync_future.csv", 510, mtime=skewed["future"])
    assert dbtassets(project_dir, "sync", "--dry-run").stdout.splitlines() == would_build
    synced = dbtassets(project_dir, "sync")
    assert synced.stdout.startswith("Built 3 of 3 assets"), synced.stdout + synced.stderr
    assert warehouse_count(project_dir, "fact_sales") == BASE_ORDERS + 6


def test_a_file_with_a_future_mtime_still_being_written_is_left_out(tmp_path: Path) -> None:
    """Its writer's clock is ahead (an NFS server, a VM): 'modified within settle' must not need mtime <= now."""
    from dbtassets.model.manifest import UniqueId
    from dbtassets.model.sources import ObserverKind, SourceDeclaration, observe_files

    declaration = SourceDeclaration(UniqueId("source.p.raw.orders"), "raw.orders", ObserverKind.FILES, "test",
                                    globs=("orders/*.csv",))
    (tmp_path / "orders").mkdir()
    done, growing = tmp_path / "orders/done.csv", tmp_path / "orders/growing.csv"
    done.write_text(ORDERS_HEADER + "\n" + order_lines(1, 2))
    growing.write_text(ORDERS_HEADER + "\n")
    ahead = time.time() + 3_600
    os.utime(growing, (ahead, ahead))

    def writer_meanwhile(seconds: float) -> None:  # observe_files' second look finds it grown
        with growing.open("a") as f:
            f.write(order_lines(3, 1))
        os.utime(growing, (ahead + 1, ahead + 1))

    observation = observe_files(tmp_path, declaration, settle=0.2, sleep=writer_meanwhile)
    assert observation.detail["files"] == 1
    assert observation.detail["in_progress"] == ["orders/growing.csv"]


# -- 8. the project edited during a build -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["in-process", "subprocess"])
def test_a_model_saved_during_a_build_is_not_lost(runner: str, project_dir: Path) -> None:
    model = project_dir / "models/staging/stg_customers.sql"
    with watching(project_dir, "--runner", runner) as watcher:
        watcher.wait_for("build_started", timeout=120)
        model.write_text(model.read_text().replace("cc.country_name", "upper(cc.country_name) as country_name"))
        assert built(watcher.wait_for("build_finished", timeout=120)) == EVERYTHING
        watcher.wait_for("parsed", timeout=120)
        rebuilt = watcher.wait_for("build_finished", timeout=120)
        assert built(rebuilt) == CUSTOMERS_LINEAGE and not rebuilt["failed"]
        # The edit took effect in the warehouse, downstream included.
        for table in ("stg_customers", "dim_customer"):
            assert warehouse_count(project_dir, table, "where country_name = upper(country_name)") == BASE_CUSTOMERS
    assert stale_reasons(project_dir) == {}
    versions = state_rows(project_dir, "select code_version from materializations "
                                       "where unique_id = 'model.shopflow.stg_customers' order by id")
    assert len(versions) == 2 and versions[0] != versions[1]


# -- 9. a full disk, a read-only state directory -----------------------------------------------
#
# Two simulations: SQLite's own limit (PRAGMA max_page_count: writes fail with SQLITE_FULL, "database
# or disk is full"), which needs no privileges; and a real 1 MiB tmpfs filled to the last byte, then
# remounted read-only, which needs root with CAP_SYS_ADMIN: skipped elsewhere, but never under CI=true
# (CI runs as root; there a mount that fails is a failure, not a skip).

BIG_NOTE = "n" * 50_000


def _capped(project: Any) -> None:
    """Let the project's store connection grow no further (per connection: only this one is limited)."""
    db = project.store._db
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")


def _torn_runs(project_dir: Path, state: Path | None = None) -> list[tuple[Any, ...]]:
    """Outcomes recorded for a run that was never closed: never allowed."""
    return state_rows(project_dir, "select m.run_id, r.status from materializations m join runs r on r.id = m.run_id "
                                   "where r.status not in ('success', 'error')", state=state)


def test_a_full_state_store_is_a_clear_error_and_stays_intact(project_dir: Path) -> None:
    from dbtassets.engine import Options, Project
    from dbtassets.errors import StateError
    from tests.conftest import FakeRunner

    runner = FakeRunner()
    with Project(Options(project_dir), runner=runner) as project:
        runner.project = project
        assert project.sync().ok
        _capped(project)
        with pytest.raises(StateError, match=r"state.db: .*the disk is full .*free some space and run the command "
                                             r"again"):
            project.report("raw.orders", note=BIG_NOTE)
        for n in range(200):  # new data and a sync, until one of the sync's writes finds no room
            land(project_dir, f"orders_full_{n}.csv", 1_000 + 10 * n)
            try:
                assert project.sync().ok
            except StateError as exc:
                assert "the disk is full" in str(exc) and "free some space" in str(exc)
                break
        else:
            raise AssertionError("the capped store never filled up")
        assert project.store.integrity_check() == "ok"
    assert _torn_runs(project_dir) == []  # no build was half recorded
    outcomes = state_rows(project_dir, "select r.id, count(m.id) from runs r left join materializations m "
                                       "on m.run_id = r.id where r.status = 'success' group by r.id order by r.id")
    assert outcomes[0] == (1, 6) and all(n == 3 for _, n in outcomes[1:]), outcomes


def test_a_build_whose_outcome_cannot_be_recorded_does_not_stay_running(project_dir: Path) -> None:
    from dbtassets.engine import Options, Project
    from dbtassets.errors import StateError
    from tests.conftest import FakeRunner

    class FillsTheDisk(FakeRunner):
        def build(self, selectors: Any, extra_args: Any = (), verb: Any = Verb.BUILD) -> Any:
            result = super().build(selectors, extra_args, verb)
            assert self.project is not None

            def no_room(*args: Any, **kwargs: Any) -> int:  # what SQLite says when an insert finds no room
                raise sqlite3.OperationalError("database or disk is full")

            self.project.store.insert_outcome = no_room  # type: ignore[method-assign]  # the run is started
            return result

    runner = FillsTheDisk()
    with Project(Options(project_dir), runner=runner) as project:
        runner.project = project
        with pytest.raises(StateError, match="disk is full"):
            project.sync()
    (run,) = state_rows(project_dir, "select status, message from runs")
    assert run[0] == "error" and run[1].startswith("nothing recorded: ") and "disk is full" in run[1], run
    assert state_rows(project_dir, "select count(*) from materializations") == [(0,)]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root with CAP_SYS_ADMIN only), unmounted afterwards."""
    mountpoint = tmp_path / "small_fs"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a small file system here: {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run this test as root with CAP_SYS_ADMIN")
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(directory: Path) -> Path:
    """Take every free byte of ``directory``'s file system."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    return line


@pytest.mark.slow
def test_a_really_full_or_read_only_disk_under_the_state_store(project_dir: Path, small_fs: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    state = small_fs / "state.db"
    monkeypatch.setenv("DBTASSETS_STATE", str(state))
    full_disk = (f"{state}: cannot write the state store (database or disk is full): the disk is full "
                 f"(0 KiB free in {small_fs}); free some space and run the command again")
    write_settings(project_dir)
    with watching(project_dir) as watcher:
        assert built(watcher.wait_for("build_finished")) == EVERYTHING
        filler = fill(small_fs)
        land(project_dir, "orders_full.csv", 800)
        errors = [watcher.wait_for("error"), watcher.wait_for("error")]
        for error, delay in zip(errors, (1.0, 2.0), strict=True):
            assert error["message"] == full_disk
            assert error["retry_in"] == delay  # retried with backoff, not in a loop, not dropped
        line = one_line_error(dbtassets(project_dir, "report", "raw.orders"))
        assert line == f"dbtassets: error: {full_disk}"
        filler.unlink()  # space again: the next retry observes the new file and builds it
        rebuilt = watcher.wait_for("build_finished", timeout=60)
        assert built(rebuilt) == ORDERS_LINEAGE and not rebuilt["failed"]
    assert warehouse_count(project_dir, "fact_sales") == BASE_ORDERS + 2
    assert state_rows(project_dir, "PRAGMA integrity_check", state=state) == [("ok",)]
    assert _torn_runs(project_dir, state) == []

    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        line = one_line_error(dbtassets(project_dir, "report", "raw.orders"))
        assert line == (f"dbtassets: error: {state}: cannot write the state store (attempt to write a readonly "
                        f"database): the file system of {small_fs} is read-only; remount it read-write or pass "
                        "another --state")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert state_rows(project_dir, "PRAGMA integrity_check", state=state) == [("ok",)]
    assert state_rows(project_dir, "select status from runs", state=state) == [("success",), ("success",)]
