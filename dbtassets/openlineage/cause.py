"""The ``dbtassets_cause`` run facet: why a build ran, and which stale assets a pass left alone and why.

Its JSON schema ships in the package (``schemas/CauseRunFacet.json``, :data:`SCHEMA_PATH`) and is what
its ``_schemaURL`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dbtassets.model.graph import BUILDABLE
from dbtassets.model.manifest import ResourceType, UniqueId
from dbtassets.model.snapshot import Snapshot
from dbtassets.model.sources import Observation
from dbtassets.openlineage.events import CAUSE_SCHEMA, PRODUCER, Document
from dbtassets.results import SyncPlan
from dbtassets.rules.statuses import AssetStatus, Reason, ReasonCode

SCHEMA_PATH = Path(__file__).parent / "schemas" / "CauseRunFacet.json"


def _facet(**fields: Any) -> Document:
    return {"_producer": PRODUCER, "_schemaURL": f"{CAUSE_SCHEMA}#/$defs/CauseRunFacet", **fields}


def _reason(reason: Reason, snapshot: Snapshot, statuses: Mapping[UniqueId, AssetStatus],
            observed: Mapping[UniqueId, tuple[Observation, str]]) -> Document:
    out: Document = reason.to_json()
    upstream = reason.upstream
    if upstream is None or snapshot.graph.assets.get(upstream) is None:
        return out
    if snapshot.graph.assets[upstream].resource_type is ResourceType.SOURCE:
        observation: Document = {"source": upstream}
        version = statuses[upstream].data_version if upstream in statuses else None
        if version is not None:  # the observation the store recorded (its time is the one reasons name)
            observation |= {"dataVersion": version.value, "observedAt": version.at}
        seen, at = observed.get(upstream, (None, ""))
        if seen is not None and seen.data_version == observation.get("dataVersion", seen.data_version):
            # heard this process observe it: the observer's own detail (the file that landed)
            observation = {"observedAt": at, **observation, "dataVersion": seen.data_version,
                           "observer": seen.kind.value, "detail": dict(seen.detail)}
        if "dataVersion" in observation:
            out["observation"] = observation
    return out


def asset_cause(uid: UniqueId, plan: SyncPlan, snapshot: Snapshot,
                observed: Mapping[UniqueId, tuple[Observation, str]]) -> Document | None:
    """Why ``uid`` was built in ``plan``: its reasons, with the observation behind each source that moved."""
    status = plan.statuses.get(uid)
    if status is None:
        return None
    return _facet(asset=uid, reasons=[_reason(r, snapshot, plan.statuses, observed) for r in status.reasons],
                  codeChanged=any(r.code is ReasonCode.CODE_CHANGED for r in status.reasons),
                  fullRefresh=status.full_refresh)


def pass_cause(plan: SyncPlan, snapshot: Snapshot, observed: Mapping[UniqueId, tuple[Observation, str]]) -> Document:
    """What a pass builds and runs, and each stale or missing asset it leaves alone, with why."""
    chosen = set(plan.to_build)
    due = plan.verdict.schedule.is_due if plan.verdict is not None else None
    left = []
    for uid, status in sorted(plan.statuses.items()):
        node = snapshot.graph.assets.get(uid)
        if uid in chosen or not status.needs_build or node is None or node.resource_type not in BUILDABLE:
            continue
        why = ("leased" if uid in plan.leased else "held" if status.held
               else "not_due" if due is not None and not due(uid) else "not_selected")
        entry: Document = {"asset": uid, "why": why,
                           "reasons": [_reason(r, snapshot, plan.statuses, observed) for r in status.reasons]}
        if plan.leased.get(uid):
            entry["holder"] = plan.leased[uid]
        if status.due_at and why == "not_due":
            entry["dueAt"] = status.due_at
        left.append(entry)
    return _facet(selected=list(plan.to_build), checks=list(plan.checks), notBuilt=left)
