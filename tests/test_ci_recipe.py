"""The GitHub Actions recipe in examples/ci/ works on a fresh checkout: its `run:` steps, run here.

The project sits in a subfolder of a git repository, as it often does. The `uses:` steps are done
by the test (a `git clone` is the checkout, a copy is the cache); installing is the test's venv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbtassets.model.project import repository_prefix
from tests.conftest import EXAMPLE, REPO, run_cli

WORKFLOW = REPO / "examples" / "ci" / "dbtassets.yml"
_SKIP = shutil.ignore_patterns("target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal", "__pycache__")
_GIT = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", "-c", "init.defaultBranch=main"]


def _workflow() -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def _git(cwd: Path, *args: str) -> None:
    subprocess.run([*_GIT, *args], cwd=cwd, check=True, capture_output=True)


class Runner:
    """Runs a job's `run:` steps as GitHub would (bash -e, in the workspace, with the workflow's env)."""

    def __init__(self, upstream: Path, tmp: Path) -> None:
        self.upstream = upstream
        self.tmp = tmp
        self.env = {k: str(v) for k, v in _workflow()["env"].items()}

    def checkout(self, name: str, ref: str = "main") -> Path:
        workspace = self.tmp / name
        _git(self.tmp, "clone", "--quiet", str(self.upstream), str(workspace))
        _git(workspace, "checkout", "--quiet", ref)
        return workspace

    def run(self, job: str, step_id: str, workspace: Path, **env: str) -> subprocess.CompletedProcess[str]:
        (step,) = [s for s in _workflow()["jobs"][job]["steps"] if s.get("id") == step_id]
        runner_temp = workspace.parent / f"{workspace.name}-runner-temp"
        runner_temp.mkdir(exist_ok=True)
        bin_dir = str(Path(sys.executable).parent)  # dbt and dbtassets, as `pip install` would put them
        return subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=workspace, capture_output=True, text=True, timeout=600,
            env={**os.environ, **self.env, "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp),
                 "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env})


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A repository with the example project in transform/, one commit on main."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "upstream"
    shutil.copytree(EXAMPLE, repo / "transform", ignore=_SKIP)
    _git(repo, "init", "--quiet")
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "the project")
    return repo


def _branch(repo: Path, name: str, path: str, old: str, new: str) -> None:
    _git(repo, "checkout", "--quiet", "-b", name, "main")
    file = repo / "transform" / path
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new))
    _git(repo, "commit", "--quiet", "-am", name)
    _git(repo, "checkout", "--quiet", "main")


def _annotated_files(stdout: str) -> list[str]:
    return re.findall(r"^::error file=([^,]+),", stdout, re.M)


def test_the_workflow_has_the_steps_this_test_runs() -> None:
    jobs = _workflow()["jobs"]
    assert [s.get("id") for s in jobs["pr-gate"]["steps"]] == [None, None, "install", "production-artifacts", "gate"]
    assert [s.get("id") for s in jobs["deploy"]["steps"]] == [None, None, "install", "restore-state", "sync",
                                                               "save-state"]
    assert [s.get("id") for s in jobs["production-freshness"]["steps"]] == [None, None, "install", "restore-state",
                                                                             "freshness"]


@pytest.mark.slow
def test_the_pull_request_gate_passes_a_reformat_and_fails_a_logic_change(upstream: Path, tmp_path: Path) -> None:
    _branch(upstream, "reformat", "models/staging/stg_orders.sql", "    cast(quantity as integer) as quantity,",
            "    -- how many of the product\n    cast(quantity   as integer)   as quantity,")
    _branch(upstream, "logic", "models/staging/stg_orders.sql", "cast(quantity as integer) as quantity",
            "cast(quantity as integer) * 2 as quantity")
    ci = Runner(upstream, tmp_path)
    for branch, code in [("reformat", 0), ("logic", 1)]:
        workspace = ci.checkout(branch, branch)
        compiled = ci.run("pr-gate", "production-artifacts", workspace, GITHUB_BASE_REF="main")
        assert compiled.returncode == 0, compiled.stdout + compiled.stderr
        gate = ci.run("pr-gate", "gate", workspace)
        assert gate.returncode == code, (branch, gate.stdout, gate.stderr)
        files = _annotated_files(gate.stdout)
        if code == 0:
            assert files == [], gate.stdout
        else:
            assert "transform/models/staging/stg_orders.sql" in files, gate.stdout
            assert all((workspace / f).is_file() for f in files), files  # they attach to the repository's files


@pytest.mark.slow
def test_the_freshness_gate_answers_from_productions_state_store(upstream: Path, tmp_path: Path) -> None:
    ci = Runner(upstream, tmp_path)
    production = ci.checkout("deploy")
    deployed = ci.run("deploy", "sync", production)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    cache = production / "production-state"
    assert (cache / "state.db").is_file()

    def freshness(name: str) -> subprocess.CompletedProcess[str]:
        workspace = ci.checkout(name)
        shutil.copytree(cache, workspace / "production-state")  # what actions/cache/restore does
        return ci.run("production-freshness", "freshness", workspace)

    fresh = freshness("fresh")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    # New orders land in production, and production's watcher observes them.
    orders = production / "transform" / "data" / "raw" / "orders"
    shutil.copy(orders / "orders_0001.csv", orders / "orders_0002.csv")
    observed = subprocess.run([sys.executable, "-m", "dbtassets", "--project-dir", "transform", "--target", "prod",
                               "--state", "production-state/state.db", "observe"], cwd=production,
                              capture_output=True, text=True, timeout=300)
    assert observed.returncode == 0, observed.stdout + observed.stderr
    late = freshness("late")
    assert late.returncode == 1, late.stdout + late.stderr
    files = _annotated_files(late.stdout)
    assert "transform/models/staging/stg_orders.sql" in files, late.stdout
    assert all((tmp_path / "late" / f).is_file() for f in files), files


def test_annotation_paths_start_at_the_repository_top(tmp_path: Path) -> None:
    project = tmp_path / "repo" / "analytics" / "transform"
    project.mkdir(parents=True)
    assert repository_prefix(project) == ""  # no repository: the paths dbt records
    (tmp_path / "repo" / ".git").mkdir()
    assert repository_prefix(project) == "analytics/transform/"
    assert repository_prefix(tmp_path / "repo") == ""


@pytest.mark.slow
def test_a_production_manifest_without_compiled_sql_is_refused_with_what_to_do(project_dir: Path) -> None:
    production = project_dir / "production.json"
    shutil.copy(project_dir / "target" / "manifest.json", production)  # from `dbt parse`: no compiled SQL
    model = project_dir / "models" / "staging" / "stg_orders.sql"
    model.write_text(model.read_text().replace("as quantity", "as qty"))
    result = run_cli("--project-dir", str(project_dir), "check", "--against", str(production))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"dbtassets: error: {production}: has no compiled SQL for stg_orders, which this project changes, so a "
        "reformat cannot be told from a logic change; make that manifest with `dbt compile` (or keep the one `dbt "
        "build` writes) on the deployed code and pass it, or its directory, to --against")
