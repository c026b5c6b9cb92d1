"""A manifest written by another dbt than the installed one is used, but not without a word."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

from dbtassets.engine import Options, Project
from tests.conftest import dbtassets


def _written_by(manifest: Path, dbt_version: str) -> None:
    raw = json.loads(manifest.read_text())
    raw["metadata"]["dbt_version"] = dbt_version
    manifest.write_text(json.dumps(raw))  # written now: still newer than the project's files


def test_a_manifest_from_another_dbt_is_named_once_with_both_versions_and_what_to_do(project_dir: Path) -> None:
    installed = version("dbt-core")
    manifest = project_dir / "target" / "manifest.json"
    _written_by(manifest, "1.9.4")
    expected = (f"dbtassets: warning: {manifest} was written by dbt 1.9.4, but dbt {installed} is installed: "
                "its code versions and lineage may not be what this dbt builds; write it again with `dbt parse`")
    status = dbtassets(project_dir, "status", "--no-observe", "--format", "json")
    assert status.returncode == 0, status.stderr
    assert status.stderr.splitlines() == [expected]

    # One committed elsewhere and passed with --manifest: the same word, naming that file.
    committed = project_dir / "docs" / "manifest.json"
    committed.parent.mkdir()
    shutil.copy(manifest, committed)
    passed = dbtassets(project_dir, "--manifest", str(committed), "assets")
    assert passed.returncode == 0, passed.stderr
    assert passed.stderr.splitlines() == [expected.replace(str(manifest), str(committed))]

    # Said once per process, however often the project is loaded again (a watcher reloads at every edit).
    said: list[str] = []
    with Project(Options(project_dir), log=said.append) as project:
        project.status(observe=False)
        project.reload()
        project.status(observe=False)
    assert said == [expected.removeprefix("dbtassets: ")]


def test_a_manifest_from_the_installed_dbt_says_nothing(project_dir: Path) -> None:
    said: list[str] = []
    with Project(Options(project_dir), log=said.append) as project:
        project.status(observe=False)
    assert said == []
