"""The command line's surface: help text, documentation, exports, entry points."""

from __future__ import annotations

import html
import importlib
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import dbtassets
from dbtassets import report as render
from dbtassets.cli import main as cli
from dbtassets.engine import Project
from tests.conftest import REPO, FakeClock, FakeRunner, run_cli

README = (REPO / "README.md").read_text()
CLI_REFERENCE = REPO / "docs" / "reference" / "cli.md"


def require_docs_tools() -> None:
    """The docs extra (mkdocs, mkdocs-click) is part of the test extra: skip without it, but never in CI."""
    try:
        import markdown  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocs_click  # noqa: F401
    except ImportError as missing:
        reason = f"{missing.name} is not installed (pip install -e \".[test]\" installs the docs tools)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must build the documentation")
        pytest.skip(reason)


def generated_reference() -> str:
    """docs/reference/cli.md as the site shows it: its mkdocs-click block expanded, as text."""
    require_docs_tools()
    import markdown

    page = markdown.markdown(CLI_REFERENCE.read_text(), extensions=["mkdocs-click", "fenced_code"])
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_every_command_and_option_has_help_text() -> None:
    assert isinstance(cli, click.Group)
    commands = sorted(cli.commands)
    assert commands == ["assets", "check", "history", "lineage", "lint", "observe", "plan", "report", "savings",
                        "status", "sync", "ui", "watch", "why"]
    runner = CliRunner()
    for name in commands:
        command = cli.commands[name]
        assert command.help and len(command.help) > 20, name
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help text"


def test_the_cli_reference_is_generated_from_the_click_group_the_console_script_runs() -> None:
    directive = dict(re.findall(r"^    :(\w+): (.+)$", CLI_REFERENCE.read_text(), re.M))
    assert "::: mkdocs-click" in CLI_REFERENCE.read_text()
    module = importlib.import_module(directive["module"])
    assert getattr(module, directive["command"]) is cli
    assert directive["prog_name"] == "dbtassets"


def test_every_command_and_option_is_in_the_generated_cli_reference() -> None:
    reference = generated_reference()
    # each command's part runs from its usage line ("dbtassets why [OPTIONS] ASSET") to the next one
    sections = dict(re.findall(r"^dbtassets (\w+) \[OPTIONS\](.*?)(?=^dbtassets \w+ \[OPTIONS\]|\Z)", reference,
                               re.S | re.M))
    assert sorted(sections) == sorted(cli.commands), "docs/reference/cli.md does not document every command"
    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in (*param.opts, *param.secondary_opts):
                    assert opt in sections[name], f"dbtassets {name} {opt} is not in the generated CLI reference"
    for param in cli.params:  # the global options, in the group's own section
        if isinstance(param, click.Option):
            assert all(opt in reference for opt in param.opts), param.opts


def test_readme_quick_start_commands_are_the_ones_ci_runs() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    assert blocks[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert blocks[0].endswith("dbtassets --project-dir example_project watch")
    test_command = next(b for b in blocks if "pytest" in b)
    assert test_command == 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
    ci = (REPO / ".ci/run").read_text()
    assert test_command in ci
    assert ".venv/bin/mkdocs build --strict" in ci


def test_the_readme_links_only_to_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (REPO / target).exists(), f"README.md links to {target}, which does not exist"


def test_the_readme_is_read_in_five_minutes() -> None:
    size = len(README.encode())
    assert size < 12_000, f"README.md is {size:,} bytes: move the detail into a page under docs/ and link to it"


def test_the_docs_site_builds_strictly_and_offline(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, or a page left out of the nav, fails it."""
    require_docs_tools()
    # Any attempt to reach the network goes to a closed port; the Material banner about its end of life is noise.
    offline = {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, **offline, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stdout + built.stderr
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) > 10
    for page in pages:  # nothing loaded from elsewhere: no CDN script, stylesheet or font
        loaded = re.findall(r"<(?:script|link|img)\b[^>]*?(?:src|href)=\"((?:https?:)?//[^\"]+)\"", page.read_text())
        assert not loaded, (page, loaded)


def test_python_dash_m_and_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dbtassets, version {dbtassets.__version__}"


def test_the_public_surface_is_explicit() -> None:
    assert sorted(dbtassets.__all__) == sorted(
        ["AssetGraph", "AssetSavings", "AssetStatus", "ConfigError", "DbtAssetsError", "Explanation", "HistoryEntry",
         "Interrupted", "LockError", "ManifestError", "Node", "Observation", "ObservationError", "ObserveOutcome",
         "Options", "Project", "ProjectError", "Reason", "ReasonCode", "RunnerError", "Savings", "SelectionError",
         "Snapshot", "StateError", "Status", "StatusReport", "StoreUnreachable", "SyncPlan", "SyncResult", "UniqueId",
         "Verdict", "__version__"])
    for name in dbtassets.__all__:
        assert hasattr(dbtassets, name), name
    for name in dbtassets.__all__:
        value = getattr(dbtassets, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, dbtassets.DbtAssetsError), name
        if isinstance(value, type):  # a docstring of its own, not the signature dataclasses write
            assert value.__doc__ and not value.__doc__.startswith(f"{name}("), f"{name} has no docstring"


VERBS = ["observe", "report", "status", "why", "lineage", "history", "plan", "sync", "build", "plan_against", "lint",
         "savings"]


def test_every_type_a_project_verb_returns_is_public() -> None:
    def named(hint: object) -> set[type]:
        found = {hint} if isinstance(hint, type) and hint.__module__.startswith("dbtassets") else set()
        for arg in typing.get_args(hint):
            found |= named(arg)
        return found

    returned: set[type] = set()
    for verb in VERBS:
        returned |= named(typing.get_type_hints(getattr(dbtassets.Project, verb))["return"])
    assert returned, "no verb return type was found: the test would pass vacuously"
    assert {t.__name__ for t in returned} - set(dbtassets.__all__) == set()
    assert all(getattr(dbtassets, t.__name__) is t for t in returned)


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
    assert lineage("--upstream").splitlines() == ["stg_orders", "  upstream:", "    └ raw.orders (source)"]
    assert lineage("--upstream", "--downstream") == lineage()  # both flags: both directions, as without them
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


def test_every_command_has_an_example_and_the_help_lists_the_exit_codes() -> None:
    runner = CliRunner()
    for name in cli.commands:  # type: ignore[attr-defined]
        shown = runner.invoke(cli, [name, "--help"]).output
        assert re.search(rf"Example:\n +dbtassets .*\b{name}\b", shown), (name, shown)
    shown = runner.invoke(cli, ["--help"]).output
    for code in ("0 ", "1 ", "2 ", "130", "143"):
        assert re.search(rf"^    {code}", shown, re.M), (code, shown)


def test_options_go_before_or_after_the_command(project_dir: Path, tmp_path: Path) -> None:
    expected = run_cli("--project-dir", str(project_dir), "--format", "json", "status", "--no-observe", "--all",
                       cwd=tmp_path)
    assert expected.returncode == 0, expected.stderr
    assert json.loads(expected.stdout)["assets"]
    after = run_cli("status", "--no-observe", "--all", "--format", "json", "--project-dir", str(project_dir),
                    cwd=tmp_path)
    assert (after.returncode, after.stdout) == (expected.returncode, expected.stdout)


def test_a_target_missing_from_the_profile_is_one_message(project_dir: Path) -> None:
    result = run_cli("--project-dir", str(project_dir), "--target", "staging", "status")
    assert result.returncode == 2
    assert result.stderr == (f"dbtassets: error: {project_dir}/profiles.yml: profile 'shopflow' has no target "
                             "'staging'; its targets are dev, prod, pg; pass one of them with --target\n")


def test_without_profiles_yml_it_says_where_it_looked(project_dir: Path, tmp_path: Path) -> None:
    (project_dir / "profiles.yml").unlink()
    (project_dir / "target" / "manifest.json").unlink()  # so that dbt would have to parse
    result = run_cli("--project-dir", str(project_dir), "status", env={"HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr == (f"dbtassets: error: no profiles.yml: looked for {project_dir}/profiles.yml or "
                             f"{tmp_path}/.dbt/profiles.yml; pass --profiles-dir DIR (or set DBT_PROFILES_DIR) to "
                             "the directory that holds it\n")


def test_history_names_each_input_and_when_its_version_was_made(
        fake_project: tuple[Project, FakeRunner, FakeClock]) -> None:
    project, _, _ = fake_project
    assert project.sync().ok
    node, entries = project.history("stg_orders")
    text = click.unstyle(render.history_text(node, entries, project.graph))
    header, row = text.splitlines()
    assert header.split() == ["FINISHED", "RUN", "STATUS", "CODE", "DURATION", "ROWS", "INPUTS"]
    assert row.startswith("2026-11-25T09:00:00.006Z ")  # to the millisecond, as every time in text output
    assert row.endswith("raw.orders (2026-11-25T09:00:00.002Z)")


def test_counts_read_as_english() -> None:
    assert [render.plural(n, "asset") for n in (0, 1, 2)] == ["0 assets", "1 asset", "2 assets"]
