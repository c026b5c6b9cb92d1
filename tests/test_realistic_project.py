"""The benchmark generator's ``--realistic`` project: real dbt parses it, and every section a real manifest
carries is there (benchmarks/generate_project.py, benchmarks/realistic.py, benchmarks/manifest_shape.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, dbtassets

sys.path.insert(0, str(REPO / "benchmarks"))
from generate_project import generate, parse
from manifest_shape import shape
from realistic import Counts

MODELS = 60


@pytest.mark.slow  # one dbt deps and one dbt parse of a 60-model project with ~300 macros: 15-30 s
def test_a_realistic_project_parses_with_every_section_a_real_manifest_has(tmp_path: Path) -> None:
    project = generate(tmp_path / "synth", models=MODELS, sources=3, seeds=1, snapshots=1, realistic=True)
    counts = Counts.for_models(MODELS)
    manifest = parse(project)
    found = shape(manifest)

    assert found["macros from packages"] >= counts.macros
    assert found["packages (with macros)"] == 3
    assert found["docs blocks"] == counts.docs + 3  # the topics and the three column blocks
    assert found["exposures"] == counts.exposures
    assert found["semantic models"] == counts.semantic_models
    assert found["metrics"] == 4 * counts.semantic_models  # simple, simple, ratio, derived
    assert found["groups"] >= 1
    assert found["models in a group"] > 0 and found["models with contract or access"] > 0
    assert found["model versions (nodes with a version)"] == 2 * counts.versioned
    assert found["sources"] == 3 + counts.unread_sources
    assert found["models"] == MODELS + 1 + counts.versioned  # the time spine; each version is a node
    described = json.loads(manifest.read_text())["nodes"]
    model = next(n for n in described.values() if n["resource_type"] == "model" and n["name"].startswith("m_1_"))
    assert model["description"].startswith("## Topic")  # the docs block, rendered into the description
    assert model["columns"]["id"]["description"].startswith("The row's key")

    # dbtassets reads it: every model and version listed, the unread sources named as unobserved
    result = dbtassets(project, "status", "--no-observe", "--all", "--format", "json")
    assert result.returncode == 0, result.stderr
    listed = {asset["unique_id"] for asset in json.loads(result.stdout)["assets"]}
    versioned = {uid for uid in listed if uid.endswith((".v1", ".v2"))}
    assert len(versioned) == 2 * counts.versioned
    assert "model.synth.metricflow_time_spine" in listed
