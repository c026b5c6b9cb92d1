"""Freshness policies through the engine and the CLI, fast: a fake dbt runner and a fake clock.

The project is example_project with dbt's own freshness configs added (parsed once per session):
``fact_sales`` has ``build_after: {count: 1, period: hour}``, ``dim_customer`` has
``build_after: {updates_on: all}`` and the source ``raw.orders`` has ``error_after: {count: 1, period: hour}``.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dbtassets import report as render
from dbtassets.cli import main as cli
from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.statuses import ReasonCode, Status
from dbtassets.watch.events import NotDue, WatchEvent
from dbtassets.watch.hooks import EventHook
from dbtassets.watch.log import event_json
from dbtassets.watch.watcher import Watcher
from tests.conftest import _SKIP, EXAMPLE, FakeClock, FakeRunner, dbt_parse, run_cli

FACT, DIM, STG_ORDERS = (UniqueId(f"model.shopflow.{n}") for n in ("fact_sales", "dim_customer", "stg_orders"))
ORDERS = UniqueId("source.shopflow.raw.orders")
Setup = tuple[Project, FakeRunner, FakeClock]


def add_policies(project: Path) -> None:
    """dbt's freshness configs, the way a dbt user writes them (properties YAML)."""
    marts = project / "models/marts/_marts.yml"
    text = marts.read_text()
    text = text.replace("  - name: fact_sales\n", "  - name: fact_sales\n    config:\n      freshness:\n"
                        "        build_after: {count: 1, period: hour}\n")
    text = text.replace("  - name: dim_customer\n", "  - name: dim_customer\n    config:\n      freshness:\n"
                        "        build_after: {updates_on: all}\n")
    marts.write_text(text)
    sources = project / "models/staging/_sources.yml"
    sources.write_text(sources.read_text().replace(
        "      - name: orders\n",
        "      - name: orders\n        config:\n          freshness:\n"
        "            error_after: {count: 1, period: hour}\n"))


@pytest.fixture(scope="session")
def policy_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    template = tmp_path_factory.mktemp("policies") / "shopflow"
    shutil.copytree(EXAMPLE, template, ignore=_SKIP)
    add_policies(template)
    dbt_parse(template, "shopflow-with-policies")
    return template


@pytest.fixture
def policy_project(policy_example: Path, tmp_path: Path) -> Iterator[Setup]:
    directory = tmp_path / "shopflow"
    shutil.copytree(policy_example, directory, symlinks=True)
    runner, clock = FakeRunner(), FakeClock()
    with Project(Options(directory), runner=runner, clock=clock) as project:
        runner.project = project
        assert project.sync().ok  # 09:00: everything built
        yield project, runner, clock


def land(project: Project, name: str, source: str = "orders") -> None:
    """A new batch of one row, with a key of its own (dbt's unique tests run on every build)."""
    key = 900 + sum(1 for _ in (project.dbt.directory / "data/raw" / source).glob("*.csv"))
    header, row = {"orders": ("order_id,customer_id,ordered_at,product,quantity,unit_price",
                              f"{key},1,2026-11-20 10:00:00,ink,1,7.25"),
                   "customers": ("customer_id,name,country_code", f"{key},Grace Hopper,US")}[source]
    (project.dbt.directory / "data/raw" / source / name).write_text(f"{header}\n{row}\n")


def names(project: Project, uids: object) -> set[str]:
    return {project.graph.assets[u].name for u in uids}  # type: ignore[attr-defined]


def test_the_manifest_policies_are_dbts_own_configs(policy_project: Setup) -> None:
    project, _, _ = policy_project
    policies = project.policies
    assert policies.build_after[FACT].describe() == "build_after 1h"
    assert policies.build_after[DIM].describe() == "updates_on: all"
    assert STG_ORDERS not in policies.build_after
    assert policies.slas[ORDERS].describe() == "error_after 1h"


def test_sync_builds_what_is_due_and_leaves_a_model_waiting_on_build_after(policy_project: Setup) -> None:
    project, _, clock = policy_project
    clock.advance(600)
    land(project, "orders_a.csv")
    result = project.sync()
    assert names(project, result.built) == {"stg_orders"}  # dim_customer waits for stg_customers too
    report = project.status(observe=False)
    fact = report.statuses[FACT]
    assert fact.status is Status.STALE and fact.due_at == "2026-11-25T10:00:00.006Z"
    assert fact.reasons[-1].code is ReasonCode.NOT_DUE
    assert not project.needs_attention(report)  # waiting is not failing
    why = project.why("fact_sales", observe=False)
    assert "freshness policy: build_after 1h (dbt's freshness.build_after)" in why.notes
    assert project.sync().plan.to_build == []

    clock.advance(3000)  # 10:00: fact_sales is due, and overdue until built
    report = project.status(observe=False)
    assert project.needs_attention(report)
    assert names(project, project.sync().built) == {"fact_sales"}


def test_sync_all_stale_builds_what_policies_hold_back(policy_project: Setup) -> None:
    project, _, clock = policy_project
    clock.advance(600)
    land(project, "orders_a.csv")
    assert names(project, project.sync(all_stale=True).built) == {"stg_orders", "fact_sales", "dim_customer"}


def test_status_and_check_say_when_a_waiting_asset_falls_due(policy_project: Setup) -> None:
    project, _, clock = policy_project
    clock.advance(600)
    land(project, "orders_a.csv")
    project.sync()
    directory = str(project.dbt.directory)
    project.close()
    # The CLI runs on the system clock, long after the fake 09:00: the 1 h has passed, so check fails.
    out = CliRunner().invoke(cli, ["--project-dir", directory, "check", "--no-observe", "--format", "json"])
    assert out.exit_code == 1
    document = json.loads(out.output)
    fact = next(a for a in document["assets"] if a["name"] == "fact_sales")
    assert fact["due_at"] == "2026-11-25T10:00:00.006Z"
    assert [r["code"] for r in fact["reasons"]] == ["upstream_updated"]
    dim = next(a for a in document["assets"] if a["name"] == "dim_customer")
    assert dim["reasons"][-1] == {"code": "not_due",
                                  "message": "waiting for new data from stg_customers (updates_on: all)"}
    text = CliRunner().invoke(cli, ["--project-dir", directory, "status", "--no-observe"])
    assert re.search(r"stale \(overdue since 2026-11-25T10:00:00\.\d{3}Z\)", text.output)  # to the millisecond
    assert re.search(r"dim_customer +model +stale \(waiting\) ", text.output)


def test_a_text_status_shows_the_due_time(policy_project: Setup) -> None:
    project, _, clock = policy_project
    clock.advance(600)
    land(project, "orders_a.csv")
    project.sync()
    clock.advance(60)
    text = click.unstyle(render.status_text(project.graph, project.status(observe=False), show_all=False))
    assert re.search(r"\nfact_sales +model +stale \(due 2026-11-25T10:00:00\.\d{3}Z\) +upstream stg_orders updated",
                     text)
    assert re.search(r"not due until 2026-11-25T10:00:00\.\d{3}Z \(build_after 1h; last built at "
                     r"2026-11-25T09:00:00\.\d{3}Z\)", text)
    assert text.endswith("2 stale, 0 missing, 6 fresh (8 assets); 2 not due yet")


def test_updates_on_all_builds_once_every_parent_has_new_data(policy_project: Setup) -> None:
    project, _, clock = policy_project
    clock.advance(60)
    land(project, "orders_a.csv")
    assert names(project, project.sync().built) == {"stg_orders"}
    clock.advance(60)
    land(project, "customers_b.csv", "customers")
    assert names(project, project.sync().built) == {"stg_customers", "customers_snapshot", "dim_customer"}


def test_a_source_past_error_after_fails_check_until_new_data_lands(policy_project: Setup) -> None:
    project, _, clock = policy_project
    clock.advance(3500)
    assert not project.needs_attention(project.status())
    clock.advance(200)
    report = project.status()
    assert project.needs_attention(report)
    assert report.statuses[ORDERS].reasons[-1].code is ReasonCode.LATE_ERROR
    assert report.statuses[ORDERS].reasons[-1].message.startswith("late: no new data for 1h 01m (error_after 1h)")
    land(project, "orders_a.csv")
    report = project.status()
    assert ORDERS not in report.verdict.late if report.verdict else False
    assert not any(report.failing(u) for u in report.selected if project.graph.assets[u].resource_type == "source")


# -- the watcher, with real dbt: builds at the due time, late/recovered events, --on-event ---------


def wait_for(events: list[WatchEvent], kind: str, after: int, timeout: float = 120) -> tuple[WatchEvent, int]:
    """The first event of ``kind`` at index ``after`` or later (and its index), waiting for it to come."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index in range(after, len(events)):
            if events[index].kind == kind:
                return events[index], index + 1
        time.sleep(0.05)
    raise AssertionError(f"no {kind!r} event within {timeout}s; saw {[e.kind for e in events[after:]]}")


@pytest.mark.slow
def test_watch_builds_a_waiting_model_at_its_due_time_and_says_once_when_a_source_is_late_and_recovers(
        policy_example: Path, tmp_path: Path) -> None:
    directory = tmp_path / "shopflow"
    shutil.copytree(policy_example, directory, symlinks=True)
    events: list[WatchEvent] = []
    problems: list[str] = []
    hook_log = tmp_path / "hook.jsonl"
    hook = EventHook(f"cat >> {hook_log}", problems.append)

    def emit(event: WatchEvent) -> None:
        events.append(event)
        hook(event.kind.value, event_json(event, datetime.now().astimezone()))

    clock = FakeClock()
    with Project(Options(directory), clock=clock) as project:  # real dbt, as a subprocess per build
        watcher = Watcher(project, emit, settle=0.05)
        thread = threading.Thread(target=watcher.run, name="watcher", daemon=True)
        thread.start()
        try:
            first, seen = wait_for(events, "build_finished", 0)
            assert len(first.built) == 6  # 09:00: everything, missing until now
            land(project, "orders_a.csv")  # 09:00 still: stg_orders at once; fact_sales waits until 10:00
            event, seen = wait_for(events, "build_finished", seen)
            assert event.built == ("stg_orders",)
            clock.advance(1200)  # 09:20: a second landing within the hour
            land(project, "orders_b.csv")
            event, seen = wait_for(events, "build_finished", seen)
            assert event.built == ("stg_orders",)
            not_due = [e for e in events if isinstance(e, NotDue)][-1]
            assert not_due.assets == ("fact_sales", "dim_customer")
            assert not_due.next_due_at == "2026-11-25T10:00:00Z"

            clock.advance(2700)  # 10:05: nothing lands, but fact_sales is due: the watcher wakes for it
            event, seen = wait_for(events, "build_finished", seen)
            assert event.built == ("fact_sales",)

            clock.advance(1800)  # 10:35: no new orders since 09:20, error_after 1h: late, said once
            late, seen = wait_for(events, "source_late", seen)
            assert late.source == "raw.orders" and late.severity == "error"
            land(project, "customers_b.csv", "customers")  # another pass: raw.orders is still late
            event, seen = wait_for(events, "build_finished", seen)
            assert set(event.built) == {"stg_customers", "customers_snapshot", "dim_customer"}
            land(project, "orders_c.csv")
            recovered, seen = wait_for(events, "source_recovered", seen)
            assert recovered.source == "raw.orders"
            event, seen = wait_for(events, "build_finished", seen)
            assert event.built == ("stg_orders",)  # fact_sales was built at 10:05: it waits until 11:05
        finally:
            watcher.stop()
            thread.join(timeout=60)
        hook.close()
        builds = {name: len(project.store.history(UniqueId(f"model.shopflow.{name}")))
                  for name in ("stg_orders", "fact_sales")}
    assert builds == {"stg_orders": 4, "fact_sales": 2}  # the first build, then 3 landings; at 09:00, at 10:05
    assert [e.kind for e in events].count("source_late") == 1
    assert [e.kind for e in events].count("source_recovered") == 1
    hooked = [json.loads(line) for line in hook_log.read_text().splitlines()]
    assert [d["event"] for d in hooked if d["event"].startswith("source_")] == ["source_late", "source_recovered"]
    assert sum(d["event"] == "build_finished" for d in hooked) == 6
    assert problems == []


@pytest.mark.slow
def test_watch_on_event_runs_the_command_with_the_event_on_stdin(project_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = run_cli("--project-dir", str(project_dir), "watch", "--once", "--on-event", f"cat >> {out}")
    assert result.returncode == 0, result.stderr
    (document,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert document["event"] == "build_finished" and len(document["built"]) == 6


def test_a_failing_on_event_command_is_reported_not_fatal() -> None:
    problems: list[str] = []
    hook = EventHook("cat > /dev/null; exit 3", problems.append)
    hook("stopped", {"event": "stopped"})  # not one of the kinds a hook gets
    hook("error", {"event": "error", "message": "boom"})
    hook.close()
    assert problems == ["--on-event 'cat > /dev/null; exit 3' exited with code 3 on a error event"]


@pytest.mark.slow
def test_with_real_dbt_a_code_edit_skips_the_wait_check_fails_once_overdue_and_savings_match_the_runs(
        policy_example: Path, tmp_path: Path) -> None:
    directory = tmp_path / "shopflow"
    shutil.copytree(policy_example, directory, symlinks=True)
    clock = FakeClock()
    with Project(Options(directory), clock=clock) as project:  # real dbt, as a subprocess per build
        assert len(project.sync().built) == 6  # 09:00
        clock.advance(600)
        land(project, "orders_a.csv")
        assert names(project, project.sync().built) == {"stg_orders"}
        assert not project.needs_attention(project.status())  # fact_sales waits: not overdue
        model = directory / "models/marts/fact_sales.sql"
        edited = model.read_text().replace("    amount\n", "    amount,\n    quantity * 2 as double_quantity\n")
        model.write_text(edited)
        project.reload()
        clock.advance(60)  # 09:11: edited, so built at once (and with the data that waited)
        assert names(project, project.sync().built) == {"fact_sales"}
        clock.advance(600)
        land(project, "orders_b.csv")
        assert names(project, project.sync().built) == {"stg_orders"}
        clock.advance(3000)  # 10:11: fact_sales (built 09:11) is due at 10:11 and not built: overdue
        report = project.status()
        assert project.needs_attention(report)
        assert [u for u in report.selected if report.failing(u)] == [FACT]
    # The CLI's clock is the system's, hours after the fake 10:11: orders are late, fact_sales overdue.
    out = run_cli("--project-dir", str(directory), "check", "--no-observe", "--format", "json")
    assert out.returncode == 1
    listed = {a["name"]: [r["code"] for r in a["reasons"]] for a in json.loads(out.stdout)["assets"]}
    assert listed == {"raw.orders": ["late_error"], "fact_sales": ["upstream_updated"],
                      "dim_customer": ["upstream_updated", "not_due"]}  # waiting (updates_on: all) is not failing

    # savings, checked against the runs the state store recorded
    out = run_cli("--project-dir", str(directory), "savings", "--since", "3650d", "--format", "json")
    assert out.returncode == 0, out.stderr
    savings = json.loads(out.stdout)
    with sqlite3.connect(directory / ".dbtassets/state.db") as db:
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        rows = db.execute("SELECT unique_id, status, duration FROM materializations").fetchall()
    assert runs == savings["runs"] == 4
    attempted = [r for r in rows if r[1] in ("success", "error")]
    assert savings["builds"] == {"done": len(attempted), "full_build": 4 * 6, "avoided": 4 * 6 - len(attempted)}
    assert savings["seconds"]["spent"] == pytest.approx(sum(r[2] for r in attempted), abs=0.005)
    by_asset = {a["unique_id"]: a for a in savings["assets"]}
    for uid, entry in by_asset.items():
        times = sorted(r[2] for r in rows if r[0] == uid and r[1] == "success")
        assert entry["median_seconds"] == pytest.approx(statistics.median(times), abs=0.0005)
        assert entry["avoided_seconds"] == pytest.approx((4 - entry["builds"]) * statistics.median(times), abs=0.005)
    assert savings["seconds"]["avoided_estimate"] == pytest.approx(
        sum(a["avoided_seconds"] for a in savings["assets"]), abs=0.01)


def test_a_source_with_an_sla_and_no_observer_is_a_warning(policy_project: Setup) -> None:
    import dataclasses

    from dbtassets.model.sources import ObserverKind

    project, _, _ = policy_project
    settings = project.settings
    blind = dataclasses.replace(settings.sources[ORDERS], kind=ObserverKind.NONE, globs=())
    blind_settings = dataclasses.replace(settings, sources={**settings.sources, ORDERS: blind})
    project._snapshot = dataclasses.replace(project.snapshot, settings=blind_settings)  # as if no observer declared
    report = project.status(observe=False)
    assert ("source raw.orders has a freshness SLA (error_after 1h) but no observer: "
            "its lateness cannot be checked") in report.warnings


def test_several_sources_with_an_sla_and_no_observer_are_one_warning(policy_project: Setup) -> None:
    import dataclasses

    project, _, _ = policy_project
    sla = project.policies.slas[ORDERS]
    sources = sorted(uid for uid, node in project.graph.assets.items() if node.resource_type == "source")
    assert len(sources) >= 2, "the example needs two sources for this rule"
    policies = dataclasses.replace(project.policies, slas=dict.fromkeys(sources, sla))
    names = ", ".join(project.graph.assets[uid].display_name for uid in sources[:3])
    more = ", …" if len(sources) > 3 else ""
    assert policies.blind(project.graph, set()) == [
        f"{len(sources)} sources have a freshness SLA but no observer ({names}{more}): their lateness cannot be "
        "checked; declare files, query or reported for them in dbtassets.yml"]
    assert policies.blind(project.graph, set(sources)) == []
