"""`dbtassets savings`: recorded builds against a full dbt build at each run, with a fake runner and clock."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from dbtassets.building.runner import BuildResult
from dbtassets.cli import main as cli
from dbtassets.engine import Project
from dbtassets.rules.savings import window_start
from tests.conftest import FakeClock, FakeRunner

Setup = tuple[Project, FakeRunner, FakeClock]
SECONDS = {"country_codes": 0.5, "stg_orders": 1.0, "stg_customers": 2.0, "customers_snapshot": 3.0,
           "fact_sales": 4.0, "dim_customer": 5.0}


class TimedRunner(FakeRunner):
    """The fake runner, with dbt execution times per asset that grow by 10% at every build."""

    builds = 0

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = ()) -> BuildResult:
        result = super().build(selectors, extra_args)
        self.builds += 1
        assert self.project is not None
        names = self.project.graph.assets
        timed = tuple(dataclasses.replace(r, execution_time=SECONDS[names[r.unique_id].name] * 1.1 ** self.builds)
                      if r.unique_id in names else r for r in result.results)  # data tests: as they were
        return dataclasses.replace(result, results=timed)


def land(project: Project, name: str) -> None:
    (project.dbt.directory / "data/raw/orders" / name).write_text(
        "order_id,customer_id,ordered_at,product,quantity,unit_price\n900,1,2026-11-20 10:00:00,ink,1,7.25\n")


def test_savings_count_builds_against_a_full_build_at_every_run(fake_project: Setup) -> None:
    project, _, clock = fake_project
    runner = TimedRunner(project)
    project.runner = runner
    assert project.sync().ok  # run 1: all six assets, 1.1x
    clock.advance(600)
    land(project, "orders_a.csv")
    assert set(project.graph.assets[u].name for u in project.sync().built) == {
        "stg_orders", "fact_sales", "dim_customer"}  # run 2: 1.21x
    clock.advance(600)
    land(project, "orders_b.csv")
    assert project.sync().ok  # run 3: the orders lineage again, 1.331x

    savings = project.savings(clock.now() - timedelta(days=7))
    assert savings.runs == 3 and savings.builds == 6 + 3 + 3 and savings.full_builds == 18
    rows = {a.name: a for a in savings.assets}
    # stg_customers: built once (2.2 s), so its median is 2.2 s, and the two runs without it avoid 4.4 s.
    assert rows["stg_customers"].builds == 1
    assert rows["stg_customers"].median == pytest.approx(2.2)
    assert rows["stg_customers"].avoided == pytest.approx(4.4)
    # fact_sales: built at every run (4.4, 4.84, 5.324 s): nothing avoided.
    assert rows["fact_sales"].spent == pytest.approx(4.0 * (1.1 + 1.21 + 1.331))
    assert rows["fact_sales"].median == pytest.approx(4.84) and rows["fact_sales"].avoided == 0
    spent = sum(SECONDS[n] * 1.1 for n in SECONDS) + sum(
        SECONDS[n] * (1.21 + 1.331) for n in ("stg_orders", "fact_sales", "dim_customer"))
    avoided = 2 * 1.1 * sum(SECONDS[n] for n in ("country_codes", "stg_customers", "customers_snapshot"))
    assert savings.spent == pytest.approx(spent) and savings.avoided == pytest.approx(avoided)
    assert savings.full_estimate == pytest.approx(spent + avoided)
    assert [a.name for a in savings.assets][:1] == ["customers_snapshot"]  # most avoided first

    later = project.savings(clock.now() - timedelta(seconds=300))
    assert later.runs == 1 and later.builds == 3  # only the last run is in a 5-minute window


def test_savings_json_and_text_carry_the_numbers_and_the_assumptions(fake_project: Setup) -> None:
    project, _, _ = fake_project
    project.runner = runner = TimedRunner(project)
    assert runner.project is project and project.sync().ok
    project.close()
    directory = str(project.dbt.directory)
    out = CliRunner().invoke(cli, ["--project-dir", directory, "savings", "--since", "3650d", "--format", "json"])
    assert out.exit_code == 0, out.output
    document = json.loads(out.output)
    assert document["runs"] == 1
    assert document["builds"] == {"done": 6, "full_build": 6, "avoided": 0}
    assert document["seconds"]["spent"] == pytest.approx(sum(SECONDS.values()) * 1.1, abs=0.01)
    assert document["seconds"]["avoided_estimate"] == 0
    assert any("median" in note for note in document["assumptions"])
    text = CliRunner().invoke(cli, ["--project-dir", directory, "savings", "--since", "3650d"])
    assert text.exit_code == 0
    assert "1 runs built 6 assets; a full `dbt build` at each run would have built 6." in text.output
    assert "Assumptions:" in text.output


def test_a_bad_window_is_a_usage_error(fake_project: Setup) -> None:
    project, _, _ = fake_project
    out = CliRunner().invoke(cli, ["--project-dir", str(project.dbt.directory), "savings", "--since", "lately"])
    assert out.exit_code == 2
    assert "'lately' is neither a span such as 7d, 12h or 30m nor an ISO date" in out.output


def test_window_start_reads_spans_and_dates() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    assert window_start("7d", now) == now - timedelta(days=7)
    assert window_start("90m", now) == now - timedelta(minutes=90)
    assert window_start("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=timezone.utc)
