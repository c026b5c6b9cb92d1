"""`status` near the cost of reading the manifest: what it imports, how it writes JSON, the cached graph."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dbtassets
from dbtassets.cli import main as cli
from dbtassets.cli.group import COMMAND_MODULES
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import load_manifest
from dbtassets.model.project import load_project
from dbtassets.model.targets import resolve_targets
from dbtassets.report.common import styled_status, table, to_json
from dbtassets.rules.checks import one_line
from dbtassets.rules.statuses import Status
from tests.conftest import MUTATION_RUN
from tests.conftest import dbtassets as run_dbtassets

# Modules that only other commands need: importing any of them would be start-up `status` pays for nothing.
NOT_FOR_STATUS = ("dbtassets.cli.builds", "dbtassets.cli.page", "dbtassets.watch", "dbtassets.ui",
                  "importlib.metadata",  # the installed dbt's version is read from its .dist-info directory's name
                  # imported where a rarer path uses them: a suggestion for a misspelt name, a median of durations,
                  # a dbt child process
                  "difflib", "statistics", "ctypes", "tempfile",
                  # planning, running and recording builds, and leases: `sync` and `watch` import them
                  "dbtassets.builder", "dbtassets.building.steps", "dbtassets.building.recording",
                  "dbtassets.state.leases")


def _modules_status_loads(project_dir: Path) -> set[str]:
    """The modules a ``status --no-observe`` process had imported when it ended (it must succeed)."""
    code = ("import sys\nfrom dbtassets.cli import main\n"
            "try:\n    main(sys.argv[1:], prog_name='dbtassets')\n"
            "except SystemExit as stop:\n    assert not stop.code, stop.code\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code, "--project-dir", str(project_dir), "status", "--no-observe"],
                          capture_output=True, text=True, env=os.environ, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stderr.split())
    assert "dbtassets.cli.answers" in loaded and "dbtassets.engine" in loaded  # the walk saw the command run
    return loaded


@pytest.mark.skipif(MUTATION_RUN, reason="a child process runs the unmutated code (benchmarks/mutation.py)")
def test_status_imports_none_of_what_only_other_commands_use(project_dir: Path) -> None:
    loaded = _modules_status_loads(project_dir)
    assert sorted(m for m in loaded if m.startswith(NOT_FOR_STATUS)) == []


@pytest.mark.skipif(MUTATION_RUN, reason="a child process runs the unmutated code (benchmarks/mutation.py)")
def test_status_parses_no_yaml_until_a_yaml_file_changes(project_dir: Path) -> None:
    assert "yaml" in _modules_status_loads(project_dir)  # the first run reads dbt_project.yml and profiles.yml
    assert "yaml" not in _modules_status_loads(project_dir)  # the next ones take what they gave from target/
    config = project_dir / "dbt_project.yml"
    config.write_text(config.read_text() + "\n# edited\n")
    assert "yaml" in _modules_status_loads(project_dir)
    assert "yaml" not in _modules_status_loads(project_dir)


def test_a_cached_profile_follows_its_env_vars_and_keeps_no_credentials(project_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    profiles = project_dir / "profiles.yml"
    profiles.write_text(profiles.read_text().replace("      schema: analytics", "      schema: analytics\n"
                                                     "      pass: literal-s3cret"))
    dbt = load_project(project_dir)
    monkeypatch.setenv("SHOPFLOW_DUCKDB", "one.duckdb")
    assert resolve_targets(dbt, None, None).selected.key == "duckdb:one.duckdb"
    assert resolve_targets(dbt, None, None).selected.key == "duckdb:one.duckdb"  # from the cache
    monkeypatch.setenv("SHOPFLOW_DUCKDB", "two.duckdb")
    assert resolve_targets(dbt, None, None).selected.key == "duckdb:two.duckdb"
    pg = resolve_targets(dbt, None, "pg")
    assert (pg.selected.key, pg.default.key) == ("postgres:host=127.0.0.1/port=5432/dbname=shopflow/schema=analytics",
                                                 "duckdb:two.duckdb")
    assert pg.env_names >= {"SHOPFLOW_PG_PASSWORD", "SHOPFLOW_PG_HOST"}
    assert resolve_targets(dbt, None, "pg") == pg
    kept = (project_dir / "target" / "dbtassets-yaml.cache").read_bytes()
    assert b"literal-s3cret" not in kept and b"two.duckdb" in kept


def test_every_command_is_found_through_the_table_of_where_commands_live() -> None:
    assert sorted(cli.commands) == sorted(COMMAND_MODULES)  # listing them imports every module
    for name, module in COMMAND_MODULES.items():
        assert cli.commands[name].callback.__module__ == module, name  # type: ignore[union-attr]


def test_the_package_surface_is_imported_on_first_use() -> None:
    assert set(dbtassets._HOMES) == set(dbtassets.__all__) - {"__version__"}
    assert dbtassets.Project.__module__ == "dbtassets.engine"
    assert "Project" in dir(dbtassets)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = dbtassets.Nope  # type: ignore[attr-defined]


DOCUMENTS = [
    {"summary": "1 stale", "assets": [{"unique_id": "model.p.a", "reasons": [{"code": "x", "message": "é \"q\""}]},
                                      {"unique_id": "model.p.b", "reasons": []}],
     "warnings": [], "watcher": None, "nested": {"a": [1, 2.5, True]}},
    {}, {"only": []}, [1, 2], "text", {"n": float("inf")},
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_json_output_is_the_same_document(document: object) -> None:
    assert json.loads(to_json(document)) == json.loads(json.dumps(document))


def test_status_json_writes_each_asset_on_a_line_of_its_own(project_dir: Path) -> None:
    result = run_dbtassets(project_dir, "status", "--no-observe", "--all", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    lines = result.stdout.splitlines()
    start = lines.index('  "assets": [')
    entries = [json.loads(line.strip().rstrip(",")) for line in lines[start + 1:start + 1 + len(document["assets"])]]
    assert len(entries) >= 5 and entries == document["assets"]
    assert lines[start + 1 + len(entries)] == "  ],"
    assert list(document) == ["summary", "assets", "warnings", "watcher"]


def graph_shape(graph: AssetGraph) -> tuple[object, ...]:
    return (list(graph.assets), {u: graph.parents(u) for u in graph}, {u: graph.children(u) for u in graph},
            dict(graph.fed), graph.topological_order())


def test_the_cached_graph_is_the_graph_the_manifest_gives(project_dir: Path) -> None:
    manifest_path = project_dir / "target" / "manifest.json"
    cache = manifest_path.with_name("dbtassets-graph.cache")
    cache.unlink(missing_ok=True)
    manifest = load_manifest(manifest_path)
    expected = graph_shape(AssetGraph.from_manifest(manifest))
    assert graph_shape(AssetGraph.compiled(manifest)) == expected  # derived, and written
    assert cache.is_file()
    cached = AssetGraph.compiled(load_manifest(manifest_path))
    assert "_order" in cached.__dict__  # read back with its order: nothing derived again
    assert graph_shape(cached) == expected
    cache.write_bytes(b"\x00garbage")  # a broken cache is derived again, not fatal
    assert graph_shape(AssetGraph.compiled(load_manifest(manifest_path))) == expected


def test_a_changed_manifest_is_not_given_the_cached_graph(project_dir: Path) -> None:
    manifest_path = project_dir / "target" / "manifest.json"
    AssetGraph.compiled(load_manifest(manifest_path))  # the cache of this manifest
    raw = json.loads(manifest_path.read_text())
    stg = next(uid for uid, node in raw["nodes"].items() if uid.startswith("model.") and node["depends_on"]["nodes"]
               and node["config"]["materialized"] != "ephemeral")
    raw["nodes"][stg]["depends_on"]["nodes"] = []
    manifest_path.write_text(json.dumps(raw))
    changed = load_manifest(manifest_path)
    assert AssetGraph.compiled(changed).parents(stg) == () == AssetGraph.from_manifest(changed).parents(stg)
    given = load_manifest(manifest_path, use_cache=False)  # not through the cache: no cache key, derived
    assert given.cache_key is None and AssetGraph.compiled(given).parents(stg) == ()


def test_the_installed_dbt_is_the_version_importlib_metadata_gives() -> None:
    from importlib.metadata import version

    from dbtassets.model.snapshot import installed_dbt

    assert installed_dbt() == version("dbt-core")


def _folded(message: str, limit: int = 300) -> str:
    """What one_line has always returned: colour codes stripped, whitespace folded, cut (its definition)."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@given(st.lists(st.sampled_from(["a", "é", " ", "  ", "\n", "\t", "\xa0", "\u2028", "\x1b[31m", "\x1b[0m", "x" * 40]))
       .map("".join))
def test_one_line_is_the_folded_message_whatever_it_holds(message: str) -> None:
    assert one_line(message) == _folded(message)
    assert one_line(message, limit=20) == _folded(message, limit=20)


def test_a_message_already_on_one_plain_line_is_returned_as_it_is() -> None:
    message = "upstream stg_orders was never materialized"  # most reasons: nothing to fold, copy or cut
    assert one_line(message) is message


def test_a_table_measures_each_styled_cell_once_and_pads_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [[f"m_{i}", "model", styled_status(Status.MISSING if i % 2 else Status.STALE), "never materialized"]
            for i in range(50)]
    rows += [["", "", "", "and one more reason"]] * 3
    expected = table(rows, ["ASSET", "TYPE", "STATUS", "REASONS"])
    unstyled: list[str] = []
    real = click.unstyle
    monkeypatch.setattr(click, "unstyle", lambda text: unstyled.append(text) or real(text))
    assert table(rows, ["ASSET", "TYPE", "STATUS", "REASONS"]) == expected
    assert sorted(unstyled) == sorted({styled_status(Status.MISSING), styled_status(Status.STALE)})
    lines = click.unstyle(expected).splitlines()
    assert lines[1] == "m_0    model  stale    never materialized"
    assert lines[-1] == " " * 23 + "and one more reason"
    assert styled_status(Status.FRESH) is styled_status(Status.FRESH)  # styled once, not once per row
