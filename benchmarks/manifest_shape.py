"""Print the shape of dbt manifests: counts per section, side by side, as a Markdown table.

Usage::

    python benchmarks/manifest_shape.py NAME=path/to/manifest.json [NAME=...] [--json out.json]

Counts: nodes by resource type, macros (and how many come from packages), docs blocks,
exposures, metrics, semantic models, saved queries, groups, sources, model versions, models in a
group, columns with a description, and the file's size. ``generate_project.py --realistic``
is checked against a real project with it (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

# dbt's own macros and the adapters': not a project's packages
BUILTIN = frozenset({"dbt", "dbt_duckdb", "dbt_postgres", "dbt_snowflake", "dbt_bigquery", "dbt_redshift",
                     "dbt_spark", "dbt_databricks"})
ROWS = (
    "models", "model versions (nodes with a version)", "models in a group", "models with contract or access",
    "columns with a description", "data tests", "seeds", "snapshots", "analyses", "sources", "macros",
    "macros from packages", "packages (with macros)", "docs blocks", "exposures", "metrics", "semantic models",
    "saved queries", "groups", "unit tests", "size (MB)",
)


def shape(path: Path) -> dict[str, Any]:
    """Counts per manifest section for the manifest at ``path``."""
    manifest = json.loads(path.read_text())
    project = manifest["metadata"].get("project_name")
    nodes = manifest["nodes"].values()
    by_type = Counter(n["resource_type"] for n in nodes)
    models = [n for n in nodes if n["resource_type"] == "model"]
    macros = manifest["macros"].values()
    packaged = [m for m in macros if m["package_name"] != project and m["package_name"] not in BUILTIN]
    return {
        "models": by_type["model"],
        "model versions (nodes with a version)": sum(1 for n in models if n.get("version") is not None),
        "models in a group": sum(1 for n in models if n.get("group")),
        "models with contract or access": sum(
            1 for n in models if (n.get("contract") or {}).get("enforced") or n.get("access") not in (None, "protected")
        ),
        "columns with a description": sum(
            1 for n in [*nodes, *manifest["sources"].values()] for c in (n.get("columns") or {}).values()
            if c.get("description")
        ),
        "data tests": by_type["test"],
        "seeds": by_type["seed"],
        "snapshots": by_type["snapshot"],
        "analyses": by_type["analysis"],
        "sources": len(manifest["sources"]),
        "macros": len(manifest["macros"]),
        "macros from packages": len(packaged),
        "packages (with macros)": len({m["package_name"] for m in packaged}),
        "docs blocks": sum(1 for d in manifest["docs"].values() if d["package_name"] != "dbt"),
        "exposures": len(manifest["exposures"]),
        "metrics": len(manifest["metrics"]),
        "semantic models": len(manifest["semantic_models"]),
        "saved queries": len(manifest.get("saved_queries", {})),
        "groups": len(manifest.get("groups", {})),
        "unit tests": len(manifest.get("unit_tests", {})),
        "size (MB)": round(path.stat().st_size / 1_000_000, 1),
    }


def table(shapes: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per count, one column per manifest."""
    names = list(shapes)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row in ROWS:
        lines.append(f"| {row} | " + " | ".join(f"{shapes[n][row]:,}" for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifests", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--json", type=Path, help="also write the counts as JSON")
    args = parser.parse_args(argv)
    shapes = {}
    for item in args.manifests:
        name, _, path = item.rpartition("=")
        shapes[name or path] = shape(Path(path))
    print(table(shapes))
    if args.json:
        args.json.write_text(json.dumps(shapes, indent=1))


if __name__ == "__main__":
    main()
