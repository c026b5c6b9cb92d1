"""dbt's node selection syntax, evaluated over the asset graph and written back out.

:func:`resolve_selection` answers ``--select``/``--exclude`` as ``dbt ls`` would, but over
assets only (ephemeral models are already collapsed out of :class:`~dbtassets.model.graph.AssetGraph`),
and it refuses what dbt merely warns about: unknown methods, malformed selectors and selectors
that match nothing, each with the closest tag, path, package, config value, source or name that
exists. :func:`dbt_selectors` goes the other way, from a set of assets to short
``dbt build --select`` arguments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from dbtassets.errors import SelectionError
from dbtassets.model.graph import BUILDABLE, AssetGraph
from dbtassets.model.manifest import Node, ResourceType, UniqueId
from dbtassets.model.selectors import FILE_SUFFIXES, USAGE, Atom, Method, parse


def _evaluate(graph: AssetGraph, atom: Atom) -> tuple[set[UniqueId], set[UniqueId]]:
    """(what the method matches, what the selector selects once its graph operators are applied)."""
    found = {uid for uid, node in graph.assets.items() if atom.matches(node)}
    result = set(found)
    if atom.childrens_parents:
        below = found | graph.descendants(*found)
        result |= below | graph.ancestors(*below)
    if atom.parents is not None:
        result |= graph.ancestors(*found, depth=atom.parents)
    if atom.children is not None:
        result |= graph.descendants(*found, depth=atom.children)
    return found, result


def _paths(node: Node) -> Iterable[str]:
    parts = node.path.replace("\\", "/").split("/")
    return ("/".join(parts[:k]) for k in range(1, len(parts) + 1))


def _file_names(node: Node) -> Iterable[str]:
    return (PurePosixPath(node.path.replace("\\", "/")).name,)


def _file_stems(node: Node) -> Iterable[str]:
    return (PurePosixPath(node.path.replace("\\", "/")).stem,)


def _sources(node: Node) -> Iterable[str]:
    return (node.source_name, node.display_name) if node.resource_type == ResourceType.SOURCE else ()


def _config_values(key: str) -> Callable[[Node], Iterable[str]]:
    return lambda node: (str(node.config[key]),) if key in node.config else ()


# For each method: what a value could have been (to suggest one), and how to say that nothing matched.
_VOCABULARY: dict[Method, tuple[Callable[[Node], Iterable[str]], str]] = {
    Method.FQN: (lambda n: (n.display_name,), "no asset is named {value!r}"),
    Method.TAG: (lambda n: n.tags, "no asset has tag {value!r}"),
    Method.PATH: (_paths, "no asset is under path {value!r}"),
    Method.FILE: (_file_stems, "no asset is in a file named {value!r}"),
    Method.SOURCE: (_sources, "no source matches {value!r}"),
    Method.RESOURCE_TYPE: (lambda n: (n.resource_type,), "the project has no {value}"),
    Method.PACKAGE: (lambda n: (n.package_name,), "no asset is in package {value!r}"),
    Method.CONFIG: (lambda n: (), "no asset has config {argument} {value!r}"),
    Method.UNIQUE_ID: (lambda n: (n.unique_id,), "no asset has unique_id {value!r}"),
}


def _nothing_matches(graph: AssetGraph, atom: Atom) -> tuple[str, str]:
    """(that ``atom`` matches no asset, a hint naming the closest values that exist or "")."""
    values, text = _VOCABULARY[atom.method]
    prefix = "" if atom.bare else f"{atom.method.value}{'.' + atom.argument if atom.argument else ''}:"
    if atom.method is Method.CONFIG:
        keys = {key for node in graph.assets.values() for key in node.config}
        if atom.argument not in keys:
            import difflib  # imported where used: most commands never get here

            close = difflib.get_close_matches(atom.argument, sorted(keys), n=3)
            hint = f"did you mean {' or '.join(f'config.{k}:{atom.value}' for k in close)}?" if close else ""
            return f"no asset has a config key {atom.argument!r}", hint
        values = _config_values(atom.argument)
    elif atom.method is Method.FILE and atom.value.lower().endswith(FILE_SUFFIXES):
        values = _file_names
    known = sorted({value for node in graph.assets.values() for value in values(node) if value})
    import difflib  # imported where used: most commands never get here

    close = difflib.get_close_matches(atom.value, known, n=3)
    if close:
        hint = f"did you mean {' or '.join(prefix + c for c in close)}?"
    elif atom.method in (Method.FQN, Method.UNIQUE_ID, Method.PATH, Method.FILE):
        hint = "`dbtassets assets` lists them"
    else:
        hint = f"the project has {', '.join(prefix + k for k in known[:8])}{', ...' if len(known) > 8 else ''}" \
            if known else ""
    return text.format(value=atom.value, argument=atom.argument), hint


def _unmatched(graph: AssetGraph, atom: Atom, excluding: bool) -> str:
    what, hint = _nothing_matches(graph, atom)
    hint = f"; {hint}" if hint else ""
    if excluding:
        return f"--exclude {atom.raw!r} leaves nothing out: {what}{hint}"
    return f"{what} (in selector {atom.raw!r}){hint}"


@dataclass(frozen=True)
class Selection:
    """What ``--select``/``--exclude`` picked, and what the user should hear about it."""

    assets: frozenset[UniqueId]
    warnings: tuple[str, ...] = ()  # --exclude selectors that left nothing out


def resolve_selection(graph: AssetGraph, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> Selection:
    """The assets that ``--select select --exclude exclude`` picks, with dbt's syntax.

    Each string may hold several space-separated selectors (a union); a selector with commas is
    the intersection of its parts. No selector at all selects every asset. Unlike dbt, which only
    warns, a ``--select`` selector that matches nothing is an error: a gate fed a typo would pass.
    An ``--exclude`` one that matches nothing is only a warning (scripts exclude defensively).
    A project without assets accepts any well-formed selection.

    Raises:
        SelectionError: naming every unknown method, malformed selector and selector that matches
            no asset (with the closest values that exist), in one line.
    """
    syntax: list[str] = []
    selected, excluded = parse(select, syntax), parse(exclude, syntax)
    if syntax:
        raise SelectionError(f"{'; '.join(syntax)}; {USAGE}")
    check = bool(graph.assets)

    def union(terms: list[list[Atom]], problems: list[str], excluding: bool) -> set[UniqueId]:
        result: set[UniqueId] = set()
        for intersection in terms:
            parts = [_evaluate(graph, atom) for atom in intersection]
            empty = [atom for atom, (found, _) in zip(intersection, parts, strict=True) if not found]
            problems.extend(_unmatched(graph, atom, excluding) for atom in empty if check)
            both = set.intersection(*(reached for _, reached in parts))
            if check and not both and not empty:
                raw = ",".join(atom.raw for atom in intersection)
                flag = "--exclude" if excluding else "--select"
                problems.append(f"{flag} {raw!r} matches no asset: no asset is selected by all of its parts")
            result |= both
        return result

    errors: list[str] = []
    warnings: list[str] = []
    chosen = union(selected, errors, excluding=False) if selected else set(graph.assets)
    dropped = union(excluded, warnings, excluding=True)
    if errors:
        raise SelectionError("; ".join(errors))
    if check and chosen and not chosen - dropped:
        picked = f"--select {' '.join(select)!r} picks" if select else "of the project"
        raise SelectionError(f"--exclude {' '.join(exclude)!r} leaves out every asset {picked}; nothing is selected")
    return Selection(frozenset(chosen - dropped), tuple(warnings))


def select_assets(
    graph: AssetGraph, select: Sequence[str] = (), exclude: Sequence[str] = ()
) -> set[UniqueId]:
    """:func:`resolve_selection`'s assets, its warnings dropped (for selectors a program wrote)."""
    return set(resolve_selection(graph, select, exclude).assets)


def dbt_selectors(graph: AssetGraph, nodes: Collection[UniqueId]) -> list[str]:
    """Short ``dbt build --select`` arguments that select exactly the buildable assets of ``nodes``.

    Staleness propagates downstream, so a stale set is usually a union of whole subtrees: each is
    written as ``root+``, and only assets whose descendants are not all in the set are named one
    by one. The command stays short and readable however many models it builds. Sources in
    ``nodes`` are ignored (dbt builds none), and so are ids not in the graph.

    Returns:
        The selectors in topological order of the assets they name. Each names its asset by
        ``name`` where that is unambiguous in dbt's fqn matching, else by the dotted fqn.
    """
    wanted = {uid for uid in nodes if uid in graph and graph.assets[uid].resource_type in BUILDABLE}
    order = graph.topological_order()
    # `closed`: in `wanted` with every descendant in `wanted` (a source fed by it never is: dbt's `seed+`
    # does not reach past it), found bottom-up in one pass rather than with one descendants() walk per node.
    closed: set[UniqueId] = set()
    for uid in reversed(order):
        if uid in wanted and all(child in closed for child in graph.children(uid)):
            closed.add(uid)
    keys = _name_keys(graph)
    inside: set[UniqueId] = set()  # the roots written as `root+` and everything below them
    selectors: list[str] = []
    for uid in order:
        if uid not in wanted:
            continue
        if any(parent in inside for parent in graph.parents(uid)):
            inside.add(uid)
            continue
        name = _dbt_name(graph.assets[uid], keys)
        # A `+` on the `fqn,path:` fallback would apply to its last part only.
        if uid in closed and "," not in name:
            inside.add(uid)
            name += "+"
        selectors.append(name)
    return selectors


def exact_selectors(graph: AssetGraph, nodes: Collection[UniqueId]) -> list[str]:
    """One dbt selector per buildable asset in ``nodes``, none reaching further (for ``dbt compile``)."""
    keys = _name_keys(graph)
    return [_dbt_name(graph.assets[uid], keys) for uid in graph.topological_order(nodes)
            if graph.assets[uid].resource_type in BUILDABLE]


def _name_keys(graph: AssetGraph) -> Counter[str]:
    """How many buildable assets each wildcard-free fqn selector (name, dotted fqn prefix) selects."""
    counts: Counter[str] = Counter()
    for node in graph.assets.values():
        if node.resource_type in BUILDABLE:
            keys = {node.name, *node.fqn[-1:]}
            for fqn in (node.fqn, node.fqn[1:]):
                flat = [part for segment in fqn for part in segment.split(".")]
                keys.update(".".join(flat[:k]) for k in range(1, len(flat) + 1))
            counts.update(keys)
    return counts


def _dbt_name(node: Node, keys: Counter[str]) -> str:
    dotted = ".".join(node.fqn)
    name = node.display_name  # `stg_customers.v2` for a model version (its plain name selects them all)
    if keys[name] == 1 and not name.isdigit():  # `2+` would read as a depth
        return name
    if keys[dotted] == 1:
        return dotted
    # `models/staging.sql` beside `models/staging/`: the fqn is also a prefix of its neighbours'.
    return f"{dotted},path:{node.path}"
