"""Column lineage with sqlglot: which columns of its inputs a model's SQL reads, and which it outputs.

Idiomatic dbt SQL selects ``*`` from import CTEs (``with orders as (select * from {{ ref(...) }})``)
and then names the columns it uses. Given the columns of the relations it reads (a *schema*: the
output columns of the upstream models, from their own compiled SQL), sqlglot's optimizer expands the
stars and prunes the projections nobody downstream uses; what remains is what the model reads.

The answer is a safe over-estimate: every column name the SQL mentions, plus every column the
expanded and pruned query still mentions (a DISTINCT, GROUP BY ALL or set operation keeps all of
its columns), or "everything" when a star cannot be expanded (an input whose columns are unknown).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbtassets.sql.fingerprint import parse

Schema = Mapping[str, Sequence[str]]  # a relation name as dbt renders it (``"db"."main"."orders"``) → columns


@dataclass(frozen=True)
class Reads:
    """The columns a model's SQL may read: ``everything`` when it selects ``*`` from an unknown input."""

    columns: frozenset[str] = field(default_factory=frozenset)
    everything: bool = False

    def any_of(self, columns: Collection[str]) -> bool:
        return self.everything or bool(self.columns & {c.lower() for c in columns})


def columns_read(sql: str, dialect: str | None, schema: Schema | None = None) -> Reads:
    """Every column name ``sql`` mentions, with its stars expanded over ``schema`` (everything if they cannot be)."""
    try:
        tree = parse(sql, dialect)
    except (SqlglotError, ValueError, RecursionError):
        return Reads(everything=True)
    mentioned = frozenset(c.name.lower() for c in tree.find_all(exp.Column) if not c.is_star)
    if not _stars(tree):
        return Reads(mentioned)
    expanded = _expand(tree, dialect, schema or {})
    if expanded is None:
        return Reads(everything=True)
    return Reads(mentioned | frozenset(c.name.lower() for c in expanded.find_all(exp.Column) if not c.is_star))


def output_columns(sql: str, dialect: str | None, schema: Schema | None = None) -> list[str] | None:
    """The names of the columns ``sql`` outputs, stars expanded over ``schema``; None when unknown."""
    try:
        tree = parse(sql, dialect)
    except (SqlglotError, ValueError, RecursionError):
        return None
    if _stars(tree):
        expanded = _expand(tree, dialect, schema or {}, prune=False)
        if expanded is None:
            return None
        tree = expanded
    if not isinstance(tree, exp.Query) or not tree.selects:
        return None
    if not all(isinstance(p, exp.Alias | exp.Column) for p in tree.selects):
        return None  # an unnamed expression: its column name is the warehouse's choice
    names = [projection.alias_or_name.lower() for projection in tree.selects]
    return names if all(names) else None


def _stars(tree: exp.Expr) -> bool:
    """Whether ``tree`` selects ``*`` anywhere (``count(*)`` reads no column)."""
    return any(not isinstance(star.parent, exp.Count | exp.Func) for star in tree.find_all(exp.Star)) or any(
        column.is_star for column in tree.find_all(exp.Column))


def _expand(tree: exp.Expr, dialect: str | None, schema: Schema, *, prune: bool = True) -> exp.Expr | None:
    """``tree`` with its stars expanded (and, with ``prune``, unused CTE columns dropped); None if a star remains."""
    from sqlglot.optimizer.pushdown_projections import pushdown_projections
    from sqlglot.optimizer.qualify import qualify

    nested: dict[str, object] = {}
    depth = 0  # sqlglot wants every table at the same depth (catalog.db.table or db.table)
    for relation, columns in schema.items():
        try:
            table = exp.to_table(relation, dialect=dialect)
        except (SqlglotError, ValueError):
            continue
        path = [part for part in (table.catalog, table.db, table.name) if part]
        if not columns or not path or len(path) != (depth or len(path)):
            continue
        depth = len(path)
        level = nested
        for part in path[:-1]:
            child = level.setdefault(part, {})
            assert isinstance(child, dict)
            level = child
        level[path[-1]] = dict.fromkeys(columns, "unknown")
    try:
        qualified = qualify(tree.copy(), dialect=dialect, schema=nested or None, validate_qualify_columns=False,
                            quote_identifiers=False, identify=False)
        if prune:
            qualified = pushdown_projections(qualified)
    except (SqlglotError, ValueError, KeyError, RecursionError):
        return None
    return None if _stars(qualified) else qualified
