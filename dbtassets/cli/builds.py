"""The commands that change the state: observe the sources, record a load, build what is stale, keep watching."""

from __future__ import annotations

import gc
import signal
from datetime import datetime

import click

from dbtassets.building.runner import Runner
from dbtassets.cli import page
from dbtassets.cli.group import main, project_of, warn
from dbtassets.cli.lineage_events import attach, openlineage_option
from dbtassets.cli.options import example, format_option, selection_options
from dbtassets.model.manifest import ResourceType
from dbtassets.report import formats, text
from dbtassets.report.common import OutputFormat
from dbtassets.watch import log as watchlog


@main.command(epilog=example("dbtassets observe --select source:raw"))
@selection_options
@format_option(formats.OBSERVE)
@click.pass_context
def observe(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], fmt: OutputFormat) -> None:
    """Read every selected source's data version now and record the ones that moved."""
    project = project_of(ctx)
    sources = [u for u in project.select(select, exclude)
               if project.graph.assets[u].resource_type == ResourceType.SOURCE]
    outcomes = project.observe(sources)
    click.echo(formats.OBSERVE[fmt](project.graph, outcomes))
    if any(o.error for o in outcomes):
        ctx.exit(2)


@main.command(epilog=example("dbtassets report raw.orders --version batch-42 --note 'nightly load'"))
@click.argument("source")
@click.option("--version", "version", default=None, help="The loader's own version id for this load.")
@click.option("--note", default=None, help="Free text stored with the observation.")
@click.pass_context
def report(ctx: click.Context, source: str, version: str | None, note: str | None) -> None:
    """Record that a loader just loaded SOURCE (a push-style observation)."""
    project = project_of(ctx)
    click.echo(text.reported_text(project.graph, project.report(source, version, note)))


@main.command(context_settings={"ignore_unknown_options": True},
              epilog=example("dbtassets --target prod sync --select +fact_sales -- --threads 8"))
@selection_options
@click.option("--dry-run", is_flag=True, help="Print the dbt command that would run; build nothing.")
@click.option("--all-stale", is_flag=True,
              help="Build every stale asset now, including those a freshness policy (build_after) holds back.")
@openlineage_option
@format_option(formats.SYNC)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def sync(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], dry_run: bool, all_stale: bool,
         openlineage: str | None, fmt: OutputFormat, dbt_args: tuple[str, ...]) -> None:
    """Build the stale and missing assets that are due once with one `dbt build --select ...`.

    An asset whose freshness.build_after has not yet elapsed waits (see `dbtassets status`).
    Extra dbt flags go after `--`, e.g. `dbtassets sync -- --threads 8`.
    Exits 1 if a model or test failed.
    """
    project = project_of(ctx)
    if not dry_run:
        attach(ctx, project, openlineage, select, once=True)
    result = project.sync(select, exclude, dbt_args, dry_run=dry_run, all_stale=all_stale)
    click.echo(formats.SYNC[fmt](project.graph, result, dry_run))
    ctx.exit(0 if dry_run or result.ok else 1)


@main.command(epilog=example("dbtassets watch --select tag:nightly --settle 2"))
@selection_options
@click.option("--once", is_flag=True, help="One observe-and-sync pass, then exit (for cron and CI).")
@click.option("--settle", type=float, default=None, metavar="SECONDS",
              help="Quiet time before a build (default: watch.settle in dbtassets.yml, else 0.2).")
@click.option("--runner", "runner_kind", type=click.Choice(["in-process", "subprocess"]), default="in-process",
              show_default=True, help="Keep dbt loaded and reuse its parsed manifest, or start dbt per build.")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and errors.")
@click.option("--on-event", "on_event", default=None, metavar="COMMAND",
              help="Run COMMAND (through the shell) for each source_late, source_recovered, build_finished, "
                   "error, store_unreachable and store_reconnected event, with the event's JSON on stdin; e.g. "
                   "'curl --data @- https://hooks.example/x'.")
@click.option("--ui", "ui_address", default=None, metavar="[HOST:]PORT",
              help="Serve the live asset-graph page (and /healthz, /metrics) on PORT, loopback unless HOST is given.")
@click.option("--ui-token", default=None, metavar="TOKEN", help=page.TOKEN_HELP)
@openlineage_option
@format_option(watchlog.FORMATS)
@click.pass_context
def watch(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], once: bool, settle: float | None,
          runner_kind: str, quiet: bool, on_event: str | None, ui_address: str | None, ui_token: str | None,
          openlineage: str | None, fmt: OutputFormat) -> None:
    """Keep the project fresh: rebuild exactly what becomes stale as data lands or code changes.

    Reacts to files landing (inotify), query watermarks (polled), `dbtassets report` from
    other processes and edits to models, macros, seeds, snapshots and YAML. Ctrl-C or SIGTERM
    lets the build in flight finish, records it, and exits 0.
    """
    from dbtassets.watch.events import WatchEvent
    from dbtassets.watch.hooks import EventHook
    from dbtassets.watch.watcher import Watcher

    gc.enable()  # a long-running process
    probe = project_of(ctx)  # validates the project before dbt is imported
    probe.select(select, exclude)  # a selection that matches nothing is bad usage, not a failed pass
    runner: Runner | None = None
    if runner_kind == "in-process":
        try:
            from dbtassets.building.inprocess import in_process_runner

            runner = in_process_runner(probe.target, lambda message: warn([message]))
        except ImportError as exc:
            warn([f"dbt cannot be loaded in this process ({exc}); running dbt as a subprocess instead"])
    project = project_of(ctx, runner) if runner is not None else probe
    lineage = attach(ctx, project, openlineage, select)
    printer = watchlog.WatchPrinter(fmt, quiet)
    hook = EventHook(on_event, lambda message: warn([message])) if on_event else None

    live = None
    if ui_address is not None:
        from dbtassets.ui.server import parse_address

        server = page.start_page(*parse_address(ui_address), lambda r: project_of(ctx, r), ui_token, watcher=True,
                                 beat=lambda: watcher.woke_at,
                                 dropped=(lambda: lineage.dropped) if lineage is not None else None)
        ctx.call_on_close(server.close)
        live = server.reader.live

    def emit(event: WatchEvent) -> None:
        printer(event)
        if live is not None:
            live.publish(watchlog.event_json(event, datetime.now().astimezone()))
        if hook is not None:
            hook(event.kind.value, watchlog.event_json(event, datetime.now().astimezone()))

    if hook is not None:
        ctx.call_on_close(hook.close)
    watcher = Watcher(project, emit, select=select, exclude=exclude, settle=settle)
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if stopping:
            raise KeyboardInterrupt
        stopping.append(signum)
        watcher.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ok = watcher.run(once=once)
    ctx.exit(0 if ok or not once else 1)
