"""Every command's format table: each renderer draws its result, and every JSON one is a JSON document."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from dbtassets.engine import Project
from dbtassets.model.manifest import ResourceType
from dbtassets.report import formats
from dbtassets.report.common import Gate, OutputFormat
from tests.conftest import FakeClock, FakeRunner


def test_every_renderer_of_every_table_draws_its_result(fake_project: tuple[Project, FakeRunner, FakeClock]) -> None:
    project, _, _ = fake_project
    result = project.sync()
    assert result.ok
    graph, report = project.graph, project.status(observe=False)
    root, lineage = project.lineage("stg_orders")
    node, entries = project.history("stg_orders")
    sources = [u for u in graph if graph.assets[u].resource_type == ResourceType.SOURCE]
    arguments: dict[str, tuple[Any, ...]] = {
        "ASSETS": (graph, report, project.settings.sources),
        "STATUS": (graph, report, True),
        "WHY": (graph, project.why("fact_sales", observe=False)),
        "LINEAGE": (lineage, root),
        "GATE": (graph, Gate(report, not project.needs_attention(report), prefix="transform/")),
        "LINT": (graph, project.lint()),
        "OBSERVE": (graph, project.observe(sources)),
        "HISTORY": (node, entries, graph),
        "SAVINGS": (project.savings(project.clock.now()),),
        "SYNC": (graph, result, False),
    }
    tables = {name: table for name, table in vars(formats).items() if name.isupper() and isinstance(table, Mapping)}
    assert sorted(tables) == sorted(arguments), "a table the test does not walk"
    for name, table in tables.items():
        assert table, name
        for fmt, render in table.items():
            shown = render(*arguments[name])
            assert isinstance(shown, str) and shown, (name, fmt)
            if fmt is OutputFormat.JSON:
                json.loads(shown)
            else:
                assert click.unstyle(shown).strip(), (name, fmt)
