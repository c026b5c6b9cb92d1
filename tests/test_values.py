"""The vars and env vars a node's SQL reads: found in its Jinja and its macros', resolved as dbt resolves
them, folded into its code version, and named (never shown) when they change. The real-dbt proof is in
test_convergence.py; these state the rules fast, on example_project's manifest edited as dbt would write it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dbtassets.model.manifest import UniqueId, load_manifest
from dbtassets.model.values import ANY_VAR, ENV, VAR, Values, calls_in, changed_reads, describe, versioned

FACT = UniqueId("model.shopflow.fact_sales")
DIM = UniqueId("model.shopflow.dim_customer")
STG_ORDERS = UniqueId("model.shopflow.stg_orders")
LINES = "model.shopflow.int_order_lines"  # ephemeral, inlined into fact_sales


def test_calls_are_found_in_jinja_only_with_literal_names() -> None:
    code = """select var_samp(x), {{ var('min_subtotal') }}, {{ var("tz", 'UTC') }}
    {% set n = env_var('MIN_SUBTOTAL', '0') %} {# var('commented') #} where {{ var(name_in_a_variable) }}
    {{ var('a' ~ suffix) }} {{ env_var(computed) }}"""
    assert calls_in(code) == {(VAR, "min_subtotal"), (VAR, "tz"), (ENV, "MIN_SUBTOTAL"), (VAR, ANY_VAR)}
    assert calls_in("select var(x) from t") == frozenset()  # SQL's own var() is not dbt's
    assert calls_in("{{ env_var('X') }}") == {(ENV, "X")}  # env_var is not var


def test_vars_resolve_as_dbt_resolves_them_for_the_nodes_package() -> None:
    values = Values("shop", project_vars={"a": "root", "b": "root", "pkg": {"a": "root-for-pkg"}},
                    package_vars={"pkg": {"a": "own", "c": "own", "pkg": {"c": "own-scoped"}}},
                    cli_vars={"b": "cli"})
    assert values.var("shop", "a") == "root" and values.var("shop", "b") == "cli"
    assert values.var("pkg", "a") == "root-for-pkg"  # the root project's scope for the package wins
    assert values.var("pkg", "c") == "own-scoped"  # then the package's own, scoped before global
    assert values.var("shop", "c") != values.var("pkg", "c")  # a package's own vars are its own
    assert values.var("shop", "undefined") == values.var("pkg", "undefined")  # the call's default: in the code


def test_a_digest_moves_with_the_value_only() -> None:
    read = (VAR, "a", "shop")
    one = Values("shop", {"a": 1, "b": 1})
    assert one.digest(read) == Values("shop", {"a": 1, "b": 2}).digest(read)
    assert one.digest(read) != Values("shop", {"a": 2, "b": 1}).digest(read)
    assert one.digest((VAR, ANY_VAR, "shop")) != Values("shop", {"a": 1, "b": 2}).digest((VAR, ANY_VAR, "shop"))
    env = (ENV, "MIN", "")
    assert Values("shop", environ={}).digest(env) != Values("shop", environ={"MIN": "0"}).digest(env)
    # a var whose value renders an env var reads that env var too
    rendering = Values("shop", {"a": "{{ env_var('MIN') }}"}, environ={"MIN": "1"})
    assert rendering.digest(read) != Values("shop", {"a": "{{ env_var('MIN') }}"}, environ={"MIN": "2"}).digest(read)


def test_a_version_says_which_read_changed_and_holds_no_value() -> None:
    reads = [(ENV, "DBT_ENV_SECRET_TOKEN", ""), (VAR, "min", "shop")]
    before = Values("shop", {"min": 5}, environ={"DBT_ENV_SECRET_TOKEN": "hunter2-secret"})
    after = Values("shop", {"min": 15}, environ={"DBT_ENV_SECRET_TOKEN": "hunter2-secret"})
    old, new = versioned("0123456789abcdef", reads, before), versioned("0123456789abcdef", reads, after)
    assert old != new and old[:8] != new[:8] and "hunter2" not in old + new and "15" not in new[16:]
    assert changed_reads(old, new, reads) == [(VAR, "min", "shop")]
    assert describe(changed_reads(old, new, reads) or []) == "var('min') changed"
    assert changed_reads(old, versioned("fedcba9876543210", reads, after), reads) is None  # the code changed too
    assert changed_reads("0123456789abcdef", new, reads) is None  # recorded before versions held values
    assert versioned("0123456789abcdef", reads, None) == versioned("0123456789abcdef", (), after) == "0123456789abcdef"
    assert describe([(ENV, "B", ""), (VAR, "a", "shop")]) == "env_var('B') and var('a') changed"


def manifest_with(project_dir: Path, tmp_path: Path, edits: dict[str, str]) -> Path:
    """example_project's manifest with Jinja appended to nodes' raw code (by unique_id) or macros' SQL."""
    manifest: dict[str, Any] = json.loads((project_dir / "target/manifest.json").read_text())
    for uid, jinja in edits.items():
        if uid.startswith("macro."):
            manifest["macros"][uid]["macro_sql"] += jinja
        else:
            manifest["nodes"][uid]["raw_code"] += jinja
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_code_versions_include_the_values_read_through_macros_and_inlined_ephemeral_models(
        project_dir: Path, tmp_path: Path) -> None:
    path = manifest_with(project_dir, tmp_path, {
        str(STG_ORDERS): "{{ var('min_subtotal') }}",
        "macro.shopflow.line_amount": "{{ env_var('ROUNDING', '2') }}",  # called by the ephemeral int_order_lines
    })
    plain = load_manifest(path).nodes
    five = load_manifest(path, values=Values("shopflow", {"min_subtotal": 5})).nodes
    ten = load_manifest(path, values=Values("shopflow", {"min_subtotal": 10})).nodes
    rounded = load_manifest(path, values=Values("shopflow", {"min_subtotal": 5}, environ={"ROUNDING": "0"})).nodes
    assert five[STG_ORDERS].reads == ((VAR, "min_subtotal", "shopflow"),)
    assert five[FACT].reads == ((ENV, "ROUNDING", ""),)
    assert five[STG_ORDERS].code_version != ten[STG_ORDERS].code_version != plain[STG_ORDERS].code_version
    assert five[FACT].code_version == ten[FACT].code_version != rounded[FACT].code_version
    assert five[DIM].code_version == ten[DIM].code_version == rounded[DIM].code_version == plain[DIM].code_version
    assert describe(changed_reads(five[STG_ORDERS].code_version, ten[STG_ORDERS].code_version,
                                  ten[STG_ORDERS].reads) or []) == "var('min_subtotal') changed"


def test_digests_are_stable_across_releases_and_across_key_order() -> None:
    """Digests are stored in the state store inside code versions: a new formula would make every model
    reading a var or env var stale after an upgrade. These were computed by the released formula."""
    assert Values("shop", {"a": {"x": 1, "y": [1, 2]}}).digest((VAR, "a", "shop")) == "c0c8a3fc"
    assert Values("shop", environ={"MIN": "5"}).digest((ENV, "MIN", "")) == "7eaaf5f0"
    assert Values("shop", {"a": "{{ env_var('MIN') }}"}, environ={"MIN": "5"}).digest((VAR, "a", "shop")) == "86aa846f"
    # a mapping's keys in another order (dbt_project.yml rewritten) is the same value
    assert Values("shop", {"a": {"y": [1, 2], "x": 1}}).digest((VAR, "a", "shop")) == "c0c8a3fc"


def test_a_var_yaml_reads_as_a_date_has_a_digest() -> None:
    import datetime

    start = (VAR, "start", "shop")  # `start: 2024-01-01` in dbt_project.yml: YAML gives a date, not a string
    assert Values("shop", {"start": datetime.date(2024, 1, 1)}).digest(start) != \
        Values("shop", {"start": datetime.date(2024, 1, 2)}).digest(start)


def test_a_package_var_is_digested_in_the_packages_scope() -> None:
    project = {"pkg": {"c": 1}}
    read, any_read = (VAR, "c", "pkg"), (VAR, ANY_VAR, "pkg")
    assert Values("shop", project).digest(read) != Values("shop", {"pkg": {"c": 2}}).digest(read)
    assert Values("shop", project).digest(any_read) != Values("shop", {"pkg": {"c": 2}}).digest(any_read)
    assert Values("shop", project).var("other_pkg", "c") == Values("shop").var("other_pkg", "c")  # no vars of its own


def test_a_var_only_the_package_itself_sets_is_digested_for_its_nodes() -> None:
    """`vars: {c: 1}` in the package's own dbt_project.yml, none in the root's: a node of the package that reads
    a var by a computed name reads it (and one of the root project does not)."""
    one, two = Values("shop", package_vars={"pkg": {"c": 1}}), Values("shop", package_vars={"pkg": {"c": 2}})
    assert one.digest((VAR, ANY_VAR, "pkg")) != two.digest((VAR, ANY_VAR, "pkg"))
    assert one.digest((VAR, "c", "pkg")) != two.digest((VAR, "c", "pkg"))
    assert one.digest((VAR, ANY_VAR, "shop")) == two.digest((VAR, ANY_VAR, "shop"))


def test_changed_reads_names_only_the_reads_that_moved_and_gives_up_on_versions_it_cannot_read() -> None:
    reads = [(VAR, "a", "shop"), (VAR, "b", "shop"), (ENV, "C", "")]
    before = Values("shop", {"a": 1, "b": 1}, environ={"C": "1"})
    old = versioned("0123456789abcdef", reads, before)
    b_moved = Values("shop", {"a": 1, "b": 2}, environ={"C": "1"})
    a_moved = Values("shop", {"a": 2, "b": 1}, environ={"C": "1"})
    assert changed_reads(old, versioned("0123456789abcdef", reads, b_moved), reads) == [(VAR, "b", "shop")]
    assert changed_reads(old, versioned("0123456789abcdef", reads, a_moved), reads) == [(VAR, "a", "shop")]
    assert changed_reads(old, versioned("0123456789abcdef", reads[:2], before), reads) is None  # one read fewer
    assert changed_reads("0123456789abcdef", old, reads) is None  # a version from before values were in versions


def test_describe_lists_every_name_once_in_order() -> None:
    assert describe([]) == ""
    assert describe([(VAR, "b", "shop"), (ENV, "C", ""), (VAR, "a", "shop"), (VAR, "a", "pkg")]) == \
        "env_var('C'), var('a') and var('b') changed"
    assert describe([(VAR, ANY_VAR, "shop")]) == "the vars (it reads one by a computed name) changed"
