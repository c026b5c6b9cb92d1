"""The ``dbtassets`` command line: parse options, make one call into the engine, render the result.

Library errors (:class:`~dbtassets.errors.DbtAssetsError`) become one line on stderr and exit
code 2 here and nowhere else.
"""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from dbtassets.building.progress import DbtProgress
from dbtassets.building.runner import Runner, SubprocessRunner
from dbtassets.cli.arguments import AnyOrderGroup
from dbtassets.engine import STATE_ENV, Project, unobserved
from dbtassets.errors import DbtAssetsError, Interrupted
from dbtassets.model.manifest import ResourceType
from dbtassets.model.project import repository_prefix
from dbtassets.report import render, watchlog
from dbtassets.results import Options, StatusReport
from dbtassets.rules.savings import window_start

F = TypeVar("F", bound=Callable[..., Any])


class UsageError(click.ClickException):
    """A DbtAssetsError on its way to the terminal: exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"dbtassets: error: {self.format_message()}", err=True)


def fail(exc: DbtAssetsError) -> NoReturn:
    raise UsageError(" ".join(str(exc).split())) from None


def selection_options(func: F) -> F:
    func = click.option("--exclude", multiple=True, metavar="SELECTOR",
                        help="dbt selector of assets to leave out (repeatable).")(func)
    return click.option("-s", "--select", multiple=True, metavar="SELECTOR",
                        help="dbt selector syntax: names, +/@ graph operators, tag:, path:, source:, "
                             "resource_type:, config.KEY: (repeatable).")(func)


def format_option(*choices: str, default: str = "text") -> Callable[[F], F]:
    """``--format``, one of ``choices``; the command receives a :class:`~dbtassets.report.render.OutputFormat`."""
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
                        callback=lambda ctx, param, value: render.OutputFormat(value), help="Output format.")


@click.group(cls=AnyOrderGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="dbtassets")
@click.option("--project-dir", type=click.Path(path_type=Path), envvar="DBT_PROJECT_DIR", default=".",
              show_default=True, help="The dbt project (env DBT_PROJECT_DIR).")
@click.option("--profiles-dir", type=click.Path(path_type=Path), envvar="DBT_PROFILES_DIR", default=None,
              help="Where profiles.yml is (env DBT_PROFILES_DIR; dbt's default otherwise).")
@click.option("--target", envvar="DBT_TARGET", default=None, help="dbt target (env DBT_TARGET).")
@click.option("--state", "state_path", envvar=STATE_ENV, default=None,
              help=f"State store: a file, or postgresql://user@host:5432/db for team mode (env {STATE_ENV}; "
                   "default <project>/.dbtassets/state.db).")
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path), default=None,
              help="Use this manifest.json as is (no dbt parse).")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path, profiles_dir: Path | None, target: str | None,
        state_path: str | None, manifest_path: Path | None) -> None:
    """Keep a dbt project's data fresh: see what is stale and why, and rebuild exactly that.

    Options go before or after the command: `dbtassets status --target prod` works too.

    \b
    Exit codes:
      0    success; for check: everything selected is fresh
      1    check found stale or missing assets; sync (or watch --once) had a failed
           model or test; lint found reads that no ref() or source() declares
      2    bad usage, configuration, manifest or project, or a selector that
           matches nothing (one line on stderr)
      130  interrupted by Ctrl-C (SIGINT); a sync stops dbt and records its run
      143  stopped by SIGTERM; watch exits 0 on either signal
    """
    state = state_path if state_path is None or "://" in state_path else Path(state_path).resolve()
    options = Options(project_dir, profiles_dir.resolve() if profiles_dir else None, target, state, manifest_path)

    def open_project(runner: Runner | None = None) -> Project:
        try:
            project = Project(options, runner=runner,
                              log=lambda message: click.echo(f"dbtassets: {message}", err=True))
        except DbtAssetsError as exc:
            fail(exc)
        ctx.call_on_close(project.close)
        if sys.stderr.isatty() and isinstance(project.runner, SubprocessRunner):  # quiet when piped
            progress = DbtProgress(lambda line: click.echo(click.style(line, dim=True), err=True))
            project.runner.on_command, project.runner.on_line = progress.command, progress.line
        return project

    ctx.obj = open_project


def project_of(ctx: click.Context, runner: Runner | None = None) -> Project:
    opener: Callable[[Runner | None], Project] = ctx.obj
    return opener(runner)


def warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        click.echo(click.style(f"warning: {warning}", fg="yellow"), err=True)


@cli.command()
@selection_options
@format_option("text", "json")
@click.pass_context
def assets(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], fmt: str) -> None:
    """List the assets: models, seeds, snapshots and sources, with their status as last recorded."""
    project = project_of(ctx)
    try:
        report = project.status(select, exclude, observe=False)
        declarations = project.settings.sources
    except DbtAssetsError as exc:
        fail(exc)
    graph = project.graph
    if fmt == "json":
        click.echo(render.to_json({"assets": [
            {**render.asset_json(graph.assets[u], report.statuses[u]),
             "upstream": list(graph.parents(u)), "checks": list(graph.assets[u].checks),
             **({"observer": declarations[u].describe()} if u in declarations else {})}
            for u in report.selected]}))
    else:
        click.echo(render.assets_text(graph, report, declarations))


@cli.command()
@selection_options
@click.option("--all", "show_all", is_flag=True, help="List fresh assets too.")
@click.option("--no-observe", is_flag=True, help="Use the last recorded observations; read no source.")
@click.option("--observe", "force_observe", is_flag=True,
              help="Read every source now, even a query source read within its `every:`.")
@format_option("text", "json")
@click.pass_context
def status(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], show_all: bool,
           no_observe: bool, force_observe: bool, fmt: str) -> None:
    """Show stale and missing assets with every reason (observes the sources first).

    A query source read within its `every:` keeps its last reading; --observe reads it now.
    """
    if no_observe and force_observe:
        raise UsageError("--observe and --no-observe contradict each other; give one of them")
    project = project_of(ctx)
    try:
        report = project.status(select, exclude, observe=not no_observe, force=force_observe)
    except DbtAssetsError as exc:
        fail(exc)
    warn(report.warnings)
    if fmt == "json":
        shown = [u for u in report.selected if show_all or report.listed(u)]
        click.echo(render.to_json({
            "summary": render.summary(report),
            "assets": [render.asset_json(project.graph.assets[u], report.statuses[u]) for u in shown],
            "warnings": list(report.warnings)}))
    else:
        click.echo(render.status_text(project.graph, report, show_all))


@cli.command()
@click.argument("asset")
@click.option("--no-observe", is_flag=True, help="Use the last recorded observations; read no source.")
@format_option("text", "json")
@click.pass_context
def why(ctx: click.Context, asset: str, no_observe: bool, fmt: str) -> None:
    """Explain an asset's status: the causal chain down to the source that moved."""
    project = project_of(ctx)
    try:
        explanation = project.why(asset, observe=not no_observe)
    except DbtAssetsError as exc:
        fail(exc)
    if fmt == "json":
        click.echo(render.to_json(render.why_json(project.graph, explanation)))
    else:
        click.echo(render.why_text(project.graph, explanation))


@cli.command()
@click.argument("asset")
@click.option("--upstream", is_flag=True, help="What ASSET depends on (alone: only that; default: both ways).")
@click.option("--downstream", is_flag=True, help="What depends on ASSET (alone: only that; default: both ways).")
@format_option("tree", "mermaid", "dot", "json", default="tree")
@click.pass_context
def lineage(ctx: click.Context, asset: str, upstream: bool, downstream: bool, fmt: render.OutputFormat) -> None:
    """Show an asset's upstream and downstream assets as a tree, Mermaid, Graphviz dot or JSON."""
    project = project_of(ctx)
    try:
        both = upstream == downstream  # neither flag, or both: both directions
        root, graph = project.lineage(asset, upstream=upstream or both, downstream=downstream or both)
    except DbtAssetsError as exc:
        fail(exc)
    click.echo(render.lineage(graph, root, fmt))


def against_option(func: F) -> F:
    return click.option("--against", type=click.Path(path_type=Path), default=None, metavar="ARTIFACTS",
                        help="Compare with what is deployed instead of the state: production's manifest.json, or "
                             "the directory holding it, with compiled SQL (from `dbt compile` or `dbt build`). "
                             "What would deploying this project make stale?")(func)


def path_prefix_option(func: F) -> F:
    return click.option("--path-prefix", default=None, metavar="PREFIX",
                        help="Put before the project-relative file paths of --format github annotations "
                             "(default: the project's directory relative to the git repository's top).")(func)


def render_report(project: Project, report: StatusReport, fmt: str, ok: bool, path_prefix: str | None = None,
                  *, against: bool = False) -> None:
    """Stale and missing assets as text, JSON or GitHub annotations (check, and plan or check ``against``)."""
    if fmt == "json":
        click.echo(render.to_json({
            "ok": ok, "summary": render.summary(report),
            "assets": [render.asset_json(project.graph.assets[u], report.statuses[u])
                       for u in report.selected if report.listed(u)],
            "unobserved": unobserved(report), "warnings": list(report.warnings),
            "notes": {project.graph.assets[u].display_name: n for u, n in report.notes.items()}}))
    elif fmt == "github":
        prefix = repository_prefix(project.dbt.directory) if path_prefix is None else path_prefix
        click.echo(render.github_annotations(project.graph, report, prefix))
    elif against and not any(report.listed(uid) for uid in report.selected):
        click.echo(f"This change affects nothing: deploying it leaves every selected asset as it is "
                   f"({render.plural(len(report.selected), 'asset')} compared).")
    else:
        click.echo(render.status_text(project.graph, report, show_all=False))
        for uid, note in report.notes.items():
            click.echo(f"note: {project.graph.assets[uid].display_name}: {note}")


@cli.command()
@selection_options
@click.option("--no-observe", is_flag=True, help="Use the last recorded observations; read no source.")
@against_option
@format_option("text", "json", "github")
@path_prefix_option
@click.pass_context
def check(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], no_observe: bool,
          against: Path | None, fmt: str, path_prefix: str | None) -> None:
    """Exit 1 if any selected asset is stale or missing (a CI gate); 0 if all are fresh.

    With --against MANIFEST, exit 1 if deploying the project over that manifest would make
    anything stale (see `dbtassets plan`).
    """
    project = project_of(ctx)
    try:
        if against is not None:
            report = project.plan_against(against, select, exclude)
        else:
            report = project.status(select, exclude, observe=not no_observe)
    except DbtAssetsError as exc:
        fail(exc)
    warn(report.warnings)
    failing = project.needs_attention(report)
    render_report(project, report, fmt, not failing, path_prefix, against=against is not None)
    ctx.exit(1 if failing else 0)


@cli.command()
@selection_options
@click.option("--against", type=click.Path(path_type=Path), required=True, metavar="ARTIFACTS",
              help="What is deployed now: production's manifest.json with compiled SQL (from `dbt compile` or "
                   "`dbt build`), or the directory holding it.")
@format_option("text", "json", "github")
@path_prefix_option
@click.pass_context
def plan(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], against: Path, fmt: str,
         path_prefix: str | None) -> None:
    """List what deploying this project over another manifest would make stale, and why.

    Semantic: reformatting changes nothing, and a change that only adds columns reaches only the
    models that read them. Compare with dbt's `state:modified+`.
    """
    project = project_of(ctx)
    try:
        report = project.plan_against(against, select, exclude)
    except DbtAssetsError as exc:
        fail(exc)
    render_report(project, report, fmt, not project.needs_attention(report), path_prefix, against=True)


@cli.command()
@selection_options
@format_option("text", "json")
@click.pass_context
def lint(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], fmt: str) -> None:
    """Find tables and files that models read without a ref() or source(): lineage that would be missing.

    Exits 1 if any is found.
    """
    project = project_of(ctx)
    try:
        findings = project.lint(select, exclude)
    except DbtAssetsError as exc:
        fail(exc)
    named = {project.graph.assets[u].display_name: reads for u, reads in findings.items()}
    if fmt == "json":
        click.echo(render.to_json({"undeclared": [{"unique_id": u, "name": project.graph.assets[u].display_name,
                                                    "reads": r} for u, r in findings.items()]}))
    elif not named:
        click.echo("Every table and file the models read is declared with ref() or source().")
    else:
        for name, reads in named.items():
            click.echo(f"{name} reads {', '.join(reads)}, which no ref() or source() declares")
    ctx.exit(1 if findings else 0)


@cli.command()
@selection_options
@format_option("text", "json")
@click.pass_context
def observe(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], fmt: str) -> None:
    """Read every selected source's data version now and record the ones that moved."""
    project = project_of(ctx)
    try:
        sources = [u for u in project.select(select, exclude)
                   if project.graph.assets[u].resource_type == ResourceType.SOURCE]
        outcomes = project.observe(sources)
    except DbtAssetsError as exc:
        fail(exc)
    if fmt == "json":
        click.echo(render.to_json({"observations": [
            {"unique_id": o.unique_id, "name": project.graph.assets[o.unique_id].display_name,
             "observer": o.kind.value, "changed": o.changed, "error": o.error,
             "data_version": o.observation.data_version if o.observation else None,
             "detail": dict(o.observation.detail) if o.observation else {}} for o in outcomes]}))
    else:
        click.echo(render.observe_text(project.graph, outcomes))
    if any(o.error for o in outcomes):
        ctx.exit(2)


@cli.command()
@click.argument("source")
@click.option("--version", "version", default=None, help="The loader's own version id for this load.")
@click.option("--note", default=None, help="Free text stored with the observation.")
@click.pass_context
def report(ctx: click.Context, source: str, version: str | None, note: str | None) -> None:
    """Record that a loader just loaded SOURCE (a push-style observation)."""
    project = project_of(ctx)
    try:
        observation = project.report(source, version, note)
    except DbtAssetsError as exc:
        fail(exc)
    click.echo(f"Recorded new data for {project.graph.assets[observation.unique_id].display_name} "
               f"(data version {observation.data_version}).")


@cli.command()
@click.argument("asset")
@click.option("--limit", default=20, show_default=True, help="How many builds to show, newest first.")
@format_option("text", "json")
@click.pass_context
def history(ctx: click.Context, asset: str, limit: int, fmt: str) -> None:
    """Show an asset's builds: when, which run, code version, input versions, duration, rows."""
    project = project_of(ctx)
    try:
        node, entries = project.history(asset, limit)
    except DbtAssetsError as exc:
        fail(exc)
    if fmt == "json":
        click.echo(render.to_json({"unique_id": node.unique_id, "name": node.display_name,
                                   "resource_type": node.resource_type,
                                   "materializations": [e.to_json() for e in entries]}))
    else:
        click.echo(render.history_text(node, entries, project.graph))


@cli.command()
@click.option("--since", default="7d", show_default=True, metavar="SPAN",
              help="The window: 7d, 12h, 30m, 2w back from now, or an ISO date such as 2026-11-01 (UTC).")
@format_option("text", "json")
@click.pass_context
def savings(ctx: click.Context, since: str, fmt: str) -> None:
    """Show what building only the stale set saved: dbtassets' builds against a full `dbt build` at each run.

    Warehouse seconds avoided are estimated per asset from the median of its recorded dbt
    execution times; the output's footer states the assumptions.
    """
    project = project_of(ctx)
    try:
        start = window_start(since, project.clock.now())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        result = project.savings(start)
    except DbtAssetsError as exc:
        fail(exc)
    click.echo(render.to_json(result.to_json()) if fmt == "json" else render.savings_text(result))


@cli.command(context_settings={"ignore_unknown_options": True})
@selection_options
@click.option("--dry-run", is_flag=True, help="Print the dbt command that would run; build nothing.")
@click.option("--all-stale", is_flag=True,
              help="Build every stale asset now, including those a freshness policy (build_after) holds back.")
@format_option("text", "json")
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def sync(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], dry_run: bool, all_stale: bool,
         fmt: str, dbt_args: tuple[str, ...]) -> None:
    """Build the stale and missing assets that are due once with one `dbt build --select ...`.

    An asset whose freshness.build_after has not yet elapsed waits (see `dbtassets status`).
    Extra dbt flags go after `--`, e.g. `dbtassets sync -- --threads 8`.
    Exits 1 if a model or test failed.
    """
    project = project_of(ctx)
    try:
        result = project.sync(select, exclude, dbt_args, dry_run=dry_run, all_stale=all_stale)
    except DbtAssetsError as exc:
        fail(exc)
    if fmt == "json":
        click.echo(render.to_json(render.sync_json(project.graph, result, dry_run)))
    else:
        click.echo(render.sync_text(project.graph, result, dry_run))
    ctx.exit(0 if dry_run or result.ok else 1)


@cli.command()
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
@format_option("text", "json")
@click.pass_context
def watch(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], once: bool, settle: float | None,
          runner_kind: str, quiet: bool, on_event: str | None, fmt: render.OutputFormat) -> None:
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
    try:
        probe.select(select, exclude)  # a selection that matches nothing is bad usage, not a failed pass
    except DbtAssetsError as exc:
        fail(exc)
    runner: Runner | None = None
    if runner_kind == "in-process":
        try:
            from dbtassets.building.inprocess import in_process_runner

            runner = in_process_runner(probe.target, lambda message: warn([message]))
        except ImportError as exc:
            warn([f"dbt cannot be loaded in this process ({exc}); running dbt as a subprocess instead"])
    project = project_of(ctx, runner) if runner is not None else probe
    printer = watchlog.WatchPrinter(fmt, quiet)
    hook = EventHook(on_event, lambda message: warn([message])) if on_event else None

    def emit(event: WatchEvent) -> None:
        printer(event)
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
    try:
        ok = watcher.run(once=once)
    except DbtAssetsError as exc:
        fail(exc)
    ctx.exit(0 if ok or not once else 1)


# One example per command, shown at the end of its --help (tests check that every command has one).
_EXAMPLES = {
    "assets": "dbtassets assets --select source:raw --format json",
    "status": "dbtassets status --select tag:nightly --all",
    "why": "dbtassets why fact_sales",
    "lineage": "dbtassets lineage stg_orders --upstream --downstream --format mermaid",
    "check": "dbtassets check --against prod-artifacts/ --format github",
    "plan": "dbtassets plan --against prod-artifacts/manifest.json",
    "lint": "dbtassets lint --select path:models/marts",
    "observe": "dbtassets observe --select source:raw",
    "report": "dbtassets report raw.orders --version batch-42 --note 'nightly load'",
    "history": "dbtassets history fact_sales --limit 5",
    "savings": "dbtassets savings --since 7d",
    "sync": "dbtassets --target prod sync --select +fact_sales -- --threads 8",
    "watch": "dbtassets watch --select tag:nightly --settle 2",
}
for _name, _example in _EXAMPLES.items():
    cli.commands[_name].epilog = f"\b\nExample:\n  {_example}"


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    # One-shot commands allocate many small objects and exit: the cyclic collector only costs
    # time there (a fifth of `status` on large projects). `watch` turns it back on.
    gc.disable()
    # Ctrl-C and SIGTERM stop the command where it is (a sync stops dbt and records the run as
    # interrupted) and exit 128 + the signal's number. `watch` installs its own handlers: it exits 0.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="dbtassets")
    except Interrupted as stop:
        recorded = f": dbt was stopped and run {stop.run_id} is recorded as interrupted" if stop.run_id else ""
        click.echo(f"dbtassets: interrupted by {stop.signal_name}{recorded}", err=True)
        sys.exit(128 + stop.signum)
