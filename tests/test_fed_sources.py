"""A source over a seed's relation (jaffle-shop's style), with real dbt.

dbt sees no edge from the seed to the source: dbtassets draws it, builds the seed before the
models that read it through the source, and a changed seed CSV makes those models stale.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.rules.staleness import ReasonCode, Status
from tests.tiny import PROJECT, rows, write, write_project

SEED = UniqueId("seed.tiny.raw_items")
SOURCE = UniqueId("source.tiny.raw.raw_items")
ITEMS = UniqueId("model.tiny.items")
TOTAL = UniqueId("model.tiny.items_total")

FILES = {
    "dbt_project.yml": PROJECT + "seeds:\n  tiny:\n    +schema: raw\nmodels:\n  tiny:\n    +materialized: table\n",
    # As many real projects do: a custom schema is used as is (dbt's default would make it main_raw).
    "macros/generate_schema_name.sql":
        "{% macro generate_schema_name(custom_schema_name, node) %}"
        "{{ custom_schema_name | trim if custom_schema_name else target.schema }}{% endmacro %}\n",
    "seeds/raw_items.csv": "item_id,price\n1,10\n2,20\n",
    "models/sources.yml": "sources:\n  - name: raw\n    schema: raw\n    tables:\n      - name: raw_items\n",
    "models/items.sql": "select item_id, price * 2 as doubled from {{ source('raw', 'raw_items') }}\n",
    "models/items_total.sql": "select sum(doubled) as total from {{ ref('items') }}\n",
    "models/schema.yml": """
unit_tests:
  - name: test_doubled
    model: items
    given:
      - input: source('raw', 'raw_items')
        rows:
          - {item_id: 1, price: 3}
    expect:
      rows:
        - {item_id: 1, doubled: 6}
""",
}


def not_fresh(project: Project) -> dict[str, list[str]]:
    report = project.status()
    return {project.graph.assets[uid].display_name: [r.message for r in s.reasons]
            for uid, s in report.statuses.items() if s.status is not Status.FRESH or s.reasons}


@pytest.mark.slow
def test_a_source_over_a_seed_is_fed_by_it_built_after_it_and_stale_with_it(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", FILES)
    with Project(Options(directory)) as project:
        assert project.graph.parents(SOURCE) == (SEED,)
        result = project.sync()
        assert result.ok, (result.failed, result.build)
        assert sorted(result.built) == sorted([SEED, ITEMS, TOTAL])
        # dbt does not know that items reads the seed: the seed is built in a dbt build of its own, first.
        assert [list(step.assets) for step in result.plan.steps] == [[SEED], [ITEMS, TOTAL]]
        # Everything fresh after one sync; the fed source needs no observer (its data version is the seed's build).
        assert not_fresh(project) == {}
        report = project.status()
        assert report.statuses[SOURCE].status is Status.FRESH
        assert not [w for w in report.warnings if "raw.raw_items" in w], report.warnings
    assert rows(directory, "select total from main.items_total") == [(60,)]

    # A changed seed CSV: the seed, and what reads it through the source, are stale; sync rebuilds them all.
    write(directory, {"seeds/raw_items.csv": "item_id,price\n1,10\n2,20\n3,30\n"})
    with Project(Options(directory)) as project:
        stale = project.status().statuses
        assert stale[SEED].status is Status.STALE
        assert [r.code for r in stale[ITEMS].reasons] == [ReasonCode.UPSTREAM_STALE]
        assert stale[ITEMS].reasons[0].upstream == SOURCE
        result = project.sync()
        assert result.ok and sorted(result.built) == sorted([SEED, ITEMS, TOTAL]), result.plan.command
        assert not_fresh(project) == {}
        assert project.sync().plan.empty
    assert rows(directory, "select total from main.items_total") == [(120,)]


@pytest.mark.slow
def test_lineage_of_a_seed_named_as_its_source_table_is_the_seed(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", FILES)
    with Project(Options(directory)) as project:
        uid, graph = project.lineage("raw_items")
        assert uid == SEED and set(graph) == {SEED, SOURCE, ITEMS, TOTAL}
        assert project.lineage("raw.raw_items")[0] == SOURCE
