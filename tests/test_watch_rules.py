"""What a watch pass builds after failures, fast: a fake dbt runner and a fake monotonic clock.

Each pass is ``Watcher.run(once=True)`` on the same watcher, so its backoff carries over from
pass to pass as it does in the loop; the clock says when each pass happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbtassets.engine import Options, Project
from dbtassets.model.selection import select_assets
from dbtassets.watch import events as ev
from dbtassets.watch.ticker import RealTicker
from dbtassets.watch.watcher import Watcher
from tests.conftest import FakeClock, FakeRunner


class Passes:
    """A watcher over a fake-run project, and a way to run one pass at a chosen moment."""

    def __init__(self, project: Project, runner: FakeRunner) -> None:
        self.project, self.runner = project, runner
        self.moment = 0.0
        self.events: list[ev.WatchEvent] = []
        self.watcher = Watcher(project, self.events.append, ticker=RealTicker(lambda: self.moment))

    def at(self, moment: float) -> set[str]:
        """Run a pass at ``moment`` (seconds); the names of the assets it asked dbt to build."""
        self.moment = moment
        before = len(self.runner.calls)
        self.watcher.run(once=True)
        built: set[str] = set()
        for call in self.runner.calls[before:]:
            built |= {self.project.graph.assets[u].name for u in select_assets(self.project.graph, call[2:])}
        return built


@pytest.fixture
def passes(project_dir: Path) -> Iterator[Passes]:
    (project_dir / "dbtassets.yml").write_text("watch:\n  backoff_initial: 1s\n  backoff_max: 4s\n")
    runner = FakeRunner()
    with Project(Options(project_dir), runner=runner, clock=FakeClock()) as project:
        runner.project = project
        assert project.sync().ok
        yield Passes(project, runner)


def land(project: Project, source: str, name: str) -> None:
    header, row = {"orders": ("order_id,customer_id,ordered_at,product,quantity,unit_price",
                              "900,1,2026-11-20 10:00:00,ink,1,7.25"),
                   "customers": ("customer_id,name,country_code", "90,Grace Hopper,US")}[source]
    (project.dbt.directory / "data/raw" / source / name).write_text(f"{header}\n{row}\n")


ORDERS_LINEAGE = {"stg_orders", "fact_sales", "dim_customer"}


def test_while_a_model_backs_off_nothing_downstream_of_it_is_built(passes: Passes) -> None:
    land(passes.project, "orders", "orders_a.csv")
    passes.runner.fail = {"stg_orders"}
    assert passes.at(0.0) == ORDERS_LINEAGE  # stg_orders fails; its descendants are skipped
    land(passes.project, "customers", "customers_b.csv")
    # dim_customer is stale through stg_customers too, but it reads stg_orders, which is held.
    assert passes.at(0.5) == {"stg_customers", "customers_snapshot"}
    assert passes.at(0.6) == set()


def test_a_backoff_names_the_stale_assets_it_holds_and_when_the_failure_is_retried_once(passes: Passes) -> None:
    land(passes.project, "orders", "orders_a.csv")
    passes.runner.fail = {"stg_orders"}
    passes.at(0.0)
    land(passes.project, "customers", "customers_b.csv")
    passes.at(0.5)  # builds the customers lineage around the held assets
    passes.at(0.6)  # said again after that build
    passes.at(0.7)  # … and not again while nothing changes
    held = ("dim_customer", "fact_sales", "stg_orders")
    said = [e for e in passes.events if isinstance(e, ev.BackingOff)]
    assert said == [ev.BackingOff(held, {"stg_orders": 0.5}), ev.BackingOff(held, {"stg_orders": 0.4})]


def test_a_failing_model_is_retried_after_1_2_4_4_seconds(passes: Passes) -> None:
    land(passes.project, "orders", "orders_a.csv")
    passes.runner.fail = {"stg_orders"}
    attempts = [moment for moment in (0.0, 0.9, 1.0, 2.9, 3.0, 6.9, 7.0, 10.9, 11.0) if passes.at(moment)]
    assert attempts == [0.0, 1.0, 3.0, 7.0, 11.0]  # doubling from backoff_initial, capped at backoff_max


def test_new_data_retries_a_backing_off_model_at_once(passes: Passes) -> None:
    land(passes.project, "orders", "orders_a.csv")
    passes.runner.fail = {"stg_orders"}
    assert passes.at(0.0) == ORDERS_LINEAGE
    assert passes.at(0.5) == set()
    passes.runner.fail = set()
    land(passes.project, "orders", "orders_b.csv")  # an input moved: the failure may be gone
    assert passes.at(0.6) == ORDERS_LINEAGE
    assert passes.at(0.7) == set()  # built: nothing to retry


def test_a_model_that_succeeds_again_starts_its_next_backoff_from_the_beginning(passes: Passes) -> None:
    land(passes.project, "orders", "orders_a.csv")
    passes.runner.fail = {"stg_orders"}
    assert [m for m in (0.0, 1.0, 3.0) if passes.at(m)] == [0.0, 1.0, 3.0]
    passes.runner.fail = set()
    assert passes.at(7.0) == ORDERS_LINEAGE
    land(passes.project, "orders", "orders_b.csv")
    passes.runner.fail = {"stg_orders"}
    assert passes.at(8.0) == ORDERS_LINEAGE
    assert [m for m in (8.9, 9.0) if passes.at(m)] == [9.0]  # 1 s again, not 8
