"""The JSON documents that ``--format json`` prints, one builder per command's result.

Each builder returns plain data (``dict``/``list``) that :func:`~dbtassets.report.common.to_json`
encodes; the keys are the documented interface (docs/reference/cli.md), so they change only on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Node, UniqueId
from dbtassets.model.sources import SourceDeclaration
from dbtassets.report.common import Gate, summary
from dbtassets.results import Explanation, ObserveOutcome, StatusReport, SyncResult
from dbtassets.rules.savings import Savings
from dbtassets.rules.statuses import AssetStatus
from dbtassets.state.records import HistoryEntry


def asset_json(node: Node, status: AssetStatus | None) -> dict[str, Any]:
    """One asset and its status: the entry every document's ``assets`` list is made of."""
    out: dict[str, Any] = {
        "unique_id": node.unique_id, "name": node.display_name, "resource_type": node.resource_type,
        "status": status.status.value if status else None,
        "reasons": [r.to_json() for r in status.reasons] if status else [],
    }
    if status is not None and status.data_version is not None:
        out["data_version"] = {"value": status.data_version.value, "at": status.data_version.at}
    if status is not None and status.due_at is not None:
        out["due_at"] = status.due_at
    if status is not None and status.checks:
        out["checks"] = [c.to_json() for c in status.checks]
    return out


def assets_document(graph: AssetGraph, report: StatusReport,
                    sources: Mapping[UniqueId, SourceDeclaration]) -> dict[str, Any]:
    return {"assets": [
        {**asset_json(graph.assets[u], report.statuses[u]),
         "upstream": list(graph.parents(u)), "checks": list(graph.assets[u].checks),
         **({"observer": sources[u].describe()} if u in sources else {})}
        for u in report.selected]}


def status_document(graph: AssetGraph, report: StatusReport, show_all: bool) -> dict[str, Any]:
    shown = [u for u in report.selected if show_all or report.listed(u)]
    return {"summary": summary(report),
            "assets": [asset_json(graph.assets[u], report.statuses[u]) for u in shown],
            "warnings": list(report.warnings),
            "watcher": report.watching.to_json() if report.watching is not None else None}


def gate_document(graph: AssetGraph, gate: Gate) -> dict[str, Any]:
    """``check`` and ``plan``: whether the gate passes, and the assets that fail it."""
    report = gate.report
    return {"ok": gate.ok, "summary": summary(report),
            "assets": [asset_json(graph.assets[u], report.statuses[u]) for u in report.selected if report.listed(u)],
            "unobserved": report.unobserved(), "warnings": list(report.warnings),
            "notes": {graph.assets[u].display_name: n for u, n in report.notes.items()},
            "watcher": report.watching.to_json() if report.watching is not None else None,
            "no_watcher": gate.no_watcher}


def why_document(graph: AssetGraph, explanation: Explanation) -> dict[str, Any]:
    """The asset, and under each reason with an upstream the upstream's own explanation (``cause``)."""
    out = asset_json(graph.assets[explanation.status.unique_id], explanation.status)
    if explanation.observed:
        out["observed"] = dict(explanation.observed)
    if explanation.notes:
        out["notes"] = list(explanation.notes)
    for reason in out["reasons"]:
        cause = explanation.causes.get(reason.get("upstream"))
        if cause is not None:
            reason["cause"] = why_document(graph, cause)
    return out


def lineage_document(graph: AssetGraph, root: UniqueId) -> dict[str, Any]:
    return {"root": root, "assets": [{"unique_id": u, "name": graph.assets[u].display_name,
                                      "resource_type": graph.assets[u].resource_type,
                                      "parents": list(graph.parents(u))} for u in graph.topological_order()]}


def lint_document(graph: AssetGraph, findings: Mapping[UniqueId, Sequence[str]],
                  unobserved: Sequence[str] = ()) -> dict[str, Any]:
    return {"undeclared": [{"unique_id": u, "name": graph.assets[u].display_name, "reads": r}
                           for u, r in findings.items()], "unobserved": list(unobserved)}


def observe_document(graph: AssetGraph, outcomes: Sequence[ObserveOutcome]) -> dict[str, Any]:
    return {"observations": [
        {"unique_id": o.unique_id, "name": graph.assets[o.unique_id].display_name,
         "observer": o.kind.value, "changed": o.changed, "error": o.error,
         "data_version": o.observation.data_version if o.observation else None,
         "detail": dict(o.observation.detail) if o.observation else {}} for o in outcomes]}


def history_document(node: Node, entries: Sequence[HistoryEntry], graph: AssetGraph) -> dict[str, Any]:
    return {"unique_id": node.unique_id, "name": node.display_name, "resource_type": node.resource_type,
            "materializations": [e.to_json() for e in entries]}


def savings_document(savings: Savings) -> dict[str, object]:
    return savings.to_json()


def sync_document(graph: AssetGraph, result: SyncResult, dry_run: bool) -> dict[str, Any]:
    plan = result.plan
    return {
        "dry_run": dry_run, "command": plan.command, "selectors": list(plan.selectors), "run_id": result.run_id,
        "ok": result.ok,
        "assets": [{**asset_json(graph.assets[u], plan.statuses[u]),
                    "outcome": _outcome(u, result, dry_run)} for u in plan.to_build],
        "failed_checks": dict(result.failed_checks),
        "log_path": str(result.build.log_path) if result.build else None,
        "error": result.build.crashed if result.build else None,
        "not_due": [asset_json(graph.assets[u], plan.statuses[u])
                    for u in (plan.verdict.schedule.waiting() if plan.verdict is not None else [])],
        "left_to_other_builds": [{"unique_id": u, "name": graph.assets[u].display_name, "holder": holder}
                                 for u, holder in result.left.items()],
        "lost_leases": [{"unique_id": u, "name": graph.assets[u].display_name, "holder": holder}
                        for u, holder in result.lost.items()],
    }


def _outcome(uid: UniqueId, result: SyncResult, dry_run: bool) -> str:
    if dry_run:
        return "planned"
    if uid in result.failed:
        return "error"
    if uid in result.skipped:
        return "skipped"
    if uid in result.lost:
        return "lease_lost"
    return "success" if uid in result.built else "not_run"
