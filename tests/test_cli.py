"""The command line's surface: help text, documentation, exports, entry points."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from click.testing import CliRunner

import dbtassets
from dbtassets.cli import cli
from tests.conftest import REPO, run_cli

README = (REPO / "README.md").read_text()


def test_every_command_has_help_and_is_documented_in_the_readme() -> None:
    assert isinstance(cli, click.Group)
    commands = sorted(cli.commands)
    assert commands == ["assets", "check", "history", "lineage", "lint", "observe", "plan", "report", "savings",
                        "status", "sync", "watch", "why"]
    runner = CliRunner()
    for name in commands:
        command = cli.commands[name]
        assert command.help and len(command.help) > 20, name
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert re.search(rf"`dbtassets {name}\b", README), f"`dbtassets {name}` is not documented in README.md"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help text"


def test_readme_quick_start_commands_are_the_ones_ci_runs() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    assert blocks[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert blocks[0].endswith("dbtassets --project-dir example_project watch")
    test_command = next(b for b in blocks if "pytest" in b)
    assert test_command == 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
    assert test_command in (REPO / ".ci/run").read_text()


def test_the_readme_links_only_to_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (REPO / target).exists(), f"README.md links to {target}, which does not exist"


def test_python_dash_m_and_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dbtassets, version {dbtassets.__version__}"


def test_the_public_surface_is_explicit() -> None:
    assert sorted(dbtassets.__all__) == sorted(
        ["AssetStatus", "ConfigError", "DbtAssetsError", "LockError", "ManifestError", "ObservationError", "Options",
         "Project", "ProjectError", "Reason", "ReasonCode", "RunnerError", "SelectionError", "StateError", "Status",
         "StatusReport", "SyncPlan", "SyncResult", "__version__"])
    for name in dbtassets.__all__:
        assert hasattr(dbtassets, name), name
    for name in dbtassets.__all__:
        value = getattr(dbtassets, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, dbtassets.DbtAssetsError), name


def test_json_assets_carry_the_documented_fields(project_dir: Path) -> None:

    document = json.loads(run_cli("--project-dir", str(project_dir), "assets", "--format", "json").stdout)
    for entry in document["assets"]:
        assert {"unique_id", "name", "resource_type", "status", "reasons"} <= set(entry)


def test_lineage_formats(project_dir: Path) -> None:
    def lineage(*args: str) -> str:
        result = run_cli("--project-dir", str(project_dir), "lineage", "stg_orders", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert lineage().splitlines() == ["stg_orders", "  upstream:", "    └ raw.orders (source)", "  downstream:",
                                      "    └ dim_customer (model)", "    └ fact_sales (model)"]
    assert lineage("--downstream").splitlines()[:2] == ["stg_orders", "  downstream:"]
    dot = lineage("--format", "dot")
    assert '"stg_orders" [penwidth=3];' in dot and '"raw.orders" -> "stg_orders";' in dot
    document = json.loads(lineage("--format", "json"))
    assert document["root"] == "model.shopflow.stg_orders"
    assert {a["name"]: a["parents"] for a in document["assets"]}["fact_sales"] == ["model.shopflow.stg_orders"]


def test_assets_and_observe_text(project_dir: Path) -> None:
    assets = run_cli("--project-dir", str(project_dir), "assets").stdout.splitlines()
    assert assets[0].split() == ["ASSET", "TYPE", "BUILT", "AS", "/", "OBSERVED", "BY", "STATUS", "UPSTREAM"]
    rows = {line.split()[0]: line.split()[1:] for line in assets[1:]}
    assert rows["raw.orders"] == ["source", "files", "data/raw/orders/*.csv", "fresh", "-"]
    assert rows["fact_sales"] == ["model", "table,", "3", "checks", "missing", "stg_orders"]
    observed = run_cli("--project-dir", str(project_dir), "observe").stdout.splitlines()
    assert observed[1].split()[:3] == ["raw.orders", "files", "new"]
    again = run_cli("--project-dir", str(project_dir), "observe").stdout.splitlines()
    assert again[1].split()[:3] == ["raw.orders", "files", "unchanged"]
