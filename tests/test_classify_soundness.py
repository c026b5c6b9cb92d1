"""Soundness of the non-breaking classification, checked against DuckDB itself.

Whenever :func:`classify` calls a change non-breaking, running the old and the new query on the same
random data must give the same rows in the old columns (as a multiset). Queries are generated from a
small grammar that includes what breaks the naive rule (DISTINCT, GROUP BY ALL, aggregates, set-returning
functions, QUALIFY, LIMIT, names that clauses may bind); the data is drawn by hypothesis, in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbtassets.sql.fingerprint import classify
from tests.conftest import examples

D = "duckdb"
PLAIN = ["a", "b", "c", "a + b as s", "coalesce(d, 0) as d0", "upper(c) as cu"]
ADDED = [
    "d", "b * 2 as x", "'k' as k", "count(*) as n", "sum(b) as sb", "max(c) as mc", "unnest([1, 2]) as u",
    "row_number() over (order by a, b, c, d) as rn", "sum(b) over (partition by a) as w", "a as b", "c as a",
    "(select max(b) from t) as mb", "generate_series(1, 2) as g", "a", "b + 1 as s", "list_value(a, b) as lv",
    "d as c", "coalesce(a, 0) + 1 as a1",
]
WHERE = ["", "a > 1", "c <> 'x'", "b is not null", "b > 0"]
QUALIFY = ["", "row_number() over (partition by a order by b, c, d) = 1", "count(*) over (partition by b) > 1"]


@dataclass(frozen=True)
class Query:
    """One SELECT over ``t(a, b, c, d)``, rendered by :meth:`sql`."""

    columns: tuple[str, ...]
    distinct: bool = False
    where: str = ""
    group: str = ""  # "", "keys" (GROUP BY the plain columns by position) or "all"
    having: bool = False
    qualify: str = ""
    limit: bool = False
    wrapped: bool = False  # in dbt's style: `with final as (...) select * from final`

    def sql(self) -> str:
        if self.wrapped:
            return f"with final as ({replace(self, wrapped=False).sql()}) select * from final"
        parts = [f"select {'distinct ' if self.distinct else ''}{', '.join(self.columns)} from t"]
        if self.where:
            parts.append(f"where {self.where}")
        if self.group == "all":
            parts.append("group by all")
        elif self.group == "keys":
            keys = [str(i + 1) for i, c in enumerate(self.columns) if c in PLAIN]
            parts.append(f"group by {', '.join(keys) or '()'}")
        if self.group and self.having:
            parts.append("having count(*) > 1")
        if self.qualify:
            parts.append(f"qualify {self.qualify}")
        if self.limit:
            parts.append("order by 1 limit 2")
        return " ".join(parts)


@st.composite
def changes(draw: st.DrawFn) -> tuple[Query, Query]:
    """An old query, and a new one: the old with columns appended and, sometimes, another clause changed."""
    group = draw(st.sampled_from(["", "", "keys", "all"]))
    columns = draw(st.lists(st.sampled_from(PLAIN), min_size=1, max_size=3, unique=True))
    if group and draw(st.booleans()):
        columns.append("count(*) as n_old")
    old = Query(tuple(columns), draw(st.booleans()), draw(st.sampled_from(WHERE)), group, draw(st.booleans()),
                draw(st.sampled_from(QUALIFY)), draw(st.integers(0, 5)) == 0, draw(st.booleans()))
    added = draw(st.lists(st.sampled_from(ADDED), min_size=1, max_size=2))
    new = replace(old, columns=old.columns + tuple(added))
    mutation = draw(st.sampled_from(["none", "none", "none", "distinct", "where", "group"]))
    if mutation == "distinct":
        new = replace(new, distinct=not new.distinct)
    elif mutation == "where":
        new = replace(new, where=draw(st.sampled_from(WHERE)))
    elif mutation == "group":
        new = replace(new, group=draw(st.sampled_from(["", "keys", "all"])))
    return old, new


ROWS = st.lists(
    st.tuples(st.none() | st.integers(0, 3), st.none() | st.integers(0, 3), st.none() | st.sampled_from("xy"),
              st.none() | st.integers(0, 2)),
    max_size=8,
)


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    connection.execute("create table t (a integer, b integer, c varchar, d integer)")
    yield connection
    connection.close()


def run(db: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]] | None:
    """The rows ``sql`` returns, or None when DuckDB rejects it (then dbt's build fails: nothing to compare)."""
    try:
        return db.execute(sql).fetchall()
    except duckdb.Error:
        return None


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes(), ROWS)
def test_a_non_breaking_change_keeps_the_old_columns_and_rows(db: duckdb.DuckDBPyConnection,
                                                             change: tuple[Query, Query],
                                                             rows: list[tuple[Any, ...]]) -> None:
    old, new = change
    verdict = classify(old.sql(), new.sql(), D)
    if verdict.breaking:
        return
    db.execute("delete from t")
    if rows:
        db.executemany("insert into t values (?, ?, ?, ?)", rows)
    before, after = run(db, old.sql()), run(db, new.sql())
    if before is None or after is None:
        return
    kept = len(old.columns)
    assert Counter(map(repr, before)) == Counter(repr(row[:kept]) for row in after), (old.sql(), new.sql())


@pytest.mark.parametrize(("old", "new"), [
    ("select a from t", "select a, b * 2 as x from t"),
    ("select a, count(*) as n from t group by 1", "select a, count(*) as n, sum(b) as sb from t group by 1"),
    ("select a from t qualify row_number() over (partition by a order by b) = 1",
     "select a, row_number() over (order by b) as rn from t qualify row_number() over (partition by a order by b) = 1"),
    ("with x as (select a, b from t) select a from x where b > 0", "with x as (select a, b from t) "
                                                                   "select a, b from x where b > 0"),
    ("with final as (select a from t where b > 0) select * from final",
     "with final as (select a, b * 2 as x from t where b > 0) select * from final"),
    ("with s as (select * from t), r as (select a from s), f as (select * from r) select f.* from f",
     "with s as (select * from t), r as (select a, c from s), f as (select * from r) select f.* from f"),
])
def test_the_grammar_reaches_non_breaking_changes(old: str, new: str) -> None:
    """The property above is not vacuous: these changes, of the shapes it generates, are non-breaking."""
    assert not classify(old, new, D).breaking


@pytest.mark.parametrize(("old", "new", "why"), [
    ("select distinct a from t", "select distinct a, b from t", "DISTINCT"),
    ("select a from t group by all", "select a, b from t group by all", "GROUP BY ALL"),
    ("select a from t", "select a, count(*) as n from t", "aggregates (COUNT(*))"),
    ("select a from t", "select a, unnest([1, 2]) as u from t", "set-returning"),
    ("select a from t order by a limit 2", "select a, b from t order by a limit 2", "LIMIT"),
    ("select a from t union all select b from t", "select a, 1 as one from t union all select b, 2 from t",
     "not a single SELECT"),
    ("select a from t qualify row_number() over (partition by b order by a) = 1",
     "select a, c as b from t qualify row_number() over (partition by b order by a) = 1", "`b` is also used"),
    ("select a from t", "select a, my_udf(b) as u from t", "function whose effect on rows is not known"),
    ("with f as (select distinct a from t) select * from f", "with f as (select distinct a, b from t) "
                                                             "select * from f", "DISTINCT"),
    ("with f as (select a from t) select * from f", "with f as (select a, b from t) select * from f limit 1",
     "a `*` projection"),
    ("with f as (select a from t), g as (select * from f) select * from f",
     "with f as (select a, b from t), g as (select distinct * from f) select * from f", "more than new output"),
    ("with f(x) as (select a from t) select * from f", "with f(x) as (select a, b from t) select * from f",
     "a `*` projection"),
])
def test_changes_that_may_move_rows_are_breaking(old: str, new: str, why: str) -> None:
    change = classify(old, new, D)
    assert change.breaking and why in change.detail, change.detail


IMPORTS = ["*", "distinct *", "* exclude (b)", "*, a + 1 as a1"]
MIDDLES = ["", "select * from src", "select id, a from src", "select * from src union select * from src",
           "select * from src where a > 1", "select * from src group by all"]
FINALS = ["*", "id, a", "count(*) as n_rows", "distinct a", "a, count(*) as c", "id, row_number() over "
          "(partition by a order by id) as r"]


@st.composite
def readers(draw: st.DrawFn) -> str:
    """A downstream model in dbt's idiom: an import CTE selecting `*` from {rel}, maybe another CTE, a final select."""
    sql = f"with src as (select {draw(st.sampled_from(IMPORTS))} from {{rel}})"
    middle = draw(st.sampled_from(MIDDLES))
    last = "src"
    if middle:
        sql += f", mid as ({middle})"
        last = "mid"
    final = draw(st.sampled_from(FINALS))
    sql += f" select {final} from {last}"
    if "count(*) as c" in final:
        sql += " group by a"
    return sql


PARENT_ROWS = st.lists(st.tuples(st.integers(0, 4), st.none() | st.integers(0, 2), st.integers(0, 2),
                                 st.integers(0, 3)), max_size=8)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(readers(), PARENT_ROWS)
def test_a_column_a_model_does_not_read_cannot_change_it(db: duckdb.DuckDBPyConnection, sql: str,
                                                        rows: list[tuple[Any, ...]]) -> None:
    """Whenever lineage says a model does not read the new column `n`, it gives the same result without it."""
    from dbtassets.sql.lineage import columns_read

    reads = columns_read(sql.format(rel='"db"."main"."parent"'), D, {'"db"."main"."parent"': ["id", "a", "b", "n"]})
    if reads.any_of({"n"}):
        return
    ran = run_before_and_after(db, sql, rows)
    if ran is None:
        return
    (old_names, before), (new_names, after) = ran
    assert new_names == old_names and Counter(map(repr, before)) == Counter(map(repr, after)), sql


@pytest.mark.parametrize(("sql", "reads_new"), [
    ("with src as (select * from {rel}) select id, a from src", False),
    ("with src as (select * from {rel}), final as (select id from src) select * from final", False),
    ("with src as (select distinct * from {rel}) select id from src", True),
    ("with src as (select * from {rel}) select * from src", True),
    ("with src as (select * from unknown_table) select id from src", True),
])
def test_lineage_sees_through_import_ctes(sql: str, reads_new: bool) -> None:
    from dbtassets.sql.lineage import columns_read

    relation = '"db"."main"."parent"'
    assert columns_read(sql.format(rel=relation), D, {relation: ["id", "a", "n"]}).any_of({"n"}) is reads_new


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(readers(), PARENT_ROWS)
def test_a_column_a_model_passes_on_is_all_it_changes(db: duckdb.DuckDBPyConnection, sql: str,
                                                     rows: list[tuple[Any, ...]]) -> None:
    """Whenever lineage says a model only passes the parent's new column `n` on, its old columns keep their rows."""
    from dbtassets.sql.lineage import columns_passed

    relation = '"db"."main"."parent"'
    gained = columns_passed(sql.format(rel=relation), D, {relation: ["id", "a", "b"]},
                            {relation: ["id", "a", "b", "n"]})
    if gained is None:
        return
    ran = run_before_and_after(db, sql, rows)
    if ran is None:
        return
    (old_names, before), (new_names, after) = ran
    kept = [i for i, name in enumerate(new_names) if name not in gained]
    assert [new_names[i] for i in kept] == old_names and set(new_names) - set(old_names) == gained, sql
    assert Counter(map(repr, before)) == Counter(repr(tuple(row[i] for i in kept)) for row in after), sql


@pytest.mark.parametrize(("sql", "gained"), [
    ("with src as (select * from {rel}), final as (select *, a > 1 as big from src) select * from final", {"n"}),
    ("select * from {rel} where a > 1", {"n"}),
    ("with src as (select * from {rel}) select id, a from src", None),  # it does not output `n`
    ("select distinct * from {rel}", None),
    ("select * from {rel} group by all", None),
    ("select * from {rel} limit 2", None),
    ("select * from {rel} union all select * from {rel}", None),
    ("with src as (select * from {rel}) select * from src natural join other", None),
    ("with src(x) as (select * from {rel}) select * from src", None),
    ("select * from {rel} join other using (id)", None),  # other's columns are unknown
])
def test_lineage_sees_which_new_columns_a_model_passes_on(sql: str, gained: set[str] | None) -> None:
    from dbtassets.sql.lineage import columns_passed

    relation = '"db"."main"."parent"'
    found = columns_passed(sql.format(rel=relation), D, {relation: ["id", "a", "b"]}, {relation: ["id", "a", "b", "n"]})
    assert found == (frozenset(gained) if gained is not None else None)


def run_before_and_after(db: duckdb.DuckDBPyConnection, sql: str, rows: list[tuple[Any, ...]]
                         ) -> tuple[tuple[list[str], list[Any]], tuple[list[str], list[Any]]] | None:
    """``sql`` over the parent without and with its new column `n` (the same rows): (names, rows) of each;
    None when DuckDB refuses the query."""
    db.execute("create or replace table old_parent (id integer, a integer, b integer)")
    db.execute("create or replace table new_parent (id integer, a integer, b integer, n integer)")
    if rows:
        db.executemany("insert into old_parent values (?, ?, ?)", [r[:3] for r in rows])
        db.executemany("insert into new_parent values (?, ?, ?, ?)", rows)
    try:
        old = db.execute(sql.format(rel="old_parent"))
        old_side = [d[0] for d in old.description], old.fetchall()
        new = db.execute(sql.format(rel="new_parent"))
        return old_side, ([d[0] for d in new.description], new.fetchall())
    except duckdb.Error:
        return None
