"""An asset's lineage drawn: an indented tree for the terminal, Mermaid and Graphviz dot for documents."""

from __future__ import annotations

from collections.abc import Mapping

import click

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import UniqueId


def _names(graph: AssetGraph) -> dict[UniqueId, str]:
    return {uid: graph.assets[uid].display_name for uid in graph}


def mermaid(graph: AssetGraph, root: UniqueId) -> str:
    """A left-to-right Mermaid flowchart, the root drawn with a thick border."""
    names, order = _names(graph), graph.topological_order()
    ids = {uid: f"n{i}" for i, uid in enumerate(order)}
    lines = ["graph LR"]
    lines += [f'    {ids[u]}["{names[u]}"]' for u in order]
    lines += [f"    {ids[p]} --> {ids[uid]}" for uid in order for p in graph.parents(uid)]
    lines.append(f"    style {ids[root]} stroke-width:3px")
    return "\n".join(lines)


def dot(graph: AssetGraph, root: UniqueId) -> str:
    """A left-to-right Graphviz digraph, the root drawn with a thick pen."""
    names, order = _names(graph), graph.topological_order()
    lines = ["digraph lineage {", "    rankdir=LR;"]
    lines += [f'    "{names[u]}"{" [penwidth=3]" if u == root else ""};' for u in order]
    lines += [f'    "{names[p]}" -> "{names[uid]}";' for uid in order for p in graph.parents(uid)]
    return "\n".join([*lines, "}"])


def tree(graph: AssetGraph, root: UniqueId) -> str:
    """Upstream assets above the root (indented by distance), downstream below it."""
    names: Mapping[UniqueId, str] = _names(graph)
    lines = [click.style(names[root], bold=True)]
    for label, edges in (("upstream", graph.parents), ("downstream", graph.children)):
        if not edges(root):
            continue
        lines.append(f"  {label}:")
        stack = [(uid, 2) for uid in reversed(sorted(edges(root), key=names.__getitem__))]
        while stack:
            uid, depth = stack.pop()
            lines.append(f"{'  ' * depth}└ {names[uid]} ({graph.assets[uid].resource_type})")
            stack.extend((n, depth + 1) for n in reversed(sorted(edges(uid), key=names.__getitem__)))
    return "\n".join(lines)
