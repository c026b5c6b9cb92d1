"""The ``dbtassets`` group: global options, the project each command opens, and the one error handler.

Library errors (:class:`~dbtassets.errors.DbtAssetsError`) become one line on stderr and exit
code 2 here and nowhere else: :meth:`Group.invoke` catches them from every command. Run as the
program (the console script, ``python -m dbtassets``), the group also turns SIGINT and SIGTERM
into :class:`~dbtassets.errors.Interrupted` and exits 128 + the signal's number.
"""

from __future__ import annotations

import gc
import importlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from dbtassets.building.progress import DbtProgress
from dbtassets.building.runner import Runner, SubprocessRunner
from dbtassets.cli.arguments import AnyOrderGroup
from dbtassets.engine import STATE_ENV, Project
from dbtassets.errors import DbtAssetsError, Interrupted
from dbtassets.results import Options


class UsageError(click.ClickException):
    """A DbtAssetsError on its way to the terminal: exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"dbtassets: error: {self.format_message()}", err=True)


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


# Where each command is defined, in the order the modules register them. A command's module is
# imported the first time the command is asked for, so `status` does not import what `watch`, `sync`
# or `ui` need (the watcher's events, the page's server): a third of its start-up on a large project.
COMMAND_MODULES = {
    **dict.fromkeys(["assets", "status", "why", "lineage", "check", "plan", "lint", "history", "savings"],
                    "dbtassets.cli.answers"),
    **dict.fromkeys(["observe", "report", "sync", "watch"], "dbtassets.cli.builds"),
    "ui": "dbtassets.cli.page",
}


class LazyCommands(dict[str, click.Command]):
    """The group's commands, each module imported when one of its commands is first looked up, and
    every module when the commands are listed (``--help``, the CLI reference)."""

    def _load(self, name: object) -> None:
        module = COMMAND_MODULES.get(name) if isinstance(name, str) else None
        if module is not None and not dict.__contains__(self, name):
            importlib.import_module(module)  # its @main.command decorators add its commands here

    def _load_all(self) -> None:
        for module in dict.fromkeys(COMMAND_MODULES.values()):
            importlib.import_module(module)

    def __getitem__(self, name: str) -> click.Command:
        self._load(name)
        return dict.__getitem__(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        self._load(name)
        return dict.get(self, name, default)

    def __contains__(self, name: object) -> bool:
        self._load(name)
        return dict.__contains__(self, name)

    def __iter__(self) -> Iterator[str]:
        self._load_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._load_all()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._load_all()
        return dict.keys(self)

    def values(self) -> Any:
        self._load_all()
        return dict.values(self)

    def items(self) -> Any:
        self._load_all()
        return dict.items(self)


class Group(AnyOrderGroup):
    """The command group: options in any order, and every command's library errors as one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        """An unknown command is one line (click's own usage error takes four), with the closest name."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib  # imported where used: most commands never get here

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"no command {name!r}; {hint}`dbtassets --help` lists the commands")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DbtAssetsError as exc:
            raise UsageError(" ".join(str(exc).split())) from None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run as the program: the console script and ``python -m dbtassets`` (tests call :meth:`main`)."""
        # One-shot commands allocate many small objects and exit: the cyclic collector only costs
        # time there (a fifth of `status` on large projects). `watch` turns it back on.
        gc.disable()
        # Ctrl-C and SIGTERM stop the command where it is (a sync stops dbt and records the run as
        # interrupted) and exit 128 + the signal's number. `watch` installs its own handlers: it exits 0.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        kwargs.setdefault("prog_name", "dbtassets")
        try:
            return self.main(*args, **kwargs)
        except Interrupted as stop:
            recorded = f": dbt was stopped and run {stop.run_id} is recorded as interrupted" if stop.run_id else ""
            click.echo(f"dbtassets: interrupted by {stop.signal_name}{recorded}", err=True)
            sys.exit(128 + stop.signum)


@click.group("dbtassets", cls=Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
@click.option("--vars", "cli_vars", default=None, metavar="YAML",
              help="dbt's --vars, e.g. '{scenarios: 150}': over dbt_project.yml's vars in code versions, and "
                   "passed to every dbt command.")
@click.option("--observe-timeout", "observe_timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="How long the sources' watermark queries may take once dbt connects to the warehouse "
                   "(default: observe.timeout in dbtassets.yml, else 10); past it they keep their last readings.")
@click.pass_context
def main(ctx: click.Context, project_dir: Path, profiles_dir: Path | None, target: str | None,
         state_path: str | None, manifest_path: Path | None, cli_vars: str | None,
         observe_timeout: float | None) -> None:
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
    options = Options(project_dir, profiles_dir.resolve() if profiles_dir else None, target, state, manifest_path,
                      vars=parse_vars(cli_vars) if cli_vars is not None else {}, observe_timeout=observe_timeout)

    def open_project(runner: Runner | None = None, read_only: bool = False) -> Project:
        project = Project(replace(options, read_only=read_only), runner=runner,
                          log=lambda message: click.echo(f"dbtassets: {message}", err=True))
        ctx.call_on_close(project.close)
        if read_only and runner is None:  # a reader parses and compiles in this process: one dbt import, not two
            from dbtassets.building.inprocess import ParsingInProcess

            project.runner = ParsingInProcess(project.target, warn=lambda message: project.log(f"warning: {message}"))
        shown = project.runner.subprocess if hasattr(project.runner, "subprocess") else project.runner
        if sys.stderr.isatty() and isinstance(shown, SubprocessRunner):  # quiet when piped
            progress = DbtProgress(lambda line: click.echo(click.style(line, dim=True), err=True))
            shown.on_command, shown.on_line = progress.command, progress.line
        return project

    ctx.obj = open_project


def parse_vars(text: str) -> dict[str, Any]:
    """``--vars`` as dbt reads it: a YAML (or JSON) mapping."""
    import yaml  # only when --vars is given

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise UsageError(f"--vars {text!r}: {problem}; give a YAML mapping, e.g. --vars '{{key: value}}'") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"--vars {text!r} is not a mapping; give a YAML mapping, e.g. --vars '{{key: value}}'")
    return value


def project_of(ctx: click.Context, runner: Runner | None = None) -> Project:
    """The project the global options name, opened (with ``runner`` if given) and closed with the command."""
    opener: Callable[[Runner | None, bool], Project] = ctx.obj
    return opener(runner, False)


def reader_of(ctx: click.Context) -> Project:
    """The project, for a command that answers questions: its state store is read, never written
    (what it observes stays in memory), and a ``--state`` that does not exist is an error."""
    opener: Callable[[Runner | None, bool], Project] = ctx.obj
    return opener(None, True)


def warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        click.echo(click.style(f"warning: {warning}", fg="yellow"), err=True)
