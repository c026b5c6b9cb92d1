"""Versioned models, with real dbt: named as dbt names them, and a removed version does not wedge dbt's parser.

``dbt ls`` lists a versioned model's versions as ``stg_customers.v1`` and ``stg_customers.v2``
(the latest version too); dbt's selectors take ``stg_customers.v2`` or ``stg_customers_v2`` for
one version and ``stg_customers`` for all of them, while ``ref('stg_customers')`` means the latest.

dbt's partial parser has lost track of model versions more than once (dbt-core #8872, #11869, #12666):
its saved state (``target/partial_parse.msgpack``) then no longer knows a version the project still has,
and every dbt command fails until that file is deleted. dbtassets parses once more without it.
"""

from __future__ import annotations

import gc
import json
import subprocess
from pathlib import Path

import pytest

from dbtassets.building.inprocess import InProcessRunner
from dbtassets.building.runner import DbtTarget
from dbtassets.engine import Options, Project
from dbtassets.model.manifest import UniqueId
from dbtassets.model.project import load_project
from dbtassets.model.selection import dbt_selectors
from tests.conftest import dbtassets
from tests.tiny import dbt, write, write_project

V1, V2 = UniqueId("model.tiny.stg_customers.v1"), UniqueId("model.tiny.stg_customers.v2")
SCHEMA = """version: 2
models:
  - name: stg_customers
    latest_version: 2
    columns:
      - name: id
        data_tests: [not_null]
    versions:
      - v: 1
      - v: 2
"""
FILES = {
    "seeds/raw_customers.csv": "id,name\n1,a\n2,b\n",
    "models/stg_customers_v1.sql": "select id, name from {{ ref('raw_customers') }}\n",
    "models/stg_customers_v2.sql": "select id, name, 1 as tier from {{ ref('raw_customers') }}\n",
    "models/old_reader.sql": "select * from {{ ref('stg_customers', v=1) }}\n",
    "models/customers.sql": "select * from {{ ref('stg_customers') }}\n",
    "models/schema.yml": SCHEMA,
}


@pytest.mark.slow
def test_versions_are_named_as_dbt_names_them_and_each_name_is_accepted(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", FILES)
    listed = dbtassets(directory, "assets", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    names = {a["unique_id"]: a["name"] for a in json.loads(listed.stdout)["assets"]}
    assert (names[V1], names[V2]) == ("stg_customers.v1", "stg_customers.v2")

    with Project(Options(directory)) as project:
        for name, meant in [("stg_customers.v1", V1), ("stg_customers.v2", V2), ("stg_customers_v1", V1),
                            ("stg_customers", V2)]:  # a bare name means the latest version, as ref() does
            assert project.why(name, observe=False).status.unique_id == meant, name
            assert project.history(name)[0].unique_id == meant, name
        root, lineage = project.lineage("stg_customers.v1")
        assert root == V1 and set(lineage) == {V1, UniqueId("seed.tiny.raw_customers"),
                                               UniqueId("model.tiny.old_reader")}
        assert set(project.select(["stg_customers.v1"])) == {V1}
        assert set(project.select(["stg_customers_v2+"])) == {V2, UniqueId("model.tiny.customers")}
        assert set(project.select(["stg_customers"])) == {V1, V2}  # dbt's fqn match: every version
        assert dbt_selectors(project.graph, [V1, V2]) == ["stg_customers.v1", "stg_customers.v2"]
    why = dbtassets(directory, "why", "stg_customers.v2")
    assert why.returncode == 0 and why.stdout.startswith("stg_customers.v2"), why.stdout + why.stderr
    # dbt's fqn match never takes a versioned model's version alone as its name.
    alone = dbtassets(directory, "status", "--no-observe", "--select", "v2")
    assert alone.returncode == 2 and "no asset is named 'v2'" in alone.stderr, alone.stderr


def _partial_parse_forgets_version_one(directory: Path) -> None:
    """Leave dbt's partial parse state as its version bugs do: without a version the project still has."""
    import msgpack
    from dbt.parser.manifest import extended_msgpack_decoder, extended_msgpack_encoder

    path = directory / "target" / "partial_parse.msgpack"
    saved = msgpack.unpackb(path.read_bytes(), ext_hook=extended_msgpack_decoder, raw=False, strict_map_key=False)
    del saved["nodes"][V1]
    path.write_bytes(msgpack.packb(saved, default=extended_msgpack_encoder, use_bin_type=True))


@pytest.mark.slow
# dbt opens logs/dbt.log anew at every invocation in a process and leaves the old handle to the garbage collector.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <_io.FileIO:pytest.PytestUnraisableExceptionWarning")
def test_a_partial_parse_that_lost_a_version_is_parsed_again_in_full_and_said(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "tiny", FILES)
    dbt(directory, "parse")
    _partial_parse_forgets_version_one(directory)
    write(directory, {"models/old_reader.sql": "select id from {{ ref('stg_customers', v=1) }}\n"})
    with pytest.raises(subprocess.CalledProcessError):  # dbt alone: fails until partial_parse.msgpack is gone
        dbt(directory, "parse")

    status = dbtassets(directory, "status", "--no-observe", "--format", "json")
    assert status.returncode == 0, status.stderr
    said = [line for line in status.stderr.splitlines() if "partial parse" in line]
    assert len(said) == 1 and said[0].startswith("dbtassets: warning: dbt's partial parse failed (Compilation Error"), \
        status.stderr
    assert said[0].endswith(f"; parsed again with --no-partial-parse, which passed: {directory}/target/"
                            "partial_parse.msgpack was out of step with the project (a dbt bug) and is now rewritten")
    assert "model.tiny.old_reader" in {a["unique_id"] for a in json.loads(status.stdout)["assets"]}

    # The runner that keeps dbt loaded in this process (watch --runner in-process) does the same.
    _partial_parse_forgets_version_one(directory)
    write(directory, {"models/old_reader.sql": "select name from {{ ref('stg_customers', v=1) }}\n"})
    warnings: list[str] = []
    InProcessRunner(DbtTarget(load_project(directory)), warn=warnings.append).parse()
    assert len(warnings) == 1 and warnings[0].startswith("dbt's partial parse failed (Compilation Error"), warnings
    gc.collect()  # dbt's dropped log file handles, now, within this test's warning filter
