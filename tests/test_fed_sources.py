"""A source over a seed's relation (jaffle-shop's style), with real dbt.

dbt sees no edge from the seed to the source: dbtassets draws it, builds the seed before the
models that read it through the source, and a changed seed CSV makes those models stale.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dbtassets.builder import plan_for
from dbtassets.engine import Options, Project
from dbtassets.model.freshness import BuildAfter, Interval, Policies
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Manifest, Node, ResourceType, UniqueId
from dbtassets.rules.policies import apply as apply_policies
from dbtassets.rules.staleness import compute_statuses
from dbtassets.rules.statuses import AssetStatus, ReasonCode, Status
from dbtassets.state.records import Materialization, StateView, Version
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


# -- fast: the graph, the waves, the statuses, on a manifest written here -----------------------------

F_SEED, F_SOURCE, F_ITEMS, F_TOTAL, F_LOOP, F_LOOP_SOURCE = (UniqueId(u) for u in (
    "seed.p.raw_items", "source.p.raw.raw_items", "model.p.items", "model.p.items_total", "model.p.appender",
    "source.p.raw.appender"))


def fed_graph() -> tuple[AssetGraph, Manifest]:
    """raw_items (seed) feeds source raw.raw_items → items → items_total; appender reads its own table."""
    def node(uid: UniqueId, rtype: str, relation: str, deps: tuple[UniqueId, ...] = ()) -> Node:
        name = uid.split(".")[-1]
        return Node(uid, name, ResourceType(rtype), "p", ("p", name), f"{name}.sql", (), "table", deps, "",
                    source_name="raw" if rtype == "source" else "", relation_name=relation)

    nodes = {
        F_SEED: node(F_SEED, "seed", '"db"."raw"."raw_items"'),
        F_SOURCE: node(F_SOURCE, "source", '"DB"."raw"."raw_items"'),  # rendered with other quoting/case
        F_ITEMS: node(F_ITEMS, "model", '"db"."main"."items"', (F_SOURCE,)),
        F_TOTAL: node(F_TOTAL, "model", '"db"."main"."items_total"', (F_ITEMS,)),
        F_LOOP_SOURCE: node(F_LOOP_SOURCE, "source", '"db"."main"."appender"'),
        F_LOOP: node(F_LOOP, "model", '"db"."main"."appender"', (F_LOOP_SOURCE,)),
    }
    manifest = Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {})
    return AssetGraph.from_manifest(manifest), manifest


def test_a_source_over_a_built_table_is_a_child_of_what_builds_it_unless_that_reads_it() -> None:
    graph, _ = fed_graph()
    assert graph.fed == {F_SOURCE: F_SEED}  # appender reads its own table: no cycle drawn
    assert graph.parents(F_SOURCE) == (F_SEED,) and graph.children(F_SEED) == (F_SOURCE,)
    assert graph.descendants(F_SEED) == {F_SOURCE, F_ITEMS, F_TOTAL}
    assert graph.parents(F_LOOP_SOURCE) == ()
    assert graph.resolve("raw_items") == F_SEED and graph.resolve("raw.raw_items") == F_SOURCE


def test_waves_build_a_feeder_before_what_reads_it_through_its_source_and_split_only_then() -> None:
    graph, manifest = fed_graph()
    assert graph.waves([F_TOTAL, F_ITEMS, F_SEED, F_LOOP]) == [[F_SEED, F_LOOP], [F_ITEMS, F_TOTAL]]
    assert graph.waves([F_ITEMS, F_TOTAL]) == [[F_ITEMS, F_TOTAL]]
    assert graph.waves([F_SEED]) == [[F_SEED]] and graph.waves([]) == []
    statuses = {uid: AssetStatus(uid, Status.MISSING, (), None) for uid in graph}
    plan = plan_for(graph, manifest, [F_SEED, F_ITEMS, F_TOTAL], statuses)
    assert plan.command == "dbt build --select raw_items && dbt build --select items+"


def test_a_fed_source_is_stale_missing_or_fresh_with_its_feeder_and_needs_no_observer() -> None:
    graph, _ = fed_graph()
    codes = {F_SEED: "seed-1", F_ITEMS: "c-items", F_TOTAL: "c-total", F_LOOP: "c-loop"}
    seed = Materialization(1, 1, "t1", "seed-1", {})
    items = Materialization(2, 1, "t1", "c-items", {F_SOURCE: seed.data_version})
    total = Materialization(3, 1, "t1", "c-total", {F_ITEMS: items.data_version})
    loop = Materialization(4, 1, "t1", "c-loop", {})
    state = StateView({F_SEED: seed, F_ITEMS: items, F_TOTAL: total, F_LOOP: loop}, {}, {})

    fresh = compute_statuses(graph, codes, state)
    assert {uid: s.status for uid, s in fresh.items()} == {
        F_SEED: Status.FRESH, F_SOURCE: Status.FRESH, F_ITEMS: Status.FRESH, F_TOTAL: Status.FRESH,
        F_LOOP: Status.FRESH, F_LOOP_SOURCE: Status.UNOBSERVED}
    assert fresh[F_SOURCE].data_version == seed.data_version

    changed = compute_statuses(graph, {**codes, F_SEED: "seed-2"}, state)
    assert [(r.code, r.message, r.upstream) for r in changed[F_SOURCE].reasons] == [
        (ReasonCode.UPSTREAM_STALE, "its table is built by seed raw_items, which is stale", F_SEED)]
    assert [(r.code, r.upstream) for r in changed[F_ITEMS].reasons] == [(ReasonCode.UPSTREAM_STALE, F_SOURCE)]
    assert changed[F_TOTAL].status is Status.STALE

    reseeded = Materialization(5, 2, "t2", "seed-1", {})
    rebuilt = compute_statuses(graph, codes, StateView({**state.last_success, F_SEED: reseeded}, {}, {}))
    assert rebuilt[F_SOURCE].status is Status.FRESH
    assert [r.message for r in rebuilt[F_ITEMS].reasons] == [
        "upstream raw.raw_items updated: raw_items rebuilt it at t2 (built from the version of t1)"]

    missing = compute_statuses(graph, codes, StateView({}, {}, {}))
    assert missing[F_SOURCE].status is Status.MISSING
    assert [r.code for r in missing[F_ITEMS].reasons] == [ReasonCode.NEVER_MATERIALIZED, ReasonCode.UPSTREAM_MISSING]


def test_what_reads_a_fed_source_is_due_when_what_builds_its_table_is() -> None:
    raw, clean, fed, report = (UniqueId(u) for u in (
        "source.p.raw.events", "model.p.clean", "source.p.clean.clean", "model.p.report"))

    def node(uid: UniqueId, rtype: str, deps: tuple[UniqueId, ...] = ()) -> Node:
        name = uid.split(".")[-1]
        relation = {raw: "db.raw.events", report: "db.main.report"}.get(uid, "db.main.clean")
        return Node(uid, name, ResourceType(rtype), "p", ("p", name), f"{name}.sql", (), "table", deps, "",
                    source_name=uid.split(".")[2] if rtype == "source" else "", relation_name=relation)

    nodes = {raw: node(raw, "source"), clean: node(clean, "model", (raw,)), fed: node(fed, "source"),
             report: node(report, "model", (fed,))}
    graph = AssetGraph.from_manifest(Manifest(Path("m.json"), "p", "1.11", 12, "duckdb", "", nodes, {}, {}))
    assert graph.fed == {fed: clean}
    clean_built = Materialization(1, 1, "2026-01-01T10:00:00Z", "c-clean", {raw: Version("f1", "2026-01-01T09:00:00Z")})
    report_built = Materialization(2, 1, "2026-01-01T10:00:00Z", "c-report", {fed: clean_built.data_version})
    state = StateView({clean: clean_built, report: report_built}, {}, {raw: Version("f2", "2026-01-01T10:10:00Z")})
    statuses = compute_statuses(graph, {clean: "c-clean", report: "c-report"}, state, {raw})
    hourly = Policies(build_after={clean: BuildAfter(Interval(1, "hour"))})
    verdict = apply_policies(graph, statuses, hourly, datetime(2026, 1, 1, 10, 15, tzinfo=timezone.utc))
    # clean waits for its hour; report, which reads clean's table through the source, waits with it.
    assert not verdict.schedule.is_due(clean) and not verdict.schedule.is_due(report)


# -- slow: real dbt ------------------------------------------------------------------------------------


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
        # Against the same project deployed (check --against), nothing reads as changed through the source.
        shutil.copy(directory / "target/manifest.json", tmp_path / "deployed.json")
        assert {u: s.reasons for u, s in project.plan_against(tmp_path / "deployed.json").statuses.items()
                if s.needs_build} == {}
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
