"""benchmarks/run_all.py's README table: each figure with the load average of the step that measured it, and
the floor ratio (``status`` over a bare ``json.load``) beside ``status``'s own figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import run_all


def _step(before: float, after: float) -> dict[str, object]:
    return {"command": "python benchmarks/x.py", "exit_code": 0, "minutes": 0.5, "load_before": before,
            "load_after": after}


def test_the_readme_table_gives_each_figure_with_the_load_average_of_its_step(tmp_path: Path) -> None:
    steps = {"status": _step(0.4, 1.6), "query_status": _step(2.5, 3.0)}
    (tmp_path / "run.json").write_text(json.dumps({"environment": {}, "steps": steps}))
    status = {"meta": {"realistic": True},
              "results": [{"variant": "json.load", "median": 0.2},
                          {"variant": "dbtassets status (warm cache)", "median": 0.5},
                          {"variant": "dbtassets status --format json (warm cache)", "median": 0.3}]}
    (tmp_path / "status.json").write_text(json.dumps(status))
    (tmp_path / "query_status.json").write_text(json.dumps({"status (last observation fresh)": {"median": 0.14}}))

    table = run_all.readme_block(tmp_path, "a summary")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]

    assert rows[0] == "| measured | value | load average (before → after its step) |"
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[1:]]
    by_label = {label: values for label, *values in cells}
    status_row = next(v for k, v in by_label.items() if k.startswith("`dbtassets status`, 5,000 models shaped like"))
    assert status_row == ["0.50 s", "0.4 → 1.6"]
    assert by_label["`status` over a bare `json.load` of its manifest (the floor)"] == ["2.50x", "0.4 → 1.6"]
    assert by_label["`status --format json` over a bare `json.load` of its manifest (the floor)"] == [
        "1.50x", "0.4 → 1.6"]
    assert not any("fresh state" in label for label in by_label)  # not timed in this run: no row
    query_row = next(v for k, v in by_label.items() if k.startswith("`status` on example_project"))
    assert query_row == ["0.14 s", "2.5 → 3.0"]


def test_a_section_kept_by_hand_is_noted_once_however_often_the_page_is_rendered() -> None:
    page = "# Performance\n\n## Before and after\n\nSome figures.\n"
    once = run_all._sections(page)["Before and after"]
    rendered = f"# Performance\n\n## Before and after\n\n{run_all._BY_HAND}\n\n{once}\n"
    assert run_all._sections(rendered)["Before and after"] == "Some figures."
