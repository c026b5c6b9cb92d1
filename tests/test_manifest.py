"""Reading the manifest: assets, ephemeral collapse, disabled nodes, checks, code versions, the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import UniqueId, load_manifest

FACT = UniqueId("model.shopflow.fact_sales")
DIM = UniqueId("model.shopflow.dim_customer")
STG_ORDERS = UniqueId("model.shopflow.stg_orders")


def raw(project_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((project_dir / "target/manifest.json").read_text())
    return loaded


def write(path: Path, manifest: dict[str, Any]) -> Path:
    path.write_text(json.dumps(manifest))
    return path


def test_example_project_assets(project_dir: Path) -> None:
    manifest = load_manifest(project_dir / "target/manifest.json")
    graph = AssetGraph.from_manifest(manifest)
    kinds = {graph.assets[u].display_name: graph.assets[u].resource_type for u in graph}
    assert kinds == {"raw.orders": "source", "raw.customers": "source", "country_codes": "seed",
                     "stg_orders": "model", "stg_customers": "model", "fact_sales": "model",
                     "dim_customer": "model", "customers_snapshot": "snapshot"}
    assert manifest.nodes[UniqueId("model.shopflow.int_order_lines")].is_ephemeral
    assert graph.parents(FACT) == (STG_ORDERS,)  # through the ephemeral int_order_lines
    assert graph.assets[STG_ORDERS].checks == ("not_null_stg_orders_customer_id", "not_null_stg_orders_order_id",
                                               "unique_stg_orders_order_id")
    assert "assert_no_negative_amounts" in graph.assets[FACT].checks
    assert manifest.schema_version == 12 and manifest.project_name == "shopflow"


def test_disabled_nodes_are_not_assets(project_dir: Path, tmp_path: Path) -> None:
    manifest = raw(project_dir)
    manifest["nodes"]["model.shopflow.dim_customer"]["config"]["enabled"] = False
    loaded = load_manifest(write(tmp_path / "manifest.json", manifest))
    assert DIM not in AssetGraph.from_manifest(loaded)


def test_older_schema_versions_are_read(project_dir: Path, tmp_path: Path) -> None:
    manifest = raw(project_dir)
    manifest["metadata"]["dbt_schema_version"] = "https://schemas.getdbt.com/dbt/manifest/v10.json"
    assert load_manifest(write(tmp_path / "manifest.json", manifest)).schema_version == 10


def test_a_macro_change_reaches_the_models_that_inline_it(project_dir: Path, tmp_path: Path) -> None:
    before = load_manifest(project_dir / "target/manifest.json").nodes
    manifest = raw(project_dir)
    macro = manifest["macros"]["macro.shopflow.line_amount"]
    macro["macro_sql"] = macro["macro_sql"].replace("decimal(12, 2)", "decimal(14, 2)")
    after = load_manifest(write(tmp_path / "manifest.json", manifest)).nodes
    # line_amount is called by the ephemeral int_order_lines, which fact_sales inlines.
    assert after[FACT].code_version != before[FACT].code_version
    assert after[DIM].code_version == before[DIM].code_version
    assert after[STG_ORDERS].code_version == before[STG_ORDERS].code_version


def test_build_config_changes_the_code_version_but_docs_do_not(project_dir: Path, tmp_path: Path) -> None:
    before = load_manifest(project_dir / "target/manifest.json").nodes
    manifest = raw(project_dir)
    manifest["nodes"][str(DIM)]["config"]["materialized"] = "view"
    manifest["nodes"][str(FACT)]["description"] = "new words"
    manifest["nodes"][str(FACT)]["config"]["tags"] = ["a-tag"]
    after = load_manifest(write(tmp_path / "manifest.json", manifest)).nodes
    assert after[DIM].code_version != before[DIM].code_version
    assert after[FACT].code_version == before[FACT].code_version


def test_the_cache_is_used_and_invalidated(project_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "manifest.json", raw(project_dir))
    first = load_manifest(path)
    cache = tmp_path / "dbtassets-manifest.cache"
    assert cache.exists()
    # A current cache is read instead of the JSON: prove it by making the JSON unreadable.
    stat = path.stat()
    path.write_text("x" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_manifest(path).nodes == first.nodes
    # A changed manifest is read again.
    manifest = raw(project_dir)
    manifest["nodes"][str(DIM)]["config"]["enabled"] = False
    write(path, manifest)
    assert DIM not in load_manifest(path).nodes
    # A broken cache is ignored, not fatal.
    cache.write_bytes(b"\x00garbage")
    assert DIM not in load_manifest(path).nodes
