"""Observation has a time budget: a warehouse that is down is asked once, named in one line, and the
command goes on with the recorded observations; a failing query is found without a query per source."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dbtassets.errors import ObservationError, WarehouseUnreachable
from dbtassets.model.manifest import UniqueId
from dbtassets.model.sources import ObserverKind, Settings, SourceDeclaration
from dbtassets.observe.observer import Observer
from dbtassets.watch import events as ev
from tests.conftest import FakeClock, FakeRunner, dbtassets
from tests.test_query_observations import ORDERS, QUERY_ORDERS

Setup = tuple[Any, FakeRunner, FakeClock]
CUSTOMERS = UniqueId("source.shopflow.raw.customers")
TWO_QUERIES = QUERY_ORDERS + "  raw.customers:\n    query: select max(_loaded_at) from raw.customers\n"


class Warehouse:
    """A Querier over a fake warehouse: each query costs ``cost`` seconds of a fake monotonic clock."""

    def __init__(self, fail: Any = None, cost: float = 1.0) -> None:
        self.fail = fail  # (sql) -> an exception to raise, or None to answer
        self.cost = cost
        self.clock = 0.0
        self.queries: list[str] = []
        self.timeouts: list[float | None] = []

    def monotonic(self) -> float:
        return self.clock

    def query(self, sql: str, timeout: float | None = None) -> Sequence[Sequence[Any]]:
        self.queries.append(sql)
        self.timeouts.append(timeout)
        self.clock += self.cost
        error = self.fail(sql) if self.fail is not None else None
        if error is not None:
            raise error
        return [[uid, "7"] for uid in re.findall(r"select '([^']+)' as source", sql)]


def many_sources(fake_project: Setup, count: int) -> Observer:
    """An observer of ``count`` query sources ``t0``… (each ``select max(_loaded_at) from raw.tN``)."""
    project, _, _ = fake_project
    sources = {UniqueId(f"source.shopflow.raw.t{i}"): SourceDeclaration(
        UniqueId(f"source.shopflow.raw.t{i}"), f"raw.t{i}", ObserverKind.QUERY, "loaded_at_field",
        query=f"select max(_loaded_at) from raw.t{i}") for i in range(count)}
    snapshot = replace(project.snapshot, settings=Settings(sources))
    return Observer(snapshot, project.store, Warehouse(), project.now, 10.0, "warehouse postgres:host=db (target 'pg')")


def observe(observer: Observer, warehouse: Warehouse) -> dict[str, str | None]:
    observer = replace(observer, querier=warehouse, monotonic=warehouse.monotonic)
    return {o.unique_id.rsplit(".", 1)[-1]: o.error for o in observer.observe(None, True, None)}


def test_an_unreachable_warehouse_is_asked_once_and_said_in_one_line_naming_it(fake_project: Setup) -> None:
    observer = many_sources(fake_project, 40)
    down = Warehouse(lambda sql: WarehouseUnreachable("connection to server at \"db\", port 5432 failed"))
    errors = observe(observer, down)
    assert len(down.queries) == 1  # no retry per source: no query is to blame
    assert set(errors.values()) == {"warehouse postgres:host=db (target 'pg') cannot be reached (connection to "
                                    "server at \"db\", port 5432 failed): 40 query sources keep their last "
                                    "recorded observations"}


def test_an_error_naming_one_source_sets_it_apart_and_asks_the_rest_in_one_query(fake_project: Setup) -> None:
    observer = many_sources(fake_project, 40)
    missing = Warehouse(lambda sql: ObservationError('relation "raw.t17" does not exist') if "raw.t17" in sql else None)
    errors = observe(observer, missing)
    assert len(missing.queries) == 3  # all, all but t17, t17 alone (was 41: one per source)
    assert {name for name, error in errors.items() if error} == {"t17"}
    assert 'relation "raw.t17" does not exist (query: select max(_loaded_at) from raw.t17' in str(errors["t17"])


def test_an_error_naming_every_source_is_halved_not_asked_source_by_source(fake_project: Setup) -> None:
    observer = many_sources(fake_project, 64)
    # A column every query reads: the error cannot tell which table lacks it.
    bad = Warehouse(lambda sql: ObservationError('column "_loaded_at" does not exist') if "raw.t5)" in sql else None,
                    cost=0.1)
    errors = observe(observer, bad)
    assert {name for name, error in errors.items() if error} == {"t5"}
    assert len(bad.queries) <= 2 * 6 + 1  # halving: about 2·log2(64), not 64


def test_an_error_naming_no_source_fails_them_all_in_one_query(fake_project: Setup) -> None:
    observer = many_sources(fake_project, 10)
    odd = Warehouse(lambda sql: ObservationError("Runtime Error: out of memory"))
    errors = observe(observer, odd)
    assert len(odd.queries) == 1
    assert all(e is not None and "out of memory (in one query with 9 other sources, naming none" in e
               for e in errors.values())


def test_the_queries_share_one_time_budget(fake_project: Setup) -> None:
    observer = many_sources(fake_project, 64)
    slow = Warehouse(lambda sql: ObservationError('column "_loaded_at" does not exist') if "raw.t" in sql else None,
                     cost=4.0)  # every query fails and takes 4 of the 10 seconds
    errors = observe(observer, slow)
    assert len(slow.queries) == 3  # at 0 s, 4 s, 8 s: then the budget is spent
    assert slow.timeouts == [10.0, 6.0, 2.0]  # each query may take what is left of it
    assert set(errors.values()) == {"warehouse postgres:host=db (target 'pg') cannot be reached (the observation's "
                                    "time budget of 10s is spent): 64 query sources keep their last recorded "
                                    "observations"}


def test_status_goes_on_with_the_recorded_observations_and_says_why_once(fake_project: Setup) -> None:
    project, runner, clock = fake_project
    (project.dbt.directory / "dbtassets.yml").write_text(TWO_QUERIES)
    project.reload()
    runner.query_rows = [[ORDERS, "10"], [CUSTOMERS, "2026-11-25 08:00:00"]]
    before = project.status(force=True)
    assert before.statuses[ORDERS].data_version is not None

    def down(sql: str, timeout: float | None = None) -> list[list[Any]]:
        runner.queries.append(sql)
        raise WarehouseUnreachable("no answer within 10s")

    runner.query = down  # type: ignore[method-assign]
    clock.advance(60)
    report = project.status(force=True)
    assert len(runner.queries) == 2  # the one before, and one now
    lines = [w for w in report.warnings if "cannot be reached" in w]
    assert len(lines) == 1 and lines[0].startswith("warehouse duckdb:")
    assert lines[0].endswith("(no answer within 10s): 2 query sources keep their last recorded observations")
    assert report.statuses[ORDERS].data_version == before.statuses[ORDERS].data_version


def test_the_time_budget_comes_from_dbtassets_yml_and_the_command_line(fake_project: Setup) -> None:
    project, runner, _ = fake_project
    directory = project.dbt.directory
    (directory / "dbtassets.yml").write_text(QUERY_ORDERS)
    project.reload()
    project.status(force=True)
    (directory / "dbtassets.yml").write_text(QUERY_ORDERS + "observe:\n  timeout: 3s\n")
    project.reload()
    project.status(force=True)
    project.options = replace(project.options, observe_timeout=1.5)
    project.status(force=True)
    assert [round(t or 0, 1) for t in runner.timeouts] == [10.0, 3.0, 1.5]  # less what observing took


@pytest.mark.parametrize(("setting", "message"), [
    ("observe:\n  timeout: soon\n", "observe.timeout: expected a duration such as 30s, 500ms or 5m, got 'soon'"),
    ("observe:\n  timeout: 0\n", "observe.timeout: expected a duration above 0 such as 10s, got 0"),
    ("observe:\n  timout: 5s\n", "unknown key observe.'timout' (did you mean 'timeout'?)"),
])
def test_a_bad_time_budget_is_one_line_naming_the_key(project_dir: Path, setting: str, message: str) -> None:
    (project_dir / "dbtassets.yml").write_text(setting)
    result = dbtassets(project_dir, "status", "--no-observe")
    assert result.returncode == 2
    assert result.stderr.strip() == f"dbtassets: error: {project_dir / 'dbtassets.yml'}: {message}"


def test_a_bad_observe_timeout_option_is_refused(project_dir: Path) -> None:
    result = dbtassets(project_dir, "status", "--observe-timeout", "-1")
    assert result.returncode == 2
    assert "--observe-timeout" in result.stderr and "Traceback" not in result.stderr


def test_watch_backs_off_from_a_warehouse_that_does_not_answer_and_says_it_once_a_time(fake_project: Setup) -> None:
    from tests.test_watcher import Running

    project, runner, _ = fake_project
    (project.dbt.directory / "dbtassets.yml").write_text(
        "sources:\n  raw.orders:\n    query: select max(_loaded_at) from raw.orders\n    every: 1s\n"
        "  raw.customers:\n    query: select max(_loaded_at) from raw.customers\n    every: 1s\n"
        "watch:\n  backoff_initial: 5s\n  backoff_max: 20s\n")
    project.reload()
    asked: list[float] = []

    def down(sql: str, timeout: float | None = None) -> list[list[Any]]:
        asked.append(running.ticker.now)
        if len(asked) > 5:
            return [[ORDERS, "2026-11-25 09:00:00"], [CUSTOMERS, "2026-11-25 09:00:00"]]
        raise WarehouseUnreachable("no answer within 10s")

    runner.query = down  # type: ignore[method-assign]
    running = Running(project, runner)
    try:
        running.wait_for(ev.NewData)
    finally:
        running.stop()
    said = running.of(ev.WarehouseUnreachable)
    assert [(e.sources, e.retry_in) for e in said] == [(2, 5.0), (2, 10.0), (2, 20.0), (2, 20.0), (2, 20.0)]
    assert said[0].message.startswith("warehouse duckdb:shopflow.duckdb (target 'dev') cannot be reached")
    assert [round(b - a, 1) for a, b in itertools.pairwise(asked)] == [5.0, 10.0, 20.0, 20.0, 20.0]
    assert running.of(ev.ObserveFailed) == []  # not one per source
