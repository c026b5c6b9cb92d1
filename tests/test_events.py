"""Every watch event kind, rendered in every format and verbosity, and documented in docs/events.md.

A new kind without a sample here, a renderer in dbtassets.watch.log or a section in the docs fails
this file, not a user's terminal.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timezone

import click
import pytest
import yaml

from dbtassets.watch import events as ev
from dbtassets.watch.log import JSON, QUIET, TEXT, event_json, event_text
from tests.conftest import REPO

AT = datetime(2026, 11, 25, 9, 17, 56, tzinfo=timezone.utc)
FAILURE = "Runtime Error in model fact_sales\n  Binder Error: no column no_such_column\n  LINE 1: select ..."

SAMPLES: list[ev.WatchEvent] = [
    ev.Watching("/tmp/shop", 8, {"raw.orders": "files data/raw/orders/*.csv"}, "InProcessRunner", 0.2, 0),
    ev.NewData("raw.orders", "files", files=2, bytes=310, newest="data/raw/orders/orders_2.csv"),
    ev.NewData("raw.payments", "query", watermark="2026-11-25 09:00:00"),
    ev.ObserveFailed("raw.payments", "query failed: select max(x) from raw.payments (see logs/dbt.log)"),
    ev.Reported(),
    ev.Parsing(),
    ev.Parsed(0.41, 8),
    ev.Stale((ev.StaleAsset("stg_orders", "stale", ("upstream raw.orders updated",)),
              ev.StaleAsset("fact_sales", "stale", (f"last build failed at 2026-11-25T09:17:57Z: {FAILURE}",)))),
    ev.BuildStarted(3, "dbt build --select stg_orders+"),
    ev.NodeFinished("fact_sales", "error", 0.08, FAILURE),
    ev.NodeFinished("dim_customer", "skipped", 0.0, "upstream stg_orders failed"),
    ev.BuildFinished(("stg_orders",), {"fact_sales": FAILURE}, ("dim_customer",), 0.41,
                     "dbt build --select stg_orders+", None, "logs/dbt.log", {"fact_sales": 5.0}),
    ev.Fresh(8),
    ev.BackingOff(("fact_sales", "dim_customer"), {"fact_sales": 4.5}),
    ev.Waiting("stg_orders will be built once data/raw/orders/x.csv is complete (still being written)",
               ("stg_orders",), ("data/raw/orders/x.csv",)),
    ev.Error("state.db: the disk is full (12 KiB free in /data); free some space and run the command again", 2.0),
    ev.Stopped(),
    ev.NotDue(("fact_sales", "dim_customer"), "2026-11-25T10:00:00Z"),
    ev.SourceLate("raw.orders", "error", "late: no new data for 1h 15m (error_after 1 hour); last new data observed "
                  "at 2026-11-25T09:20:00.000Z", "2026-11-25T09:20:00.000Z", 4500.0, {"count": 1, "period": "hour"}),
    ev.SourceRecovered("raw.orders", "2026-11-25T10:40:00.000Z"),
    ev.StoreUnreachable("postgresql://dbt:***@db.internal:5432/state: cannot reach the PostgreSQL state store "
                        "(connection refused); check that the server runs and the URL's host and port", 4.0),
    ev.StoreReconnected(37.5),
    ev.LeaseLost(("stg_orders",), {"stg_orders": "machine-b:4242:0c1d2e3f"}),
    ev.CheckRemoved("dim_customer", "unique_dim_customer_customer_id", "missing",
                    "data test unique_dim_customer_customer_id missing: the YAML still declares it: dbt's partial "
                    "parse lost it; it does not run until `dbt parse --no-partial-parse`"),
    ev.WarehouseUnreachable("warehouse postgres:host=db.internal/port=5432/dbname=shop/schema=analytics (target "
                            "'prod') cannot be reached (no answer within 10s): 2 query sources keep their last "
                            "recorded observations", 2, 60.0),
]


def test_every_kind_has_a_sample_and_a_renderer_for_each_format_and_verbosity() -> None:
    assert {type(e) for e in SAMPLES} == set(ev.EVENT_TYPES.values())
    assert set(ev.EVENT_TYPES) == set(ev.EventKind)
    for table in (TEXT, JSON, QUIET):
        assert set(table) == set(ev.EVENT_TYPES.values())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind.value)
def test_each_event_renders_as_text_and_as_one_json_line(event: ev.WatchEvent) -> None:
    text = event_text(event, AT)
    assert text and all(click.unstyle(line).startswith("09:17:56 ") for line in text.splitlines())
    quiet = event_text(event, AT, quiet=True)
    assert quiet in (None, text)
    line = json.dumps(event_json(event, AT))
    assert "\n" not in line
    document = json.loads(line)
    assert document["event"] == event.kind.value and document["at"] == AT.isoformat()
    expected = {f.name for f in dataclasses.fields(event)}
    if isinstance(event, ev.NewData):  # only the fields its observer fills
        expected = {"source", "observer", *(("files", "bytes", "newest") if event.files is not None
                                             else ("watermark",))}
    assert set(document) - {"event", "at"} == expected


def test_quiet_shows_failures_and_the_end_only() -> None:
    shown = [e.kind.value for e in SAMPLES if event_text(e, AT, quiet=True) is not None]
    assert shown == ["observe_failed", "build_finished", "error", "stopped", "source_late", "source_recovered",
                     "store_unreachable", "store_reconnected", "lease_lost", "check_removed",
                     "warehouse_unreachable"]
    clean = ev.BuildFinished(("stg_orders",), {}, (), 0.4, "dbt build --select stg_orders+", None, "log", {})
    assert event_text(clean, AT, quiet=True) is None


def test_a_failure_is_read_once_and_a_reason_shows_its_first_line() -> None:
    texts = [click.unstyle(event_text(e, AT) or "") for e in SAMPLES]
    assert sum(t.count("Binder Error") for t in texts) == 1  # the node's own line, not the stale reasons
    stale = click.unstyle(event_text(SAMPLES[7], AT) or "")
    assert "last build failed at 2026-11-25T09:17:57Z: Runtime Error in model fact_sales …" in stale


def test_skipped_nodes_say_which_upstream_failed() -> None:
    assert click.unstyle(event_text(SAMPLES[10], AT) or "") == (
        "09:17:56   ✗ dim_customer skipped in 0.00s: upstream stg_orders failed")


def test_a_build_that_only_runs_checks_says_so_instead_of_building_0_assets() -> None:
    why = "data test assert_no_negative_amounts changed since it ran at 2026-11-25T09:17:56.000Z"
    said = [click.unstyle(event_text(e, AT) or "") for e in (
        ev.Stale((), {"assert_no_negative_amounts": why}),
        ev.BuildStarted(0, "dbt test --select assert_no_negative_amounts", 1),
        ev.BuildFinished((), {}, (), 8.36, "dbt test --select assert_no_negative_amounts", None, "log", {}, {}, 1))]
    assert said == ["09:17:56 1 check to run:\n"
                    f"09:17:56   assert_no_negative_amounts (check pending): {why}",
                    "09:17:56 running 1 check: dbt test --select assert_no_negative_amounts",
                    "09:17:56 ran 1 check in 8.36s"]
    both = ev.BuildStarted(2, "dbt build --select stg_orders+", 3)
    assert click.unstyle(event_text(both, AT) or "").endswith("building 2 assets and running 3 checks: "
                                                              "dbt build --select stg_orders+")


def test_counts_of_one_are_singular() -> None:
    assert click.unstyle(event_text(ev.Fresh(1), AT) or "") == "09:17:56 everything is fresh (1 asset)"
    assert click.unstyle(event_text(ev.Parsed(0.2, 1), AT) or "") == "09:17:56 re-parsed in 0.2s (1 asset)"


def test_the_json_event_schema_is_documented() -> None:
    docs = (REPO / "docs/events.md").read_text()
    sections = dict(re.findall(r"^### `(\w+)`\n(.*?)(?=^### |\Z)", docs, re.S | re.M))
    assert set(sections) == {k.value for k in ev.EventKind}
    for kind, cls in ev.EVENT_TYPES.items():
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in sections[kind.value], f"docs/events.md: {kind.value}.{f.name} is not documented"
    # and the page is in the documentation site's reference section
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    reference = next(entry["Reference"] for entry in nav if isinstance(entry, dict) and "Reference" in entry)
    assert "events.md" in [page for entry in reference for page in entry.values()]
