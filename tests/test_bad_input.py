"""Bad input gets one clear line on stderr, exit code 2, no traceback, and the state store untouched."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from dbtassets.engine import Options, Project
from tests.conftest import FakeRunner, run_cli


@pytest.fixture
def built_state(project_dir: Path) -> Path:
    """A state store holding one recorded sync (made through the library with a fake runner)."""
    runner = FakeRunner()
    with Project(Options(project_dir), runner=runner) as project:
        runner.project = project
        assert project.sync().ok
    return project_dir / ".dbtassets" / "state.db"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_clean_error(result: object, *needles: str) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, (result.returncode, stderr)  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("dbtassets: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _manifest(project_dir: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((project_dir / "target/manifest.json").read_text())
    return loaded


MANIFEST_CASES: dict[str, tuple[Callable[[Path], str | bytes], str]] = {
    "empty": (lambda p: b"", "the manifest is empty"),
    "truncated": (lambda p: (p / "target/manifest.json").read_bytes()[:5000], "truncated"),
    "not json": (lambda p: "this is not json", "not valid JSON"),
    "a list": (lambda p: "[1, 2]", "expected a JSON object, got list"),
    "no metadata": (lambda p: '{"nodes": {}}', "metadata.dbt_schema_version is missing"),
    "v9": (lambda p: json.dumps({**_manifest(p), "metadata": {
        "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v9.json", "dbt_version": "1.5.0"}}),
        "manifest schema v9 (dbt 1.5.0) is not supported"),
    "v13": (lambda p: json.dumps({**_manifest(p), "metadata": {
        "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v13.json"}}), "schema v13"),
    "nodes not an object": (lambda p: json.dumps({**_manifest(p), "nodes": []}), "key 'nodes'"),
    "node without fqn": (lambda p: json.dumps(_without_fqn(_manifest(p))), "missing key 'fqn'"),
    "another project": (lambda p: json.dumps({**_manifest(p), "metadata": {
        **_manifest(p)["metadata"], "project_name": "elsewhere"}}),  # type: ignore[dict-item]
        "manifest of project 'elsewhere'"),
}


def _without_fqn(manifest: dict[str, object]) -> dict[str, object]:
    nodes: dict[str, dict[str, object]] = manifest["nodes"]  # type: ignore[assignment]
    del nodes["model.shopflow.fact_sales"]["fqn"]
    return manifest


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_bad_manifest(case: str, project_dir: Path, built_state: Path) -> None:
    make, needle = MANIFEST_CASES[case]
    content = make(project_dir)
    bad = project_dir / "bad_manifest.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = digest(built_state)
    result = run_cli("--project-dir", str(project_dir), "--manifest", str(bad), "status")
    line = assert_clean_error(result, needle)
    assert str(bad) in line or case == "another project"
    assert digest(built_state) == before


def test_missing_manifest_path(project_dir: Path) -> None:
    result = run_cli("--project-dir", str(project_dir), "--manifest", str(project_dir / "nope.json"), "status")
    assert_clean_error(result, "nope.json: no manifest there")


CONFIG_CASES = {
    "not yaml": ("sources: [unclosed", "not valid YAML"),
    "top-level list": ("- a\n- b\n", "expected a mapping at the top level"),
    "unknown top key": ("sorces: {}\n", "unknown key 'sorces' (did you mean 'sources'?)"),
    "unknown source key": ("sources:\n  raw.orders:\n    file: x.csv\n",
                           "unknown key sources.raw.orders.'file' (did you mean 'files'?)"),
    "unknown source": ("sources:\n  raw.order:\n    files: x.csv\n",
                       "sources.raw.order: dbt knows no source 'raw.order'; did you mean raw.orders?"),
    "files wrong type": ("sources:\n  raw.orders:\n    files: 12\n", "sources.raw.orders.files: expected a glob"),
    "two observers": ("sources:\n  raw.orders:\n    files: a.csv\n    reported: true\n",
                      "give exactly one of files, query or reported (found files, reported)"),
    "bad duration": ("sources:\n  raw.orders:\n    query: select 1\n    every: soon\n",
                     "sources.raw.orders.every: expected a duration"),
    "empty query": ("sources:\n  raw.orders:\n    query: ''\n", "sources.raw.orders.query: expected SQL"),
    "reported not true": ("sources:\n  raw.orders:\n    reported: yes please\n", "reported: expected `true`"),
    "bad watch key": ("watch:\n  settl: 1s\n", "unknown key watch.'settl' (did you mean 'settle'?)"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_dbtassets_yml(case: str, project_dir: Path, built_state: Path) -> None:
    content, needle = CONFIG_CASES[case]
    (project_dir / "dbtassets.yml").write_text(content)
    before = digest(built_state)
    result = run_cli("--project-dir", str(project_dir), "status")
    assert_clean_error(result, "dbtassets.yml", needle)
    assert digest(built_state) == before


@pytest.mark.parametrize(("args", "needle"), [
    (["why", "fact_sale"], "no asset named 'fact_sale'; did you mean fact_sales?"),
    (["history", "dim_customers"], "did you mean dim_customer?"),
    (["lineage", "zzz"], "no asset named 'zzz'; `dbtassets assets` lists them"),
    (["report", "raw.order"], "did you mean raw.orders?"),
    (["report", "fact_sales"], "'fact_sales' is a model, not a source"),
    (["status", "--select", "colour:red"], "colour"),
    (["sync", "--select", "a++"], "a++"),
])
def test_bad_cli_input(args: list[str], needle: str, project_dir: Path, built_state: Path) -> None:
    before = digest(built_state)
    assert_clean_error(run_cli("--project-dir", str(project_dir), *args), needle)
    assert digest(built_state) == before


TYPOS = {
    "tag:stagin": "no asset has tag 'stagin' (in selector 'tag:stagin'); did you mean tag:staging?",
    "path:model/marts": "no asset is under path 'model/marts' (in selector 'path:model/marts'); did you mean "
                        "path:models/marts",
    "config.materialized:tabel": "no asset has config materialized 'tabel' (in selector 'config.materialized:tabel'); "
                                 "did you mean config.materialized:table?",
    "source:rawx.orders": "no source matches 'rawx.orders' (in selector 'source:rawx.orders'); did you mean "
                          "source:raw.orders",
    "fact_salez": "no asset is named 'fact_salez' (in selector 'fact_salez'); did you mean fact_sales?",
}


@pytest.mark.parametrize("command", ["check", "status", "sync"])
@pytest.mark.parametrize("selector", sorted(TYPOS))
def test_a_selector_that_matches_nothing_fails_the_gate(command: str, selector: str, project_dir: Path,
                                                        built_state: Path) -> None:
    before = digest(built_state)
    assert_clean_error(run_cli("--project-dir", str(project_dir), command, "-s", selector), TYPOS[selector])
    assert digest(built_state) == before


@pytest.mark.parametrize("args", [["assets"], ["lint"], ["observe"], ["plan", "--against", "target/manifest.json"],
                                  ["check", "--against", "target/manifest.json"], ["watch", "--once"]])
def test_every_command_with_select_refuses_a_selector_that_matches_nothing(args: list[str], project_dir: Path,
                                                                          built_state: Path) -> None:
    before = digest(built_state)
    result = run_cli("--project-dir", str(project_dir), *args, "-s", "tag:stagin", cwd=project_dir)
    assert_clean_error(result, TYPOS["tag:stagin"])
    assert digest(built_state) == before


def test_an_exclude_that_matches_nothing_is_one_warning(project_dir: Path, built_state: Path) -> None:
    result = run_cli("--project-dir", str(project_dir), "check", "--no-observe", "--exclude", "tag:stagin")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ("dbtassets: warning: --exclude 'tag:stagin' leaves nothing out: no asset has tag "
                             "'stagin'; did you mean tag:staging?\n")


def test_not_a_dbt_project(tmp_path: Path) -> None:
    assert_clean_error(run_cli("--project-dir", str(tmp_path), "status"), "not a dbt project (no dbt_project.yml)")


def test_state_path_is_a_directory(project_dir: Path, tmp_path: Path) -> None:
    assert_clean_error(run_cli("--project-dir", str(project_dir), "--state", str(tmp_path), "status"),
                       "is a directory")


def test_state_path_is_not_sqlite(project_dir: Path, tmp_path: Path) -> None:
    junk = tmp_path / "state.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    before = digest(junk)
    assert_clean_error(run_cli("--project-dir", str(project_dir), "--state", str(junk), "status"),
                       "is not a dbtassets state store (not an SQLite database)")
    assert digest(junk) == before


def test_state_path_is_another_programs_database(project_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    db.close()
    before = digest(other)
    assert_clean_error(run_cli("--project-dir", str(project_dir), "--state", str(other), "status"),
                       "is an SQLite database but not a dbtassets state store (it has tables invoices)")
    assert digest(other) == before


def test_corrupt_state_is_reported_not_replaced(project_dir: Path, built_state: Path) -> None:
    data = bytearray(built_state.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # wreck the schema page, keep the header
    built_state.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        built_state.with_name(built_state.name + suffix).unlink(missing_ok=True)
    before = digest(built_state)
    line = assert_clean_error(run_cli("--project-dir", str(project_dir), "status"))
    assert "state" in line and ("corrupt" in line or "not a dbtassets state store" in line)
    assert digest(built_state) == before
