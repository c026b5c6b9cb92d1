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


# Anything that looks like a date and time, with whatever precision, offset or suffix it carries.
TIME_LIKE = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?(?: UTC)?")
ONE_FORMAT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")  # ISO-8601, UTC, milliseconds


def _land_orders(project: Path) -> None:
    batch = project / "data/raw/orders/orders_0002.csv"
    batch.write_text("order_id,customer_id,ordered_at,product,quantity,unit_price\n"
                     "900,1,2026-11-20 10:00:00,ink,1,7.25\n")


@pytest.mark.slow
def test_every_time_in_text_output_has_one_format(project_dir: Path) -> None:
    assert dbtassets(project_dir, "sync").returncode == 0
    assert dbtassets(project_dir, "report", "raw.customers").returncode == 0
    _land_orders(project_dir)
    _edit_the_singular_test(project_dir, "reviewed")
    outputs = {" ".join(args): dbtassets(project_dir, *args) for args in [
        ("status",), ("why", "fact_sales"), ("history", "stg_orders"), ("history", "stg_customers"), ("check",),
        ("savings",), ("watch", "--once"), ("status",)]}
    times = {name: TIME_LIKE.findall(run.stdout + run.stderr) for name, run in outputs.items()}
    assert times["why fact_sales"] and times["history stg_orders"] and times["watch --once"], times
    assert {name: [t for t in found if not ONE_FORMAT.fullmatch(t)] for name, found in times.items()} == {
        name: [] for name in outputs}


@pytest.mark.slow
def test_history_of_a_deleted_model_reads_its_recorded_builds(project_dir: Path) -> None:
    assert dbtassets(project_dir, "sync").returncode == 0
    (project_dir / "models/marts/dim_customer.sql").unlink()
    marts = project_dir / "models/marts/_marts.yml"
    marts.write_text(marts.read_text().split("  - name: dim_customer")[0])
    history = dbtassets(project_dir, "history", "dim_customer")
    assert history.returncode == 0, history.stderr
    gone, header, row = history.stdout.splitlines()
    assert gone == "dim_customer is not in the project any more (model.shopflow.dim_customer); its recorded builds:"
    assert header.split()[:3] == ["FINISHED", "RUN", "STATUS"] and row.split()[1:3] == ["1", "success"]
    unknown = dbtassets(project_dir, "history", "dim_customers")
    assert unknown.returncode == 2 and "no asset named 'dim_customers'" in unknown.stderr
