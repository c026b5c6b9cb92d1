"""Options several commands share, and the example at the end of each command's help."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from dbtassets.report.common import OutputFormat

F = TypeVar("F", bound=Callable[..., Any])


def example(command_line: str) -> str:
    """A command's epilog: one example, shown at the end of its --help (tests check every command has one)."""
    return f"\b\nExample:\n  {command_line}"


def selection_options(func: F) -> F:
    func = click.option("--exclude", multiple=True, metavar="SELECTOR",
                        help="dbt selector of assets to leave out (repeatable).")(func)
    return click.option("-s", "--select", multiple=True, metavar="SELECTOR",
                        help="dbt selector syntax: names, +/@ graph operators, tag:, path:, source:, "
                             "resource_type:, config.KEY: (repeatable).")(func)


def format_option(formats: Iterable[OutputFormat]) -> Callable[[F], F]:
    """``--format``, one of ``formats`` (the first is the default); the command receives an :class:`OutputFormat`.

    ``formats`` is usually a table of :mod:`dbtassets.report.formats`: the formats it can render.
    """
    choices = [f.value for f in formats]
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
                        callback=lambda ctx, param, value: OutputFormat(value), help="Output format.")


def against_option(func: F) -> F:
    return click.option("--against", type=click.Path(path_type=Path), default=None, metavar="ARTIFACTS",
                        help="Compare with what is deployed instead of the state: production's manifest.json, or "
                             "the directory holding it, with compiled SQL (from `dbt compile` or `dbt build`). "
                             "What would deploying this project make stale?")(func)


def path_prefix_option(func: F) -> F:
    return click.option("--path-prefix", default=None, metavar="PREFIX",
                        help="Put before the project-relative file paths of --format github annotations "
                             "(default: the project's directory relative to the git repository's top).")(func)
