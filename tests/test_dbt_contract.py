"""What dbtassets.building.inprocess assumes about dbt-core's and dbt-duckdb's internals, one test per assumption.

When a dbt upgrade breaks one, the failing test's message names the assumption, what is missing and
what inprocess.py does with it; the watcher then runs dbt as a subprocess instead (tested below).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dbtassets.building import dbt_contract, inprocess
from dbtassets.building.dbt_contract import CONTRACT, Assumption
from dbtassets.building.runner import BuildResult, DbtTarget, NodeStatus, SubprocessRunner
from dbtassets.model.project import load_project


@pytest.mark.parametrize("assumption", CONTRACT, ids=lambda a: a.name)
def test_the_installed_dbt_keeps_what_inprocess_relies_on(assumption: Assumption) -> None:
    problem = assumption.problem()
    assert problem is None, problem


def test_every_status_dbt_can_give_a_node_is_a_node_status() -> None:
    from dbt.artifacts.schemas.results import NodeStatus as DbtNodeStatus

    assert {str(s.value) for s in DbtNodeStatus} <= {s.value for s in NodeStatus}
    assert {s for s in NodeStatus if s.failed} == {NodeStatus.ERROR, NodeStatus.FAIL, NodeStatus.RUNTIME_ERROR}


def test_a_status_a_newer_dbt_adds_counts_as_a_failure_not_a_crash() -> None:
    assert NodeStatus("reused") is NodeStatus.ERROR and NodeStatus("reused").failed


def test_a_broken_assumption_says_which_and_why_it_matters() -> None:
    gone = Assumption("dbt.nowhere.gone", "needs it to pass the butter", lambda: dbt_contract._has("dbt", "gone")())
    assert gone.problem() == "dbt.nowhere.gone: dbt.gone does not exist (inprocess.py needs it to pass the butter)"
    raising = Assumption("an import", "imports it", lambda: dbt_contract._fields("dbt.no_such_module", "X")())
    assert (raising.problem() or "").startswith("an import: ModuleNotFoundError: No module named 'dbt.no_such_module'")


def test_when_an_assumption_breaks_the_watcher_says_so_once_and_runs_dbt_as_a_subprocess(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = Assumption("dbtRunner(manifest=)", "reuses the parsed manifest", lambda: "it is gone")
    monkeypatch.setattr(dbt_contract, "CONTRACT", (*CONTRACT, broken))
    warnings: list[str] = []
    runner = inprocess.in_process_runner(DbtTarget(load_project(project_dir)), warnings.append)
    assert isinstance(runner, SubprocessRunner)
    (warning,) = warnings
    assert "dbtRunner(manifest=): it is gone (inprocess.py reuses the parsed manifest)" in warning
    assert warning.endswith("running dbt as a subprocess instead")


class _Subprocess:
    """Stands in for the subprocess runner the in-process one falls back to."""

    builds: ClassVar[list[list[str]]] = []

    def __init__(self, target: DbtTarget) -> None:
        self.target = target

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = ()) -> BuildResult:
        self.builds.append(list(selectors))
        return BuildResult("dbt build", 0, (), self.target.project.dbt_log)


def test_an_internal_that_breaks_at_run_time_switches_to_the_subprocess_runner_once_for_good(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def renamed(*args: Any) -> None:
        raise AttributeError("'ModelNode' object has no attribute 'extra_ctes_injected'")

    monkeypatch.setattr(inprocess, "SubprocessRunner", _Subprocess)
    monkeypatch.setattr(inprocess, "_reset_compilation", renamed)
    warnings: list[str] = []
    runner = inprocess.InProcessRunner(DbtTarget(load_project(project_dir)), warn=warnings.append)
    runner._manifest = object()  # as after a parse: the next build resets its compile state
    for _ in range(3):
        assert runner.build(["stg_orders+"]).returncode == 0
    assert _Subprocess.builds == [["stg_orders+"]] * 3
    (warning,) = warnings  # said once, not at every build
    assert "extra_ctes_injected" in warning and warning.endswith("running dbt as a subprocess from now on")
