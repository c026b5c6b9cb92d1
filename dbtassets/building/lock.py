"""One build at a time per project: an advisory file lock under ``<project>/.dbtassets/``.

``flock`` locks belong to the open file, so the kernel releases them when the holder exits,
even by ``kill -9``: a lock left behind by a dead process is recovered by simply taking it.
The file records who holds it, for the message the second process prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from dbtassets.errors import LockError


class BuildLock:
    """Hold with ``with BuildLock(path, "sync"):``; raises :class:`LockError` if another process holds it."""

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = path
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockError(
                f"this project already has a running dbtassets {holder}; stop it or wait for it "
                f"(lock file {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        import socket  # imported where used: most commands never get here

        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                                 "command": " ".join(sys.argv)}).encode())
        self._fd = fd

    def wait(self, stop: threading.Event, on_wait: Callable[[str], None], poll: float = 0.5) -> bool | None:
        """Take the lock, waiting for the holder rather than failing: whether it had to wait.

        ``on_wait`` gets the holder's message once, when waiting starts. None if ``stop`` is set meanwhile.
        """
        waited = False
        while True:
            try:
                self.acquire()
                return waited
            except LockError as exc:
                if not waited:
                    on_wait(str(exc))
                    waited = True
                if stop.wait(poll):
                    return None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BuildLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{info.get('purpose', 'build')} (pid {info.get('pid')} on {info.get('host')}: {info.get('command')})"
    except (OSError, ValueError):
        return "process (holder unknown)"
