"""What every output kind shares: the ``--format`` values, JSON encoding, tables, counts and the summary line.

Pure functions from engine results to strings; colour goes through ``click.style`` and is
stripped by ``click.echo`` when the output is not a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from dbtassets.clock import shown
from dbtassets.outputs import OutputFormat as OutputFormat  # re-exported: the renderers take it
from dbtassets.results import StatusReport
from dbtassets.rules.statuses import Status
from dbtassets.state.heartbeats import WatcherState, Watching
from dbtassets.words import plural as plural  # re-exported: the renderers count with it


@dataclass(frozen=True)
class Gate:
    """What ``check`` and ``plan`` answer: the report, whether it passes, and how to show it."""

    report: StatusReport
    ok: bool
    against: bool = False  # compared with a deployed manifest: say so when the change affects nothing
    prefix: str = ""  # put before the project-relative file paths of GitHub annotations
    no_watcher: str | None = None  # why check --watcher-within fails: nobody watched within it


_COLOURS = {Status.FRESH: "green", Status.STALE: "yellow", Status.MISSING: "red", Status.UNOBSERVED: "magenta"}
_STYLED = {status: click.style(status.value, fg=colour) for status, colour in _COLOURS.items()}  # once, not per row


# Encodes one value on one line with the C encoder (json.dumps with `indent` falls back to the pure-Python one,
# which took half of `status --format json` on a 5,000-model project).
_ONE_LINE = json.JSONEncoder(separators=(", ", ": ")).encode


def to_json(document: Any) -> str:
    """``document`` as JSON that reads in a terminal and is quick to write: each top-level key on a line of its
    own, and each element of a top-level list (one asset, one event) on a line of its own."""
    if not isinstance(document, dict) or not document or not all(isinstance(k, str) for k in document):
        return _ONE_LINE(document)
    entries = []
    for key, value in document.items():
        if isinstance(value, list) and value:
            entries.append(f"  {_ONE_LINE(key)}: [\n    " + ",\n    ".join(map(_ONE_LINE, value)) + "\n  ]")
        else:
            entries.append(f"  {_ONE_LINE(key)}: {_ONE_LINE(value)}")
    return "{\n" + ",\n".join(entries) + "\n}"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Left-aligned columns; the last column is never padded."""
    every = [[str(c) for c in row] for row in [header, *rows]]
    padded = len(header) - 1
    # A row that only continues the last column (an asset's second reason) is None here: it has no width to
    # measure, and is written as the blank margin and its last cell.
    blank = [""] * padded
    # each cell's width once, without the colour codes (only a cell with an escape has any: most have none)
    styled: dict[str, int] = {}  # the shown width of each styled cell (a few: the statuses), measured once
    shown_widths = [None if row[:padded] == blank else
                    [len(c) if "\x1b" not in c else styled.get(c) or styled.setdefault(c, len(click.unstyle(c)))
                     for c in row[:padded]] for row in every]
    widths = [max((row[i] for row in shown_widths if row is not None), default=0) for i in range(padded)]
    margin = " " * (sum(widths) + 2 * padded)
    lines = []
    for row, row_widths in zip(every, shown_widths, strict=True):
        if row_widths is None:
            lines.append((margin + row[-1]).rstrip())
            continue
        cells = [c + " " * (w - n) for c, n, w in zip(row, row_widths, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines[0] = click.style(lines[0], bold=True)
    return "\n".join(lines)


def styled_status(status: Status) -> str:
    return _STYLED[status]


def watcher_line(watching: Watching | None) -> str | None:
    """What ``status`` says of the watchers (None if none has run for this project and target)."""
    w = watching.watcher if watching is not None else None
    if watching is None or w is None:
        return None
    who = f"{w.host}, pid {w.pid}"
    last_pass = f"last pass {shown(w.last_pass_at)}" if w.last_pass_at else "no pass yet"
    if watching.state is WatcherState.RUNNING:
        return f"watcher: running ({who}) since {shown(w.started_at)}; {last_pass}, last heartbeat {shown(w.beat_at)}"
    if watching.state is WatcherState.STOPPED:
        return f"watcher: none running; the last one ({who}) stopped at {shown(w.beat_at)} ({last_pass})"
    return (f"watcher: none running; the last one ({who}) looks dead: no heartbeat since {shown(w.beat_at)} "
            f"(it beats every {w.every:g}s; {last_pass})")


def summary(report: StatusReport) -> str:
    counts = {s: 0 for s in Status}
    failing = pending = 0
    for uid in report.selected:
        status = report.statuses[uid]
        counts[status.status] += 1
        if status.checks:  # most assets have none: nothing to count (a property call each, on every asset)
            failing += len(status.failing_checks)
            pending += len(status.pending_checks)
    checks = "".join(f", {plural(n, 'check')} {what}"
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
