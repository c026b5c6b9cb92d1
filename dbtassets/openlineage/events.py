"""OpenLineage events (spec 2-0-2) as plain JSON documents, made from what a build pass or an observation was.

Names follow the OpenLineage dbt integration (``openlineage-dbt``'s ``DbtArtifactProcessor``), so a catalog
that already shows ``dbt-ol`` runs shows dbtassets' runs as the same jobs and datasets:

- a model's job is ``{database}.{schema}.{unique_id without "model."}.build.run``, a snapshot's
  ``….build.snapshot`` (a seed, which dbt-ol leaves out, ``….build.seed``); the job namespace is
  ``OPENLINEAGE_NAMESPACE`` or ``default``;
- a dataset's namespace is the warehouse's (``duckdb://{path}`` as the profile gives it,
  ``postgres://{host}:{port}``) and its name ``{database}.{schema}.{table}`` (a source over files, whose
  relation is a ``read_csv(...)``, is ``{source}.{table}`` there).

The pass itself is one run of the job ``{project}.dbtassets`` (with the selection, when one was given, after
it); every asset's run names it in its ``parent`` facet.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dbtassets.building.runner import NodeResult
from dbtassets.model.manifest import Node, ResourceType, UniqueId
from dbtassets.model.snapshot import Snapshot

if TYPE_CHECKING:
    from dbtassets.sql.lineage import Schema

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
PRODUCER = "https://github.com/dbtassets/dbtassets"
FACETS = "https://openlineage.io/spec/facets"
CAUSE_SCHEMA = "https://raw.githubusercontent.com/dbtassets/dbtassets/main/dbtassets/openlineage/schemas/CauseRunFacet.json"
_SCHEMAS = {
    "parent": "1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "sql": "1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet",
    "jobType": "2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "schema": "1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "columnLineage": "1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
    "dataSource": "1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet",
    "outputStatistics": "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
    "dataQualityAssertions": "1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
    "version": "1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "errorMessage": "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "processing_engine": "1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
}
_SUFFIX = {ResourceType.MODEL: "run", ResourceType.SNAPSHOT: "snapshot", ResourceType.SEED: "seed"}

Document = dict[str, Any]


def facet(kind: str, **fields: Any) -> Document:
    """A standard facet: its fields with ``_producer`` and ``_schemaURL``."""
    return {"_producer": PRODUCER, "_schemaURL": f"{FACETS}/{_SCHEMAS[kind]}", **fields}


def new_run_id() -> str:
    """A run id: a UUID, time-ordered (v7) as the spec recommends."""
    stamp = int(datetime.now().timestamp() * 1000)
    raw = (stamp << 80) | (0x7 << 76) | (uuid.uuid4().int & ((1 << 76) - 1))
    raw = (raw & ~(0xC << 60)) | (0x8 << 60)  # the RFC 4122 variant
    return str(uuid.UUID(int=raw))


@dataclass(frozen=True)
class Naming:
    """Where the warehouse is (the dataset namespace) and how jobs are named, for one project and target."""

    project: str
    job_namespace: str
    dataset_namespace: str
    dialect: str

    @classmethod
    def of(cls, snapshot: Snapshot, warehouse: str, job_namespace: str) -> Naming:
        """From the target's warehouse key (``duckdb:shopflow.duckdb``, ``postgres:host=…/port=…/dbname=…``)."""
        adapter, _, location = warehouse.partition(":")
        if adapter == "postgres":
            parts = dict(p.split("=", 1) for p in location.split("/") if "=" in p)
            namespace = f"postgres://{parts.get('host', 'localhost')}:{parts.get('port', '5432')}"
        elif adapter:
            namespace = f"{adapter}://{location}"
        else:
            namespace = f"{snapshot.manifest.adapter_type or 'warehouse'}://{snapshot.manifest.project_name}"
        return cls(snapshot.manifest.project_name, job_namespace, namespace, adapter or snapshot.manifest.adapter_type)

    @property
    def sql_dialect(self) -> str | None:
        """sqlglot's name for the warehouse's SQL (None: its generic SQL)."""
        from dbtassets.sql.fingerprint import dialect_of  # sqlglot: only on the sender's thread, making events

        return dialect_of(self.dialect)

    def dataset_name(self, node: Node) -> str:
        """``database.schema.table`` from dbt's relation name (quotes dropped), else the asset's name."""
        if node.relation_name and "(" not in node.relation_name:
            return ".".join(part.strip('"`[]') for part in node.relation_name.split("."))
        # A source over files (``read_csv(...)``) or an asset without a relation: its dbt name.
        return f"{node.source_name}.{node.name}" if node.source_name else node.name

    def job_name(self, node: Node) -> str:
        database_schema = self.dataset_name(node).rpartition(".")[0]
        unique = node.unique_id.split(".", 1)[1] if "." in node.unique_id else node.unique_id
        return ".".join(filter(None, [database_schema, unique, "build", _SUFFIX.get(node.resource_type, "run")]))

    def pass_job(self, selection: Sequence[str]) -> str:
        return f"{self.project}.dbtassets" + (f"[{' '.join(selection)}]" if selection else "")

    def dataset(self, node: Node, **facets: Document) -> Document:
        out: Document = {"namespace": self.dataset_namespace, "name": self.dataset_name(node)}
        if facets:
            out["facets"] = facets
        return out


def run_event(kind: str, at: str, run_id: str, job: tuple[str, str], *, run_facets: Mapping[str, Any] | None = None,
              job_facets: Mapping[str, Any] | None = None, inputs: Sequence[Document] = (),
              outputs: Sequence[Document] = ()) -> Document:
    """One RunEvent: ``kind`` START, COMPLETE or FAIL."""
    return {"eventType": kind, "eventTime": at, "producer": PRODUCER, "schemaURL": f"{SPEC}#/$defs/RunEvent",
            "run": {"runId": run_id, "facets": dict(run_facets or {})},
            "job": {"namespace": job[0], "name": job[1], "facets": dict(job_facets or {})},
            "inputs": list(inputs), "outputs": list(outputs)}


def dataset_event(at: str, dataset: Document) -> Document:
    """One DatasetEvent (a source observed with a new data version)."""
    return {"eventTime": at, "producer": PRODUCER, "schemaURL": f"{SPEC}#/$defs/DatasetEvent", "dataset": dataset}


def parent(run_id: str, job: tuple[str, str]) -> Document:
    return facet("parent", run={"runId": run_id}, job={"namespace": job[0], "name": job[1]})


def built_columns(snapshot: Snapshot, results: Sequence[NodeResult], dialect: str | None) -> dict[str, list[str]]:
    """The output columns of the relations a pass built, from their compiled SQL (in build order, so a star
    over a model built before is expanded): relation name → columns."""
    from dbtassets.sql.lineage import output_columns

    schema: dict[str, list[str]] = {}
    for result in results:
        node = snapshot.graph.assets.get(result.unique_id)
        if node is not None and node.relation_name and result.compiled_code and not result.status.failed:
            columns = output_columns(result.compiled_code, dialect, schema)
            if columns:
                schema[node.relation_name] = columns
    return schema


def derived_lineage(naming: Naming, snapshot: Snapshot, node: Node, sql: str, schema: Schema) -> Document | None:
    """The ``columnLineage`` facet of ``node``'s output: each column's input fields in the datasets it reads
    (:func:`dbtassets.sql.lineage.column_sources`), or None where sqlglot cannot say."""
    from dbtassets.sql.lineage import column_sources  # sqlglot: on the sender's thread only

    graph = snapshot.graph
    inputs = {graph.assets[u].relation_name: graph.assets[u] for u in graph.parents(node.unique_id)
              if u in graph.assets and graph.assets[u].relation_name}
    sources = column_sources(sql, naming.sql_dialect, inputs, schema)
    if not sources:
        return None
    return facet("columnLineage", fields={column: {"inputFields": [
        {"namespace": naming.dataset_namespace, "name": naming.dataset_name(inputs[d.relation]), "field": d.column,
         "transformations": [{"type": "DIRECT", "subtype": d.transformation, "masking": False}]}
        for d in derived]} for column, derived in sources.items()})


def node_events(naming: Naming, snapshot: Snapshot, result: NodeResult, pass_run: tuple[str, tuple[str, str]],
                cause: Document | None, schema: Schema | None = None, *, column_lineage: bool = True) -> list[Document]:
    """START and COMPLETE (or FAIL) of one built model, seed or snapshot, as dbt-ol makes them from run results;
    ``schema``: the columns of the relations it reads, where known (:func:`built_columns`); ``column_lineage``:
    whether to derive the output's ``columnLineage`` facet."""
    from dbtassets.sql.lineage import output_columns  # sqlglot: on the sender's thread only

    graph, node = snapshot.graph, snapshot.graph.assets[result.unique_id]
    ended = result.completed_at or datetime.now().astimezone().isoformat()
    ended_at = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    started = (ended_at - timedelta(seconds=result.execution_time)).isoformat()
    job_facets: Document = {"jobType": facet("jobType", processingType="BATCH", integration="DBT",
                                              jobType=node.resource_type.value.upper())}
    if result.compiled_code:
        job_facets["sql"] = facet("sql", query=result.compiled_code, dialect=naming.dialect)
    run_facets: Document = {"parent": parent(*pass_run),
                            "processing_engine": facet("processing_engine", name="dbt",
                                                       version=snapshot.manifest.dbt_version)}
    if cause is not None:
        run_facets["dbtassets_cause"] = cause
    inputs = [naming.dataset(graph.assets[u]) for u in graph.parents(node.unique_id) if u in graph.assets]
    output_facets: Document = {"dataSource": facet("dataSource", name=naming.dataset_namespace,
                                                   uri=naming.dataset_namespace)}
    sql = result.compiled_code
    columns = output_columns(sql, naming.sql_dialect, schema) if sql else None
    if sql and columns:
        output_facets["schema"] = facet("schema", fields=[{"name": c} for c in columns])
        lineage = derived_lineage(naming, snapshot, node, sql, schema or {}) if column_lineage else None
        if lineage is not None:
            output_facets["columnLineage"] = lineage
    output = naming.dataset(node, **output_facets)
    if result.rows_affected is not None and result.rows_affected >= 0:
        output["outputFacets"] = {"outputStatistics": facet("outputStatistics", rowCount=result.rows_affected)}
    job = (naming.job_namespace, naming.job_name(node))
    start = run_event("START", started, run_id := new_run_id(), job, run_facets=run_facets, job_facets=job_facets,
                      inputs=inputs, outputs=[naming.dataset(node)])
    if result.status.failed:
        failed = {**run_facets, "errorMessage": facet("errorMessage", message=result.message or str(result.status),
                                                        programmingLanguage="SQL")}
        return [start, run_event("FAIL", ended, run_id, job, run_facets=failed, job_facets=job_facets,
                                 inputs=inputs)]
    return [start, run_event("COMPLETE", ended, run_id, job, run_facets=run_facets, job_facets=job_facets,
                             inputs=inputs, outputs=[output])]


def check_events(naming: Naming, snapshot: Snapshot, results: Sequence[NodeResult], at: str,
                 pass_run: tuple[str, tuple[str, str]]) -> list[Document]:
    """The checks that ran, as ``dataQualityAssertions`` on each dataset they test (one test run per dataset)."""
    by_asset: dict[UniqueId, list[Document]] = {}
    for r in results:
        check = snapshot.manifest.checks.get(r.unique_id)
        if check is None:
            continue
        for asset in check.assets:
            if asset in snapshot.graph.assets:
                by_asset.setdefault(asset, []).append(
                    {"assertion": check.name, "success": not r.status.failed, "name": check.kind.value})
    events = []
    for asset, assertions in sorted(by_asset.items()):
        node = snapshot.graph.assets[asset]
        tested = naming.dataset(node)
        tested["inputFacets"] = {"dataQualityAssertions": facet("dataQualityAssertions", assertions=assertions)}
        job = (naming.job_namespace, f"{naming.dataset_name(node)}.test")
        run_id, facets = new_run_id(), {"parent": parent(*pass_run)}
        ok = all(a["success"] for a in assertions)
        events += [run_event("START", at, run_id, job, run_facets=facets, inputs=[tested]),
                   run_event("COMPLETE" if ok else "FAIL", at, run_id, job, run_facets=facets, inputs=[tested])]
    return events
