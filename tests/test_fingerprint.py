"""The sqlglot fingerprint: formatting never moves it, meaning always does; change classification."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtassets.sql.fingerprint import changed_ctes, classify, fingerprint, undeclared_reads
from dbtassets.sql.lineage import Reads, columns_read
from tests.conftest import examples

D = "duckdb"
COLUMNS = ["order_id", "customer_id", "amount", "quantity", "product"]
KEYWORDS = re.compile(r"\b(select|from|where|as|and|or|cast|integer|group|by|order|join|on|left|sum|count)\b")


@st.composite
def queries(draw: st.DrawFn) -> str:
    """Small but varied SELECTs: projections with expressions, a filter, sometimes a join and grouping."""
    picked = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=4, unique=True))
    projections = []
    for column in picked:
        form = draw(st.integers(0, 3))
        number = draw(st.integers(1, 99))
        projections.append([f"{column}", f"{column} * {number} as {column}_x", f"cast({column} as integer) as "
                            f"{column}_i", f"{column} + {number} as {column}_p"][form])
    sql = f"select {', '.join(projections)} from raw_orders o"
    if draw(st.booleans()):
        sql += " left join customers c on c.customer_id = o.customer_id"
    if draw(st.booleans()):
        sql += f" where {draw(st.sampled_from(COLUMNS))} > {draw(st.integers(0, 500))}"
    return sql


def reformat(sql: str, rnd: random.Random) -> str:
    """The same query, written differently: case, whitespace, comments."""
    sql = KEYWORDS.sub(lambda m: m.group(0).upper() if rnd.random() < 0.5 else m.group(0), sql)
    tokens = sql.split(" ")
    out = []
    for token in tokens:
        out.append(token)
        out.append(rnd.choice([" ", "  ", "\n", "\n    ", " /* note */ ", " -- note\n"]))
    return "-- a model\n" + "".join(out).strip() + "\n"


@settings(max_examples=examples(200), deadline=None)
@given(queries(), st.integers(0, 2**32))
def test_reformatting_never_moves_the_fingerprint(sql: str, seed: int) -> None:
    original = fingerprint(sql, D, "cfg", "fallback")
    assert original.semantic
    assert fingerprint(reformat(sql, random.Random(seed)), D, "cfg", "fallback").value == original.value


@settings(max_examples=examples(200), deadline=None)
@given(queries(), st.integers(1, 98), st.sampled_from(["number", "operator", "column", "filter"]))
def test_a_change_of_meaning_always_moves_it(sql: str, delta: int, mutation: str) -> None:
    if mutation == "number" and re.search(r"\b\d+\b", sql):
        mutated = re.sub(r"\b(\d+)\b", lambda m: str(int(m.group(1)) + delta), sql, count=1)
    elif mutation == "operator" and "*" in sql:
        mutated = sql.replace(" * ", " / ", 1)
    elif mutation == "column":
        mutated = sql.replace("select ", "select order_id + 1 as extra_col, ", 1)
    else:
        mutated = sql + (" and" if " where " in sql else " where") + " quantity <> 0"
    assert fingerprint(mutated, D, "cfg", "f").value != fingerprint(sql, D, "cfg", "f").value


def test_config_is_part_of_the_fingerprint() -> None:
    assert fingerprint("select 1", D, "table", "f").value != fingerprint("select 1", D, "view", "f").value


def test_unparseable_sql_falls_back_with_a_note() -> None:
    found = fingerprint("select {{ broken", D, "cfg", "checksum123")
    assert not found.semantic and found.value == "checksum123"
    assert found.note.startswith("sqlglot cannot parse the compiled SQL")


def test_classification() -> None:
    base = "select a, b as c from t where x > 1"
    added = classify(base, "select a, b as c, d * 2 as discount, e from t where x > 1", D)
    assert not added.breaking and added.added_columns == ("discount", "e")
    assert added.describe() == "non-breaking: added columns `discount`, `e`"
    assert classify(base, "select a, b + 1 as c from t where x > 1", D).describe() == \
        "breaking: existing columns changed"
    assert classify(base, "select a, b as c, d from t where x > 2", D).breaking  # the row set changed
    assert classify(base, "select b as c, a from t where x > 1", D).breaking  # reordered
    assert classify("select * from t", "select *, 1 as one from t", D).breaking
    assert classify(base, base, D).breaking  # nothing added: not a column-only change


def test_columns_read() -> None:
    assert columns_read("select o.order_id, sum(amount) from x o group by 1", D) == \
        Reads(frozenset({"order_id", "amount"}))
    assert columns_read("select count(*) from x", D) == Reads(frozenset())
    assert columns_read("select * from x", D).everything
    assert columns_read("select x.* from x", D).everything
    assert columns_read("not sql at all (", D).everything  # unknown: assume it reads everything


def test_a_source_dbt_duckdb_renders_as_a_file_path_is_declared() -> None:
    sql = "select order_id from '../data/orders.csv' o join read_parquet('data/x.parquet') x using (order_id)"
    assert undeclared_reads(sql, D, ["'../data/orders.csv'", "read_parquet('data/x.parquet')"]) == []
    assert undeclared_reads(sql, D, ["read_parquet('data/x.parquet')"]) == ["../data/orders.csv"]


def test_the_inlined_ephemeral_models_that_changed_are_named() -> None:
    old = ("with __dbt__cte__lines as (select a from t), __dbt__cte__other as (select b from u) "
           "select * from __dbt__cte__lines join __dbt__cte__other using (a)")
    new = old.replace("select a from t", "select a * 2 as a from t")
    assert changed_ctes(old, new, D, "__dbt__cte__") == ["lines"]
    assert changed_ctes(old, old.replace("select b", "SELECT  b"), D, "__dbt__cte__") == []


def test_undeclared_reads() -> None:
    sql = ('with __dbt__cte__lines as (select * from "db"."main"."stg_orders") '
           "select * from __dbt__cte__lines l join main.customers c using (id) "
           "join read_csv('data/x.csv') f using (id)")
    assert undeclared_reads(sql, D, ['"db"."main"."stg_orders"']) == ["READ_CSV('data/x.csv')", "main.customers"]
    assert undeclared_reads(sql, D, ['"db"."main"."stg_orders"', '"db"."main"."customers"',
                                     "read_csv('data/x.csv')"]) == []


def test_an_ephemeral_model_inlined_or_dropped_is_named_and_case_or_comments_change_nothing() -> None:
    old = "with __dbt__cte__lines as (select a from t) select * from __dbt__cte__lines"
    assert changed_ctes(old, old.replace("select a from t", "select A /* why */ from T"), D, "__dbt__cte__") == []
    added = "with __dbt__cte__lines as (select a from t), __dbt__cte__more as (select b from u) select * from u"
    assert changed_ctes(old, added, D, "__dbt__cte__") == ["more"]
    assert changed_ctes(added, old, D, "__dbt__cte__") == ["more"]


def test_every_table_and_file_read_is_found_whatever_comes_first() -> None:
    sql = ("select cast(c.id as integer) as id, count(*) as n from read_parquet('data/y.parquet') y "
           "join main.customers c using (id) join read_csv('data/x.csv') x using (id) group by 1")
    found = ["READ_CSV('data/x.csv')", "READ_PARQUET('data/y.parquet')", "main.customers"]
    assert undeclared_reads(sql, D, []) == found
    assert undeclared_reads(sql, D, ["main.customers", "read_parquet('data/y.parquet')", "read_csv('data/x.csv')"]) \
        == []  # and functions that read no file (cast, count) are not reads
    assert undeclared_reads("select * from read_json_auto('data/z.json')", D, []) == ["READ_JSON_AUTO('data/z.json')"]


def test_a_declared_name_matches_whatever_its_quotes_spaces_and_case() -> None:
    sql = "select * from main.customers join read_csv('data/x.csv', header = true) using (id)"
    assert undeclared_reads(sql, D, ["`DB`.`main`.`Customers`", "READ_CSV('data/x.csv',header=true)"]) == []
    assert undeclared_reads("select * from read_csv('data/x.csv')", D, ["'data/x.csv'"]) == []  # a file source


LONG = "a_column_name_long_enough_that_the_expression_passes_sixty_characters"


@pytest.mark.parametrize(("old", "new", "why"), [
    ("select distinct a from t", "select distinct a, b from t",
     "DISTINCT: a new column changes which rows are distinct"),
    ("select a, count(*) as n from t group by all", "select a, count(*) as n, b from t group by all",
     "GROUP BY ALL: a new column changes the grouping"),
    ("select a from t limit 5", "select a, b from t limit 5", "LIMIT: which rows are kept may change"),
    ("select a from t offset 5", "select a, b from t offset 5", "OFFSET: which rows are kept may change"),
    ("select a from t using sample 10", "select a, b from t using sample 10",
     "a sample: which rows are kept may change"),
    ("select a from t", "select a, columns('b.*') from t", "a COLUMNS(...) expression"),
    ("select a from t", f"select a, unnest({LONG}) as x from t",
     f"the new column `x` calls a set-returning function (UNNEST({LONG[:53]}), which may multiply rows"),
    ("select a from t", f"select a, sum({LONG}) as s from t",
     f"the new column `s` aggregates (SUM({LONG[:56]}) in a query without GROUP BY"),
    ("select a from t", "select a, my_udf(b) as c from t",
     "the new column `c` calls my_udf, a function whose effect on rows is not known"),
    ("select a from t", "select a, 1 as A from t", "the new column `a` repeats a column name"),
    ("select a from t", "select a, b, b from t", "the new column `b` repeats a column name"),
    ("select a from t where b > 0", "select a, 'b' as b from t where b > 0",
     "`b` is also used elsewhere in the query, where it may now mean the new column"),
    ("select a from t join u on id2 = b", "select a, 1 as b from t join u on id2 = b",
     "`b` is also used elsewhere in the query, where it may now mean the new column"),
])
def test_a_new_column_that_may_change_the_rows_is_breaking_and_says_why(old: str, new: str, why: str) -> None:
    assert classify(old, new, D).describe() == f"breaking: {why}"


@pytest.mark.parametrize(("old", "new"), [
    ("select a from t", "select a, sum(b) over () as s from t"),
    ("select a from t where b > 0", "select a, b as b from t where b > 0"),
    ("select a from t as x where b > 0", "select a, x.b as b from t as x where b > 0"),
    ("select a from t", "select a, (select max(b) from u) as m from t"),
    ("select a + 1 as x from t", "select A + 1 as x, b from t"),  # unquoted names are case-insensitive
    ("select a from t", "select a /* why */, b from t"),  # comments are not code
])
def test_a_window_a_passed_through_column_a_scalar_subquery_case_or_comments_only_add_a_column(
        old: str, new: str) -> None:
    assert classify(old, new, D).describe().startswith("non-breaking: added column")


def test_a_qualified_star_is_never_a_column_only_change() -> None:
    # `t.*` may itself gain or lose columns: what follows it can shift, so no change behind it is additive.
    assert classify("select t.* from t", "select t.*, 1 as one from t", D).describe() == "breaking: a `*` projection"
    assert classify("select a from t", "select a, t.* from t", D).describe() == "breaking: a `*` projection"
