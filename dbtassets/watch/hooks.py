"""``watch --on-event COMMAND``: hand watch events to the user's own command, one JSON document on its stdin.

A command rather than a webhook URL: it works offline (the tests need no server), needs no HTTP
client, and a webhook is one ``curl --data @- URL`` away, a Slack message one ``jq | curl``. Each
event of :data:`KINDS` starts the command through the shell with the event's JSON on stdin, and the
watcher does not wait for it: a slow or hanging hook never delays a build. A hook that exits non-zero
is reported once it is seen to have ended; hooks still running when the watcher stops get a few
seconds, then are left to finish on their own.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

from dbtassets.watch.events import EventKind

# The events worth acting on: a source late or back, a build's outcome, a failed pass, the state store down or back.
KINDS = frozenset({EventKind.SOURCE_LATE, EventKind.SOURCE_RECOVERED, EventKind.BUILD_FINISHED, EventKind.ERROR,
                   EventKind.STORE_UNREACHABLE, EventKind.STORE_RECONNECTED})


class EventHook:
    """Runs ``command`` for each event of :data:`KINDS`. Call :meth:`close` when the watcher stops."""

    def __init__(self, command: str, warn: Callable[[str], None]) -> None:
        self.command = command
        self.warn = warn
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def __call__(self, kind: str, document: Mapping[str, Any]) -> None:
        self._reap()
        if kind not in KINDS:
            return
        try:
            process = subprocess.Popen(self.command, shell=True, stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            self.warn(f"--on-event {self.command!r} could not start: {exc}")
            return
        assert process.stdin is not None
        try:
            process.stdin.write((json.dumps(document) + "\n").encode())
            process.stdin.close()
        except BrokenPipeError:  # the command did not read its stdin: its business
            pass
        self._running.append((kind, process))

    def close(self, timeout: float = 5.0) -> None:
        """Give running hooks ``timeout`` seconds to end, and report the ones that failed."""
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            self._reap()
            if self._running:
                time.sleep(0.05)
        self._reap()
        for kind, process in self._running:
            self.warn(f"--on-event {self.command!r} for a {kind} event is still running (pid {process.pid}); "
                      "left to finish on its own")
        self._running = []

    def _reap(self) -> None:
        still = []
        for kind, process in self._running:
            code = process.poll()
            if code is None:
                still.append((kind, process))
            elif code != 0:
                self.warn(f"--on-event {self.command!r} exited with code {code} on a {kind} event")
        self._running = still
