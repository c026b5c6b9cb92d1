"""Team mode end to end: two watchers share one PostgreSQL state store and example_project's Postgres target.

Each watcher has its own checkout of the project and calls itself another machine
(DBTASSETS_HOST), so only the leases in the store keep them apart: neither may see the other's
process. Orders land in the warehouse through the loader at random moments; both watchers see
each landing (a ``query`` watermark polled every second) and race to build.

The kill -9 must land in the middle of a build, whatever the machine's load: a build of
stg_orders takes about a second, and the test learns that it started only by reading the
watcher's events. So the test holds a read of analytics.stg_orders open across the last landing:
the build that takes it on waits in the warehouse (dbt renames the old table away) until the
victim is dead, and the victim is checked to have recorded nothing of it (its run still
'running', or not yet written). Read too late, a build would have finished before the kill: the
survivor then had nothing left to rebuild and the test waited for a rebuild in vain (the one
intermittent CI failure of this test).
"""

from __future__ import annotations

import importlib.util
import json
import queue
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import EXAMPLE
from tests.pg import PostgresServer
from tests.test_postgres_warehouse import _SKIP, pg_env
from tests.watcher import Event, WatchProcess

pytestmark = pytest.mark.slow

LEASE = 6.0  # seconds: watch.lease in both checkouts
SETTINGS = f"""
watch:
  lease: {LEASE:g}s
sources:
  raw.orders:
    query: select max(_loaded_at) from raw.orders
    every: 1s
"""
BASE_ORDERS = 6


def loader() -> ModuleType:
    """example_project/load_postgres.py, imported (its `from ingest_orders import …` needs the directory)."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("load_postgres", EXAMPLE / "load_postgres.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLE))


def next_event(watchers: dict[str, WatchProcess], kind: str, timeout: float,
               where: Any = lambda e: True) -> tuple[str, Event]:
    """The first event of ``kind`` from any of ``watchers`` (each keeps its other events in ``events``).

    A watcher with nothing to say does not slow the reading of another's backlog.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        heard = False
        for name, watcher in watchers.items():
            try:
                event = watcher._queue.get_nowait()
            except queue.Empty:
                continue
            heard = True
            assert event is not None, f"watcher {name} exited: {watcher._stderr()}"
            watcher.events.append(event)
            if event["event"] == kind and where(event):
                return name, event
        if not heard:
            time.sleep(0.02)
    raise AssertionError(f"no {kind!r} event within {timeout}s; saw "
                         f"{ {n: [e['event'] for e in w.events[-15:]] for n, w in watchers.items()} }")


def parse_utc(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_two_watchers_share_the_work_never_build_one_asset_at_once_and_survive_a_kill_9(
        postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = postgres.database("shopflow")
    state = postgres.url(postgres.database("state"))
    for name, value in pg_env(postgres, warehouse).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DBTASSETS_STATE", state)
    first = tmp_path / "a" / "shopflow"
    shutil.copytree(EXAMPLE, first, ignore=_SKIP)
    (first / "dbtassets.yml").write_text(SETTINGS)
    subprocess.run([sys.executable, "-m", "dbt.cli.main", "parse", "--profiles-dir", str(first), "--project-dir",
                    str(first)], cwd=first, check=True, capture_output=True, timeout=300)
    second = tmp_path / "b" / "shopflow"
    shutil.copytree(first, second, symlinks=True)  # the same code, parsed, in another checkout
    load = loader()
    db = load.connect()
    landed_dir = tmp_path / "loader"  # the loader's own landing area: the watchers see only the warehouse
    shutil.copytree(EXAMPLE / "data" / "raw", landed_dir)
    load.create_tables(db)
    load.load_pending(db, landed_dir)

    watchers: dict[str, WatchProcess] = {}
    blocker = None
    try:
        for name, project in (("machine-a", first), ("machine-b", second)):
            monkeypatch.setenv("DBTASSETS_HOST", name)
            watchers[name] = WatchProcess(project)
        for watcher in watchers.values():
            watcher.wait_for("watching", timeout=180)

        # 20 landings of 2 orders each, at random moments over about a minute.
        rng = random.Random(12)
        for _ in range(20):
            time.sleep(rng.uniform(0.5, 5.0))
            load.land_batch(landed_dir / "orders", 2)
            load.load_pending(db, landed_dir)
        expected = BASE_ORDERS + 20 * 2
        deadline = time.monotonic() + 240
        while fact_sales(postgres, warehouse) != expected:
            assert time.monotonic() < deadline, f"fact_sales has {fact_sales(postgres, warehouse)} rows, not {expected}"
            next_event(watchers, "build_finished", timeout=max(1.0, deadline - time.monotonic()))
        builders = {name for name, w in watchers.items() if any(e["event"] == "build_finished" for e in w.events)}
        turned_away = {name for name, w in watchers.items()
                       if any(e["event"] == "waiting" and "left to another build" in e["message"] for e in w.events)}

        # kill -9 of whichever watcher starts the next build, in the middle of it: that build waits on
        # the test's read of stg_orders (see the module's docstring). Nothing may be building when the
        # read begins (no lease held), or that build would wait instead. Events still queued from
        # before this landing do not count: each event says when it happened.
        blocker = hold_a_read_of(load, "analytics.stg_orders", state, postgres)
        landed_at = time.time()
        load.land_batch(landed_dir / "orders", 2)
        load.load_pending(db, landed_dir)
        victim, _ = next_event(watchers, "build_started", timeout=120,
                               where=lambda e: "stg_orders" in e["command"] and parse_utc(e["at"]) >= landed_at)
        watchers[victim].process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        assert watchers[victim].process.wait(timeout=30) == -signal.SIGKILL
        # It died mid-build: with its run 'running', or before it was even written (just after build_started).
        since = [status for status, started in postgres.query(
            state.rsplit("/", 1)[1], "select status, started_at from runs where host = %s", (victim,))
            if parse_utc(str(started)) >= landed_at]
        assert set(since) <= {"running"}, ("the kill did not land mid-build", since)
        blocker.rollback()
        survivor = next(name for name in watchers if name != victim)
        durations = [e["seconds"] for e in watchers[survivor].events if e["event"] == "build_finished"]
        _, rebuilt = next_event({survivor: watchers[survivor]}, "build_finished", timeout=LEASE + 180,
                                where=lambda e: {"stg_orders", "fact_sales"} <= set(e["built"])
                                and parse_utc(e["at"]) > killed_at)
        recovered_in = time.time() - killed_at
        assert fact_sales(postgres, warehouse) == expected + 2
        assert watchers[survivor].stop() == 0
    finally:
        if blocker is not None:
            blocker.close()
        for watcher in watchers.values():
            watcher.__exit__()
        db.close()

    # Both watchers competed (each built, or found what it wanted held by the other), and no asset
    # was ever built by both at once (from the runs recorded: assets, start and end of each).
    assert builders | turned_away == {"machine-a", "machine-b"}, (builders, turned_away)
    runs = [(host, set(json.loads(selected)), parse_utc(started), parse_utc(finished) if finished else killed_at)
            for host, selected, started, finished in postgres.query(
                state.rsplit("/", 1)[1], "select host, selected, started_at, finished_at from runs order by id")]
    assert {host for host, *_ in runs} == {"machine-a", "machine-b"}  # the survivor's rebuild, at least
    for i, (host, assets, start, end) in enumerate(runs):
        for other_host, other_assets, other_start, other_end in runs[i + 1:]:
            if host != other_host and start < other_end and other_start < end:
                assert not assets & other_assets, ("built by both at once", host, other_host, assets & other_assets)
    # After the kill the survivor built the stale set within the lease's expiry plus one build (and
    # the time to see it: a 2s look at held assets, a 1s query poll, on a loaded machine), and not
    # before the lease expired: it never built alongside the dead holder's last build.
    started_again = parse_utc(rebuilt["at"]) - rebuilt["seconds"]
    assert started_again >= killed_at, (started_again, killed_at)
    one_build = max(durations, default=0.0) + rebuilt["seconds"]
    assert recovered_in <= LEASE + one_build + 30, (recovered_in, LEASE, durations, rebuilt["seconds"])
    print(f"{len(runs)} runs, built by {sorted(builders)}, turned away: {sorted(turned_away)}; "
          f"kill -9 of {victim}: {survivor} rebuilt in {recovered_in:.1f}s "
          f"(lease {LEASE:g}s, its builds took {durations} s)")


def hold_a_read_of(load: ModuleType, table: str, state: str, server: PostgresServer, timeout: float = 120) -> Any:
    """A warehouse connection inside a transaction that has read ``table``, taken while no build runs."""
    deadline = time.monotonic() + timeout
    while True:
        blocker = load.connect()
        blocker.cursor().execute(f"select 1 from {table} limit 1")  # holds its lock until rollback
        if not server.query(state.rsplit("/", 1)[1], "select unique_id from leases "
                            "where expires_at >= extract(epoch from clock_timestamp())"):
            return blocker
        blocker.rollback()
        blocker.close()
        assert time.monotonic() < deadline, "the watchers never stopped building"
        time.sleep(0.2)


def fact_sales(server: PostgresServer, database: str) -> int:
    try:
        ((count,),) = server.query(database, "select count(*) from analytics.fact_sales")
    except Exception:  # not built yet
        return 0
    return int(count)  # type: ignore[call-overload]
