"""GitHub Actions workflow commands: one annotation per asset that fails a check, on its file in the diff."""

from __future__ import annotations

from dbtassets.model.graph import AssetGraph
from dbtassets.report.common import Gate, plural, summary
from dbtassets.results import StatusReport
from dbtassets.rules.policies import Lateness
from dbtassets.rules.statuses import AssetStatus


def github_annotations(graph: AssetGraph, report: StatusReport, prefix: str = "") -> str:
    """One ``::error`` workflow command per asset that fails the check (``::notice`` for one not due yet).

    ``prefix`` turns the project-relative paths dbt records into repository-relative ones.
    """
    lines = []
    late = report.verdict.late if report.verdict is not None else {}
    for uid in report.selected:
        status = report.statuses[uid]
        if not report.listed(uid):
            continue
        node = graph.assets[uid]
        message = _escape("\n".join(r.message for r in status.reasons))
        title = _escape(_annotation_title(node.display_name, status, late.get(uid)), prop=True)
        level = "error" if report.failing(uid) else "notice"
        lines.append(f"::{level} file={_escape(prefix + node.path, prop=True)},title={title}::{message}")
    lines.append(f"::notice title=dbtassets::{summary(report)}")
    return "\n".join(lines)


def gate_annotations(graph: AssetGraph, gate: Gate) -> str:
    """``check`` and ``plan`` with ``--format github``."""
    failed = f"\n::error title=No watcher::{_escape(gate.no_watcher)}" if gate.no_watcher else ""
    return github_annotations(graph, gate.report, gate.prefix) + failed


def _annotation_title(name: str, status: AssetStatus, late: Lateness | None) -> str:
    """What is wrong with the asset, in a few words: a fresh asset fails the check only through its checks."""
    if late is not None:
        return f"{name} is late ({late.severity.value})"
    if not status.needs_build and status.failing_checks:
        return f"{name}: {plural(len(status.failing_checks), 'check')} failed"
    if not status.needs_build and status.pending_checks:
        return f"{name}: {plural(len(status.pending_checks), 'check')} not run yet"
    return f"{name} is {status.status.value}"


def _escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text
