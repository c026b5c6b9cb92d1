"""Options where users type them: dbt users write ``dbtassets status --project-dir X``.

click accepts a group's options only before the command and a command's only after it. The
:class:`AnyOrderGroup` moves each to its side first, so ``status --project-dir X --target prod``
and ``--format json status`` both work. Nothing after ``--`` (dbt's own arguments to ``sync``)
is touched, nor an option the command itself has under the same name (``report --version``).
"""

from __future__ import annotations

from collections.abc import Sequence

import click


def _takes_value(command: click.Command, token: str) -> bool | None:
    """Whether option ``token`` of ``command`` takes a value; None if the command has no such option."""
    name = token.split("=", 1)[0]
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return not param.is_flag and not param.count and "=" not in token
    return None


def reorder(group: click.Group, ctx: click.Context, args: Sequence[str]) -> list[str]:
    """``args`` with the group's options before the command and the command's options after it."""
    tokens = list(args)

    def is_command(index: int) -> bool:
        return index < len(tokens) and group.get_command(ctx, tokens[index]) is not None

    position, index = None, 0
    while index < len(tokens):  # the command: the first word that is not an option or an option's value
        token = tokens[index]
        if token == "--" or not token.startswith("-"):
            position = index if is_command(index) else None
            break
        own = _takes_value(group, token)
        # An option of some command (not known yet): a value follows unless the command does.
        index += 2 if own or (own is None and "=" not in token and not is_command(index + 1)) else 1
    if position is None:
        return tokens
    command = group.get_command(ctx, tokens[position])
    assert command is not None
    kept: list[str] = []  # the group's options, in order
    moved: list[str] = []  # the command's options, given before it
    index = 0
    while index < position:
        own = _takes_value(group, tokens[index])
        width = 2 if (own if own is not None else _takes_value(command, tokens[index])) else 1
        (kept if own is not None else moved).extend(tokens[index:index + width])
        index += width
    rest: list[str] = []
    index = position + 1
    while index < len(tokens):
        token = tokens[index]
        if token == "--":
            rest.extend(tokens[index:])
            break
        own = _takes_value(group, token) if token.startswith("-") else None
        if own is not None and _takes_value(command, token) is None:
            width = 2 if own else 1
            kept.extend(tokens[index:index + width])
        else:
            width = 2 if token.startswith("-") and _takes_value(command, token) else 1
            rest.extend(tokens[index:index + width])
        index += width
    return [*kept, tokens[position], *moved, *rest]


class AnyOrderGroup(click.Group):
    """A click group that takes its options after the command and the command's before it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, reorder(self, ctx, args))
