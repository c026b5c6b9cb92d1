"""The sample outputs in README.md and docs/getting-started.md are what the commands print today (docs/samples.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import MUTATION_RUN, REPO


def samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("samples", REPO / "docs" / "samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_with_command_output_has_its_sample_blocks_marked() -> None:
    marked = {(page.name, name) for page, name, _ in samples().blocks()}
    assert marked == {("README.md", "watch"), ("getting-started.md", "watch"), ("getting-started.md", "loop")}


def test_a_block_that_drifted_from_the_output_is_caught() -> None:
    module = samples()
    printed = "09:00:00 watching x\n09:00:01 2 to build:\n09:00:01   a (stale): b\n09:00:01   c (stale): d\n" \
              "09:00:02 built 2 assets in 1.50s"
    assert module.drift("10:11:12 watching x\n...\n10:11:15 built 2 assets in 0.40s", printed) == []
    assert module.drift("10:11:12 watching x\n10:11:13   c (stale): d\n10:11:13   a (stale): b\n...", printed) == []
    assert module.drift("10:11:12 watching x\n...\n10:11:15 built 3 assets in 0.40s", printed) != []
    assert module.drift("Built 1 of 1 asset with: dbt build", "Built 1 of 1 asset with: dbt build --select a") != []


@pytest.mark.slow
@pytest.mark.skipif(MUTATION_RUN, reason="runs the commands in child processes, which run the unmutated code")
def test_the_sample_outputs_are_what_the_commands_print_today(tmp_path: Path) -> None:
    module = samples()
    outputs = {name: module.RUNS[name](tmp_path / name) for name in ("loop", "watch")}
    problems = [f"{page.name} ({name}): {p}" for page, name, block in module.blocks()
                for p in module.drift(block, outputs[name])]
    assert problems == [], "run `python docs/samples.py` and review the diff:\n" + "\n".join(problems)
