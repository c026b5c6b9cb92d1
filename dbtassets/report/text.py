"""Text for people: tables, the causal chain of ``why``, what a sync built, what building only the stale saved.

Colour goes through ``click.style``; ``click.echo`` strips it when the output is not a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import click

from dbtassets.clock import shown
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Node, ResourceType, UniqueId
from dbtassets.model.sources import DataVersionKind, Observation, SourceDeclaration
from dbtassets.report.common import Gate, plural, styled_status, summary, table, watcher_line
from dbtassets.results import Explanation, ObserveOutcome, StatusReport, SyncResult
from dbtassets.rules.checks import one_line
from dbtassets.rules.savings import Savings
from dbtassets.state.records import HistoryEntry


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
    watcher = watcher_line(report.watching)
    if not rows:
        return f"Everything selected is fresh: {summary(report)}." + (f"\n{watcher}" if watcher else "")
    return table(rows, ["ASSET", "TYPE", "STATUS", "REASONS"]) + "\n\n" + summary(report) + (
        f"\n{watcher}" if watcher else "")


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



def gate_text(graph: AssetGraph, gate: Gate) -> str:
    """``check`` and ``plan``: the assets that fail the gate and the notes, or that a change affects nothing."""
    report = gate.report
    if gate.against and not any(report.listed(uid) for uid in report.selected):
        return (f"This change affects nothing: deploying it leaves every selected asset as it is "
                f"({plural(len(report.selected), 'asset')} compared).")
    notes = [f"note: {graph.assets[uid].display_name}: {note}" for uid, note in report.notes.items()]
    failed = [click.style(f"check failed: {gate.no_watcher}", fg="red")] if gate.no_watcher else []
    return "\n".join([status_text(graph, report, show_all=False), *notes, *failed])


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



def lint_text(graph: AssetGraph, findings: Mapping[UniqueId, Sequence[str]], unobserved: Sequence[str] = ()) -> str:
    named = {graph.assets[u].display_name: reads for u, reads in findings.items()}
    lines = [f"{name} reads {', '.join(reads)}, which no ref() or source() declares" for name, reads in named.items()]
    lines = lines or ["Every table and file the models read is declared with ref() or source()."]
    return "\n".join([*lines, *(f"source {name} has no observer: changes to it are not detected; declare files, "
                                 f"query or reported for it in dbtassets.yml" for name in unobserved)])


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



def reported_text(graph: AssetGraph, observation: Observation) -> str:
    return (f"Recorded new data for {graph.assets[observation.unique_id].display_name} "
            f"(data version {DataVersionKind.shown(observation.data_version)}).")


def history_text(node: Node, entries: Sequence[HistoryEntry], graph: AssetGraph) -> str:
    if not entries:
        return f"{node.display_name} has never been built by dbtassets."
    gone = [f"{node.display_name} is not in the project any more ({node.unique_id}); its recorded builds:"]
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
    return "\n".join([*gone * (node.unique_id not in graph),
                      table(rows, ["FINISHED", "RUN", "STATUS", "CODE", "DURATION", "ROWS", "INPUTS"])])


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
        held = [f"{plural(len(held), 'stale asset')} held until a failing check upstream passes ({shown})"]
    if plan.empty:
        waiting = [*_waiting(graph, result), *held]
        return "\n".join(["Nothing due to build.", *waiting]) if waiting else \
            "Nothing to build: every selected asset is fresh."
    names = ", ".join(graph.assets[u].display_name for u in plan.to_build)
    checks = plural(len(plan.checks), "pending check") if plan.checks else ""
    if dry_run:
        would = f"build {plural(len(plan.to_build), 'asset')} ({names})" if plan.to_build else ""
        doing = " and ".join([*[would] * bool(would), *[f"run {checks}"] * bool(checks)])
        return "\n".join([f"Would {doing} with:\n{plan.command}", *_waiting(graph, result)])
    built = f"Built {len(result.built)} of {plural(len(plan.to_build), 'asset')}" if plan.to_build else ""
    doing = " and ".join([*[built] * bool(built), *[f"{'ran' if built else 'Ran'} {checks}"] * bool(checks)])
    lines = [f"{doing} with: {plan.command}", *_waiting(graph, result), *_left(graph, result)]
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
        return f"dbtassets ran no build since {since}: nothing to compare."
    share = f" ({savings.avoided / savings.full_estimate:.0%})" if savings.full_estimate else ""
    lines = [f"Since {since}: {savings.runs} runs built {savings.builds} assets; a full `dbt build` at each run "
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
