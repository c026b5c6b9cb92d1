"""A source is late by its newest data's own time, as ``dbt source freshness`` measures it, not by when
dbtassets noticed the data; and a watcher says so once, even across restarts.

example_project with dbt's freshness configs (tests/test_freshness.py): ``raw.orders`` has
``error_after: {count: 1, period: hour}``; here it is observed by a timestamp watermark.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dbtassets.model.freshness import Severity
from dbtassets.watch.events import WatchEvent
from dbtassets.watch.watcher import Watcher
from tests.conftest import run_cli
from tests.test_freshness import ORDERS, Setup, policy_example, policy_project

__all__ = ["policy_example", "policy_project"]  # the fixtures, reused
WATERMARK = ("sources:\n  raw.orders:\n"
             "    query: select max(ordered_at) from read_csv('data/raw/orders/*.csv', header = true)\n")


@pytest.fixture
def watermarked(policy_project: Setup) -> Setup:
    project, runner, clock = policy_project  # 09:00
    (project.dbt.directory / "dbtassets.yml").write_text(WATERMARK)
    project.reload()
    return project, runner, clock


def test_a_source_is_late_by_its_newest_data_not_by_when_it_was_read(watermarked: Setup) -> None:
    project, runner, clock = watermarked
    runner.query_rows = [[ORDERS, "2026-11-25 07:30:00"]]  # loaded an hour and a half ago, read just now
    report = project.status(force=True)
    assert report.verdict is not None
    late = report.verdict.late[ORDERS]
    assert (late.severity, late.last_data_at, round(late.late_for)) == (Severity.ERROR, "2026-11-25T07:30:00.000Z",
                                                                        5400)
    assert late.reason.message == ("late: no new data for 1h 30m (error_after 1h); "
                                   "newest data from 2026-11-25T07:30:00.000Z")
    assert report.failing(ORDERS)

    clock.advance(60)
    runner.query_rows = [[ORDERS, "2026-11-25 09:00:30+00"]]  # new rows: within the hour
    report = project.status(force=True)
    assert report.verdict is not None and ORDERS not in report.verdict.late

    clock.advance(3000)  # 09:51: the data is from 09:00:30, so it falls late at 10:00:30, not an hour after 09:51
    report = project.status(observe=False)
    assert report.verdict is not None and ORDERS not in report.verdict.late
    clock.advance(600)  # 10:01
    report = project.status(observe=False)
    assert report.verdict is not None and report.verdict.late[ORDERS].severity is Severity.ERROR


def test_a_watermark_that_is_no_timestamp_is_late_by_when_it_last_moved(watermarked: Setup) -> None:
    project, runner, clock = watermarked
    runner.query_rows = [[ORDERS, "17"]]  # a count: no time of its own
    report = project.status(force=True)
    assert report.verdict is not None and ORDERS not in report.verdict.late
    clock.advance(3700)
    report = project.status(force=True)  # the same count: no new data for over an hour
    assert report.verdict is not None
    message = report.verdict.late[ORDERS].reason.message  # the fake clock moves a millisecond a reading
    assert re.search(r"last new data observed at 2026-11-25T09:00:00\.\d{3}Z$", message), message


def test_a_restarted_watcher_does_not_say_again_that_a_source_is_late(watermarked: Setup) -> None:
    project, runner, clock = watermarked

    def watch_once() -> list[str]:
        events: list[WatchEvent] = []
        Watcher(project, events.append).run(once=True)  # a new watcher each time: a restart
        return [e.kind.value for e in events if e.kind.value.startswith("source_")]

    runner.query_rows = [[ORDERS, "17"]]  # a count: late an hour after it last moved
    assert watch_once() == []
    clock.advance(3700)
    assert watch_once() == ["source_late"]
    assert watch_once() == []  # said already, by the watcher before
    clock.advance(60)
    runner.query_rows = [[ORDERS, "18"]]
    assert watch_once() == ["source_recovered"]
    assert watch_once() == []


@pytest.mark.slow
def test_watch_says_once_across_restarts_that_a_source_is_late_by_its_data(policy_example: Path,
                                                                           tmp_path: Path) -> None:
    project = tmp_path / "shopflow"
    shutil.copytree(policy_example, project, symlinks=True)
    (project / "dbtassets.yml").write_text(WATERMARK)  # real dbt on DuckDB: the batches' orders are from 2026-11

    def watch_once() -> list[dict[str, object]]:
        result = run_cli("--project-dir", str(project), "watch", "--once", "--format", "json")
        assert result.returncode == 0, result.stderr
        events = [json.loads(line) for line in result.stdout.splitlines()]
        return [e for e in events if str(e["event"]).startswith("source_")]

    (late,) = watch_once()
    assert (late["event"], late["source"], late["severity"]) == ("source_late", "raw.orders", "error")
    assert str(late["last_data_at"]).startswith("2026-11-0")  # the newest order's own time
    assert watch_once() == []  # a restarted watcher: said already
