"""``--openlineage`` on ``sync`` and ``watch``: where OpenLineage events go (docs/openlineage.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dbtassets.cli.group import warn
from dbtassets.model.sources import CONFIG_FILE
from dbtassets.words import plural

if TYPE_CHECKING:
    from dbtassets.engine import Project
    from dbtassets.openlineage.sender import Sender

F = TypeVar("F", bound=Callable[..., Any])


def openlineage_option(func: F) -> F:
    return click.option("--openlineage", "openlineage", default=None, metavar="URL|file:PATH",
                        help="Send OpenLineage events of each build and observation to URL (an http receiver such "
                             "as Marquez's http://localhost:5000) or append them to PATH. Default: dbtassets.yml's "
                             "openlineage, else the OpenLineage client's own settings (OPENLINEAGE_URL, "
                             "OPENLINEAGE_CONFIG, openlineage.yml); off when none is set.")(func)


def attach(ctx: click.Context, project: Project, option: str | None, selection: Sequence[str] = (), *,
           once: bool = False) -> Sender | None:
    """Hook an emitter to ``project``'s builds when OpenLineage is configured; its sender closes with the command.
    ``once`` (``sync``): its observations are sent with its build's events, or as it ends.

    Raises:
        ConfigError: configured, but the client is not installed or its configuration is wrong (exit 2).
    """
    from dbtassets.openlineage.config import resolve

    found = resolve(option, project.settings.openlineage, project.dbt.directory / CONFIG_FILE)
    if found is None:
        return None
    from dbtassets.openlineage.emitter import Emitter
    from dbtassets.openlineage.sender import Sender

    connect, reach, where = found
    sender = Sender(connect, lambda message: warn([message]), where=where, reach=reach)
    project.builder.listeners.append(Emitter(sender, project.targets.selected.key, selection, observations_wait=once))

    def close() -> None:
        sender.close()
        if sender.dropped:
            warn([f"OpenLineage: {plural(sender.dropped, 'batch', 'batches')} of events not sent to {where}"])

    ctx.call_on_close(close)
    return sender
