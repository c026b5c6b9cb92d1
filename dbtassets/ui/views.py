"""What the page reads: the graph with statuses, one asset's details, a selection; all from engine verbs.

Each function takes a :class:`~dbtassets.engine.Project` and returns plain data. Statuses come from
``Project.status(observe=False)`` (what ``status --no-observe`` answers: no source is read, nothing
is built) and the details reuse the ``--format json`` documents, so the page and the CLI never disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from dbtassets.engine import Project
from dbtassets.model.manifest import Node, ResourceType
from dbtassets.report.common import summary
from dbtassets.report.documents import asset_json, history_document, why_document
from dbtassets.results import StatusReport
from dbtassets.rules.statuses import AssetStatus, ReasonCode, Status

# What the page colours, most urgent first: one per asset (building comes from the live events).
SHOWN = ("building", "failed", "missing", "late", "stale", "not_due", "unobserved", "fresh")
_LATE = {ReasonCode.LATE_WARN, ReasonCode.LATE_ERROR}


def shown_status(status: AssetStatus, building: bool = False) -> str:
    """The one colour the page gives an asset: ``building``, ``failed``, ``late``, ``not_due``, or its status."""
    codes = {r.code for r in status.reasons}
    if building:
        return "building"
    if ReasonCode.LAST_BUILD_FAILED in codes or status.failing_checks:
        return "failed"
    if codes & _LATE:
        return "late"
    if status.status is Status.STALE and ReasonCode.NOT_DUE in codes:
        return "not_due"
    return status.status.value


def group_of(node: Node) -> str:
    """The folder (or source) an asset belongs to: what the overview of a large project collapses."""
    if node.resource_type == ResourceType.SOURCE:
        return f"source:{node.source_name}"
    folder = node.path.rsplit("/", 1)[0] if "/" in node.path else ""
    return f"{node.resource_type}:{folder}" if folder else str(node.resource_type)


def graph_document(project: Project, building: Collection[str] = (), select: Sequence[str] = (),
                   exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Every selected asset with its status, colour, group and parents, and the counts by colour.

    Raises:
        SelectionError: the selector matches nothing or is malformed (worded as the CLI words it).
    """
    report = project.status(select, exclude, observe=False)
    graph = project.graph
    selected = set(report.selected)
    nodes = []
    counts = dict.fromkeys(SHOWN, 0)
    for uid in report.selected:
        node = graph.assets[uid]
        status = report.statuses[uid]
        shown = shown_status(status, node.display_name in building)
        counts[shown] += 1
        nodes.append({**asset_json(node, status), "shown": shown, "group": group_of(node),
                      "parents": [p for p in graph.parents(uid) if p in selected]})
    return {"project": project.dbt.name, "summary": summary(report),
            "counts": counts, "assets": nodes, "warnings": list(report.warnings),
            "selected": len(nodes), "total": len(graph.assets)}


def asset_document(project: Project, name: str, history_limit: int = 10) -> dict[str, Any]:
    """One asset: its ``why`` chain, its last builds, its checks, code version, up- and downstream.

    Raises:
        SelectionError: no asset has that name.
    """
    graph = project.graph
    uid = graph.resolve(name)
    node = graph.assets[uid]
    explanation = project.why(name, observe=False)
    _, entries = project.history(name, history_limit)
    return {"unique_id": uid, "name": node.display_name, "resource_type": node.resource_type,
            "path": node.path, "code_version": node.code_version, "materialized": node.materialized,
            "why": why_document(graph, explanation),
            "history": history_document(node, entries, graph)["materializations"],
            "checks": [c.to_json() for c in explanation.status.checks],
            "upstream": sorted(graph.ancestors(uid)), "downstream": sorted(graph.descendants(uid))}


def counts_by_status(report: StatusReport) -> dict[str, int]:
    """Selected assets by status word (``fresh``, ``stale``…), for /metrics."""
    out = {s.value: 0 for s in Status}
    for uid in report.selected:
        out[report.statuses[uid].status.value] += 1
    return out
