"""A real ``dbtassets ui`` or ``dbtassets watch --ui`` process, and plain HTTP requests to it."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

URL = re.compile(r"the page is at (http://\S+?/)")


class Served:
    """Starts ``dbtassets --project-dir PROJECT ARGS`` and finds the page's URL in its stderr."""

    def __init__(self, project: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dbtassets", "--project-dir", str(project), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(env or {})})
        self.stderr: list[str] = []
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._url: queue.Queue[str | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            found = URL.search(line)
            if found:
                self._url.put(found.group(1))
        self._url.put(None)

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))

    def url(self, timeout: float = 120) -> str:
        try:
            found = self._url.get(timeout=timeout)
        except queue.Empty:
            found = None
        if found is None:
            raise AssertionError(f"no page URL; exit {self.process.poll()}; stderr: {''.join(self.stderr)}")
        self._url.put(found)  # for the next caller
        return found

    def wait_event(self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda e: True,
                   timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event["event"] == kind and where(event):
                return event
        raise AssertionError(f"no {kind} event within {timeout}s; stderr: {''.join(self.stderr)}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            for thread in self._threads:
                thread.join(timeout=5)
            for pipe in (self.process.stdout, self.process.stderr):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def get(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
        timeout: float = 60) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of one request; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def get_json(url: str, **kwargs: Any) -> tuple[int, Any]:
    status, body, _ = get(url, **kwargs)
    return status, json.loads(body)


def stream(url: str, timeout: float = 60) -> Iterator[dict[str, Any]]:
    """The server-sent events of ``url`` (its ``data:`` lines, decoded), as they come."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                yield json.loads(line[len("data: "):])
