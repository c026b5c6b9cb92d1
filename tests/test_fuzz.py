"""Generated, mutated manifests and dbtassets.yml files: a valid result or our own error, never another exception."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbtassets.errors import ConfigError, ManifestError
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import load_manifest
from dbtassets.model.sources import load_settings
from dbtassets.rules.staleness import compute_statuses
from dbtassets.state.records import StateView
from tests.conftest import examples

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8), st.floats(allow_nan=False))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


@pytest.fixture(scope="module")
def manifest_json(parsed_example: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((parsed_example / "target/manifest.json").read_text())
    return loaded


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into the document (the places a mutation can hit)."""
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document[:3]):
            found.extend(_paths(value, (*prefix, index)))
    return found


def _mutate(document: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> None:
    parent: Any = document
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(value)  # later mutations must not reach into hypothesis's own data


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_manifests_load_or_raise_manifest_error(manifest_json: dict[str, Any], tmp_path: Path,
                                                       data: st.DataObject) -> None:
    document = copy.deepcopy(manifest_json)
    paths = _paths({k: document[k] for k in ("metadata", "nodes", "sources", "macros")})
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths))
        try:
            _mutate(document, path, data.draw(st.sampled_from(["delete", "replace"])), data.draw(VALUES))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the way there
    text = json.dumps(document)
    if data.draw(st.booleans()):
        text = text[: data.draw(st.integers(0, len(text)))]
    path = tmp_path / "manifest.json"
    path.write_text(text)
    try:
        manifest = load_manifest(path, use_cache=False)
    except ManifestError:
        return
    graph = AssetGraph.from_manifest(manifest)  # whatever loads must make a usable graph
    code = {uid: node.code_version for uid, node in graph.assets.items() if node.resource_type != "source"}
    compute_statuses(graph, code, StateView())


CONFIG_KEYS = ["version", "sources", "watch", "raw.orders", "raw.customers", "raw.nope", "files", "query",
               "reported", "every", "settle", "backoff_initial", "backoff_max", "sorces"]
CONFIG_VALUES = st.recursive(
    st.one_of(SCALARS, st.sampled_from(["data/*.csv", "select 1", "5s", "500ms", "soon", True])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(CONFIG_KEYS), inner, max_size=4)),
    max_leaves=10)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(CONFIG_VALUES)
def test_generated_dbtassets_yml_loads_or_raises_config_error(parsed_example: Path, tmp_path: Path,
                                                              config: Any) -> None:
    manifest = load_manifest(parsed_example / "target/manifest.json")
    sources = [n for n in manifest.nodes.values() if n.resource_type == "source"]
    (tmp_path / "dbtassets.yml").write_text(yaml.safe_dump(config))
    try:
        settings_ = load_settings(tmp_path, sources)
    except ConfigError as exc:
        assert "dbtassets.yml" in str(exc)
        return
    assert set(settings_.sources) == {s.unique_id for s in sources}


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_dbtassets_yml(parsed_example: Path, tmp_path: Path, content: bytes) -> None:
    manifest = load_manifest(parsed_example / "target/manifest.json")
    sources = [n for n in manifest.nodes.values() if n.resource_type == "source"]
    (tmp_path / "dbtassets.yml").write_bytes(content)
    with contextlib.suppress(ConfigError):  # our own error is a fine answer; any other exception fails
        load_settings(tmp_path, sources)
