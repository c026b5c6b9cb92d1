"""The watcher driven in-process: a fake dbt runner, a fake monotonic clock, real files and real inotify.

Time moves only when the watcher waits on an empty inbox, and then by the whole wait, so backoff
and settle times are exact and cost nothing. Each test runs ``Watcher.run`` in a thread and
follows its typed events; the thread-leak guard (tests/conftest.py) then checks that the watcher
and its watchdog observer are gone.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from dbtassets.engine import Project
from dbtassets.watch import events as ev
from dbtassets.watch.files import Inbox, watching
from dbtassets.watch.watcher import Watcher
from tests.conftest import MUTATION_RUN, FakeClock, FakeRunner, leaked_threads

E = TypeVar("E", bound=ev.WatchEvent)

ORDERS_LINEAGE = ("stg_orders", "fact_sales", "dim_customer")
CUSTOMERS_LINEAGE = ("stg_customers", "customers_snapshot", "dim_customer")
EVERYTHING = {"country_codes", "stg_orders", "stg_customers", "fact_sales", "dim_customer", "customers_snapshot"}
HEADER = "order_id,customer_id,ordered_at,product,quantity,unit_price\n"


# How long to wait for an event that a fake clock makes come at once. A mutation run waits less: a
# mutant that stops an event is killed either way, and each wait is seconds of nothing on 2 cores.
PATIENCE = 5.0 if MUTATION_RUN else 30.0


class FakeTicker:
    """Monotonic time that jumps by the whole wait when nothing is in the inbox."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wait(self, inbox: Inbox, timeout: float) -> tuple[str, str] | None:
        try:  # a real file event may be on its way from watchdog's thread: give it a moment of real time
            return inbox.get(timeout=min(timeout, 0.02))
        except queue.Empty:
            self.now += timeout
            return None


class ParsingRunner(FakeRunner):
    """A fake runner whose ``dbt parse`` rewrites nothing but the manifest's modification time."""

    parses: int = 0

    def parse(self) -> None:
        assert self.project is not None
        self.parses += 1
        os.utime(self.project.dbt.manifest_path)


class Running:
    """``Watcher.run`` in a thread; each event is kept with the fake time it was emitted at."""

    def __init__(self, project: Project, runner: FakeRunner, **options: float) -> None:
        self.ticker = FakeTicker()
        self.runner = runner
        self.events: list[tuple[float, ev.WatchEvent]] = []
        self._queue: queue.Queue[ev.WatchEvent] = queue.Queue()
        self.watcher = Watcher(project, self._emit, ticker=self.ticker, settle=options.get("settle", 0.2))
        self.ok: bool | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-watcher")
        self.thread.start()

    def _emit(self, event: ev.WatchEvent) -> None:
        self.events.append((self.ticker.now, event))
        self._queue.put(event)

    def _run(self) -> None:
        try:
            self.ok = self.watcher.run()
        except BaseException as exc:  # re-raised in the test's thread by stop()
            self.error = exc
            self._queue.put(ev.Stopped())

    def wait_for(self, kind: type[E], where: Callable[[E], bool] = lambda e: True, timeout: float = PATIENCE) -> E:
        while True:
            try:
                event = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {kind.__name__} in {timeout}s; saw {self.kinds()}") from None
            if self.error is not None:
                raise AssertionError(f"the watcher raised {self.error!r}") from self.error
            if isinstance(event, kind) and where(event):
                return event
            if isinstance(event, ev.Stopped):
                raise AssertionError(f"the watcher stopped before a {kind.__name__}; saw {self.kinds()}")

    def of(self, kind: type[E]) -> list[E]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        return [e.kind.value for _, e in self.events]

    def stop(self) -> bool | None:
        self.watcher.stop()
        self.thread.join(timeout=PATIENCE)
        assert not self.thread.is_alive(), "the watcher did not stop"
        if self.error is not None:
            raise self.error
        return self.ok


@pytest.fixture
def watch(fake_project: tuple[Project, FakeRunner, FakeClock]) -> Iterator[Callable[[], Running]]:
    project, runner, _ = fake_project
    started: list[Running] = []

    def start() -> Running:
        started.append(Running(project, runner))
        return started[-1]

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def parsing_project(project_dir: Path) -> Iterator[tuple[Project, ParsingRunner]]:
    from dbtassets.engine import Options

    runner = ParsingRunner()
    project = Project(Options(project_dir), runner=runner, clock=FakeClock())
    runner.project = project
    yield project, runner
    project.close()


def land(project: Path, name: str, first_id: int) -> None:
    temporary = project / "data/raw/orders" / f".{name}.tmp"
    temporary.write_text(HEADER + f"{first_id},1,2026-11-20 10:00:00,ink,1,7.25\n")
    os.replace(temporary, project / "data/raw/orders" / name)


def test_on_a_fresh_project_it_says_fresh_once_and_builds_nothing(
        fake_project: tuple[Project, FakeRunner, FakeClock], watch: Callable[[], Running]) -> None:
    project, runner, _ = fake_project
    assert project.sync().ok
    calls = len(runner.calls)
    running = watch()
    assert running.wait_for(ev.Watching).stale == 0
    assert running.wait_for(ev.Fresh).assets == 8
    while running.ticker.now < 1010:  # ten seconds of polling for reports, with nothing new
        time.sleep(0.01)
    assert running.stop() is True
    assert running.kinds() == ["watching", "fresh", "stopped"]  # said once, not at every poll
    assert len(runner.calls) == calls


def test_on_a_project_never_built_it_builds_everything_then_rests(watch: Callable[[], Running]) -> None:
    running = watch()
    assert running.wait_for(ev.Watching).stale == 6
    stale = running.wait_for(ev.Stale)
    assert {a.name for a in stale.assets} == EVERYTHING and {a.status for a in stale.assets} == {"missing"}
    assert set(running.wait_for(ev.BuildFinished).built) == EVERYTHING
    assert running.stop() is True


def test_a_landing_rebuilds_the_orders_lineage(fake_project: tuple[Project, FakeRunner, FakeClock],
                                               watch: Callable[[], Running]) -> None:
    project, runner, _ = fake_project
    assert project.sync().ok
    running = watch()
    running.wait_for(ev.Fresh)
    land(project.dbt.directory, "orders_landed.csv", 500)
    assert running.wait_for(ev.NewData).files == 2
    finished = running.wait_for(ev.BuildFinished)
    assert set(finished.built) == set(ORDERS_LINEAGE) and not finished.failed
    assert runner.calls[-1] == ["build", "--select", "stg_orders+"]
    assert running.stop() is True


def test_a_comment_only_edit_while_idle_is_parsed_and_builds_nothing(
        parsing_project: tuple[Project, ParsingRunner]) -> None:
    project, runner = parsing_project
    assert project.sync().ok
    running = Running(project, runner)
    try:
        running.wait_for(ev.Fresh)
        model = project.dbt.directory / "models/marts/fact_sales.sql"
        model.write_text("-- who reads this\n" + model.read_text())
        assert running.wait_for(ev.Parsed).assets == 8
        running.wait_for(ev.Fresh)
    finally:
        running.stop()
    assert runner.parses == 1 and running.of(ev.BuildStarted) == []


def test_an_edit_during_a_build_is_built_again_after_it(parsing_project: tuple[Project, ParsingRunner]) -> None:
    project, runner = parsing_project
    model = project.dbt.directory / "models/staging/stg_customers.sql"

    def edit_once() -> None:
        model.write_text(model.read_text() + "\n-- edited\n")
        runner.during_build = None

    runner.during_build = edit_once
    running = Running(project, runner)
    try:
        assert set(running.wait_for(ev.BuildFinished).built) == EVERYTHING
        running.wait_for(ev.Parsed)
        stale = running.wait_for(ev.Stale)
        assert {a.name for a in stale.assets} == set(CUSTOMERS_LINEAGE)
        (edited,) = [a for a in stale.assets if a.name == "stg_customers"]
        assert "edited during that build" in edited.reasons[0]
        assert set(running.wait_for(ev.BuildFinished).built) == set(CUSTOMERS_LINEAGE)
    finally:
        running.stop()


def test_a_failing_model_backs_off_1_2_4_then_4_seconds_and_reads_its_error_once(
        fake_project: tuple[Project, FakeRunner, FakeClock], watch: Callable[[], Running]) -> None:
    project, runner, _ = fake_project
    (project.dbt.directory / "dbtassets.yml").write_text("watch:\n  backoff_initial: 1s\n  backoff_max: 4s\n")
    runner.fail = {"fact_sales"}
    running = watch()
    for _ in range(5):
        running.wait_for(ev.BuildFinished)
    running.stop()
    builds = [(at, e) for at, e in running.events if isinstance(e, ev.BuildFinished)]
    assert [e.retry_in for _, e in builds] == [{"fact_sales": s} for s in (1.0, 2.0, 4.0, 4.0, 4.0)]
    gaps = [round(b[0] - a[0], 6) for a, b in itertools.pairwise(builds)]
    assert gaps == [1.0, 2.0, 4.0, 4.0]  # exactly the backoff: no retry early, none late
    assert [e.built for _, e in builds[1:]] == [()] * 4 and all(e.failed for _, e in builds)
    errors = running.of(ev.NodeFinished)
    assert [(e.name, e.message) for e in errors] == [("fact_sales", "Runtime Error in model fact_sales")] * 5
    stale = running.of(ev.Stale)[1]
    assert stale.assets[0].reasons[-1].startswith("last build failed at ")


def test_a_file_still_being_written_holds_its_assets_until_it_is_closed(
        fake_project: tuple[Project, FakeRunner, FakeClock], watch: Callable[[], Running]) -> None:
    project, _, _ = fake_project
    assert project.sync().ok
    running = watch()
    running.wait_for(ev.Fresh)
    slow = project.dbt.directory / "data/raw/orders/orders_slow.csv"
    with slow.open("w") as f:
        f.write(HEADER)
        f.flush()
        land(project.dbt.directory, "orders_quick.csv", 600)  # complete: its assets would be stale
        waiting = running.wait_for(ev.Waiting)
        assert waiting.files == ("data/raw/orders/orders_slow.csv",) and set(waiting.assets) == set(ORDERS_LINEAGE)
        f.write("601,1,2026-11-20 10:00:00,ink,1,7.25\n")
    finished = running.wait_for(ev.BuildFinished)
    assert set(finished.built) == set(ORDERS_LINEAGE)
    assert running.of(ev.NewData)[-1].files == 3  # both new files, the slow one complete
    assert len(running.of(ev.BuildFinished)) == 1
    running.stop()


def test_stop_during_a_build_records_it_and_then_stops(
        fake_project: tuple[Project, FakeRunner, FakeClock], watch: Callable[[], Running]) -> None:
    project, runner, _ = fake_project
    holder: list[Running] = []
    runner.during_build = lambda: holder[0].watcher.stop()
    holder.append(watch())
    holder[0].thread.join(timeout=PATIENCE)
    assert holder[0].stop() is True
    assert holder[0].kinds()[-2:] == ["build_finished", "stopped"]
    assert not project.status(observe=False).needing_build()  # what it built is recorded
    (run,) = project.store.runs()
    assert run.status == "success"


def test_the_thread_leak_guard_sees_the_watchdog_observer(fake_project: tuple[Project, FakeRunner, FakeClock]
                                                          ) -> None:
    project, _, _ = fake_project
    before = set(threading.enumerate())
    with watching(project.snapshot, queue.SimpleQueue()):
        assert "dbtassets-filewatch" in [t.name for t in leaked_threads(before)]
    assert leaked_threads(before) == []


def test_a_failed_build_says_what_was_built_failed_and_skipped_and_when_each_failure_is_retried(
        fake_project: tuple[Project, FakeRunner, FakeClock], watch: Callable[[], Running]) -> None:
    project, runner, _ = fake_project
    runner.fail = {"stg_orders"}
    running = watch()
    finished = running.wait_for(ev.BuildFinished)
    running.stop()
    assert finished == ev.BuildFinished(
        built=("country_codes", "stg_customers", "customers_snapshot"),
        failed={"stg_orders": "Runtime Error in model stg_orders"}, skipped=("fact_sales", "dim_customer"),
        seconds=0.0, command="dbt build --select country_codes+ stg_orders+", error=None,
        log_path=str(project.dbt.dbt_log), retry_in={"stg_orders": 5.0})  # the default first backoff
    assert running.of(ev.NodeFinished) == [  # its error, said once (the fake runner says nothing live)
        ev.NodeFinished("stg_orders", "error", 0.0, "Runtime Error in model stg_orders")]


def test_when_dbt_crashes_every_asset_it_did_not_run_backs_off(
        fake_project: tuple[Project, FakeRunner, FakeClock], watch: Callable[[], Running]) -> None:
    _, runner, _ = fake_project
    runner.crash = True
    running = watch()
    finished = running.wait_for(ev.BuildFinished)
    running.stop()
    assert finished.error == "dbt exited with code 2 without writing run results" and finished.built == ()
    assert finished.retry_in == dict.fromkeys(EVERYTHING, 5.0)
