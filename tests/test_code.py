"""Manifest-based code versions (dbtassets.model.code), rule by rule, on manifest JSON as dbt writes it.

The end-to-end twins (test_semantic.py, test_convergence.py, the Python-model and unit-test tests) run real
dbt; these state each rule of what a node's code version is made of, in milliseconds, so that mutation
testing reaches them.
"""

from __future__ import annotations

import copy
from typing import Any

from dbtassets.model.code import (
    Macros,
    NodeVersions,
    config_version,
    data_test_version,
    jinja_text,
    unit_test_version,
)

PLAIN = "macro.shop.plain"
CALLER = "macro.shop.caller"
COMMAND = "macro.shop.by_command"
BUILTIN = "macro.dbt.is_incremental"


def macro(sql: str, calls: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"macro_sql": sql, "depends_on": {"macros": list(calls)}}


MACROS = {
    PLAIN: macro("{% macro plain(x) %}{{ x }} * 2{% endmacro %}"),
    CALLER: macro("{% macro caller(x) %}{{ plain(x) }} + {{ var('offset') }}{% endmacro %}", (PLAIN,)),
    COMMAND: macro("{% macro by_command() %}{% if flags.WHICH == 'build' %}1{% else %}2{% endif %}{% endmacro %}"),
    BUILTIN: macro("{% macro is_incremental() %}{{ return(false) }}{% endmacro %}"),
}


def model(raw: str, checksum: str = "c0", *, macros: tuple[str, ...] = (), parents: tuple[str, ...] = (),
          language: str = "sql", package: str = "shop", **config: Any) -> dict[str, Any]:
    return {"raw_code": raw, "checksum": {"name": "sha256", "checksum": checksum}, "language": language,
            "package_name": package, "relation_name": '"db"."main"."m"',
            "config": {"materialized": "table", **config},
            "depends_on": {"macros": list(macros), "nodes": list(parents)}}


def version(nodes: dict[str, dict[str, Any]], uid: str = "model.shop.m",
            macros: dict[str, dict[str, Any]] = MACROS) -> str:
    return NodeVersions(nodes, Macros.from_manifest(macros)).code_version(uid)


def with_changes(node: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(node)
    changed.update(changes)
    return changed


# -- jinja_text: what a template is, without its layout ------------------------------------------------

def test_layout_inside_tags_and_comments_does_not_count() -> None:
    assert jinja_text("select {{ ref('a') }} from x") == jinja_text("select {{ref('a')}} from x")
    assert jinja_text("select 1 {# a comment #}") == jinja_text("select 1 {# another #}") == jinja_text("select 1 ")
    assert jinja_text("{% if x %}1{% endif %}") == jinja_text("{%if   x%}1{%endif%}")


def test_runs_of_spaces_in_the_text_are_one_but_quoted_text_keeps_its_spaces() -> None:
    assert jinja_text("select a,\n       b\nfrom t") == jinja_text("select a, b from t")
    assert jinja_text("select a  from t") == "data:select a from t"
    assert jinja_text("select 'a  b' from t") != jinja_text("select 'a b' from t")
    assert jinja_text("select 'it''s  x'") == "data:select 'it''s  x'"


def test_what_jinja_reads_counts() -> None:
    assert jinja_text("{{ ref('a') }}") != jinja_text("{{ ref('b') }}")
    assert jinja_text("select a from t") != jinja_text("select b from t")
    assert jinja_text("{{ x }}") != jinja_text("{% x %}")
    assert jinja_text("select 1") == "data:select 1"
    assert jinja_text("{{ x }}").splitlines() == ["variable_begin:{{", "name:x", "variable_end:}}"]


def test_jinja_that_does_not_lex_is_kept_as_it_is() -> None:
    for broken in ("{# never closed", '{{ "never closed }}', "{{ 1 ]] }}"):
        assert jinja_text(broken) == broken


# -- a SQL model's version -------------------------------------------------------------------------------

def test_a_sql_models_version_is_its_checksum_its_build_config_and_its_macros() -> None:
    node = model("select {{ caller(1) }}", macros=(CALLER,))
    base = version({"model.shop.m": node})
    assert len(base) == 16 and base == version({"model.shop.m": copy.deepcopy(node)})
    assert version({"model.shop.m": with_changes(node, checksum={"checksum": "c1"})}) != base
    # its raw code alone is not it (the checksum is dbt's word for the file's content)
    assert version({"model.shop.m": with_changes(node, raw_code="select {{caller(1)}}")}) == base
    assert version({"model.shop.m": model("select {{ caller(1) }}", macros=(CALLER,), unique_key="id")}) != base
    assert version({"model.shop.m": model("select {{ caller(1) }}", macros=(CALLER,), tags=["x"])}) == base
    # a macro it calls, and the macros that one calls in turn
    edited = {**MACROS, CALLER: macro(MACROS[CALLER]["macro_sql"] + " ", (PLAIN,))}
    assert version({"model.shop.m": node}, macros=edited) != base
    deeper = {**MACROS, PLAIN: macro("{% macro plain(x) %}{{ x }} * 3{% endmacro %}")}
    assert version({"model.shop.m": node}, macros=deeper) != base
    # a macro it does not call does not count
    other = {**MACROS, COMMAND: macro("{% macro by_command() %}3{% endmacro %}")}
    assert version({"model.shop.m": node}, macros=other) == base


def test_a_macro_it_names_that_the_manifest_lacks_is_left_out() -> None:
    node = model("select 1", macros=("macro.gone.away",))
    assert version({"model.shop.m": node}) == version({"model.shop.m": model("select 1")})


def test_an_ephemeral_model_it_inlines_is_part_of_its_version() -> None:
    eph = model("select 1 as a", "e0", materialized="ephemeral")
    child = model("select a from {{ ref('e') }}", parents=("model.shop.e",))
    nodes = {"model.shop.e": eph, "model.shop.m": child}
    base = version(nodes)
    assert base != version({"model.shop.e": model("select 1 as a", "e0"), "model.shop.m": child})  # not inlined
    assert version({**nodes, "model.shop.e": with_changes(eph, checksum={"checksum": "e1"})}) != base
    # a table it reads is a parent, not its code
    table = {"model.shop.e": model("select 1 as a", "e0"), "model.shop.m": child}
    assert version({**table, "model.shop.e": model("select 1 as a", "e1")}) == version(table)


def test_sql_that_looks_at_the_dbt_command_is_versioned_by_its_jinja_not_its_checksum() -> None:
    raw = "select {% if flags.which == 'build' %}1{% else %}2{% endif %}"
    node = model(raw, "c0")
    versions = NodeVersions({"model.shop.m": node}, Macros.from_manifest(MACROS))
    assert versions.varies_by_command(node)
    base = versions.code_version("model.shop.m")
    # dbt compile and dbt build write different checksums for nothing: the Jinja decides
    assert version({"model.shop.m": with_changes(node, checksum={"checksum": "c1"})}) == base
    assert version({"model.shop.m": with_changes(node, raw_code=raw.replace("{% if", "{%if"))}) == base
    assert version({"model.shop.m": with_changes(node, raw_code=raw.replace("1", "3"))}) != base


def test_a_macro_that_looks_at_the_command_makes_its_callers_versioned_by_jinja() -> None:
    node = model("select {{ by_command() }}", macros=(COMMAND,))
    versions = NodeVersions({"model.shop.m": node}, Macros.from_manifest(MACROS))
    assert versions.varies_by_command(node)
    assert not versions.varies_by_command(model("select {{ caller(1) }}", macros=(CALLER,)))
    for marker in ("invocation_args_dict['which']", "invocation_command", "FLAGS . WHICH"):
        assert NodeVersions({}, Macros.from_manifest({})).varies_by_command(model(f"select {{{{ {marker} }}}}"))
    base = version({"model.shop.m": node})
    relaid = {**MACROS, COMMAND: macro(MACROS[COMMAND]["macro_sql"].replace("{% if", "{%if"))}
    assert version({"model.shop.m": node}, macros=relaid) == base  # layout inside the macro's tags
    changed = {**MACROS, COMMAND: macro(MACROS[COMMAND]["macro_sql"].replace("2", "4"))}
    assert version({"model.shop.m": node}, macros=changed) != base


def test_layout_of_a_macro_counts_for_a_model_that_does_not_look_at_the_command() -> None:
    node = model("select {{ plain(1) }}", macros=(PLAIN,))
    relaid = {**MACROS, PLAIN: macro(MACROS[PLAIN]["macro_sql"].replace("{{ x }}", "{{x}}"))}
    assert version({"model.shop.m": node}, macros=relaid) != version({"model.shop.m": node})


def test_macro_jinja_versions_are_computed_once_and_differ_by_content() -> None:
    macros = Macros.from_manifest(MACROS)
    first = macros.jinja_version(PLAIN)
    assert len(first) == 16 and macros.jinja_version(PLAIN) == first and macros._jinja == {PLAIN: first}
    assert macros.jinja_version(CALLER) != first
    assert macros.reads_command == {PLAIN: False, CALLER: False, COMMAND: True, BUILTIN: False}
    assert macros.closure([CALLER, "macro.not.there"]) == {CALLER, PLAIN}
    looped = Macros.from_manifest({PLAIN: macro("a", (CALLER,)), CALLER: macro("b", (PLAIN,))})
    assert looped.closure([PLAIN]) == {PLAIN, CALLER}


# -- a Python model's version ------------------------------------------------------------------------------

PY = "def model(dbt, session):\n    # read the orders\n    return dbt.ref('orders')\n"


def test_a_python_models_version_is_its_code_as_ast_sees_it_and_its_config() -> None:
    node = model(PY, "p0", language="python")
    base = version({"model.shop.m": node})
    relaid = "def model(dbt,session):\n\n    return dbt.ref( 'orders' )  # the same\n"
    assert version({"model.shop.m": model(relaid, "p1", language="python")}) == base
    assert version({"model.shop.m": model(PY.replace("orders", "customers"), "p0", language="python")}) != base
    assert version({"model.shop.m": model(PY, "p0", language="python", materialized="incremental")}) != base
    # the macros dbt lists for it differ between `dbt parse` and `dbt build` (py_script_postfix): never counted
    listed = model(PY, "p0", language="python", macros=(PLAIN,))
    assert version({"model.shop.m": listed}) == base
    assert version({"model.shop.m": listed}, macros={**MACROS, PLAIN: macro("other")}) == base


def test_a_python_model_that_does_not_parse_is_versioned_by_its_checksum() -> None:
    broken = model("def model(dbt, session:\n", "p0", language="python")
    base = version({"model.shop.m": broken})
    assert version({"model.shop.m": with_changes(broken, checksum={"checksum": "p1"})}) != base
    assert version({"model.shop.m": with_changes(broken, raw_code="def model(dbt, session:\n\n")}) == base


def test_a_python_model_inlines_no_ephemeral_and_reads_no_vars() -> None:
    eph = model("select {{ var('x') }} as a", "e0", materialized="ephemeral")
    node = model(PY, "p0", language="python", parents=("model.shop.e",))
    nodes = {"model.shop.e": eph, "model.shop.m": node}
    assert version({**nodes, "model.shop.e": with_changes(eph, checksum={"checksum": "e1"})}) == version(nodes)
    assert NodeVersions(nodes, Macros.from_manifest(MACROS)).reads("model.shop.m") == ()


# -- what a node's SQL reads ----------------------------------------------------------------------------------

def test_reads_are_its_own_its_macros_and_its_inlined_models_with_vars_in_their_package() -> None:
    eph = model("select {{ env_var('REGION', 'eu') }} as r", "e0", materialized="ephemeral", package="pkg")
    node = model("select {{ var('min') }}, {{ caller(1) }} from {{ ref('e') }}", macros=(CALLER,),
                 parents=("model.pkg.e",))
    versions = NodeVersions({"model.pkg.e": eph, "model.shop.m": node}, Macros.from_manifest(MACROS))
    assert versions.reads("model.shop.m") == (("env", "REGION", ""), ("var", "min", "shop"), ("var", "offset", "shop"))
    assert versions.reads("model.pkg.e") == (("env", "REGION", ""),)


# -- unit tests, data tests, configuration ---------------------------------------------------------------------

UNIT = {"checksum": "u0", "given": [{"input": "ref('a')", "rows": [{"id": 1}]}], "expect": {"rows": [{"id": 1}]},
        "overrides": None, "versions": None, "description": "first", "name": "t"}


def test_a_unit_tests_version_is_its_fixtures_and_expectations() -> None:
    base = unit_test_version(UNIT)
    assert len(base) == 16 and base == unit_test_version(copy.deepcopy(UNIT))
    for key, value in [("checksum", "u1"), ("given", [{"input": "ref('a')", "rows": [{"id": 2}]}]),
                       ("expect", {"rows": [{"id": 2}]}), ("overrides", {"vars": {"x": 1}}),
                       ("versions", {"include": [2]})]:
        assert unit_test_version({**UNIT, key: value}) != base, key
    assert unit_test_version({**UNIT, "description": "second", "name": "u"}) == base


def test_a_data_tests_version_is_its_sql_arguments_failure_config_and_own_macros() -> None:
    test: dict[str, Any] = {"raw_code": "{{ test_not_null(**_dbt_generic_test_kwargs) }}", "checksum": {"checksum": ""},
            "test_metadata": {"name": "not_null", "namespace": None, "kwargs": {"column_name": "id"}},
            "depends_on": {"macros": [PLAIN, BUILTIN]}}
    macros = Macros.from_manifest(MACROS)
    base = data_test_version(test, {"severity": "error", "tags": ["a"]}, macros, {"dbt"})
    assert base == data_test_version(test, {"severity": "error", "tags": ["b"]}, macros, {"dbt"})
    assert base != data_test_version(test, {"severity": "warn"}, macros, {"dbt"})
    assert base != data_test_version(test, {"severity": "error", "where": "id > 0"}, macros, {"dbt"})
    other_kwargs = copy.deepcopy(test)
    other_kwargs["test_metadata"]["kwargs"] = {"column_name": "name"}
    assert base != data_test_version(other_kwargs, {"severity": "error"}, macros, {"dbt"})
    # dbt's own macros come and go between `dbt parse` and `dbt build`: left out; the project's count
    moved = Macros.from_manifest({**MACROS, BUILTIN: macro("changed")})
    assert data_test_version(test, {"severity": "error"}, moved, {"dbt"}) == base
    assert data_test_version(test, {"severity": "error"}, moved, set()) != data_test_version(
        test, {"severity": "error"}, macros, set())
    plain = Macros.from_manifest({**MACROS, PLAIN: macro("changed")})
    assert data_test_version(test, {"severity": "error"}, plain, {"dbt"}) != base


def test_config_version_counts_what_changes_the_built_object_and_where_it_is() -> None:
    node = model("select 1")
    base = config_version(node)
    assert len(base) == 16
    assert config_version(model("select 1", materialized="view")) != base
    hooked = model("select 1")
    hooked["config"]["post-hook"] = ["grant"]
    assert config_version(hooked) != base
    assert config_version(model("select 1", unique_key=None, partition_by=[], contract={})) == base  # unset
    assert config_version(model("select 1", tags=["a"], meta={"owner": "x"}, docs={"show": False})) == base
    assert config_version(with_changes(node, relation_name='"db"."other"."m"')) != base
    assert config_version({"relation_name": None}) == config_version({"config": {}, "relation_name": None})
