"""A query source is read at most once per `every:` by `status`; `status --observe` reads it now."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dbtassets.engine import Options, Project
from dbtassets.errors import ObservationError
from dbtassets.model.manifest import UniqueId
from dbtassets.observe.observer import Observer
from tests.conftest import FakeClock, FakeRunner, dbtassets

Setup = tuple[Project, FakeRunner, FakeClock]
ORDERS = UniqueId("source.shopflow.raw.orders")
QUERY_ORDERS = ("sources:\n  raw.orders:\n"
                "    query: select count(*) from read_csv('data/raw/orders/*.csv', header = true)\n    every: 1h\n")


@pytest.fixture
def queried(fake_project: Setup) -> Setup:
    project, runner, clock = fake_project
    (project.dbt.directory / "dbtassets.yml").write_text(QUERY_ORDERS)
    project.reload()
    return project, runner, clock


def test_status_reuses_a_query_observation_younger_than_its_every(queried: Setup) -> None:
    project, runner, clock = queried
    runner.query_rows = [[ORDERS, "10"]]
    project.status()
    assert len(runner.queries) == 1
    clock.advance(3500)
    project.status()
    assert len(runner.queries) == 1  # read 58 minutes ago, every 1h: the last reading stands
    clock.advance(200)
    runner.query_rows = [[ORDERS, "12"]]
    assert project.status().statuses[ORDERS].data_version is not None
    assert len(runner.queries) == 2
    project.status(force=True)
    assert len(runner.queries) == 3


def test_an_unchanged_watermark_still_counts_as_a_fresh_read(queried: Setup) -> None:
    project, runner, clock = queried
    runner.query_rows = [[ORDERS, "10"]]
    project.status()
    clock.advance(3700)
    project.status()  # the same watermark: no new data version, but read just now
    clock.advance(3500)
    project.status()
    assert len(runner.queries) == 2


class PickyDatabase:
    """A Querier (what the observer needs of the runner) whose database has no customers table."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def query(self, sql: str, timeout: float | None = None) -> Sequence[Sequence[Any]]:
        self.queries.append(sql)
        if "customers" in sql:
            raise ObservationError("Catalog Error: Table with name customers does not exist!")
        return [[ORDERS, "10"]]


def test_a_failing_watermark_query_is_named_and_the_others_are_still_recorded(queried: Setup) -> None:
    project, _, _ = queried
    (project.dbt.directory / "dbtassets.yml").write_text(
        QUERY_ORDERS + "  raw.customers:\n    query: select count(*) from customers\n")
    project.reload()
    database = PickyDatabase()
    outcomes = Observer(project.snapshot, project.store, database, project.now).observe(None, True, None)
    by_source = {o.unique_id: o for o in outcomes}
    assert by_source[ORDERS].error is None and by_source[ORDERS].changed
    customers = by_source[UniqueId("source.shopflow.raw.customers")]
    assert customers.observation is None and customers.error is not None
    assert "Table with name customers does not exist" in customers.error
    assert "select count(*) from customers" in customers.error
    assert len(database.queries) == 3  # all in one, then the others together and the one the error names


@pytest.mark.slow
def test_status_dash_dash_observe_reads_a_query_source_now(project_dir: Path) -> None:
    (project_dir / "dbtassets.yml").write_text(QUERY_ORDERS)

    def last_read() -> str:
        with Project(Options(project_dir)) as project:  # the store of the project's target
            return project.store.last_checked("query")[ORDERS]

    first = dbtassets(project_dir, "observe")  # a writer records the reading
    assert first.returncode == 0, first.stderr
    read = last_read()
    assert dbtassets(project_dir, "status", "--format", "json").returncode == 0
    assert last_read() == read  # reused, and a reader records nothing
    forced = dbtassets(project_dir, "status", "--observe", "--format", "json")
    assert forced.returncode == 0, forced.stderr
    assert last_read() == read  # read now, in memory (test_readers.py shows the answer uses it): still not recorded
    assert json.loads(forced.stdout)["summary"]
    assert dbtassets(project_dir, "observe").returncode == 0
    assert last_read() > read
    both = dbtassets(project_dir, "status", "--observe", "--no-observe")
    assert both.returncode == 2
    assert both.stderr.strip().endswith("--observe and --no-observe contradict each other; give one of them")
