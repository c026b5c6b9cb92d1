"""The per-project build lock: one build at a time; a watcher waits for it rather than failing."""

from __future__ import annotations

import threading
from pathlib import Path

from dbtassets.building.lock import BuildLock


def test_a_watcher_waits_for_the_build_lock_says_why_once_and_gives_up_when_stopped(tmp_path: Path) -> None:
    path = tmp_path / ".dbtassets" / "build.lock"
    holder, watcher = BuildLock(path, "sync"), BuildLock(path, "watch build")
    stop, said = threading.Event(), []
    assert watcher.wait(stop, said.append) is False and said == []  # free: taken at once, no message
    watcher.release()
    holder.acquire()
    release = threading.Timer(0.3, holder.release)
    release.start()
    assert watcher.wait(stop, said.append, poll=0.05) is True  # taken once the holder let go
    assert len(said) == 1 and said[0].startswith("this project already has a running dbtassets sync (pid ")
    watcher.release()
    holder.acquire()
    stop.set()
    assert watcher.wait(stop, said.append, poll=0.05) is None  # asked to stop while waiting
    holder.release()
    release.join()
