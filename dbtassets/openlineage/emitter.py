"""The builder's OpenLineage listener: it only queues work; the sender's thread makes and sends the events."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from dbtassets.building.runner import NodeStatus
from dbtassets.model.graph import BUILDABLE
from dbtassets.model.manifest import UniqueId
from dbtassets.model.snapshot import Snapshot
from dbtassets.model.sources import Observation
from dbtassets.observe.observer import ObserveOutcome
from dbtassets.openlineage import cause, events
from dbtassets.openlineage.events import Document, Naming, facet
from dbtassets.openlineage.sender import Sender
from dbtassets.results import SyncPlan, SyncResult

NAMESPACE_ENV = "OPENLINEAGE_NAMESPACE"  # the job namespace, as openlineage-dbt reads it
LINEAGE_BUDGET = 10.0  # seconds of the sender's CPU a pass's columnLineage may take; the models after get none


class Emitter:
    """A :class:`dbtassets.builder.BuildListener` that sends each pass, asset run and moved source as events."""

    def __init__(self, sender: Sender, warehouse: str, selection: Sequence[str] = (), *,
                 observations_wait: bool = False) -> None:
        self.sender = sender
        self.observations_wait = observations_wait  # sync: sent with its build's events (or at its end)
        self.warehouse = warehouse
        self.selection = tuple(selection)
        self.job_namespace = os.environ.get(NAMESPACE_ENV) or "default"
        self._observed: dict[UniqueId, tuple[Observation, str]] = {}
        self._pass: tuple[str, tuple[str, str]] | None = None

    def _naming(self, snapshot: Snapshot) -> Naming:
        return Naming.of(snapshot, self.warehouse, self.job_namespace)

    def build_started(self, plan: SyncPlan, snapshot: Snapshot, run_id: int, at: str) -> None:
        naming = self._naming(snapshot)
        job = (naming.job_namespace, naming.pass_job(self.selection))
        self._pass = pass_run = (events.new_run_id(), job)
        observed = dict(self._observed)

        def make() -> list[Document]:
            return [events.run_event("START", at, pass_run[0], job, run_facets=_pass_facets(plan, snapshot, observed),
                                     job_facets=_pass_job_facets())]

        self.sender.put(make)

    def build_finished(self, plan: SyncPlan, snapshot: Snapshot, result: SyncResult | None, error: str | None,
                       at: str) -> None:
        pass_run, observed = self._pass, dict(self._observed)
        if pass_run is None:
            return
        self._pass = None

        def make() -> list[Document]:
            naming = self._naming(snapshot)
            out: list[Document] = []
            build = result.build if result is not None else None
            schema = events.built_columns(snapshot, build.results, naming.sql_dialect) if build is not None else {}
            lineage_until = time.thread_time() + LINEAGE_BUDGET
            for node in build.results if build is not None else ():
                asset = snapshot.graph.assets.get(node.unique_id)
                if asset is None or asset.resource_type not in BUILDABLE or node.status is NodeStatus.SKIPPED:
                    continue
                out += events.node_events(naming, snapshot, node, pass_run,
                                          cause.asset_cause(node.unique_id, plan, snapshot, observed), schema,
                                          column_lineage=time.thread_time() < lineage_until)
            if build is not None:
                out += events.check_events(naming, snapshot, build.results, at, pass_run)
            facets = _pass_facets(plan, snapshot, observed)
            problem = error or (None if result is None or result.ok else _failure(result, snapshot))
            if problem:
                facets["errorMessage"] = facet("errorMessage", message=problem, programmingLanguage="SQL")
            out.append(events.run_event("FAIL" if problem else "COMPLETE", at, pass_run[0], pass_run[1],
                                        run_facets=facets, job_facets=_pass_job_facets()))
            return out

        self.sender.put(make)

    def observed(self, outcomes: Sequence[ObserveOutcome], snapshot: Snapshot, at: str) -> None:
        moved = [o.observation for o in outcomes if o.changed and o.observation is not None]
        if not moved:
            return
        for observation in moved:
            self._observed[observation.unique_id] = (observation, at)

        def make() -> list[Document]:
            naming = self._naming(snapshot)
            return [events.dataset_event(at, naming.dataset(
                snapshot.graph.assets[o.unique_id],
                version=facet("version", datasetVersion=o.data_version),
                dataSource=facet("dataSource", name=naming.dataset_namespace, uri=naming.dataset_namespace)))
                for o in moved if o.unique_id in snapshot.graph.assets]

        self.sender.put(make, wait=self.observations_wait)


def _pass_facets(plan: SyncPlan, snapshot: Snapshot, observed: dict[UniqueId, tuple[Observation, str]]) -> Document:
    return {"dbtassets_cause": cause.pass_cause(plan, snapshot, observed),
            "processing_engine": facet("processing_engine", name="dbt", version=snapshot.manifest.dbt_version)}


def _pass_job_facets() -> Document:
    return {"jobType": facet("jobType", processingType="BATCH", integration="DBTASSETS", jobType="JOB")}


def _failure(result: SyncResult, snapshot: Snapshot) -> str:
    names = [snapshot.graph.assets[u].display_name for u in result.failed if u in snapshot.graph.assets]
    names += [snapshot.manifest.checks[c].name for c in result.failed_checks if c in snapshot.manifest.checks]
    return "failed: " + ", ".join(names) if names else "the build did not build its whole plan"
