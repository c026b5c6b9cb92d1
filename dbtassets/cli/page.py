"""``dbtassets ui``: the asset-graph page over the state store, for a project nobody watches here.

``watch --ui`` serves the same page from the watcher (:mod:`dbtassets.cli.builds`). Both import
:mod:`dbtassets.ui` only when asked for the page, so ``status`` and ``watch`` without it pay nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from dbtassets.cli.group import main, project_of

if TYPE_CHECKING:
    from dbtassets.building.runner import Runner
    from dbtassets.engine import Project
    from dbtassets.ui.server import UiServer

TOKEN_HELP = ("Token every request must carry (?token=... or Authorization: Bearer ...); required to bind to "
              "anything but loopback (env DBTASSETS_UI_TOKEN).")


def start_page(host: str, port: int, open_project: Callable[[Runner], Project], token: str | None, *,
               watcher: bool, beat: Callable[[], float | None] | None = None,
               dropped: Callable[[], int] | None = None) -> UiServer:
    """Start the page's server in a daemon thread (a one-line error, exit 2, if it cannot: see the group).

    ``open_project`` opens the page's own project with the runner given (one that never builds); ``dropped``
    counts the OpenLineage events the watcher could not send (``/metrics``).
    """
    from dbtassets.ui.live import Live
    from dbtassets.ui.reader import Reader, ReadOnlyRunner
    from dbtassets.ui.server import TOKEN_ENV, UiServer

    token = token or os.environ.get(TOKEN_ENV) or None
    reader = Reader(lambda: open_project(ReadOnlyRunner(parse=not watcher)), Live(watcher), beat, dropped)
    server = UiServer(host, port, reader, token).start()
    shown = f"{server.url}?token=…" if token else server.url
    click.echo(f"dbtassets: the page is at {shown}", err=True)
    return server


@main.command(epilog="\b\nExample:\n  dbtassets ui --port 8580")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --ui-token.")
@click.option("--port", default=8580, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--ui-token", "token", default=None, metavar="TOKEN", help=TOKEN_HELP)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, token: str | None) -> None:
    """Serve the asset-graph page over the state store, read-only, until Ctrl-C.

    Shows each asset's status as last recorded (no source is read, nothing is built) and follows
    new records from other processes (a sync, a watcher elsewhere; the whole team's with
    --state postgresql://...) within a second. /healthz and /metrics beside it.
    """
    project_of(ctx).select()  # the project loads and the store opens: a bad one is one line, exit 2, now
    server = start_page(host, port, lambda runner: project_of(ctx, runner), token, watcher=False)
    ctx.call_on_close(server.close)
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not done.wait(1.0):
        pass
