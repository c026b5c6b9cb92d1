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
