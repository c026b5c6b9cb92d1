"""Column lineage with sqlglot: which columns of its inputs a model's SQL reads, and which it outputs.

Idiomatic dbt SQL selects ``*`` from import CTEs (``with orders as (select * from {{ ref(...) }})``)
and then names the columns it uses. Given the columns of the relations it reads (a *schema*: the
output columns of the upstream models, from their own compiled SQL), sqlglot's optimizer expands the
stars and prunes the projections nobody downstream uses; what remains is what the model reads.

The answer is a safe over-estimate: every column name the SQL mentions, plus every column the
expanded and pruned query still mentions (a DISTINCT, GROUP BY ALL or set operation keeps all of
its columns), or "everything" when a star cannot be expanded (an input whose columns are unknown).

:func:`column_sources` goes further, with ``sqlglot.lineage``: which input columns each output column is
computed from (for OpenLineage's ``columnLineage``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbtassets.sql.fingerprint import parse

Schema = Mapping[str, Sequence[str]]  # a relation name as dbt renders it (``"db"."main"."orders"``) → columns


MAX_LINEAGE_SQL = 50_000  # characters: longer SQL gets no column_sources (about 1 s of CPU at this size)
_IDENTITY, _TRANSFORMATION, _AGGREGATION = "IDENTITY", "TRANSFORMATION", "AGGREGATION"  # OpenLineage's subtypes


@dataclass(frozen=True)
class Derived:
    """An output column comes from ``column`` of ``relation`` (as the caller named it): copied as it is
    (``IDENTITY``), computed from it (``TRANSFORMATION``) or aggregated (``AGGREGATION``)."""

    relation: str
    column: str
    transformation: str


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
    if not isinstance(tree, exp.Query) or not tree.selects:
        return None
    if any(_stars(projection) for projection in tree.selects):
        # A star elsewhere (``with source as (select * from {{ source(...) }})``) need not be expanded.
        expanded = _expand(tree, dialect, schema or {}, prune=False, anywhere=False)
        if not isinstance(expanded, exp.Query) or not expanded.selects:
            return None
        tree = expanded
    if not all(isinstance(p, exp.Alias | exp.Column) for p in tree.selects):
        return None  # an unnamed expression: its column name is the warehouse's choice
    names = [projection.alias_or_name.lower() for projection in tree.selects]
    return names if all(names) else None


def _stars(tree: exp.Expr) -> bool:
    """Whether ``tree`` selects ``*`` anywhere (``count(*)`` reads no column)."""
    return any(not isinstance(star.parent, exp.Count | exp.Func) for star in tree.find_all(exp.Star)) or any(
        column.is_star for column in tree.find_all(exp.Column))


def _expand(tree: exp.Expr, dialect: str | None, schema: Schema, *, prune: bool = True,
            anywhere: bool = True) -> exp.Expr | None:
    """``tree`` with its stars expanded (and, with ``prune``, unused CTE columns dropped); None if a star remains
    (``anywhere``, or else in its output columns)."""
    from sqlglot.optimizer.pushdown_projections import pushdown_projections
    from sqlglot.optimizer.qualify import qualify

    nested = _nested(schema, dialect)
    try:
        qualified = qualify(tree.copy(), dialect=dialect, schema=nested or None, validate_qualify_columns=False,
                            quote_identifiers=False, identify=False)
        if prune:
            qualified = pushdown_projections(qualified)
    except (SqlglotError, ValueError, KeyError, RecursionError):
        return None
    if not anywhere and isinstance(qualified, exp.Query):
        return None if any(_stars(projection) for projection in qualified.selects) else qualified
    return None if _stars(qualified) else qualified


def _nested(schema: Schema, dialect: str | None) -> dict[str, object]:
    """``schema`` as sqlglot wants it: ``{catalog: {db: {table: {column: type}}}}``."""
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
    return nested


def columns_passed(sql: str, dialect: str | None, before: Schema, after: Schema) -> frozenset[str] | None:
    """The output columns ``sql`` gains when its inputs gain columns (``before`` → ``after``), if that is all.

    That is a child selecting ``*`` from a model that gained columns: its stars pass them on and nothing
    else about it changes, so it is itself a non-breaking change. Proven syntactically, as
    :func:`~dbtassets.sql.fingerprint.classify` does: with its stars expanded over ``before`` and over
    ``after``, the queries differ only by projections that pass a new column through unchanged, in SELECTs
    where a new column cannot change the rows (no DISTINCT, GROUP BY, LIMIT, positional ORDER BY, set
    operation, NATURAL join, PIVOT, ``COLUMNS(...)``, star in a function, column list on a CTE) nor
    the other columns' names. None when unproven, or when the output gains nothing.
    """
    from dbtassets.sql.fingerprint import _bare_column

    try:
        tree = parse(sql, dialect)
    except (SqlglotError, ValueError, RecursionError):
        return None
    if _unsafe_for_new_columns(tree):
        return None
    old, new = _expand(tree, dialect, before, prune=False), _expand(tree, dialect, after, prune=False)
    if old is None or new is None:
        return None
    old_selects, new_selects = list(old.find_all(exp.Select)), list(new.find_all(exp.Select))
    if len(old_selects) != len(new_selects):
        return None
    gained: list[str] = []
    for old_select, new_select in zip(old_selects, new_selects, strict=True):
        extra = _inserted(old_select.expressions, new_select.expressions, dialect)
        if extra is None:
            return None
        if not extra:
            continue
        names = [p.alias_or_name.lower() for p in new_select.expressions]
        if (any(not _bare_column(new_select.expressions[i]) for i in extra) or len(set(names)) != len(names)
                or _rows_may_change(new_select)):
            return None
        if new_select is new:
            gained = [names[i] for i in extra]
        new_select.set("expressions", [p for i, p in enumerate(new_select.expressions) if i not in extra])
    if new.sql(dialect=dialect) != old.sql(dialect=dialect):
        return None  # the new columns changed more than the projections (how a column binds, say)
    return frozenset(gained) or None


def _inserted(old: list[exp.Expr], new: list[exp.Expr], dialect: str | None) -> list[int] | None:
    """The positions in ``new`` of the projections inserted among ``old`` ones; None if others changed."""
    old_sql = [p.sql(dialect=dialect) for p in old]
    extra, at = [], 0
    for i, projection in enumerate(new):
        if at < len(old_sql) and projection.sql(dialect=dialect) == old_sql[at]:
            at += 1
        else:
            extra.append(i)
    return extra if at == len(old_sql) else None


def _unsafe_for_new_columns(tree: exp.Expr) -> bool:
    """Whether ``tree`` has a construct where an input's new column may change more than the output columns."""
    if any(join.args.get("method") for join in tree.find_all(exp.Join)):  # NATURAL (or ASOF) joins by name
        return True
    if tree.find(exp.Pivot, exp.Columns) is not None:
        return True
    if any(alias.columns for alias in tree.find_all(exp.TableAlias)):  # names columns by position
        return True
    return any(isinstance(star.parent, exp.Func) and not isinstance(star.parent, exp.Count)
               for star in tree.find_all(exp.Star))


def _rows_may_change(select: exp.Select) -> bool:
    """Whether a new column among ``select``'s projections may change its rows or what its clauses mean."""
    if any(select.args.get(key) for key in ("distinct", "group", "limit", "offset", "sample", "fetch")):
        return True
    order = select.args.get("order")
    if order is not None and any(isinstance(o.this, exp.Literal) for o in order.expressions):
        return True  # ORDER BY 2: a column inserted before it moves it
    parent = select.parent
    if isinstance(parent, exp.Subquery):
        parent = parent.parent  # a derived table is fine; a subquery in an expression is not
        return not isinstance(parent, exp.From | exp.Join)
    return parent is not None and not isinstance(parent, exp.CTE)


def column_sources(sql: str, dialect: str | None, relations: Collection[str],
                   schema: Schema | None = None) -> dict[str, list[Derived]] | None:
    """For each output column of ``sql``, the columns of ``relations`` (names as dbt renders them, a table or a
    table function such as ``read_csv(...)``) it is computed from, through CTEs (inlined ephemeral models)
    and subqueries; stars expanded over ``schema``.

    A column computed from no input column (a literal, ``count(*)``) or from a star sqlglot cannot expand is
    left out; None when nothing is known (unparsable SQL, a star in the output, SQL over
    :data:`MAX_LINEAGE_SQL` characters).
    """
    if len(sql) > MAX_LINEAGE_SQL:
        return None
    names = output_columns(sql, dialect, schema)
    if not names:
        return None
    from sqlglot.lineage import lineage

    keys: dict[tuple[str, ...], str] = {}
    for relation in relations:
        key = _relation_key(relation, dialect)
        if key is not None:
            keys.setdefault(key, relation)
    try:
        roots = lineage(None, sql, schema=_nested(schema or {}, dialect), dialect=dialect, trim_selects=False)
        assert isinstance(roots, dict)
        found = {name.lower(): _sources(root, keys, dialect) for name, root in roots.items()}
    except Exception:  # sqlglot's lineage raises more than SqlglotError on SQL it does not follow: no lineage
        return None
    out = {name: derived for name in names if (derived := found.get(name))}
    return out or None


def _relation_key(relation: str, dialect: str | None) -> tuple[str, ...] | None:
    try:
        table = parse(f"select * from {relation}", dialect).find(exp.Table)
    except (SqlglotError, ValueError, RecursionError):
        return None
    return _table_key(table, dialect) if table is not None else None


def _table_key(table: exp.Table, dialect: str | None) -> tuple[str, ...]:
    """``(catalog, db, name)`` in lower case, or a table function's SQL."""
    if table.name:
        return tuple(part.lower() for part in (table.catalog, table.db, table.name) if part)
    return (table.this.sql(dialect=dialect).lower(),)


def _sources(root: object, keys: Mapping[tuple[str, ...], str], dialect: str | None) -> list[Derived] | None:
    """The input columns behind one lineage root, each with the strongest transformation on its way; None if a
    star or a relation outside ``keys`` feeds it."""
    from sqlglot.lineage import Node

    assert isinstance(root, Node)
    rank = [_IDENTITY, _TRANSFORMATION, _AGGREGATION]
    found: dict[tuple[str, str], int] = {}
    seen: set[tuple[int, int]] = set()
    stack = [(root, 0)]
    while stack:
        node, step = stack.pop()
        if (id(node), step) in seen:
            continue
        seen.add((id(node), step))
        if isinstance(node.expression, exp.Table):
            column = node.name.rpartition(".")[2]
            relation = _match(_table_key(node.expression, dialect), keys)
            if column == "*" or relation is None:
                return None
            found[(relation, column.lower())] = max(step, found.get((relation, column.lower()), 0))
            continue
        expression = node.expression.this if isinstance(node.expression, exp.Alias) else node.expression
        here = 0 if isinstance(expression, exp.Column) else 2 if expression.find(exp.AggFunc) else 1
        stack.extend((child, max(step, here)) for child in node.downstream)
    return [Derived(relation, column, rank[step]) for (relation, column), step in sorted(found.items())]


def _match(key: tuple[str, ...], keys: Mapping[tuple[str, ...], str]) -> str | None:
    """The relation ``key`` names: the same parts, or the last parts of exactly one (``main.orders``)."""
    if key in keys:
        return keys[key]
    matches = [relation for known, relation in keys.items() if known[-len(key):] == key]
    return matches[0] if len(matches) == 1 else None
