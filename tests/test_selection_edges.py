"""Selection rules that mutation testing found no fast test for (benchmarks/mutation.py, docs/mutation.md)."""

from __future__ import annotations

import pytest

from dbtassets.errors import SelectionError
from dbtassets.model.graph import AssetGraph
from dbtassets.model.selection import resolve_selection, select_assets
from tests.test_selection import SHOP, make_graph, names


@pytest.fixture(scope="module")
def windows() -> AssetGraph:
    """A manifest written on Windows: original_file_path uses backslashes."""
    return make_graph({
        "source.shop.raw.orders": ("source", [], {"path": "models\\staging\\_sources.yml"}),
        "model.shop.stg_orders": ("model", ["source.shop.raw.orders"], {"fqn": ("shop", "staging", "stg_orders"),
                                                                         "path": "models\\staging\\stg_orders.sql"}),
        "model.shop.fct_orders": ("model", ["model.shop.stg_orders"],
                                  {"fqn": ("shop", "marts", "fct_orders"), "path": "models\\marts\\fct_orders.sql"}),
    })


@pytest.mark.parametrize(("select", "expected"), [
    ("path:models/staging", {"raw.orders", "stg_orders"}),
    ("models/marts/fct_orders.sql", {"fct_orders"}),
    ("file:stg_orders", {"stg_orders"}),
    ("file:stg_orders.sql", {"stg_orders"}),
])
def test_a_manifest_written_on_windows_selects_by_path_and_file_like_any_other(
        windows: AssetGraph, select: str, expected: set[str]) -> None:
    assert names(select_assets(windows, [select])) == expected


def test_a_typo_in_a_windows_file_name_suggests_the_file(windows: AssetGraph) -> None:
    with pytest.raises(SelectionError, match=r"did you mean file:stg_orders\.sql or file:fct_orders\.sql\?$"):
        select_assets(windows, ["file:stg_ordrs.sql"])
    with pytest.raises(SelectionError, match=r"did you mean path:models/staging"):
        select_assets(windows, ["path:models/stagin"])


def test_a_typo_in_a_windows_file_stem_suggests_the_stem(windows: AssetGraph) -> None:
    with pytest.raises(SelectionError, match=r"^no asset is in a file named 'stg_ordrs' \(in selector "
                                             r"'file:stg_ordrs'\); did you mean file:stg_orders or file:fct_orders\?$"):
        select_assets(windows, ["file:stg_ordrs"])


def test_config_values_compare_exactly_except_booleans() -> None:
    shop = make_graph(SHOP)
    assert names(select_assets(shop, ["config.materialized:view"])) == {"stg_orders"}
    with pytest.raises(SelectionError, match=r"^no asset has config materialized 'View'"):
        select_assets(shop, ["config.materialized:View"])  # dbt compares text as text
    assert names(select_assets(shop, ["config.enabled:TRUE"])) == {"stg_orders"}  # and booleans in any case


def test_a_source_typo_is_matched_against_sources_only() -> None:
    with pytest.raises(SelectionError) as caught:
        select_assets(make_graph(SHOP), ["source:stg_order"])  # a model's name, not a source's
    assert str(caught.value) == ("no source matches 'stg_order' (in selector 'source:stg_order'); the project has "
                                 "source:events, source:events.clicks, source:raw, source:raw.customers, "
                                 "source:raw.orders")


def models(**extra: dict[str, object]) -> AssetGraph:
    """One model per keyword, with those Node fields."""
    return make_graph({f"model.shop.{name}": ("model", [], fields) for name, fields in extra.items()})


def refusal(graph: AssetGraph, select: str) -> str:
    with pytest.raises(SelectionError) as caught:
        select_assets(graph, [select])
    return str(caught.value)


def test_a_path_typo_suggests_whole_paths_from_the_top_directory_to_the_file() -> None:
    graph = make_graph(SHOP)
    assert refusal(graph, "path:modls") == ("no asset is under path 'modls' (in selector 'path:modls'); "
                                            "did you mean path:models?")
    assert refusal(graph, "path:models/staging/stg_ordrs.sql") == (
        "no asset is under path 'models/staging/stg_ordrs.sql' (in selector 'path:models/staging/stg_ordrs.sql'); "
        "did you mean path:models/staging/stg_orders.sql or path:models/staging/stg_customers.sql or "
        "path:models/staging/_sources.yml?")


def test_suggestions_stop_at_the_three_closest() -> None:
    graph = models(stg_a1={}, stg_a2={}, stg_a3={}, stg_a4={})
    assert refusal(graph, "stg_a") == ("no asset is named 'stg_a' (in selector 'stg_a'); "
                                       "did you mean stg_a4 or stg_a3 or stg_a2?")
    keyed = models(a={"config": {"k1": 1, "k2": 1, "k3": 1, "k4": 1}})
    assert refusal(keyed, "config.k:x") == ("no asset has a config key 'k' (in selector 'config.k:x'); "
                                            "did you mean config.k4:x or config.k3:x or config.k2:x?")


def test_with_nothing_close_the_refusal_says_only_what_is_missing() -> None:
    graph = make_graph(SHOP)
    assert refusal(graph, "config.no_such_key:x") == ("no asset has a config key 'no_such_key' "
                                                      "(in selector 'config.no_such_key:x')")
    assert refusal(models(a={}), "tag:x") == "no asset has tag 'x' (in selector 'tag:x')"  # no tags at all


@pytest.mark.parametrize(("count", "listed"), [
    (8, "tag:t1, tag:t2, tag:t3, tag:t4, tag:t5, tag:t6, tag:t7, tag:t8"),
    (9, "tag:t1, tag:t2, tag:t3, tag:t4, tag:t5, tag:t6, tag:t7, tag:t8, ..."),
])
def test_with_nothing_close_the_refusal_lists_up_to_eight_values(count: int, listed: str) -> None:
    graph = models(a={"tags": [f"t{n}" for n in range(1, count + 1)]})
    assert refusal(graph, "tag:zzz") == f"no asset has tag 'zzz' (in selector 'tag:zzz'); the project has {listed}"


def test_a_top_directory_selects_everything_under_it() -> None:
    graph = make_graph(SHOP)
    assert names(select_assets(graph, ["path:seeds"])) == {"country_codes"}
    under_models = {n.display_name for n in graph.assets.values() if n.path.startswith("models/")}
    assert names(select_assets(graph, ["path:models"])) == under_models
    assert len(under_models) > 5


@pytest.mark.parametrize("select", ["path:.", "path:./"])
def test_the_project_directory_as_a_path_selects_every_asset(select: str) -> None:
    graph = make_graph(SHOP)
    assert names(select_assets(graph, [select])) == {n.display_name for n in graph.assets.values()}


@pytest.mark.parametrize("select", ["path:models/staging/", "path:./models/staging", "path:models\\staging",
                                    "path:models\\staging\\"])
def test_a_path_reads_the_same_with_a_trailing_slash_a_leading_dot_or_backslashes(select: str) -> None:
    graph = make_graph(SHOP)
    assert names(select_assets(graph, [select])) == names(select_assets(graph, ["path:models/staging"]))


def test_only_trailing_slashes_are_stripped_from_a_path() -> None:
    graph = models(tax={"path": "models/TAX/tax.sql"}, ta={"path": "models/TA/ta.sql"})
    assert names(select_assets(graph, ["path:models/TAX"])) == names(select_assets(graph, ["path:models/TAX//"])) \
        == {"tax"}


def test_an_exclude_leaving_nothing_quotes_every_selector_and_what_was_picked() -> None:
    graph = make_graph(SHOP)
    everything = " ".join(sorted(n.name for n in graph.assets.values() if n.resource_type != "source"))
    with pytest.raises(SelectionError) as caught:
        select_assets(graph, exclude=["source:*", everything])
    assert str(caught.value) == (f"--exclude 'source:* {everything}' leaves out every asset of the project; "
                                 "nothing is selected")
    with pytest.raises(SelectionError) as caught:
        select_assets(graph, ["stg_orders", "stg_customers"], ["stg_orders", "stg_customers"])
    assert str(caught.value) == ("--exclude 'stg_orders stg_customers' leaves out every asset --select "
                                 "'stg_orders stg_customers' picks; nothing is selected")


def test_an_intersection_that_matches_nothing_names_its_flag() -> None:
    graph = make_graph(SHOP)
    assert resolve_selection(graph, ["stg_orders+"], ["tag:pii,tag:staging,stg_orders"]).warnings == (
        "--exclude 'tag:pii,tag:staging,stg_orders' matches no asset: no asset is selected by all of its parts",)
    with pytest.raises(SelectionError) as caught:
        select_assets(graph, ["tag:pii,stg_orders"])
    assert str(caught.value) == ("--select 'tag:pii,stg_orders' matches no asset: no asset is selected by all of "
                                 "its parts")


@pytest.mark.parametrize("select", ["models\\staging", "models\\staging\\stg_orders.sql"])
def test_a_bare_windows_path_is_a_path_like_dbt(select: str) -> None:
    graph = make_graph(SHOP)
    assert names(select_assets(graph, [select])) == names(select_assets(graph, [f"path:{select}"])) != set()


def test_a_folder_with_a_dot_in_its_name_is_matched_part_by_part_like_dbt() -> None:
    graph = models(fact={"fqn": ("shop", "marts.v1", "fact"), "path": "models/marts.v1/fact.sql"},
                   other={"fqn": ("shop", "marts", "other"), "path": "models/marts/other.sql"})
    assert names(select_assets(graph, ["marts.v1.fact"])) == {"fact"}
    assert names(select_assets(graph, ["shop.marts.v1.fact"])) == {"fact"}
    assert names(select_assets(graph, ["marts.*.fact"])) == {"fact"}
    assert names(select_assets(graph, ["marts.*"])) == {"fact", "other"}
