"""The commands that answer questions: what there is, what is stale and why, what a deploy would change.

Each parses its options, makes one call into the engine and prints the result with the renderer
its ``--format`` picks from :mod:`dbtassets.report.formats`. None of them builds or writes anything:
they open the state store read-only (:func:`~dbtassets.cli.group.reader_of`), and the ones that read
the sources (``status``, ``why``, ``check`` without ``--no-observe``) keep what they observed in memory.
"""

from __future__ import annotations

from pathlib import Path

import click

from dbtassets.cli.group import UsageError, main, reader_of, warn
from dbtassets.cli.options import against_option, example, format_option, path_prefix_option, selection_options
from dbtassets.engine import Project
from dbtassets.errors import ConfigError
from dbtassets.model.project import repository_prefix
from dbtassets.model.sources import duration
from dbtassets.report import formats
from dbtassets.report.common import Gate, OutputFormat
from dbtassets.results import StatusReport
from dbtassets.rules.savings import window_start


@main.command(epilog=example("dbtassets assets --select source:raw --format json"))
@selection_options
@format_option(formats.ASSETS)
@click.pass_context
def assets(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], fmt: OutputFormat) -> None:
    """List the assets: models, seeds, snapshots and sources, with their status as last recorded."""
    project = reader_of(ctx)
    report = project.status(select, exclude, observe=False)
    click.echo(formats.ASSETS[fmt](project.graph, report, project.settings.sources))


@main.command(epilog=example("dbtassets status --select tag:nightly --all"))
@selection_options
@click.option("--all", "show_all", is_flag=True, help="List fresh assets too.")
@click.option("--no-observe", is_flag=True, help="Use the last recorded observations; read no source.")
@click.option("--observe", "force_observe", is_flag=True,
              help="Read every source now, even a query source read within its `every:`.")
@format_option(formats.STATUS)
@click.pass_context
def status(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], show_all: bool,
           no_observe: bool, force_observe: bool, fmt: OutputFormat) -> None:
    """Show stale and missing assets with every reason (observes the sources first).

    A query source read within its `every:` keeps its last reading; --observe reads it now.
    """
    if no_observe and force_observe:
        raise UsageError("--observe and --no-observe contradict each other; give one of them")
    project = reader_of(ctx)
    report = project.status(select, exclude, observe=not no_observe, force=force_observe)
    warn(report.warnings)
    click.echo(formats.STATUS[fmt](project.graph, report, show_all))


@main.command(epilog=example("dbtassets why fact_sales"))
@click.argument("asset")
@click.option("--no-observe", is_flag=True, help="Use the last recorded observations; read no source.")
@format_option(formats.WHY)
@click.pass_context
def why(ctx: click.Context, asset: str, no_observe: bool, fmt: OutputFormat) -> None:
    """Explain an asset's status: the causal chain down to the source that moved."""
    project = reader_of(ctx)
    explanation = project.why(asset, observe=not no_observe)
    click.echo(formats.WHY[fmt](project.graph, explanation))


@main.command(epilog=example("dbtassets lineage stg_orders --upstream --downstream --format mermaid"))
@click.argument("asset")
@click.option("--upstream", is_flag=True, help="What ASSET depends on (alone: only that; default: both ways).")
@click.option("--downstream", is_flag=True, help="What depends on ASSET (alone: only that; default: both ways).")
@format_option(formats.LINEAGE)
@click.pass_context
def lineage(ctx: click.Context, asset: str, upstream: bool, downstream: bool, fmt: OutputFormat) -> None:
    """Show an asset's upstream and downstream assets as a tree, Mermaid, Graphviz dot or JSON."""
    project = reader_of(ctx)
    both = upstream == downstream  # neither flag, or both: both directions
    root, graph = project.lineage(asset, upstream=upstream or both, downstream=downstream or both)
    click.echo(formats.LINEAGE[fmt](graph, root))


def _gate(project: Project, report: StatusReport, path_prefix: str | None, *, against: bool,
          watcher_within: float | None = None) -> Gate:
    """What check and plan print: the report, whether it passes, and the annotations' path prefix."""
    prefix = repository_prefix(project.dbt.directory) if path_prefix is None else path_prefix
    no_watcher = report.watching.missing(watcher_within) if watcher_within is not None and report.watching else None
    return Gate(report, not project.needs_attention(report) and no_watcher is None, against, prefix, no_watcher)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--watcher-within``: a duration such as 90s, 10m or 1h, as in dbtassets.yml."""
    try:
        return None if value is None else duration(Path("."), "--watcher-within", value)
    except ConfigError:
        raise UsageError(f"--watcher-within: expected a duration such as 90s, 10m or 1h, got {value!r}") from None


@main.command(epilog=example("dbtassets check --against prod-artifacts/ --format github"))
@selection_options
@click.option("--no-observe", is_flag=True, help="Use the last recorded observations; read no source.")
@against_option
@click.option("--watcher-within", callback=_duration, default=None, metavar="DURATION",
              help="Also exit 1 unless a watcher of this project and target has beaten within DURATION "
                   "(90s, 10m, 1h): the scheduled gate notices a watcher that died.")
@format_option(formats.GATE)
@path_prefix_option
@click.pass_context
def check(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], no_observe: bool,
          against: Path | None, watcher_within: float | None, fmt: OutputFormat, path_prefix: str | None) -> None:
    """Exit 1 if any selected asset is stale or missing (a CI gate); 0 if all are fresh.

    With --against MANIFEST, exit 1 if deploying the project over that manifest would make
    anything stale (see `dbtassets plan`). With --watcher-within, exit 1 too when no watcher of
    this project and target has beaten within that time (it died, or never ran).
    """
    project = reader_of(ctx)
    if against is not None:
        report = project.plan_against(against, select, exclude)
    else:
        report = project.status(select, exclude, observe=not no_observe)
    warn(report.warnings)
    gate = _gate(project, report, path_prefix, against=against is not None, watcher_within=watcher_within)
    click.echo(formats.GATE[fmt](project.graph, gate))
    ctx.exit(0 if gate.ok else 1)


@main.command(epilog=example("dbtassets plan --against prod-artifacts/manifest.json"))
@selection_options
@click.option("--against", type=click.Path(path_type=Path), required=True, metavar="ARTIFACTS",
              help="What is deployed now: production's manifest.json with compiled SQL (from `dbt compile` or "
                   "`dbt build`), or the directory holding it.")
@format_option(formats.GATE)
@path_prefix_option
@click.pass_context
def plan(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], against: Path, fmt: OutputFormat,
         path_prefix: str | None) -> None:
    """List what deploying this project over another manifest would make stale, and why.

    Semantic: reformatting changes nothing, and a change that only adds columns reaches only the
    models that read them. Compare with dbt's `state:modified+`.
    """
    project = reader_of(ctx)
    report = project.plan_against(against, select, exclude)
    click.echo(formats.GATE[fmt](project.graph, _gate(project, report, path_prefix, against=True)))


@main.command(epilog=example("dbtassets lint --select path:models/marts"))
@selection_options
@format_option(formats.LINT)
@click.pass_context
def lint(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], fmt: OutputFormat) -> None:
    """Find tables and files that models read without a ref() or source(): lineage that would be missing.

    Also lists the sources nothing observes. Exits 1 if a read is undeclared.
    """
    project = reader_of(ctx)
    findings = project.lint(select, exclude)
    click.echo(formats.LINT[fmt](project.graph, findings, project.settings.unobserved))
    ctx.exit(1 if findings else 0)


@main.command(epilog=example("dbtassets history fact_sales --limit 5"))
@click.argument("asset")
@click.option("--limit", default=20, show_default=True, help="How many builds to show, newest first.")
@format_option(formats.HISTORY)
@click.pass_context
def history(ctx: click.Context, asset: str, limit: int, fmt: OutputFormat) -> None:
    """Show an asset's builds: when, which run, code version, input versions, duration, rows."""
    project = reader_of(ctx)
    node, entries = project.history(asset, limit)
    click.echo(formats.HISTORY[fmt](node, entries, project.graph))


@main.command(epilog=example("dbtassets savings --since 7d"))
@click.option("--since", default="7d", show_default=True, metavar="SPAN",
              help="The window: 7d, 12h, 30m, 2w back from now, or an ISO date such as 2026-11-01 (UTC).")
@format_option(formats.SAVINGS)
@click.pass_context
def savings(ctx: click.Context, since: str, fmt: OutputFormat) -> None:
    """Show what building only the stale set saved: dbtassets' builds against a full `dbt build` at each run.

    Warehouse seconds avoided are estimated per asset from the median of its recorded dbt
    execution times; the output's footer states the assumptions.
    """
    project = reader_of(ctx)
    try:
        start = window_start(since, project.clock.now())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    click.echo(formats.SAVINGS[fmt](project.savings(start)))
