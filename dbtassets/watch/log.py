"""The watcher's live log: one renderer per event kind and format, and the printer that picks them.

Text is for people (one or more lines, time-stamped), JSON for programs (one object per line:
``{"event": KIND, "at": ISO-8601, ...fields}``, documented in ``docs/events.md``). With ``-q``
only failures are printed (in text; JSON always prints everything).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import click

from dbtassets.clock import shown
from dbtassets.outputs import OutputFormat
from dbtassets.watch import events as ev
from dbtassets.words import plural

E = TypeVar("E", bound=ev.WatchEvent)
_OK = frozenset({"success", "pass"})


def _watching(e: ev.Watching) -> str:
    runner = "dbt in-process" if e.runner == "InProcessRunner" else "dbt as a subprocess"
    sources = ", ".join(f"{name}: {how}" for name, how in e.sources.items())
    return (f"watching {e.project}: {plural(e.assets, 'asset')}, {plural(len(e.sources), 'source')} ({sources}); "
            f"{runner}; Ctrl-C stops")


def _new_data(e: ev.NewData) -> str:
    if e.files is not None:
        return f"new data in {e.source}: {plural(e.files, 'file')}, newest {e.newest or '-'}"
    watermark = f", watermark {e.watermark}" if e.watermark is not None else ""
    return f"new data in {e.source} ({e.observer}{watermark})"


def _brief(message: str, limit: int = 200) -> str:
    """A message's first line, shortened: a failure's full error was printed with that failure."""
    text = message.strip()
    line = text.splitlines()[0] if text else ""
    if len(line) > limit:
        return line[:limit].rstrip() + " …"
    return line if line == text else line + " …"


def _and(*parts: str) -> str:
    """``3 to build``, ``1 check to run``, or both joined with ``and``: the parts that are not empty."""
    return " and ".join(p for p in parts if p)


def _stale(e: ev.Stale) -> str:
    checks = f"{plural(len(e.checks), 'check')} to run" if e.checks else ""
    lines = [_and(f"{len(e.assets)} to build" if e.assets or not checks else "", checks) + ":"]
    lines += [f"  {a.name} ({a.status}): {'; '.join(_brief(r) for r in a.reasons)}" for a in e.assets]
    lines += [f"  {name} (check pending): {_brief(why)}" for name, why in e.checks.items()]
    return "\n".join(lines)


def _build_started(e: ev.BuildStarted) -> str:
    doing = _and(f"building {plural(e.count, 'asset')}" if e.count or not e.checks else "",
                 f"running {plural(e.checks, 'check')}" if e.checks else "")
    return click.style(f"{doing}: {e.command}", bold=True)


def _node_finished(e: ev.NodeFinished) -> str:
    ok = e.status in _OK
    mark = click.style("✓" if ok else "✗", fg="green" if ok else "red")
    extra = f": {e.message}" if e.message and not ok else ""
    return f"  {mark} {e.name} {e.status} in {e.seconds:.2f}s{extra}"


def _build_finished(e: ev.BuildFinished) -> str:
    done = _and(f"built {plural(len(e.built), 'asset')}" if e.built or e.failed or e.skipped or not e.checks else "",
                f"ran {plural(e.checks, 'check')}" if e.checks else "")
    line = f"{done} in {e.seconds:.2f}s"
    problems = [f"{name} failed (retry in {e.retry_in.get(name, '?')}s)" for name in e.failed]
    problems += [f"check {name} failed" for name in e.failed_checks]
    problems += [f"{len(e.skipped)} skipped"] if e.skipped else []
    problems += [e.error] if e.error else []
    if problems:
        return click.style(f"{line}; {'; '.join(problems)}; dbt log: {e.log_path}", fg="red")
    return click.style(line, fg="green")


def _backing_off(e: ev.BackingOff) -> str:
    waits = ", ".join(f"{name} in {seconds:g}s" for name, seconds in e.retry_in.items())
    return f"holding {', '.join(e.assets)} after failures (retry {waits})"


def _entry(kind: type[E], render: Callable[[E], str]) -> tuple[type[ev.WatchEvent], Callable[[ev.WatchEvent], str]]:
    """A kind's text renderer, typed by its kind (the printer looks it up by the event's own type)."""
    return kind, render  # type: ignore[return-value]


TEXT: Mapping[type[ev.WatchEvent], Callable[[ev.WatchEvent], str]] = dict([
    _entry(ev.Watching, _watching),
    _entry(ev.NewData, _new_data),
    _entry(ev.ObserveFailed, lambda e: click.style(f"cannot observe {e.source}: {e.message}", fg="red")),
    _entry(ev.WarehouseUnreachable, lambda e: click.style(f"{e.message} (asking again in {e.retry_in:g}s)",
                                                          fg="yellow")),
    _entry(ev.Reported, lambda e: "a loader reported new data"),
    _entry(ev.Parsing, lambda e: "project files changed: re-parsing"),
    _entry(ev.Parsed, lambda e: f"re-parsed in {e.seconds}s ({plural(e.assets, 'asset')})"),
    _entry(ev.Stale, _stale),
    _entry(ev.BuildStarted, _build_started),
    _entry(ev.NodeFinished, _node_finished),
    _entry(ev.BuildFinished, _build_finished),
    _entry(ev.Fresh, lambda e: f"everything is fresh ({plural(e.assets, 'asset')})"),
    _entry(ev.BackingOff, _backing_off),
    _entry(ev.Waiting, lambda e: f"waiting: {e.message}"),
    _entry(ev.Error, lambda e: click.style(f"error: {e.message} (retry in {e.retry_in:g}s)", fg="red")),
    _entry(ev.Stopped, lambda e: "stopped"),
    _entry(ev.NotDue, lambda e: (f"{plural(len(e.assets), 'stale asset')} not due yet ({', '.join(e.assets[:5])}"
                                 f"{', …' if len(e.assets) > 5 else ''}); next due at {shown(e.next_due_at or '-')}")),
    _entry(ev.SourceLate, lambda e: click.style(f"{e.source} is late: {e.message}",
                                                fg="red" if e.severity == "error" else "yellow")),
    _entry(ev.SourceRecovered, lambda e: click.style(
        f"{e.source} recovered: new data observed at {shown(e.last_data_at or '-')}", fg="green")),
    _entry(ev.StoreUnreachable, lambda e: click.style(f"state store unreachable: {e.message} (waiting; retry in "
                                                      f"{e.retry_in:g}s)", fg="yellow")),
    _entry(ev.LeaseLost, lambda e: click.style(
        "lease lost: " + ", ".join(f"{a} (taken by {e.holders.get(a, 'another build')})" for a in e.assets)
        + "; built here but not recorded, planning again", fg="yellow")),
    _entry(ev.StoreReconnected, lambda e: click.style(f"state store reachable again (down {e.down_for:g}s): "
                                                      "observing what landed meanwhile", fg="green")),
    _entry(ev.CheckRemoved, lambda e: click.style(f"{e.asset}: {e.message}",
                                            fg="red" if e.state == "missing" else "yellow")),
])


def _fields(event: ev.WatchEvent) -> dict[str, Any]:
    """The event's fields as JSON values (tuples become lists, nested dataclasses objects)."""
    return {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _new_data_json(event: ev.WatchEvent) -> dict[str, Any]:
    """Only the fields its observer fills: files, bytes, newest, in_progress; or watermark."""
    assert isinstance(event, ev.NewData)
    out: dict[str, Any] = {"source": event.source, "observer": event.observer}
    if event.files is not None:
        out.update(files=event.files, bytes=event.bytes)
        if event.newest is not None:
            out["newest"] = event.newest
        if event.in_progress:
            out["in_progress"] = list(event.in_progress)
    else:
        out["watermark"] = event.watermark
    return out


JSON: Mapping[type[ev.WatchEvent], Callable[[ev.WatchEvent], dict[str, Any]]] = {
    **{cls: _fields for cls in ev.EVENT_TYPES.values()},
    ev.NewData: _new_data_json,
}


def _build_failed(event: ev.WatchEvent) -> bool:
    return isinstance(event, ev.BuildFinished) and bool(event.failed or event.failed_checks or event.error)


QUIET: Mapping[type[ev.WatchEvent], Callable[[ev.WatchEvent], bool]] = {
    **{cls: (lambda e: False) for cls in ev.EVENT_TYPES.values()},
    ev.ObserveFailed: lambda e: True,
    ev.WarehouseUnreachable: lambda e: True,
    ev.Error: lambda e: True,
    ev.BuildFinished: _build_failed,
    ev.Stopped: lambda e: True,
    ev.SourceLate: lambda e: True,
    ev.SourceRecovered: lambda e: True,
    ev.StoreUnreachable: lambda e: True,
    ev.StoreReconnected: lambda e: True,
    ev.LeaseLost: lambda e: True,
    ev.CheckRemoved: lambda e: isinstance(e, ev.CheckRemoved) and e.state == "missing",
}


def event_json(event: ev.WatchEvent, at: datetime) -> dict[str, Any]:
    return {"event": event.kind.value, "at": at.isoformat(), **JSON[type(event)](event)}


def event_text(event: ev.WatchEvent, at: datetime, *, quiet: bool = False) -> str | None:
    """The event's lines, each time-stamped; None when ``quiet`` leaves it out."""
    if quiet and not QUIET[type(event)](event):
        return None
    stamp = click.style(at.strftime("%H:%M:%S"), dim=True)
    return "\n".join(f"{stamp} {line}" for line in TEXT[type(event)](event).splitlines())


FORMATS = (OutputFormat.TEXT, OutputFormat.JSON)  # what the printer can print


class WatchPrinter:
    """Prints each event as it comes: text lines, or one JSON object per line."""

    def __init__(self, fmt: OutputFormat, quiet: bool) -> None:
        self.fmt = fmt
        self.quiet = quiet

    def __call__(self, event: ev.WatchEvent) -> None:
        now = datetime.now().astimezone()
        if self.fmt is OutputFormat.JSON:
            click.echo(json.dumps(event_json(event, now)))
            return
        text = event_text(event, now, quiet=self.quiet)
        if text:
            click.echo(text)
