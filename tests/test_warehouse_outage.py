"""A warehouse that is down cannot hang ``status``: example_project on a real PostgreSQL warehouse (real
dbt-postgres), stopped mid-run, and a server that takes the connection and never answers."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import dbtassets
from tests.pg import PostgresServer
from tests.test_postgres_warehouse import pg_project

pytestmark = pytest.mark.slow
__all__ = ["pg_project"]  # the fixture, reused

BUDGET = 3.0  # the silent server's, given with --observe-timeout; the stopped one's is the default, 10 s
SLACK = 30.0  # a second dbt process starting on a loaded 2-core machine


def observe_now(project: Path) -> float:
    """Record both sources' observations; how long one ``dbt show`` against the live warehouse took."""
    started = time.monotonic()
    observed = dbtassets(project, "observe", "--format", "json")
    assert observed.returncode == 0, observed.stderr
    assert {o["name"]: o["error"] for o in json.loads(observed.stdout)["observations"]} == {
        "raw.orders": None, "raw.customers": None}
    return time.monotonic() - started


def status_within_budget(project: Path, baseline: float,
                         budget: float | None = None) -> tuple[dict[str, dict[str, object]], list[str]]:
    started = time.monotonic()
    option = ("--observe-timeout", f"{budget:g}") if budget is not None else ()
    result = dbtassets(project, "status", "--all", "--observe", *option, "--format", "json")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < baseline + (budget or 10.0) + SLACK, f"status took {elapsed:.1f}s; a dbt show took {baseline:.1f}s"
    assets = {a["name"]: a for a in json.loads(result.stdout)["assets"]}
    return assets, [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def test_status_against_a_warehouse_stopped_mid_run_answers_from_the_recorded_observations(
        pg_project: Path, postgres: PostgresServer) -> None:
    baseline = observe_now(pg_project)
    before = dbtassets(pg_project, "status", "--all", "--no-observe", "--format", "json")
    assert before.returncode == 0, before.stderr
    postgres.halt()
    try:
        assets, warnings = status_within_budget(pg_project, baseline)
    finally:
        assert postgres.resume(), postgres.log_tail()
    # One line naming the warehouse, not one per source; no source was asked on its own.
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("warning: warehouse postgres:host=127.0.0.1/")
    assert "(target 'pg') cannot be reached (" in warnings[0]
    assert warnings[0].endswith("): 2 query sources keep their last recorded observations")
    recorded = {a["name"]: a for a in json.loads(before.stdout)["assets"]}
    assert {n: a["status"] for n, a in assets.items()} == {n: a["status"] for n, a in recorded.items()}
    assert assets["raw.orders"]["data_version"] == recorded["raw.orders"]["data_version"]  # its reading stands


def test_a_warehouse_that_takes_the_connection_and_never_answers_is_cut_off_by_the_budget(
        pg_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = observe_now(pg_project)
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        monkeypatch.setenv("SHOPFLOW_PG_PORT", str(silent.getsockname()[1]))
        assets, warnings = status_within_budget(pg_project, baseline, BUDGET)
    assert len(warnings) == 1, warnings
    assert f"cannot be reached (no answer within {BUDGET:g}s): 2 query sources keep" in warnings[0]
    assert "data_version" not in assets["raw.orders"]  # another warehouse (its port): nothing recorded for it
