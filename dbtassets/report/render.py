"""Turning results into text, JSON, GitHub annotations, Mermaid and Graphviz.

Pure functions from engine results to strings; colour goes through ``click.style`` and is
stripped by ``click.echo`` when the output is not a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import click

from dbtassets.clock import shown
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Node, ResourceType, UniqueId
from dbtassets.model.sources import SourceDeclaration
from dbtassets.results import Explanation, ObserveOutcome, StatusReport, SyncResult
from dbtassets.rules.policies import Lateness
from dbtassets.rules.savings import Savings
from dbtassets.rules.staleness import AssetStatus, Status
from dbtassets.state.records import HistoryEntry


class OutputFormat(str, Enum):
    """What ``--format`` can ask for (each command accepts some of them)."""

    TEXT = "text"
    JSON = "json"
    GITHUB = "github"  # GitHub Actions workflow commands (annotations)
    TREE = "tree"
    MERMAID = "mermaid"
    DOT = "dot"

    def __str__(self) -> str:
        return self.value


_COLOURS = {Status.FRESH: "green", Status.STALE: "yellow", Status.MISSING: "red", Status.UNOBSERVED: "magenta"}


def to_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=False)


def asset_json(node: Node, status: AssetStatus | None) -> dict[str, Any]:
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


def one_line(message: str, limit: int = 300) -> str:
    """A message on one line for a table or a log line (dbt errors span many), shortened past ``limit``."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Left-aligned columns; the last column is never padded."""
    widths = [max(len(click.unstyle(str(r[i]))) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [str(c) + " " * (w - len(click.unstyle(str(c)))) for c, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    lines[0] = click.style(lines[0], bold=True)
    return "\n".join(lines)


def styled_status(status: Status) -> str:
    return click.style(status.value, fg=_COLOURS[status])


def plural(count: int, word: str) -> str:
    """``1 asset``, ``2 assets``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(report: StatusReport) -> str:
    counts = {s: 0 for s in Status}
    failing = pending = 0
    for uid in report.selected:
        status = report.statuses[uid]
        counts[status.status] += 1
        failing += len(status.failing_checks)
        pending += len(status.pending_checks)
    checks = "".join(f", {n} check{'s' if n > 1 else ''} {what}"
                     for n, what in ((failing, "failing"), (pending, "pending")) if n)
    text = (f"{counts[Status.STALE]} stale, {counts[Status.MISSING]} missing, "
            f"{counts[Status.FRESH]} fresh"
            + (f", {counts[Status.UNOBSERVED]} unobserved" if counts[Status.UNOBSERVED] else "")
            + f" ({plural(len(report.selected), 'asset')}{checks})")
    verdict = report.verdict
    if verdict is not None:
        waiting = sum(1 for uid in report.selected if not verdict.schedule.is_due(uid))
        late = sum(1 for uid in report.selected if uid in verdict.late)
        extra = [f"{waiting} not due yet"] * bool(waiting) + [f"{plural(late, 'source')} late"] * bool(late)
        text += f"; {', '.join(extra)}" if extra else ""
    return text


def _status_cell(report: StatusReport, uid: UniqueId) -> str:
    """``stale``, ``stale (due 14:05 UTC)``, ``stale (overdue since 14:05 UTC)``, ``late (error)``…"""
    status = report.statuses[uid]
    verdict = report.verdict
    if verdict is None:
        return styled_status(status.status)
    late = verdict.late.get(uid)
    if late is not None:
        return click.style(f"late ({late.severity.value})", fg="red" if late.severity.value == "error" else "yellow")
    decision = verdict.schedule.decisions.get(uid)
    if decision is None or status.due_at is None:
        return styled_status(status.status) + ("" if decision is None or decision.due else " (waiting)")
    when = shown(status.due_at)
    return styled_status(status.status) + (f" (due {when})" if not decision.due else f" (overdue since {when})")


def status_text(graph: AssetGraph, report: StatusReport, show_all: bool) -> str:
    rows = []
    for uid in report.selected:
        status = report.statuses[uid]
        if not show_all and not report.listed(uid):
            continue
        node = graph.assets[uid]
        reasons = [one_line(r.message) for r in status.reasons] or ["-"]
        rows.append([node.display_name, node.resource_type, _status_cell(report, uid), reasons[0]])
        rows.extend(["", "", "", more] for more in reasons[1:])
    if not rows:
        return f"Everything selected is fresh: {summary(report)}."
    return table(rows, ["ASSET", "TYPE", "STATUS", "REASONS"]) + "\n\n" + summary(report)


def assets_text(graph: AssetGraph, report: StatusReport, sources: Mapping[UniqueId, SourceDeclaration]) -> str:
    rows = []
    for uid in report.selected:
        node = graph.assets[uid]
        if node.resource_type == ResourceType.SOURCE:
            detail = sources[uid].describe() if uid in sources else "-"
        else:
            detail = node.materialized + (f", {plural(len(node.checks), 'check')}" if node.checks else "")
        upstream = ", ".join(graph.assets[p].display_name for p in graph.parents(uid)) or "-"
        rows.append([node.display_name, node.resource_type, detail, styled_status(report.statuses[uid].status),
                     upstream])
    return table(rows, ["ASSET", "TYPE", "BUILT AS / OBSERVED BY", "STATUS", "UPSTREAM"])


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


def why_text(graph: AssetGraph, explanation: Explanation) -> str:
    lines: list[str] = []
    _why_lines(graph, explanation, "", lines)
    return "\n".join(lines)


def _why_lines(graph: AssetGraph, explanation: Explanation, indent: str, lines: list[str]) -> None:
    status = explanation.status
    node = graph.assets[status.unique_id]
    name = click.style(node.display_name, bold=True)
    head = f"{indent}{name} ({node.resource_type}) is {styled_status(status.status)}"
    if explanation.observed:
        observed = explanation.observed
        if "files" in observed:
            extra = f"{plural(int(observed['files']), 'file')}, newest {observed.get('newest', '-')}"
        elif "watermark" in observed:
            extra = f"watermark {observed['watermark']}"
        else:
            extra = f"{observed['kind']}{': ' + observed['note'] if observed.get('note') else ''}"
        head += f": last new data observed at {shown(observed['at'])} ({extra})"
    lines.append(head)
    lines.extend(f"{indent}  note: {note}" for note in explanation.notes)
    for reason in status.reasons:
        lines.append(f"{indent}  ← {reason.message}")
        if reason.upstream is not None and reason.upstream in explanation.causes:
            _why_lines(graph, explanation.causes[reason.upstream], indent + "     ", lines)


def why_json(graph: AssetGraph, explanation: Explanation) -> dict[str, Any]:
    out = asset_json(graph.assets[explanation.status.unique_id], explanation.status)
    if explanation.observed:
        out["observed"] = dict(explanation.observed)
    if explanation.notes:
        out["notes"] = list(explanation.notes)
    for reason in out["reasons"]:
        cause = explanation.causes.get(reason.get("upstream"))
        if cause is not None:
            reason["cause"] = why_json(graph, cause)
    return out


def lineage(graph: AssetGraph, root: UniqueId, fmt: OutputFormat) -> str:
    names = {uid: graph.assets[uid].display_name for uid in graph}
    order = graph.topological_order()
    edges = [(p, uid) for uid in order for p in graph.parents(uid)]
    if fmt is OutputFormat.JSON:
        return to_json({"root": root, "assets": [{"unique_id": u, "name": names[u],
                                                  "resource_type": graph.assets[u].resource_type,
                                                  "parents": list(graph.parents(u))} for u in order]})
    if fmt is OutputFormat.MERMAID:
        ids = {uid: f"n{i}" for i, uid in enumerate(order)}
        lines = ["graph LR"]
        lines += [f'    {ids[u]}["{names[u]}"]' for u in order]
        lines += [f"    {ids[p]} --> {ids[c]}" for p, c in edges]
        lines.append(f"    style {ids[root]} stroke-width:3px")
        return "\n".join(lines)
    if fmt is OutputFormat.DOT:
        lines = ["digraph lineage {", "    rankdir=LR;"]
        lines += [f'    "{names[u]}"{" [penwidth=3]" if u == root else ""};' for u in order]
        lines += [f'    "{names[p]}" -> "{names[c]}";' for p, c in edges]
        return "\n".join([*lines, "}"])
    return _tree(graph, root, names)


def _tree(graph: AssetGraph, root: UniqueId, names: Mapping[UniqueId, str]) -> str:
    """Upstream assets above the root (indented by distance), downstream below it."""
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


def observe_text(graph: AssetGraph, outcomes: Sequence[ObserveOutcome]) -> str:
    rows = []
    for o in outcomes:
        name = graph.assets[o.unique_id].display_name
        if o.error:
            rows.append([name, o.kind.value, click.style("error", fg="red"), o.error])
        else:
            assert o.observation is not None
            detail = ", ".join(f"{k} {v}" for k, v in o.observation.detail.items())
            rows.append([name, o.kind.value, "new data" if o.changed else "unchanged", detail])
    return table(rows, ["SOURCE", "OBSERVER", "RESULT", "DETAIL"]) if rows else "No source has an observer to run."


def history_text(node: Node, entries: Sequence[HistoryEntry], graph: AssetGraph) -> str:
    if not entries:
        return f"{node.display_name} has never been built by dbtassets."
    rows = []
    for e in entries:
        # Each input by name and the time of the version it was built from: when the source was
        # observed or the upstream built (the data version ids are in --format json).
        inputs = ", ".join(f"{graph.assets[UniqueId(u)].display_name if u in graph else u} ({shown(v.at)})"
                           for u, v in e.inputs.items()) or "-"
        status = click.style(e.status, fg="green" if e.status == "success" else "red")
        duration = f"{e.duration:.2f}s" if e.duration is not None else "-"
        rows.append([shown(e.finished_at), str(e.run_id), status, e.code_version[:8], duration,
                     "-" if e.rows_affected is None else str(e.rows_affected), inputs])
    return table(rows, ["FINISHED", "RUN", "STATUS", "CODE", "DURATION", "ROWS", "INPUTS"])


def _waiting(graph: AssetGraph, result: SyncResult) -> list[str]:
    """A line naming the stale assets a freshness policy holds back, if any."""
    verdict = result.plan.verdict
    waiting = verdict.schedule.waiting() if verdict is not None else []
    if not waiting or verdict is None:
        return []
    names = ", ".join(graph.assets[u].display_name for u in waiting[:5]) + (", …" if len(waiting) > 5 else "")
    due = verdict.schedule.next_due_at
    when = f"; the next falls due at {shown(due)}" if due is not None else ""
    return [f"{plural(len(waiting), 'stale asset')} not due yet ({names}){when}; "
            "`dbtassets sync --all-stale` builds them now"]


def _left(graph: AssetGraph, result: SyncResult) -> list[str]:
    """Assets another build (team mode) holds a lease on, or that are downstream of one."""
    return [f"  left to another build: {graph.assets[uid].display_name} ({holder})"
            for uid, holder in result.left.items()] + [
        click.style(f"  lease lost  {graph.assets[uid].display_name}: another build ({holder}) took it while this "
                    "one ran; built here but not recorded", fg="yellow") for uid, holder in result.lost.items()]


def sync_text(graph: AssetGraph, result: SyncResult, dry_run: bool) -> str:
    plan = result.plan
    if plan.empty and result.left:
        return "\n".join(["Nothing to build here: other builds hold what is stale.", *_left(graph, result)])
    held = sorted(graph.assets[u].display_name for u, s in plan.statuses.items() if s.held)
    if held:
        shown = ", ".join(held[:5]) + (", …" if len(held) > 5 else "")
        held = [f"{len(held)} stale asset(s) held until a failing check upstream passes ({shown})"]
    if plan.empty:
        waiting = [*_waiting(graph, result), *held]
        return "\n".join(["Nothing due to build.", *waiting]) if waiting else \
            "Nothing to build: every selected asset is fresh."
    names = ", ".join(graph.assets[u].display_name for u in plan.to_build)
    checks = f" and run {len(plan.checks)} pending check{'s' if len(plan.checks) > 1 else ''}" if plan.checks else ""
    if dry_run:
        return "\n".join([f"Would build {plural(len(plan.to_build), 'asset')} ({names}){checks} with:\n{plan.command}",
                          *_waiting(graph, result)])
    lines = [f"Built {len(result.built)} of {plural(len(plan.to_build), 'asset')}{checks} with: {plan.command}",
             *_waiting(graph, result), *_left(graph, result)]
    for uid, message in result.failed.items():
        lines.append(click.style(f"  failed  {graph.assets[uid].display_name}: {one_line(message)}", fg="red"))
    for message in result.failed_checks.values():
        lines.append(click.style(f"  failed  {message}", fg="red"))
    for uid in result.skipped:
        culprits = sorted(graph.assets[f].display_name for f in graph.ancestors(uid) if f in result.failed)
        why = f"upstream {', '.join(culprits)} failed" if culprits else "an upstream failed"
        lines.append(click.style(f"  skipped {graph.assets[uid].display_name} ({why})", fg="yellow"))
    for uid in result.not_run:
        lines.append(click.style(f"  not run {graph.assets[uid].display_name}", fg="yellow"))
    if result.build is not None and result.build.crashed:
        lines.append(click.style(f"  {result.build.crashed}", fg="red"))
    if not result.ok and result.build is not None:
        lines.append(f"dbt log: {result.build.log_path}")
    return "\n".join(lines)


def savings_text(savings: Savings, limit: int = 20) -> str:
    """The runs, the builds done against a full build each time, the seconds, and the assumptions."""
    since = shown(savings.since)
    if not savings.runs:
        return f"dbtassets ran no build since {since} UTC: nothing to compare."
    share = f" ({savings.avoided / savings.full_estimate:.0%})" if savings.full_estimate else ""
    lines = [f"Since {since} UTC: {savings.runs} runs built {savings.builds} assets; a full `dbt build` at each run "
             f"would have built {savings.full_builds}.", ""]
    rows = [[a.name, str(a.builds), str(savings.runs), _seconds(a.median), _seconds(a.spent), _seconds(a.avoided)]
            for a in savings.assets[:limit]]
    if len(savings.assets) > limit:
        rest = savings.assets[limit:]
        rows.append([f"({len(rest)} more)", str(sum(a.builds for a in rest)), str(savings.runs * len(rest)), "",
                     _seconds(sum(a.spent for a in rest)), _seconds(sum(a.avoided for a in rest))])
    rows.append(["total", str(savings.builds), str(savings.full_builds), "", _seconds(savings.spent),
                 _seconds(savings.avoided)])
    lines.append(table(rows, ["ASSET", "BUILT", "FULL BUILD", "MEDIAN", "SPENT", "AVOIDED (EST.)"]))
    lines += ["", f"Warehouse time: {_seconds(savings.spent)} spent; a full build each run ≈ "
                  f"{_seconds(savings.full_estimate)}; avoided ≈ {_seconds(savings.avoided)}{share}.",
              "Assumptions:"]
    lines += [f"  - {note}" for note in savings.assumptions()]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def sync_json(graph: AssetGraph, result: SyncResult, dry_run: bool) -> dict[str, Any]:
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
