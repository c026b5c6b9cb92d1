"""Semantic code versions with sqlglot: what SQL means, not how it is written.

A fingerprint hashes the compiled SQL as sqlglot parses and regenerates it (no comments, one
keyword case, one layout, unquoted identifiers lower-cased), so reformatting never moves it
and a change of meaning always does. On top of that:

- :func:`classify` tells a *non-breaking* change (only new output columns; the existing columns
  and the row set untouched) from a breaking one;
- :mod:`dbtassets.sql.lineage` says which columns a model's SQL may read, so a downstream model
  that does not read the new columns can stay fresh;
- :func:`undeclared_reads` finds tables and files the SQL reads that no ``ref``/``source`` declared.

sqlglot costs ~80 ms to import, so this module is only imported when something must be parsed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbtassets.words import noun

_DIALECTS = {"duckdb", "postgres", "redshift", "snowflake", "bigquery", "databricks", "spark", "trino", "presto",
             "athena", "clickhouse", "mysql", "oracle", "sqlite", "tsql", "teradata", "doris", "starrocks"}
_FILE_READERS = {"read_csv", "read_csv_auto", "read_parquet", "read_json", "read_json_auto", "read_ndjson",
                 "parquet_scan", "read_text", "read_blob", "iceberg_scan", "delta_scan"}


def dialect_of(adapter_type: str) -> str | None:
    """The sqlglot dialect for a dbt adapter (``None``: sqlglot's generic SQL)."""
    name = {"sqlserver": "tsql", "fabric": "tsql", "spark": "spark", "glue": "spark"}.get(adapter_type, adapter_type)
    return name if name in _DIALECTS else None


@dataclass(frozen=True)
class Fingerprint:
    """A semantic code version, or a checksum fallback with the reason in ``note``."""

    value: str
    semantic: bool
    normalized_sql: str = ""
    note: str = ""


@dataclass(frozen=True)
class Change:
    """How a model's code changed: breaking, or only adding output columns."""

    breaking: bool
    added_columns: tuple[str, ...] = ()
    detail: str = ""

    def describe(self) -> str:
        if self.breaking:
            return f"breaking{': ' + self.detail if self.detail else ''}"
        names = ", ".join(f"`{c}`" for c in self.added_columns)
        return f"non-breaking: added {noun(len(self.added_columns), 'column')} {names}"


def parse(sql: str, dialect: str | None) -> exp.Expr:
    """The single statement in ``sql``; raises SqlglotError (or ValueError) when it is not one."""
    statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, found {len(statements)}")
    return statements[0]


def normalize(sql: str, dialect: str | None) -> str:
    """``sql`` regenerated canonically: no comments, fixed case and layout, identifiers lower-cased."""
    return parse(sql, dialect).sql(dialect=dialect, normalize=True, comments=False)


def fingerprint(sql: str, dialect: str | None, config_version: str, fallback: str) -> Fingerprint:
    """The semantic fingerprint of compiled ``sql`` plus the build config; ``fallback`` if sqlglot cannot."""
    try:
        canonical = normalize(sql, dialect)
    except (SqlglotError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return Fingerprint(fallback, False, note=f"sqlglot cannot parse the compiled SQL ({reason}); "
                                                 "using the file checksum")
    return Fingerprint(combine(canonical, config_version), True, canonical)


def combine(canonical_sql: str, config_version: str) -> str:
    """The code version of canonical SQL built with a given configuration."""
    return hashlib.sha256(f"{canonical_sql}\0{config_version}".encode()).hexdigest()[:16]


def classify(old_sql: str, new_sql: str, dialect: str | None) -> Change:
    """Non-breaking only where the new query provably keeps the old columns and rows and appends columns.

    Proof here is syntactic and conservative: the new query is the old one with output columns
    appended, and nothing about the query lets an appended column change which rows come out
    (DISTINCT, GROUP BY ALL, an aggregate or a set-returning function in it, a LIMIT or sample,
    a clause that may bind the new name, an unknown function). Anything unproven is breaking.
    """
    try:
        old, new = parse(old_sql, dialect), parse(new_sql, dialect)
    except (SqlglotError, ValueError, RecursionError):
        return Change(True, detail="cannot compare the SQL")
    if not isinstance(old, exp.Select) or not isinstance(new, exp.Select):
        return Change(True, detail="not a single SELECT (a set operation, or another statement)")
    old_out, new_out = output_select(old), output_select(new)
    old_columns, new_columns = _projections(old_out, dialect), _projections(new_out, dialect)
    if old_columns is None or new_columns is None:
        return Change(True, detail="a `*` projection")
    if new_columns[: len(old_columns)] != old_columns:
        return Change(True, detail="existing columns changed")
    if _without_projections(old, old_out, dialect) != _without_projections(new, new_out, dialect):
        return Change(True, detail="more than new output columns changed")
    added = tuple(name for name, _ in new_columns[len(old_columns):])
    if not added:
        return Change(True)
    risk = _row_set_risk(new_out, len(old_columns), dialect)
    return Change(True, detail=risk) if risk else Change(False, added)


def output_select(query: exp.Select) -> exp.Select:
    """The SELECT whose columns and rows ``query`` outputs: dbt's ``select * from final`` passes a CTE's through.

    From ``query``, each ``select * from NAME`` with nothing else in it (no join, filter, grouping, order
    or limit) is followed to the body of the CTE ``NAME`` (a plain SELECT, with no column list of its own);
    the first SELECT that is not such a pass-through is the answer.
    """
    with_ = query.args.get("with_")
    if with_ is None or with_.args.get("recursive"):
        return query
    ctes = {cte.alias_or_name.lower(): cte for cte in with_.expressions}
    select, seen = query, set()
    while (name := _passed_through(select)) and name not in seen:
        seen.add(name)
        cte = ctes.get(name)
        if cte is None or cte.args["alias"].columns:  # a table, or a CTE that renames its columns
            break
        if not isinstance(cte.this, exp.Select) or cte.this.args.get("with_"):
            break
        select = cte.this
    return select


def _passed_through(select: exp.Select) -> str:
    """The name of the relation ``select`` is ``select * from NAME`` of and nothing else, else ""."""
    if any(value not in (None, [], False) for key, value in select.args.items()
           if key not in ("expressions", "from_", "with_")):
        return ""
    projection = select.expressions[0] if len(select.expressions) == 1 else None
    star = projection.this if isinstance(projection, exp.Column) else projection  # `*` or `final.*`
    if not isinstance(star, exp.Star) or any(star.args.values()):  # not with EXCLUDE, REPLACE or RENAME
        return ""
    source = select.args["from_"].this if select.args.get("from_") else None
    if (not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier)
            or any(value for key, value in source.args.items() if key not in ("this", "alias"))):
        return ""
    if isinstance(projection, exp.Column) and projection.table.lower() != source.alias_or_name.lower():
        return ""
    return source.name.lower()


_ROW_CLAUSES = ("joins", "where", "group", "having", "qualify", "order", "distinct", "laterals", "windows")


def _row_set_risk(select: exp.Select, kept: int, dialect: str | None) -> str:
    """Why appending ``select``'s projections after the first ``kept`` may change its rows ("" if it cannot)."""
    if select.args.get("distinct"):
        return "DISTINCT: a new column changes which rows are distinct"
    group = select.args.get("group")
    if group is not None and group.args.get("all"):
        return "GROUP BY ALL: a new column changes the grouping"
    for key, what in (("limit", "LIMIT"), ("offset", "OFFSET"), ("sample", "a sample"), ("fetch", "FETCH")):
        if select.args.get(key):
            return f"{what}: which rows are kept may change"
    if select.find(exp.Columns) is not None:
        return "a COLUMNS(...) expression"
    projections = select.expressions
    existing = {p.alias_or_name.lower() for p in projections[:kept]}
    names: set[str] = set()
    shadowing: set[str] = set()  # new names that mean something else than the column of that name
    for projection in projections[kept:]:
        name = projection.alias_or_name.lower()
        if not name:
            return f"the new column `{projection.sql()}` has no name"
        if name in existing or name in names:
            return f"the new column `{name}` repeats a column name"
        names.add(name)
        if _bare_column(projection) == name:
            shadowing.discard(name)  # binding `b` to the new column `b` is binding it to the same column
        else:
            shadowing.add(name)
        risk = _expression_risk(projection, dialect, grouped=group is not None)
        if risk:
            return f"the new column `{name}` {risk}"
    binders = [select.args.get(key) for key in _ROW_CLAUSES] + list(projections[:kept])
    for clause in binders:
        for node in _nodes(clause):
            if isinstance(node, exp.Column) and not node.table and node.name.lower() in shadowing:
                return f"`{node.name}` is also used elsewhere in the query, where it may now mean the new column"
    return ""


def _bare_column(projection: exp.Expr) -> str:
    """The name of the column a projection passes through unchanged (``b``, ``x.b``, ``b as b``), else ""."""
    inner = projection.this if isinstance(projection, exp.Alias) else projection
    if isinstance(inner, exp.Column) and not inner.is_star and inner.name.lower() == projection.alias_or_name.lower():
        return inner.name.lower()
    return ""


def _expression_risk(expression: exp.Expr, dialect: str | None, *, grouped: bool) -> str:
    """Why one new output column may change the row set ("" when it cannot), ignoring nested queries."""
    stack = [(expression, False)]
    while stack:
        node, in_window = stack.pop()
        if isinstance(node, exp.Query | exp.Subquery):
            continue  # a scalar subquery yields one value per row (or fails the build), never more rows
        if isinstance(node, exp.UDTF | exp.GenerateSeries):
            return f"calls a set-returning function ({node.sql(dialect=dialect)[:60]}), which may multiply rows"
        if isinstance(node, exp.AggFunc) and not in_window and not grouped:
            return f"aggregates ({node.sql(dialect=dialect)[:60]}) in a query without GROUP BY"
        if isinstance(node, exp.Anonymous):
            return f"calls {node.name}, a function whose effect on rows is not known"
        inside = in_window or isinstance(node, exp.Window)
        stack.extend((child, inside) for child in node.iter_expressions())
    return ""


def _nodes(clause: object) -> Iterator[exp.Expr]:
    for item in clause if isinstance(clause, list) else [clause]:
        if isinstance(item, exp.Expr):
            yield from item.walk()


def changed_ctes(old_sql: str, new_sql: str, dialect: str | None, prefix: str) -> list[str]:
    """The CTEs named ``prefix…`` (dbt inlines ephemeral models as ``__dbt__cte__NAME``) that differ, by name."""
    try:
        old, new = parse(old_sql, dialect), parse(new_sql, dialect)
    except (SqlglotError, ValueError, RecursionError):
        return []

    def bodies(tree: exp.Expr) -> dict[str, str]:
        return {cte.alias_or_name.lower()[len(prefix):]: cte.this.sql(dialect=dialect, normalize=True, comments=False)
                for cte in tree.find_all(exp.CTE) if cte.alias_or_name.lower().startswith(prefix)}

    before, after = bodies(old), bodies(new)
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def _projections(select: exp.Select, dialect: str | None) -> list[tuple[str, str]] | None:
    out = []
    for projection in select.expressions:
        if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column) and projection.is_star):
            return None
        out.append((projection.alias_or_name.lower(), projection.sql(dialect=dialect, normalize=True,
                                                                     comments=False)))
    return out


def _without_projections(query: exp.Select, target: exp.Select, dialect: str | None) -> str:
    """``query`` as SQL with the projections of ``target`` (``query`` or a SELECT inside it) left out."""
    kept = list(target.expressions)
    target.set("expressions", [exp.Star()])
    try:
        return query.sql(dialect=dialect, normalize=True, comments=False)
    finally:
        target.set("expressions", kept)


def undeclared_reads(sql: str, dialect: str | None, declared: Collection[str]) -> list[str]:
    """Tables and files ``sql`` reads that are not among ``declared`` relation names.

    Args:
        declared: rendered relation names of the model's refs and sources (``"db"."schema"."t"``,
            or a dbt-duckdb ``read_csv('…')`` external location), compared case-insensitively
            without quotes.
    """
    try:
        tree = parse(sql, dialect)
    except (SqlglotError, ValueError, RecursionError):
        return []
    known = {_plain(name) for name in declared}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: list[str] = []
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            continue  # a table function: handled with the file readers below
        parts = [p for p in (table.catalog, table.db, table.name) if p]
        name = ".".join(parts)
        if not table.name or (len(parts) == 1 and table.name.lower() in ctes):
            continue
        if not any(_plain(name) == k or k.endswith("." + _plain(name)) for k in known):
            found.append(name)
    for function in tree.find_all(exp.Func):
        name = (function.sql_name() if not isinstance(function, exp.Anonymous) else function.name).lower()
        if name in _FILE_READERS or isinstance(function, exp.ReadCSV):
            rendered = function.sql(dialect=dialect)
            if not any(_plain(rendered) in k or k in _plain(rendered) for k in known):
                found.append(rendered)
    return sorted(set(found))


def _plain(name: str) -> str:
    """A relation name compared without quotes: dbt-duckdb renders a file source as ``'data/x.csv'``."""
    return name.replace('"', "").replace("`", "").replace("'", "").replace(" ", "").lower()
