"""A state store whose server goes away: the watcher waits and reconnects, one-shot commands fail fast.

The rules run fast, in-process (fake dbt runner, fake monotonic time), with a store that fails at
the boundary as an unreachable server does. The end-to-end tests run real watcher processes on a
private PostgreSQL server of their own, which they stop and start again under the watcher.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbtassets.engine import Project
from dbtassets.errors import StoreUnreachable
from dbtassets.state.store import StateStore
from dbtassets.watch import events as ev
from tests.conftest import FakeClock, FakeRunner, run_cli
from tests.pg import PostgresServer, binaries
from tests.test_watcher import ORDERS_LINEAGE, Running, land
from tests.watcher import WatchProcess

DOWN = "postgresql://dbtassets:***@127.0.0.1:5999/state: cannot reach the PostgreSQL state store (connection refused)"


class FlakyStore:
    """A real store whose every method raises StoreUnreachable while ``down``, as one on a stopped server does."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self.down = False
        self.down_for_calls = 0  # the next N calls fail, then it answers again

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down_for_calls > 0:
                self.down_for_calls -= 1
                raise StoreUnreachable(DOWN)
            if self.down:
                raise StoreUnreachable(DOWN)
            return value(*args, **kwargs)
        return call


@pytest.fixture
def flaky(fake_project: tuple[Project, FakeRunner, FakeClock]) -> Iterator[tuple[Project, FakeRunner, FlakyStore]]:
    project, runner, _ = fake_project
    store = FlakyStore(project.store)
    project._store = store  # type: ignore[assignment]  # the boundary: the store as the engine sees it
    yield project, runner, store
    project._store = store._store


def test_a_watcher_started_while_the_store_is_unreachable_waits_1_2_4_up_to_30_seconds_then_builds(
        flaky: tuple[Project, FakeRunner, FlakyStore]) -> None:
    project, runner, store = flaky
    store.down_for_calls = 8
    running = Running(project, runner)
    running.wait_for(ev.StoreReconnected)
    watching = running.wait_for(ev.Watching)
    built = running.wait_for(ev.BuildFinished)
    running.stop()
    attempts = [(at, e) for at, e in running.events if isinstance(e, ev.StoreUnreachable)]
    assert [e.retry_in for _, e in attempts] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert [b[0] - a[0] for a, b in itertools.pairwise(attempts)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert all(e.message == DOWN for _, e in attempts)
    assert running.kinds()[:8] == ["store_unreachable"] * 8  # said first: nothing else is known yet
    assert running.of(ev.StoreReconnected) == [ev.StoreReconnected(121.0)]
    assert watching.stale == 6 and set(ORDERS_LINEAGE) <= set(built.built) and not running.of(ev.Error)


def test_landings_while_the_store_is_unreachable_are_observed_and_built_once_it_answers(
        flaky: tuple[Project, FakeRunner, FlakyStore]) -> None:
    project, runner, store = flaky
    assert project.sync().ok
    running = Running(project, runner)
    running.wait_for(ev.Fresh)
    store.down = True
    running.wait_for(ev.StoreUnreachable)
    land(project.dbt.directory, "orders_late.csv", 900)  # lands while the store cannot record it
    running.wait_for(ev.StoreUnreachable, lambda e: e.retry_in >= 4.0)  # a file event does not cut the wait
    store.down = False
    running.wait_for(ev.StoreReconnected)
    built = running.wait_for(ev.BuildFinished)
    running.stop()
    assert built.built == ORDERS_LINEAGE
    after = running.kinds()[running.kinds().index("store_reconnected"):]
    assert after[:2] == ["store_reconnected", "new_data"] and "error" not in running.kinds()
    assert project.status().needing_build() == []


def test_a_build_whose_outcomes_could_not_be_recorded_is_built_again_and_its_run_closed(
        flaky: tuple[Project, FakeRunner, FlakyStore]) -> None:
    project, runner, store = flaky
    assert project.sync().ok
    running = Running(project, runner)
    running.wait_for(ev.Fresh)
    runner.during_build = lambda: setattr(store, "down_for_calls", 3)  # the server restarts mid-build
    land(project.dbt.directory, "orders_late.csv", 900)
    running.wait_for(ev.StoreUnreachable)
    running.wait_for(ev.StoreReconnected)
    runner.during_build = None
    built = running.wait_for(ev.BuildFinished)
    running.stop()
    assert built.built == ORDERS_LINEAGE
    assert runner.calls[-2] == runner.calls[-1]  # the same build, once more
    runs = project.store._query("SELECT status, message FROM runs ORDER BY id")
    assert [status for status, _ in runs[-2:]] == ["error", "success"]  # none left 'running'
    assert runs[-2][1] == f"nothing recorded: {DOWN}"
    assert project.status().needing_build() == []


# -- end to end: a real server stopped and started again under a real watcher ----------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A private server these tests may stop and start (the session's one is shared with other tests)."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("psycopg2", reason='the PostgreSQL tests need psycopg2: pip install -e ".[postgres]"')
    bin_dir = binaries()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the PostgreSQL tests: no initdb on PATH or under /usr/lib/postgresql")
        pytest.skip("PostgreSQL is not installed here (no initdb on PATH or under /usr/lib/postgresql)")
    server = PostgresServer.start(bin_dir)
    yield server
    server.stop()


@pytest.fixture
def server(own_server: PostgresServer) -> Iterator[PostgresServer]:
    yield own_server
    if own_server.process is None or own_server.process.poll() is not None:
        assert own_server.resume(), own_server.log_tail()


def assert_fresh_and_clean(project: Path, url: str, watcher: WatchProcess) -> None:
    assert watcher.stop() == 0
    stderr = watcher._stderr()
    assert "Traceback" not in stderr, stderr
    status = run_cli("--project-dir", str(project), "--state", url, "check")
    assert status.returncode == 0, status.stdout + status.stderr


@pytest.mark.slow
def test_a_watcher_started_while_the_state_server_is_down_waits_and_works_once_it_starts(
        server: PostgresServer, project_dir: Path) -> None:
    url = server.url(server.database("outage"))
    server.halt()
    with WatchProcess(project_dir, "--state", url, "--settle", "0.2") as watcher:
        first = watcher.wait_for("store_unreachable")
        assert first["message"].startswith(f"postgresql://dbtassets:***@127.0.0.1:{server.port}/")
        assert "team-mode-test" not in first["message"]
        watcher.wait_for("store_unreachable")  # still waiting, not dead
        assert server.resume(), server.log_tail()
        watcher.wait_for("store_reconnected", timeout=30)
        watcher.wait_for("build_finished", lambda e: set(ORDERS_LINEAGE) <= set(e["built"]))
        assert_fresh_and_clean(project_dir, url, watcher)


@pytest.mark.slow
@pytest.mark.parametrize("immediate", [False, True], ids=["fast-shutdown", "immediate-shutdown"])
def test_a_state_server_restarting_under_a_watcher_is_waited_for_and_what_landed_meanwhile_is_built(
        server: PostgresServer, project_dir: Path, immediate: bool) -> None:
    url = server.url(server.database("outage"))
    assert run_cli("--project-dir", str(project_dir), "--state", url, "sync").returncode == 0
    with WatchProcess(project_dir, "--state", url, "--settle", "0.2") as watcher:
        watcher.wait_for("fresh")
        server.halt(immediate=immediate)
        watcher.wait_for("store_unreachable")
        land(project_dir, "orders_late.csv", 900)
        assert server.resume(), server.log_tail()
        watcher.wait_for("store_reconnected", timeout=40)
        built = watcher.wait_for("build_finished", lambda e: "fact_sales" in e["built"])
        assert set(ORDERS_LINEAGE) <= set(built["built"]) and not built["failed"]
        assert_fresh_and_clean(project_dir, url, watcher)


def test_a_watcher_waiting_for_a_stopped_state_server_exits_0_on_sigterm(
        server: PostgresServer, project_dir: Path) -> None:
    url = server.url(server.database("outage"))
    server.halt(immediate=True)
    with WatchProcess(project_dir, "--state", url, "--runner", "subprocess") as watcher:
        watcher.wait_for("store_unreachable")
        watcher.wait_for("store_unreachable")
        assert watcher.stop() == 0
        assert [e["event"] for e in watcher.events][-1] == "stopped"
        assert "Traceback" not in watcher._stderr()


@pytest.mark.parametrize("command", [["status"], ["sync"], ["check"], ["watch", "--once"]])
def test_one_shot_commands_on_a_stopped_state_server_fail_at_once_in_one_line_and_write_nothing(
        server: PostgresServer, project_dir: Path, command: list[str]) -> None:
    database = server.database("outage")
    url = server.url(database)
    StateStore.open(url).close()
    server.halt()
    result = run_cli("--project-dir", str(project_dir), "--state", url, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    redacted = f"postgresql://dbtassets:***@127.0.0.1:{server.port}/{database}"
    assert result.stderr.startswith(f"dbtassets: error: {redacted}: cannot reach the PostgreSQL state store (")
    assert result.stderr.endswith("check that the server runs and the URL's host and port\n")
    assert len(result.stderr.splitlines()) == 1 and "team-mode-test" not in result.stderr
    assert server.resume(), server.log_tail()
    with StateStore.open(url) as store:
        assert store.counts() == {"runs": 0, "materializations": 0, "observations": 0}


def test_a_watcher_given_a_wrong_password_does_not_wait_it_exits_2(server: PostgresServer, project_dir: Path) -> None:
    url = server.url(server.database("outage"), password="not-the-password")
    result = run_cli("--project-dir", str(project_dir), "--state", url, "watch", "--runner", "subprocess")
    assert result.returncode == 2
    assert result.stderr.endswith("refused the password of this user; fix the password in the URL "
                                  "(or PGPASSWORD / ~/.pgpass)\n")
    assert len(result.stderr.splitlines()) == 1

