"""Targets: which warehouse each is, and the state store keeping their records apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbtassets.errors import ProjectError
from dbtassets.model.project import load_project
from dbtassets.model.targets import resolve_targets
from tests.conftest import run_cli

PROFILES = """
shop:
  target: "{{ env_var('SHOP_TARGET', 'dev') }}"
  outputs:
    dev: {type: duckdb, path: "{{ env_var('SHOP_DEV_PATH', 'dev.duckdb') }}"}
    dev_again: {type: duckdb, path: "./data/../dev.duckdb"}
    prod: {type: duckdb, path: /srv/warehouse/prod.duckdb}
    memory: {type: duckdb, path: ":memory:"}
    pg: {type: postgres, host: db.internal, port: 5432, user: me, password: "{{ env_var('NOT_SET_ANYWHERE') }}",
         dbname: analytics, schema: "{{ env_var('PG_SCHEMA', 'public') }}"}
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "dbt_project.yml").write_text("name: shop_project\nprofile: shop\n")
    (tmp_path / "profiles.yml").write_text(PROFILES)
    return tmp_path


def key(project: Path, target: str | None = None) -> str:
    return resolve_targets(load_project(project), None, target).selected.key


def test_a_target_is_the_warehouse_it_resolves_to(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert key(shop) == key(shop, "dev") == key(shop, "dev_again") == "duckdb:dev.duckdb"
    assert key(shop, "prod") == "duckdb:/srv/warehouse/prod.duckdb"
    assert key(shop, "memory") == "duckdb::memory:shop.memory"  # never shared with another target
    # Only what locates the data is read: the unset password variable does not matter.
    assert key(shop, "pg") == "postgres:host=db.internal/port=5432/dbname=analytics/schema=public"
    monkeypatch.setenv("SHOP_DEV_PATH", "elsewhere.duckdb")
    monkeypatch.setenv("SHOP_TARGET", "prod")
    targets = resolve_targets(load_project(shop), None, "dev")
    assert targets.selected.key == "duckdb:elsewhere.duckdb"
    assert targets.default.key == "duckdb:/srv/warehouse/prod.duckdb"


def test_an_unknown_target_names_the_ones_there_are(shop: Path) -> None:
    with pytest.raises(ProjectError) as caught:
        key(shop, "prd")
    assert str(caught.value) == (f"{shop}/profiles.yml: profile 'shop' has no target 'prd'; its targets are dev, "
                                 "dev_again, prod, memory, pg; pass one of them with --target")


def test_no_profiles_yml_says_where_it_looked(shop: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (shop / "profiles.yml").unlink()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ProjectError) as caught:
        key(shop)
    assert str(caught.value) == (f"no profiles.yml: looked for {shop}/profiles.yml or {tmp_path}/home/.dbt/"
                                 "profiles.yml; pass --profiles-dir DIR (or set DBT_PROFILES_DIR) to the directory "
                                 "that holds it")


@pytest.mark.slow
def test_building_dev_says_nothing_about_prod(project_dir: Path) -> None:
    def run(*args: str) -> str:
        result = run_cli("--project-dir", str(project_dir), *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def statuses(*target: str) -> dict[str, str]:
        document = json.loads(run(*target, "status", "--all", "--no-observe", "--format", "json"))
        return {a["name"]: a["status"] for a in document["assets"] if a["resource_type"] != "source"}

    run("sync")
    assert set(statuses().values()) == {"fresh"}
    prod = statuses("--target", "prod")
    assert set(prod.values()) == {"missing"}, prod
    run("--target", "prod", "sync")
    assert (project_dir / "prod.duckdb").exists()
    assert set(statuses("--target", "prod").values()) == {"fresh"}
    assert set(statuses().values()) == {"fresh"}  # dev is untouched by prod's build
    history = json.loads(run("history", "fact_sales", "--format", "json"))
    assert len(history["materializations"]) == 1  # dev's one build; prod's is prod's
