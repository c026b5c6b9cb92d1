"""dbt's selection syntax over small hand-built asset graphs, and the selectors written back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtassets.errors import SelectionError
from dbtassets.model.graph import BUILDABLE, AssetGraph
from dbtassets.model.manifest import Manifest, Node, ResourceType, UniqueId
from dbtassets.model.selection import dbt_selectors, resolve_selection, select_assets
from tests.conftest import examples

Spec = tuple[str, Sequence[str], Mapping[str, Any]]
_FOLDERS = {"model": "models", "seed": "seeds", "snapshot": "snapshots", "source": "models"}


def make_manifest(spec: Mapping[str, Spec]) -> Manifest:
    """``{"model.p.a": ("model", [deps...], {field: value})}``; fields default from the unique_id."""
    nodes: dict[UniqueId, Node] = {}
    for uid, (rtype, deps, extra) in spec.items():
        _, package, *rest = uid.split(".")
        name = rest[-1]
        source_name = rest[0] if rtype == "source" else ""
        materialized = extra.get("materialized", "" if rtype == "source" else "table")
        suffix = {"seed": ".csv", "source": ".yml"}.get(rtype, ".sql")
        fields: dict[str, Any] = {
            "unique_id": UniqueId(uid), "name": name, "resource_type": ResourceType(rtype), "package_name": package,
            "fqn": (package, *rest), "tags": (), "materialized": materialized,
            "depends_on": tuple(UniqueId(d) for d in deps), "code_version": "v1",
            "path": f"{_FOLDERS[rtype]}/{'sources' if rtype == 'source' else name}{suffix}",
            "source_name": source_name, "config": {"materialized": materialized} if materialized else {},
        }
        fields.update(extra)
        fields["fqn"], fields["tags"] = tuple(fields["fqn"]), tuple(fields["tags"])
        nodes[UniqueId(uid)] = Node(**fields)
    return Manifest(Path("target/manifest.json"), "shop", "1.11.0", 12, "duckdb", "", nodes, {}, {})


def make_graph(spec: Mapping[str, Spec]) -> AssetGraph:
    return AssetGraph.from_manifest(make_manifest(spec))


def staged(folder: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"fqn": ("shop", *folder.split("/"), name), "path": f"models/{folder}/{name}.sql", **extra}


SHOP: dict[str, Spec] = {
    "source.shop.raw.orders": ("source", [], {"path": "models/staging/_sources.yml",
                                              "fqn": ("shop", "staging", "raw", "orders")}),
    "source.shop.raw.customers": ("source", [], {"path": "models/staging/_sources.yml", "tags": ["pii"]}),
    "source.shop.events.clicks": ("source", [], {}),
    "seed.shop.country_codes": ("seed", [], {}),
    "model.shop.stg_orders": ("model", ["source.shop.raw.orders"],
                              staged("staging", "stg_orders", tags=["staging"], materialized="view",
                                     config={"materialized": "view", "enabled": True})),
    "model.shop.stg_customers": ("model", ["source.shop.raw.customers"],
                                 staged("staging", "stg_customers", tags=["staging", "pii"])),
    "model.shop.int_orders": ("model", ["model.shop.stg_orders", "model.shop.stg_customers"],
                              staged("intermediate", "int_orders", materialized="ephemeral",
                                     tags=["nightly"])),
    "model.shop.fct_orders": ("model", ["model.shop.int_orders", "seed.shop.country_codes"],
                              staged("marts", "fct_orders", tags=["nightly"])),
    "model.shop.dim_customers": ("model", ["model.shop.stg_customers"], staged("marts", "dim_customers")),
    "model.shop.rpt_daily": ("model", ["model.shop.fct_orders"],
                             staged("marts/reports", "rpt_daily", materialized="incremental",
                                    config={"materialized": "incremental", "full_refresh": False})),
    "snapshot.shop.customers_snapshot": ("snapshot", ["source.shop.raw.customers"], {}),
    "model.util.calendar": ("model", [], {"path": "models/calendar.sql"}),
}


@pytest.fixture(scope="module")
def shop() -> AssetGraph:
    return make_graph(SHOP)


def names(uids: set[UniqueId]) -> set[str]:
    return {uid.split(".", 2)[2] for uid in uids}


def pick(graph: AssetGraph, *select: str, exclude: Sequence[str] = ()) -> set[str]:
    return names(select_assets(graph, select, exclude))


@pytest.mark.parametrize(("select", "expected"), [
    ("stg_orders", {"stg_orders"}),
    ("+fct_orders", {"fct_orders", "stg_orders", "stg_customers", "country_codes", "raw.orders",
                     "raw.customers"}),
    ("stg_orders+", {"stg_orders", "fct_orders", "rpt_daily"}),
    ("1+fct_orders", {"fct_orders", "stg_orders", "stg_customers", "country_codes"}),
    ("2+rpt_daily", {"rpt_daily", "fct_orders", "country_codes", "stg_orders", "stg_customers"}),
    ("stg_customers+1", {"stg_customers", "fct_orders", "dim_customers"}),
    ("0+rpt_daily", {"rpt_daily"}),
    ("1+stg_orders+1", {"stg_orders", "raw.orders", "fct_orders"}),
    ("@stg_orders", {"stg_orders", "fct_orders", "rpt_daily", "stg_customers", "country_codes",
                     "raw.orders", "raw.customers"}),
])
def test_graph_operators(shop: AssetGraph, select: str, expected: set[str]) -> None:
    assert pick(shop, select) == expected


@pytest.mark.parametrize(("select", "expected"), [
    ("tag:staging", {"stg_orders", "stg_customers"}),
    ("tag:pii", {"stg_customers", "raw.customers"}),
    ("tag:night*", {"fct_orders"}),  # the ephemeral int_orders is tagged too, but is no asset
    ("path:models/staging", {"stg_orders", "stg_customers", "raw.orders", "raw.customers"}),
    ("path:models/staging/", {"stg_orders", "stg_customers", "raw.orders", "raw.customers"}),
    ("path:models/marts/fct_orders.sql", {"fct_orders"}),
    ("path:models/marts/*.sql", {"fct_orders", "dim_customers"}),
    ("path:models/**/rpt_*.sql", {"rpt_daily"}),
    ("models/marts", {"fct_orders", "dim_customers", "rpt_daily"}),
    ("./seeds/country_codes.csv", {"country_codes"}),
    ("file:calendar.sql", {"calendar"}),
    ("stg_orders.sql", {"stg_orders"}),
    ("country_codes.csv", {"country_codes"}),
    ("_sources.yml", {"raw.orders", "raw.customers"}),
    ("source:raw", {"raw.orders", "raw.customers"}),
    ("source:raw.orders", {"raw.orders"}),
    ("source:*.c*", {"raw.customers", "events.clicks"}),
    ("source:shop.events.clicks", {"events.clicks"}),
    ("resource_type:seed", {"country_codes"}),
    ("resource_type:snapshot", {"customers_snapshot"}),
    ("resource_type:source", {"raw.orders", "raw.customers", "events.clicks"}),
    ("fqn:shop.staging", {"stg_orders", "stg_customers"}),
    ("fqn:shop.marts.reports.rpt_daily", {"rpt_daily"}),
    ("package:util", {"calendar"}),
    ("package:sh*", set(SHOP) - {"model.util.calendar", "model.shop.int_orders"}),
    ("config.materialized:view", {"stg_orders"}),
    ("config.materialized:incremental", {"rpt_daily"}),
    ("config.full_refresh:false", {"rpt_daily"}),
    ("config.enabled:TRUE", {"stg_orders"}),
    ("unique_id:model.util.calendar", {"calendar"}),
    ("unique_id:seed.*", {"country_codes"}),
])
def test_methods(shop: AssetGraph, select: str, expected: set[str]) -> None:
    if expected and next(iter(expected)).count(".") > 1:  # given as unique_ids
        expected = names({UniqueId(uid) for uid in expected})
    assert pick(shop, select) == expected


@pytest.mark.parametrize(("select", "expected"), [
    ("shop.staging", {"stg_orders", "stg_customers"}),  # a dotted prefix of the fqn
    ("staging", {"stg_orders", "stg_customers"}),  # dbt also matches the fqn without its package
    ("shop.marts", {"fct_orders", "dim_customers", "rpt_daily"}),
    ("shop.marts.*", {"fct_orders", "dim_customers", "rpt_daily"}),
    ("marts.reports.rpt_daily", {"rpt_daily"}),
    ("stg_*", {"stg_orders", "stg_customers"}),
    ("*_orders", {"stg_orders", "fct_orders"}),
    ("util", {"calendar"}),
    ("raw.orders", {"raw.orders"}),  # a source by its display name
    ("raw.*", {"raw.orders", "raw.customers"}),
    ("stg_orders+,tag:nightly", {"fct_orders"}),
])
def test_bare_values(shop: AssetGraph, select: str, expected: set[str]) -> None:
    assert pick(shop, select) == expected


def test_union_intersection_and_exclude(shop: AssetGraph) -> None:
    assert pick(shop, "stg_orders dim_customers", "calendar") == {"stg_orders", "dim_customers", "calendar"}
    assert pick(shop, "+fct_orders,resource_type:model") == {"fct_orders", "stg_orders", "stg_customers"}
    assert pick(shop, "tag:staging,tag:pii,stg_customers+") == {"stg_customers"}
    assert pick(shop, "stg_orders+", exclude=["rpt_daily"]) == {"stg_orders", "fct_orders"}
    assert pick(shop, "stg_orders+", exclude=["tag:nightly stg_orders"]) == {"rpt_daily"}
    assert pick(shop, "stg_orders+", exclude=["resource_type:model,fct_orders+"]) == {"stg_orders"}


def test_no_select_means_everything(shop: AssetGraph) -> None:
    assert select_assets(shop) == set(shop.assets)
    assert select_assets(shop, [" "]) == set(shop.assets)
    assert names(select_assets(shop, exclude=["resource_type:source", "package:shop"])) == {"calendar"}


@pytest.mark.parametrize(("select", "message"), [
    ("tag:stagin", "no asset has tag 'stagin' (in selector 'tag:stagin'); did you mean tag:staging?"),
    ("tag:zzz", "no asset has tag 'zzz' (in selector 'tag:zzz'); the project has tag:nightly, tag:pii, tag:staging"),
    ("path:model/marts", "no asset is under path 'model/marts' (in selector 'path:model/marts'); "
                         "did you mean path:models/marts or"),
    ("path:models/intermediate", "no asset is under path 'models/intermediate'"),  # only an ephemeral model
    ("models/mart", "no asset is under path 'models/mart' (in selector 'models/mart'); did you mean models/marts or"),
    ("file:stg_ordrs.sql", "no asset is in a file named 'stg_ordrs.sql' (in selector 'file:stg_ordrs.sql'); "
                           "did you mean file:stg_orders.sql or"),
    ("package:shp", "no asset is in package 'shp' (in selector 'package:shp'); did you mean package:shop?"),
    ("config.materialized:tabel", "no asset has config materialized 'tabel' (in selector "
                                  "'config.materialized:tabel'); did you mean config.materialized:table?"),
    ("config.materialised:view", "no asset has a config key 'materialised' (in selector "
                                 "'config.materialised:view'); did you mean config.materialized:view?"),
    ("source:rawx.orders", "no source matches 'rawx.orders' (in selector 'source:rawx.orders'); "
                           "did you mean source:raw.orders or source:raw.customers?"),
    ("source:util.events.clicks", "no source matches 'util.events.clicks'"),  # in package shop, not util
    ("config.no_such_key:x", "no asset has a config key 'no_such_key' (in selector 'config.no_such_key:x')"),
    ("fct_ordrs+", "no asset is named 'fct_ordrs' (in selector 'fct_ordrs+'); did you mean fct_orders or stg_orders?"),
    ("stg_nothing_*", "no asset is named 'stg_nothing_*' (in selector 'stg_nothing_*'); "
                      "`dbtassets assets` lists them"),
    ("unique_id:model.shop.fct_order", "no asset has unique_id 'model.shop.fct_order' (in selector "
                                       "'unique_id:model.shop.fct_order'); did you mean "
                                       "unique_id:model.shop.fct_orders"),
])
def test_a_selector_that_matches_nothing_is_an_error_with_the_closest_values(
        shop: AssetGraph, select: str, message: str) -> None:
    with pytest.raises(SelectionError) as caught:
        select_assets(shop, ["stg_orders", select])  # the other selector matching does not hide the typo
    assert str(caught.value).startswith(message)


def test_a_selector_whose_parts_never_meet_matches_nothing(shop: AssetGraph) -> None:
    with pytest.raises(SelectionError, match=r"^--select 'tag:pii,tag:nightly' matches no asset: no asset is "
                                             r"selected by all of its parts$"):
        select_assets(shop, ["tag:pii,tag:nightly"])


def test_an_exclude_that_matches_nothing_is_a_warning(shop: AssetGraph) -> None:
    selection = resolve_selection(shop, ["stg_orders+"], ["tag:stagin", "rpt_daily"])
    assert names(set(selection.assets)) == {"stg_orders", "fct_orders"}
    assert selection.warnings == ("--exclude 'tag:stagin' leaves nothing out: no asset has tag 'stagin'; "
                                  "did you mean tag:staging?",)


def test_an_exclude_that_leaves_nothing_is_an_error(shop: AssetGraph) -> None:
    with pytest.raises(SelectionError, match=r"^--exclude 'fct_orders\+' leaves out every asset --select "
                                             r"'fct_orders' picks; nothing is selected$"):
        select_assets(shop, ["fct_orders"], ["fct_orders+"])


def test_an_empty_project_accepts_any_selection() -> None:
    empty = make_graph({})
    assert select_assets(empty, ["tag:anything", "nothing_here+"], ["path:nowhere"]) == set()
    assert resolve_selection(empty, exclude=["x"]).warnings == ()


def test_ephemeral_models_are_collapsed(shop: AssetGraph) -> None:
    assert "model.shop.int_orders" not in select_assets(shop)
    assert shop.parents(UniqueId("model.shop.fct_orders")) == (
        "model.shop.stg_orders", "model.shop.stg_customers", "seed.shop.country_codes")
    # Depths count edges of the collapsed graph; dbt would count the hop into int_orders too.
    assert pick(shop, "stg_customers+1") == {"stg_customers", "fct_orders", "dim_customers"}
    with pytest.raises(SelectionError, match="no asset is named 'int_orders'"):
        select_assets(shop, ["int_orders+"])


@pytest.mark.parametrize(("select", "reason"), [
    ("colour:red", "unknown method 'colour'"),
    ("tag.x:red", "unknown method 'tag.x'"),
    ("+", "nothing to select"),
    ("@", "nothing to select"),
    ("3+", "nothing to select"),
    ("tag:", "nothing to select"),
    ("a++", "'+' and '@' go only at the start or end"),
    ("a+b", "'+' and '@' go only at the start or end"),
    ("a@b", "'+' and '@' go only at the start or end"),
    ("@stg_orders+", "'@' and a trailing '+' cannot be combined"),
    ("config:table", "config needs a key"),
    ("resource_type:test", "assets are of resource_type model, seed, snapshot, source"),
    ("source:a.b.c.d", "a source is SOURCE, SOURCE.TABLE or PACKAGE.SOURCE.TABLE"),
])
def test_malformed_selectors(shop: AssetGraph, select: str, reason: str) -> None:
    with pytest.raises(SelectionError) as caught:
        select_assets(shop, [select])
    message = str(caught.value)
    assert message.startswith(f"invalid selector {select!r}: {reason}")
    assert message.endswith("a selector is [@][N+][METHOD:]VALUE[+N] with METHOD one of fqn, tag, path, "
                            "file, source, resource_type, package, config, unique_id")
    assert "\n" not in message


def test_every_problem_is_reported_at_once(shop: AssetGraph) -> None:
    with pytest.raises(SelectionError, match=r"^invalid selector 'colour:red': .*; invalid selector "
                                             r"'a,,b': empty part between commas; a selector is"):
        select_assets(shop, ["colour:red"], exclude=["a,,b"])


def test_unknown_name_suggests_close_ones(shop: AssetGraph) -> None:
    with pytest.raises(SelectionError) as caught:
        select_assets(shop, ["+stg_ordrs"])
    assert str(caught.value) == ("no asset is named 'stg_ordrs' (in selector '+stg_ordrs'); "
                                 "did you mean stg_orders or fct_orders or stg_customers?")
    assert resolve_selection(shop, exclude=["xyzzy"]).warnings == (
        "--exclude 'xyzzy' leaves nothing out: no asset is named 'xyzzy'; `dbtassets assets` lists them",)
    with pytest.raises(SelectionError, match=r"^no asset is named 'stg_ordrs' .*; no asset is named 'dim'"):
        select_assets(shop, ["stg_ordrs,tag:staging", "dim"])


def test_selectors_collapse_a_closed_set_to_its_root(shop: AssetGraph) -> None:
    stale = select_assets(shop, ["stg_customers+"])
    assert dbt_selectors(shop, stale) == ["stg_customers+"]
    stale |= select_assets(shop, ["country_codes+"])
    assert dbt_selectors(shop, stale) == ["country_codes+", "stg_customers+"]


def test_selectors_name_nodes_around_a_hole(shop: AssetGraph) -> None:
    stale = select_assets(shop, ["stg_orders+"], exclude=["fct_orders"])
    assert dbt_selectors(shop, stale) == ["stg_orders", "rpt_daily+"]
    assert dbt_selectors(shop, select_assets(shop, ["stg_orders fct_orders"])) == ["stg_orders", "fct_orders"]


def test_selectors_ignore_sources_and_empty_sets(shop: AssetGraph) -> None:
    assert dbt_selectors(shop, select_assets(shop, ["+stg_orders"])) == ["stg_orders"]
    assert dbt_selectors(shop, select_assets(shop, ["resource_type:source"])) == []
    assert dbt_selectors(shop, []) == []


def test_selectors_use_the_fqn_for_ambiguous_names() -> None:
    graph = make_graph({
        "model.shop.orders": ("model", [], {}),
        "model.util.orders": ("model", [], {}),
        "model.shop.report": ("model", ["model.shop.orders", "model.util.orders"], {}),
        "model.shop.staging": ("model", [], {"path": "models/staging.sql"}),
        "model.shop.stg_x": ("model", ["model.shop.staging"], staged("staging", "stg_x")),
    })
    every = set(graph.assets)
    assert dbt_selectors(graph, every - {UniqueId("model.shop.report")}) == [
        "shop.orders", "util.orders", "shop.staging,path:models/staging.sql", "stg_x+"]
    # `staging+` would do here, but in general the ambiguous name must not carry a `+`.
    assert dbt_selectors(graph, every) == [
        "shop.orders+", "util.orders+", "shop.staging,path:models/staging.sql", "stg_x+"]
    assert names(select_assets(graph, ["shop.staging,path:models/staging.sql"])) == {"staging"}


_POOL = ("orders", "staging", "shop", "util", "a")


@st.composite
def graphs(draw: st.DrawFn) -> AssetGraph:
    """Random DAGs of all asset types, with names that collide across packages and with folders."""
    spec: dict[str, Spec] = {}
    taken: set[tuple[str, str]] = set()
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["source", "seed", "model", "model", "ephemeral", "snapshot"]))
        rtype = "model" if kind == "ephemeral" else kind
        package = draw(st.sampled_from(["shop", "util"]))
        name = draw(st.sampled_from(_POOL))
        if (package, name) in taken:
            name = f"{name}_{i}"
        folders = draw(st.lists(st.sampled_from(_POOL), max_size=2))
        extra: dict[str, Any] = {"fqn": (package, *folders, name),
                                 "path": "/".join([_FOLDERS[rtype], *folders, f"{name}.sql"])}
        if rtype == "source":
            uid = f"source.{package}.raw{i}.{name}"
            extra["fqn"] = (package, *folders, f"raw{i}", name)
        else:
            taken.add((package, name))
            uid = f"{rtype}.{package}.{name}"
        if kind == "ephemeral":
            extra["materialized"] = "ephemeral"
        parents = [p for p in spec if not p.startswith("seed.") and rtype in ("model", "snapshot")]
        deps = draw(st.lists(st.sampled_from(parents), unique=True, max_size=3)) if parents else []
        spec[uid] = (rtype, deps, extra)
    return make_graph(spec)


@settings(max_examples=examples(300), deadline=None)
@given(graphs(), st.data())
def test_selectors_select_exactly_the_given_set(graph: AssetGraph, data: st.DataObject) -> None:
    buildable = sorted(uid for uid, node in graph.assets.items() if node.resource_type in BUILDABLE)
    wanted = set(data.draw(st.lists(st.sampled_from(buildable), unique=True) if buildable else st.just([])))
    selectors = dbt_selectors(graph, wanted | {uid for uid in graph if uid.startswith("source.")})
    if not wanted:
        assert selectors == []
        return
    selected = {uid for uid in select_assets(graph, selectors) if graph.assets[uid].resource_type in BUILDABLE}
    assert selected == wanted


def test_an_asset_named_by_digits_is_never_written_as_a_depth() -> None:
    # `2023+` would mean "2023 levels of parents of +": dbt refuses it. The fqn names it instead.
    graph = make_graph({
        "model.shop.2023": ("model", [], {}),
        "model.shop.report": ("model", ["model.shop.2023"], {}),
    })
    selectors = dbt_selectors(graph, set(graph.assets))
    assert selectors == ["shop.2023+"]
    assert names(select_assets(graph, selectors)) == {"2023", "report"}
    assert dbt_selectors(graph, {UniqueId("model.shop.2023")}) == ["shop.2023"]
