"""Messages that say what happened: counts, names, times and advice, as the commands print them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Node, ResourceType, UniqueId
from dbtassets.model.sources import load_settings
from dbtassets.report.text import lint_text
from dbtassets.words import noun, plural
from tests.conftest import REPO, dbtassets


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


def test_no_message_counts_with_s_in_parentheses_or_an_inline_plural() -> None:
    package = REPO / "dbtassets"
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in sorted(package.rglob("*.py")) if path.name != "words.py"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\w\(s\)|'s' if|\"s\" if", line)]
    assert found == [], "say counts with dbtassets.words.plural / noun"
    assert [plural(1, "asset"), plural(0, "asset"), plural(3, "asset")] == ["1 asset", "0 assets", "3 assets"]
    assert f"compare {noun(1, 'its', 'their')} SQL" == "compare its SQL"


def test_many_sources_without_an_observer_are_one_warning_that_points_to_lint(tmp_path: Path) -> None:
    sources = [Node(UniqueId(f"source.p.raw.t{i}"), f"t{i}", ResourceType.SOURCE, "p", ("p", "raw", f"t{i}"),
                    "models/s.yml", (), "", (), "", source_name="raw", relation_name=f'"db"."raw"."t{i}"')
               for i in range(250)]
    settings = load_settings(tmp_path, sources)
    assert settings.warnings == ("250 sources have no observer (raw.t0, raw.t1, raw.t2, …): changes to them are "
                                 "not detected; `dbtassets lint` lists them; declare files, query or reported for "
                                 "them in dbtassets.yml",)
    listed = lint_text(AssetGraph({}, {}, {}), {}, settings.unobserved).splitlines()
    assert len(listed) == 251 and listed[1].startswith("source raw.t0 has no observer")


def test_a_report_shows_the_version_the_loader_gave(project_dir: Path) -> None:
    reported = dbtassets(project_dir, "report", "raw.orders", "--version", "v42")
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.strip() == "Recorded new data for raw.orders (data version v42)."


def test_an_unknown_command_is_one_line_with_the_closest_name_and_exit_2(project_dir: Path) -> None:
    typo = dbtassets(project_dir, "stauts")
    assert (typo.returncode, typo.stdout) == (2, "")
    assert typo.stderr.splitlines() == ["dbtassets: error: no command 'stauts'; did you mean status? "
                                        "`dbtassets --help` lists the commands"]


def test_plan_against_a_missing_path_says_what_against_needs(project_dir: Path, tmp_path: Path) -> None:
    missing = dbtassets(project_dir, "plan", "--against", str(tmp_path / "prod-artifacts"))
    assert missing.returncode == 2
    (line,) = missing.stderr.splitlines()
    assert "`dbt compile`" in line and "production" in line, line
    assert "dbt parse" not in line and "--manifest" not in line, line


@pytest.mark.parametrize("file", ["dbtassets.yml", "profiles.yml", "dbt_project.yml"])
def test_a_yaml_error_names_the_file_not_a_unicode_string(project_dir: Path, file: str) -> None:
    path = project_dir / file
    path.write_text("sources:\n  raw.orders:\n    files: [data/raw/orders/*.csv\n")
    before = {p: p.read_bytes() for p in project_dir.rglob("*.db")}
    broken = dbtassets(project_dir, "status", "--no-observe")
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    (line,) = broken.stderr.splitlines()
    assert line.startswith(f"dbtassets: error: {path}: ") and "<unicode string>" not in line, line
    assert "line 4, column 1: did not find expected ',' or ']' (while parsing a flow sequence)" in line, line
    assert {p: p.read_bytes() for p in project_dir.rglob("*.db")} == before
