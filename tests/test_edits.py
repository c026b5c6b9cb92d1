"""Edits answered fast: compiled SQL kept by manifest version, one target/ per target, readers parsing in-process.

Real dbt on copies of example_project throughout; the runner is wrapped only to count what it was asked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from dbtassets.building.runner import BuildResult, DbtTarget, Runner, Verb
from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from tests.conftest import dbtassets


class Counting:
    """A real runner, with what it was asked to parse and compile written down."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.on_node = None
        self.parses = 0
        self.compiled: list[list[str]] = []

    def retarget(self, target: DbtTarget) -> None:
        self.inner.retarget(target)

    def parse(self) -> None:
        self.parses += 1
        self.inner.parse()

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> Mapping[UniqueId, str]:
        self.compiled.append(list(selectors))
        return self.inner.compile(selectors, full_refresh=full_refresh)

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = (), verb: Verb = Verb.BUILD) -> BuildResult:
        raise AssertionError("a reader builds nothing")

    def query(self, sql: str, timeout: float | None = None) -> list[list[Any]]:
        return self.inner.query(sql, timeout)


def reader(project_dir: Path) -> tuple[Project, Counting]:
    """The project as a command that answers questions opens it, each time as a new process would."""
    project = Project(Options(project_dir, project_dir, read_only=True))
    counting = Counting(project.runner)
    project.runner = counting
    return project, counting


def test_lint_compiles_a_model_again_only_after_it_was_edited(project_dir: Path) -> None:
    first, runner = reader(project_dir)
    assert first.lint() == {}
    assert len(runner.compiled) == 1 and len(runner.compiled[0]) == 4, runner.compiled  # the four non-ephemeral models

    again, runner = reader(project_dir)
    assert again.lint() == {}
    assert runner.compiled == []  # nothing changed: each model's compiled SQL is kept by its manifest version

    dim = project_dir / "models/marts/dim_customer.sql"
    dim.write_text(dim.read_text().replace(
        "from {{ ref('stg_orders') }}",
        "from {{ ref('stg_orders') }}\n    where customer_id in (select customer_id from main.customers_snapshot)"))
    edited, runner = reader(project_dir)
    findings = edited.lint()
    assert {edited.graph.assets[uid].name: reads for uid, reads in findings.items()} == {
        "dim_customer": ["main.customers_snapshot"]}
    assert runner.parses == 1  # the edit made the manifest stale
    assert len(runner.compiled) == 1 and len(runner.compiled[0]) == 1 and "dim_customer" in runner.compiled[0][0]

    dim.write_text(dim.read_text().replace("main.customers_snapshot", "{{ ref('customers_snapshot') }}"))
    fixed, runner = reader(project_dir)
    assert fixed.lint() == {}  # the fix is compiled too, not answered from the cache
    assert len(runner.compiled) == 1 and "dim_customer" in runner.compiled[0][0]


def relation(manifest: Path, name: str) -> str:
    return str(json.loads(manifest.read_text())["nodes"][f"model.shopflow.{name}"]["relation_name"])


def test_a_target_switch_and_back_parses_nothing_and_answers_for_each_target(project_dir: Path) -> None:
    def status(*target: str) -> tuple[dict[str, str], str]:
        result = dbtassets(project_dir, *target, "status", "--all", "--no-observe", "--format", "json")
        assert result.returncode == 0, result.stderr
        names = {a["name"]: a["status"] for a in json.loads(result.stdout)["assets"] if a["resource_type"] == "model"}
        return names, result.stderr

    prod, said = status("--target", "prod")
    assert "running dbt parse" in said  # prod's first parse, in its own directory
    assert set(prod.values()) == {"missing"}
    dev, said = status()
    assert "running dbt parse" not in said, said  # target/ still holds dev's manifest and partial parse
    assert dev == prod
    _, said = status("--target", "prod")
    assert "running dbt parse" not in said, said  # and target/dbtassets-prod/ prod's
    # Each manifest names its own target's relations (the DuckDB file is the database).
    assert relation(project_dir / "target/manifest.json", "fact_sales") == '"shopflow"."main"."fact_sales"'
    assert relation(project_dir / "target/dbtassets-prod/manifest.json", "fact_sales") == '"prod"."main"."fact_sales"'

    fact = project_dir / "models/marts/fact_sales.sql"
    fact.write_text(fact.read_text() + "\n-- an edit\n")
    _, said = status("--target", "prod")
    assert "target/dbtassets-prod/manifest.json is older than" in said, said  # an edit still parses again
    _, said = status()
    assert "target/manifest.json is older than" in said, said


@pytest.mark.slow
def test_status_after_an_edit_compiles_the_edited_model_once(project_dir: Path) -> None:
    assert dbtassets(project_dir, "sync").returncode == 0
    orders = project_dir / "models/staging/stg_orders.sql"
    orders.write_text(orders.read_text() + "\n-- a comment changes no logic\n")
    first = dbtassets(project_dir, "status")
    assert first.returncode == 0, first.stderr
    assert "running dbt parse" in first.stderr and "compiling 1 changed model to compare its SQL" in first.stderr
    assert first.stdout.startswith("Everything selected is fresh")
    second = dbtassets(project_dir, "status")
    assert second.returncode == 0, second.stderr
    assert "running dbt parse" not in second.stderr and "compiling" not in second.stderr, second.stderr
    assert second.stdout == first.stdout
