"""A real ``dbtassets watch`` process, driven by tests through its output.

With ``--format json`` (the default here) each line is an event; in text mode (``fmt="text"``) each
line the watcher prints becomes an event ``{"event": "line", "text": LINE}``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Event = dict[str, Any]


class WatchProcess:
    """Starts the watcher; :meth:`wait_for` blocks until a matching event arrives or times out."""

    def __init__(self, project: Path, *args: str, fmt: str = "json") -> None:
        self.project = project
        self.fmt = fmt
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dbtassets", "--project-dir", str(project), "watch", "--format", fmt, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
        self.events: list[Event] = []
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="watch-events", daemon=True)
        self._reader.start()
        self._seen = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self.fmt == "text":
                self._queue.put({"event": "line", "text": line.rstrip("\n")})
            elif line.startswith("{"):
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def wait_for(self, kind: str, where: Callable[[Event], bool] = lambda e: True, timeout: float = 90) -> Event:
        """The next event of ``kind`` satisfying ``where`` (events before it are kept in ``events``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} event within {timeout}s; saw {[e['event'] for e in self.events]}"
                                     f"; stderr: {self._stderr()}")
            try:
                event = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError(f"watcher exited ({self.process.wait()}) before a {kind!r} event; "
                                     f"saw {[e['event'] for e in self.events]}; stderr: {self._stderr()}")
            self.events.append(event)
            if event["event"] == kind and where(event):
                return event

    def builds(self) -> list[Event]:
        return [e for e in self.events if e["event"] == "build_finished"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the watcher, wait for it to exit, and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                self.events.append(event)
        return code

    def _stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return "(running)"
        return self.process.stderr.read()[-2000:]

    def __enter__(self) -> WatchProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
