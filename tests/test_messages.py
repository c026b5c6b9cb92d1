"""Messages that say what happened: counts, names, times and advice, as the commands print them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import dbtassets


def _edit_the_singular_test(project: Path, note: str) -> None:
    test = project / "tests" / "assert_no_negative_amounts.sql"
    test.write_text(test.read_text() + f"\n-- {note}\n")


@pytest.mark.slow
def test_a_run_of_checks_only_says_how_many_checks_it_runs_not_that_it_builds_0_assets(project_dir: Path) -> None:
    assert dbtassets(project_dir, "sync").returncode == 0
    _edit_the_singular_test(project_dir, "reviewed")
    dry = dbtassets(project_dir, "sync", "--dry-run")
    assert dry.stdout.splitlines()[0] == "Would run 1 pending check with:", dry.stdout
    synced = dbtassets(project_dir, "sync")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("Ran 1 pending check with: dbt test --select assert_no_negative_amounts")
    _edit_the_singular_test(project_dir, "reviewed again")
    watched = dbtassets(project_dir, "watch", "--once")
    said = [line.split(" ", 1)[1] for line in watched.stdout.splitlines()]
    assert watched.returncode == 0, watched.stderr
    assert "everything is fresh (8 assets)" not in said and "0 to build:" not in said, said
    assert said[0] == "1 check to run:" and said[1].startswith("  assert_no_negative_amounts (check pending): ")
    assert said[2] == "running 1 check: dbt test --select assert_no_negative_amounts"
    assert said[3].startswith("ran 1 check in ")
