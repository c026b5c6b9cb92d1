"""Ctrl-C and SIGTERM during `sync`: dbt stops, the run is recorded as interrupted at once, exit 130 / 143."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLOW_MODEL = '''
def model(dbt, session):
    import time

    time.sleep(300)  # a build that is still running when the signal comes
    return session.sql("select 1 as x")
'''


def _runs(state: Path) -> list[tuple[int, str, str | None]]:
    if not state.exists():
        return []
    db = sqlite3.connect(state)
    try:
        return db.execute("select id, status, message from runs order by id").fetchall()
    except sqlite3.OperationalError:  # the store is being created
        return []
    finally:
        db.close()


def _working_in(directory: Path) -> list[int]:
    """Processes (other than this one) whose working directory is ``directory``: a dbt left behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if Path(os.readlink(entry / "cwd")) == directory:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds left-over dbt processes through /proc")
def test_a_signal_during_sync_stops_dbt_and_records_the_run_as_interrupted(project_dir: Path) -> None:
    (project_dir / "models" / "slow_model.py").write_text(SLOW_MODEL)
    state = project_dir / ".dbtassets" / "state.db"
    for number, (sig, code) in enumerate([(signal.SIGTERM, 143), (signal.SIGINT, 130)], start=1):
        sync = subprocess.Popen([sys.executable, "-m", "dbtassets", "--project-dir", str(project_dir), "sync",
                                 "-s", "slow_model"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 240  # the first one parses the project first
            while len(_runs(state)) < number or not _working_in(project_dir):
                assert sync.poll() is None, sync.communicate()
                assert time.monotonic() < deadline, "the build never started"
                time.sleep(0.2)
            time.sleep(1.0)  # dbt is inside the model now
            sync.send_signal(sig)
            _, stderr = sync.communicate(timeout=60)
        finally:
            if sync.poll() is None:
                sync.kill()
                sync.wait()
        run_id, status, message = _runs(state)[-1]
        assert sync.returncode == code, stderr
        assert stderr.splitlines()[-1] == (f"dbtassets: interrupted by {sig.name}: dbt was stopped and run {run_id} "
                                           "is recorded as interrupted")
        assert (status, message) == ("interrupted", f"stopped by {sig.name}; nothing recorded")
        assert _working_in(project_dir) == []  # dbt did not outlive the command
