"""Is anyone watching? A watcher's heartbeat in the store, what ``status`` says of it, and ``check --watcher-within``.

The watcher runs in-process (fake dbt runner, fake clocks, real files and store); the readers that
judge it get a clock of their own, moved past the heartbeat instead of sleeping.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import click
import pytest

from dbtassets.clock import shown, timestamp
from dbtassets.engine import Options, Project
from dbtassets.report import text
from dbtassets.state.heartbeats import HEARTBEAT_EVERY, Heartbeat, WatcherState, watchers
from dbtassets.state.hosts import machine_name
from dbtassets.state.store import StateStore
from dbtassets.watch import events as ev
from tests.conftest import FakeClock, FakeRunner, dbtassets
from tests.test_watcher import PATIENCE, Running

Setup = tuple[Project, FakeRunner, FakeClock]


def judged(project_dir: Path, clock: FakeClock, after: float) -> Project:
    """A reader of the project (read-only) whose clock reads ``after`` seconds past ``clock``'s."""
    reader = Project(Options(project_dir, read_only=True), runner=FakeRunner(),
                     clock=FakeClock(clock.moment + timedelta(seconds=after)))
    reader.runner.project = reader  # type: ignore[attr-defined]
    return reader


@pytest.fixture
def watcher(fake_project: Setup) -> Iterator[Running]:
    project, runner, _ = fake_project
    running = Running(project, runner)
    running.wait_for(ev.BuildFinished)  # its first pass built the project
    # The pass is recorded as finished just after BuildFinished is said: wait for that, as a reader would.
    deadline = time.monotonic() + PATIENCE
    with judged(project.dbt.directory, fake_project[2], 0) as reader:
        while not any(beat.last_pass_at for beat in watchers(reader.store, "shopflow")):
            assert time.monotonic() < deadline, "the watcher's first pass was never recorded"
            time.sleep(0.02)
    yield running
    if running.thread.is_alive():
        running.stop()


def test_status_says_a_watcher_runs_and_when_its_last_pass_was(fake_project: Setup, watcher: Running) -> None:
    project, _, clock = fake_project
    with judged(project.dbt.directory, clock, 1) as reader:
        report = reader.status(observe=False)
    assert report.watching is not None and report.watching.state is WatcherState.RUNNING
    beat = report.watching.watcher
    assert beat is not None and (beat.host, beat.pid, beat.project) == (machine_name(), os.getpid(), "shopflow")
    assert beat.last_pass_at is not None and beat.stopped_at is None
    line = click.unstyle(text.status_text(reader.graph, report, show_all=False)).splitlines()[-1]
    assert line.startswith(f"watcher: running ({machine_name()}, pid {os.getpid()}) since ")
    assert "; last pass 20" in line
    assert report.watching.missing(60) is None


def test_after_the_watcher_stops_check_within_fails_once_the_duration_has_passed(fake_project: Setup,
                                                                                watcher: Running) -> None:
    project, _, clock = fake_project
    watcher.stop()
    with judged(project.dbt.directory, clock, 5 * 60) as reader:
        watching = reader.status(observe=False).watching
    assert watching is not None and watching.state is WatcherState.STOPPED
    assert watching.missing(10 * 60) is None  # it beat 5 minutes ago, as it stopped
    with judged(project.dbt.directory, clock, 20 * 60) as reader:
        watching = reader.status(observe=False).watching
    assert watching is not None
    reason = watching.missing(10 * 60)
    assert reason is not None and reason.startswith(
        f"no watcher has beaten within 600s: the last one ({machine_name()}, pid {os.getpid()}) stopped at ")


def test_a_watcher_that_stops_beating_looks_dead(fake_project: Setup, watcher: Running) -> None:
    project, _, clock = fake_project
    with judged(project.dbt.directory, clock, 4 * HEARTBEAT_EVERY) as reader:
        report = reader.status(observe=False)
    assert report.watching is not None and report.watching.state is WatcherState.DEAD
    line = click.unstyle(text.status_text(reader.graph, report, show_all=False)).splitlines()[-1]
    assert line.startswith(f"watcher: none running; the last one ({machine_name()}, pid {os.getpid()}) looks dead: "
                           "no heartbeat since ")


def test_an_idle_watcher_beats_once_every_interval(fake_project: Setup, watcher: Running) -> None:
    project, _, clock = fake_project

    def beat_at() -> str:
        return str(store._query("SELECT beat_at FROM watchers")[0][0])

    def wait(until: Callable[[], bool]) -> None:
        deadline = time.monotonic() + PATIENCE
        while not until() and time.monotonic() < deadline:
            time.sleep(0.02)

    with StateStore.open(project.dbt.directory / ".dbtassets" / "state.db") as store:
        wait(lambda: store._query("SELECT last_pass_at FROM watchers")[0][0] is not None)  # its first pass beat
        first = beat_at()
        time.sleep(0.3)  # the idle loop wakes many times meanwhile, and writes nothing: its clock has not moved on
        assert beat_at() == first
        clock.advance(HEARTBEAT_EVERY)
        wait(lambda: beat_at() != first)
        assert beat_at() > first


def test_check_watcher_within_fails_with_one_line_when_no_watcher_beat_within_it(project_dir: Path) -> None:
    state = project_dir / ".dbtassets" / "state.db"
    with Project(Options(project_dir), runner=FakeRunner()) as project:
        project.runner.project = project  # type: ignore[attr-defined]
        project.sync()
        then = project.clock.now() - timedelta(hours=2)
        two_hours_ago = timestamp(then)
        beat = Heartbeat(lambda: project.store, "shopflow", lambda: then)
        beat.start()
        beat.beat(passed=True)
    assert state.exists()
    stale = dbtassets(project_dir, "check", "--no-observe", "--watcher-within", "1h")
    assert stale.returncode == 1
    assert stale.stdout.strip().splitlines()[-1] == (
        f"check failed: no watcher has beaten within 3600s: the last one ({machine_name()}, pid {os.getpid()}) beat "
        f"last at {shown(two_hours_ago)}")
    recent = dbtassets(project_dir, "check", "--no-observe", "--watcher-within", "3h", "--format", "json")
    assert json.loads(recent.stdout)["no_watcher"] is None and recent.returncode == 0, recent.stdout
    bad = dbtassets(project_dir, "check", "--watcher-within", "soon")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "dbtassets: error: --watcher-within: expected a duration such as 90s, 10m or 1h, got 'soon'"]
