"""``dbtassets why``: an asset's status, and the causal chain of each reason down to the source that moved."""

from __future__ import annotations

from dbtassets.model.manifest import ResourceType, UniqueId
from dbtassets.model.snapshot import Snapshot
from dbtassets.results import Explanation, StatusReport
from dbtassets.sql.versions import CodeVersioner
from dbtassets.state.store import StateStore


def explain(snapshot: Snapshot, versions: CodeVersioner, store: StateStore, report: StatusReport,
            uid: UniqueId, seen: set[UniqueId] | None = None) -> Explanation:
    """Why ``uid`` has its status in ``report``: each reason's upstream explained in turn (each asset once)."""
    seen = set() if seen is None else seen
    seen.add(uid)
    statuses = report.statuses
    causes = {}
    for reason in statuses[uid].reasons:
        if reason.upstream is not None and reason.upstream not in seen:
            causes[reason.upstream] = explain(snapshot, versions, store, report, reason.upstream, seen)
    notes = [report.notes[uid]] if uid in report.notes else []
    policies = snapshot.policies
    if uid in policies.build_after:
        notes.append(f"freshness policy: {policies.build_after[uid].describe()} (dbt's freshness.build_after)")
    if uid in policies.slas:
        notes.append(f"freshness policy: {policies.slas[uid].describe()} (dbt's source freshness)")
    node = snapshot.graph.assets[uid]
    sql = versions.sql_of(uid, node.code_version) if node.resource_type == ResourceType.MODEL else None
    if sql is not None:
        from dbtassets.sql.fingerprint import undeclared_reads

        hidden = undeclared_reads(sql, versions.dialect, versions.declared_relations(uid))
        if hidden:
            notes.append(f"it also reads {', '.join(hidden)}, which no ref() or source() declares: "
                         "changes there are not seen (`dbtassets lint`)")
    observed = None
    if node.resource_type == ResourceType.SOURCE:
        latest = store.observation_history(uid, 1)
        if latest:
            at, version, kind, detail = latest[0]
            observed = {"at": at, "data_version": version, "kind": kind, **detail}
    return Explanation(statuses[uid], causes, observed, notes)
