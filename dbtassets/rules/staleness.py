"""What is stale, and why: a pure function of (graph, code versions, state).

The rules are DESIGN.md's. An asset is *missing* with no successful materialization; it is
*stale* when its code changed, an input's data version moved since it was built, an upstream
asset is itself stale or missing, or its last build failed; otherwise it is *fresh*. Every
rule that holds becomes a :class:`Reason`, so ``why`` can follow the chain to the source
that moved.

Non-breaking changes narrow this. A model whose only change is new output columns has an
*impact* of just those columns, and so does a rebuild of it that changed nothing else (its
data version keeps its *base*). A downstream asset that reads none of those columns is not
made stale by it. A child that passes those columns on (it selects ``*`` from the model) gains
them and nothing else: its own impact is the columns it gains, so the narrowing follows the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from dbtassets.clock import shown
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Check, Node, ResourceType, UniqueId
from dbtassets.rules.checks import CheckState, CheckStatus, check_statuses
from dbtassets.rules.refresh import Refresh, opt_out_hint, refresh_of
from dbtassets.rules.statuses import AssetStatus, Reason, ReasonCode, Status
from dbtassets.state.records import Materialization, StateView, Version
from dbtassets.words import noun


@dataclass(frozen=True)
class CodeChange:
    """How an asset's code changed since its last build (from :func:`dbtassets.sql.fingerprint.classify`)."""

    breaking: bool
    added_columns: frozenset[str] = frozenset()
    description: str = ""


class ColumnReads(Protocol):
    """Whether ``child`` may read any of ``columns`` (the columns an upstream added).

    Asked by column name, whichever input it comes from: a safe over-estimate, since a child that reads
    a column of that name from another input is counted as reading it.
    """

    def __call__(self, child: UniqueId, columns: frozenset[str]) -> bool: ...


def _reads_everything(child: UniqueId, columns: frozenset[str]) -> bool:
    return True


class ColumnPasses(Protocol):
    """The output columns ``child`` gains when ``parent`` gains ``columns``, if that is all that changes in it.

    None when more may change (or nothing provably does not), so a rebuild of ``child`` may change anything.
    """

    def __call__(self, child: UniqueId, parent: UniqueId, columns: frozenset[str]) -> frozenset[str] | None: ...


def _passes_nothing(child: UniqueId, parent: UniqueId, columns: frozenset[str]) -> frozenset[str] | None:
    return None


def compute_statuses(
    graph: AssetGraph,
    code_versions: Mapping[UniqueId, str],
    state: StateView,
    observable: frozenset[UniqueId] | set[UniqueId] = frozenset(),
    changes: Mapping[UniqueId, CodeChange] | None = None,
    reads: ColumnReads = _reads_everything,
    checks: Mapping[UniqueId, Check] | None = None,
    passes: ColumnPasses = _passes_nothing,
) -> dict[UniqueId, AssetStatus]:
    """The status of every asset in ``graph``, upstream first.

    Args:
        graph: the assets and their edges.
        code_versions: the current code version of each buildable asset.
        state: the last successful materializations, failures and source observations.
        observable: the sources that have some way to be observed; the others are
            ``unobserved`` (with a reason saying so), never taken as fresh.
        changes: for assets whose code changed, whether the change was breaking.
        reads: whether a child may read some columns of a parent (default: assume it does).
        checks: the data tests and unit tests, each attached to its assets.
        passes: which new columns of a parent a child passes on, when that is all it changes (default: none).
    """
    by_asset: dict[UniqueId, list[Check]] = {}
    readers: dict[UniqueId, list[Check]] = {}  # asset → the checks that read its data
    for check in sorted((checks or {}).values(), key=lambda c: c.name):
        for asset in check.assets:
            by_asset.setdefault(asset, []).append(check)
        for asset in check.reads or check.assets:
            readers.setdefault(asset, []).append(check)
    # A check's state is its asset's: the result of its run on that asset's last materialization.
    states = {uid: check_statuses(found, state.last_success[uid].id, state.check_results.get(uid, {}))
              for uid, found in by_asset.items() if uid in state.last_success}
    failing = frozenset((uid, c.check.unique_id) for uid, found in states.items() for c in found if c.state.failing)
    rules = _Rules(graph, state, changes or {}, reads, states, readers, passes, failing)
    statuses: dict[UniqueId, AssetStatus] = {}
    for uid in graph.topological_order():
        node = graph.assets[uid]
        if uid in graph.fed:
            statuses[uid] = _fed_status(uid, graph.assets[graph.fed[uid]], statuses[graph.fed[uid]])
        elif node.resource_type == ResourceType.SOURCE:
            statuses[uid] = _source_status(uid, state, uid in observable)
        else:
            statuses[uid] = rules.built_status(uid, code_versions[uid], statuses)
    return statuses


def _source_status(uid: UniqueId, state: StateView, observable: bool) -> AssetStatus:
    version = state.observations.get(uid)
    if observable:
        return AssetStatus(uid, Status.FRESH, (), version)
    reason = Reason(ReasonCode.UNOBSERVED, "no observer: declare files, query or reported in dbtassets.yml; "
                                           "changes to this source are not detected")
    return AssetStatus(uid, Status.UNOBSERVED, (reason,), version)


def _fed_status(uid: UniqueId, feeder: Node, status: AssetStatus) -> AssetStatus:
    """A source over the table ``feeder`` builds holds what it last built: its data version, stale or missing
    with it (and held with it), needing no observer."""
    what = f"its table is built by {feeder.resource_type} {feeder.name}"
    reasons: tuple[Reason, ...] = ()
    if status.status is Status.MISSING:
        reasons = (Reason(ReasonCode.UPSTREAM_MISSING, f"{what}, which was never materialized", feeder.unique_id),)
    elif status.status is Status.STALE:
        reasons = (Reason(ReasonCode.UPSTREAM_STALE, f"{what}, which is stale", feeder.unique_id),)
    return AssetStatus(uid, status.status, reasons, status.data_version, status.impact if reasons else None,
                       held=status.held)


@dataclass(frozen=True)
class _Rules:
    graph: AssetGraph
    state: StateView
    changes: Mapping[UniqueId, CodeChange]
    reads: ColumnReads
    checks: Mapping[UniqueId, Sequence[CheckStatus]]  # asset → the state of each check attached to it
    readers: Mapping[UniqueId, Sequence[Check]]  # asset → the checks that read it
    passes: ColumnPasses = _passes_nothing
    failing: frozenset[tuple[UniqueId, UniqueId]] = frozenset()  # (asset, check) of each failing check state

    def built_status(self, uid: UniqueId, code_version: str,
                     statuses: Mapping[UniqueId, AssetStatus]) -> AssetStatus:
        graph, state = self.graph, self.state
        last = state.last_success.get(uid)
        reasons: list[Reason] = []
        narrow: list[frozenset[str]] = []  # impacts of the reasons that only add columns
        refresh = refresh_of(graph.assets[uid])
        full_refresh = False
        if last is None:
            reasons.append(Reason(ReasonCode.NEVER_MATERIALIZED, "never materialized"))
        else:
            if last.code_version != code_version:
                reasons.append(self._code_changed(uid, last, code_version, refresh))
                full_refresh = refresh is Refresh.FULL_ON_CHANGE
                change = self.changes.get(uid)
                if change is not None and not change.breaking:
                    narrow.append(change.added_columns)
            elif last.old_rows_before is not None and refresh is Refresh.FULL_ON_CHANGE:
                reasons.append(Reason(ReasonCode.OLD_ROWS_KEPT, f"rows built before {last.old_rows_before} keep "
                                      "the old logic and it is no longer opted out of full refreshes: "
                                      "rebuilt with a full refresh"))
                full_refresh = True
            for parent in graph.parents(uid):
                built_from, current = last.inputs.get(parent), statuses[parent].data_version
                if current is None or (built_from is not None and built_from.value == current.value):
                    continue  # unchanged (as _upstream_updated says first, without the call: this runs per edge)
                reason = self._upstream_updated(uid, parent, built_from, current)
                if reason is not None:
                    passed = self._passed(uid, parent, _added_since(built_from, current), refresh)
                    reasons.append(Reason(reason.code, reason.message + _passing(passed), parent))
                    narrow.extend(passed)
        for parent in graph.parents(uid):
            parent_status = statuses[parent]
            if parent_status.status is Status.MISSING:
                name = graph.assets[parent].display_name
                reasons.append(Reason(ReasonCode.UPSTREAM_MISSING, f"upstream {name} was never materialized", parent))
            elif parent_status.status is Status.STALE and self._affects(uid, parent, parent_status.impact):
                name = graph.assets[parent].display_name
                passed = self._passed(uid, parent, parent_status.impact, refresh)
                reasons.append(Reason(ReasonCode.UPSTREAM_STALE, f"upstream {name} is stale{_passing(passed)}", parent))
                narrow.extend(passed)
        failure = state.last_failure.get(uid)
        if failure is not None and (last is None or failure.id > last.id):
            reasons.append(Reason(ReasonCode.LAST_BUILD_FAILED,
                                  f"last build failed at {shown(failure.finished_at)}: {failure.message}"))
        holds = self._holds(uid, last, statuses)
        reasons.extend(holds)
        status = Status.MISSING if last is None else Status.STALE if reasons else Status.FRESH
        impact = frozenset().union(*narrow) if narrow and len(narrow) == len(reasons) else None
        checks: tuple[CheckStatus, ...] = ()
        if last is not None:
            checks = tuple(self.checks.get(uid, ()))
            if status is Status.FRESH and last.old_rows_before is not None:
                reasons.extend(self._notes(uid, last, refresh))
            if checks:
                reasons.extend(Reason(ReasonCode.CHECK_FAILED, c.describe()) for c in checks if c.state.failing)
                if status is Status.FRESH:
                    reasons.extend(Reason(ReasonCode.CHECK_PENDING, c.describe())
                                   for c in checks if c.state is CheckState.PENDING)
        return AssetStatus(uid, status, tuple(reasons), last.data_version if last else None, impact,
                           full_refresh=full_refresh and status is not Status.MISSING, checks=checks,
                           held=bool(holds))

    def _holds(self, uid: UniqueId, last: Materialization | None,
               statuses: Mapping[UniqueId, AssetStatus]) -> list[Reason]:
        """Why ``uid`` must wait: an upstream asset's data fails a check and ``uid`` has not read it yet.

        dbt build skips what is downstream of a failing test; building it in a later sync would
        spread the data the test rejected, so it waits until the check passes (or the data changes).
        A check fails on the data of every asset it read (a relationships test reads the model it
        points to), not only on the asset it is attached to.
        """
        holds = []
        for parent in self.graph.parents(uid):
            parent_status, shown_as = statuses[parent], parent
            if parent in self.graph.fed:  # a fed source holds the checks of the asset that builds its table
                shown_as = self.graph.fed[parent]
                parent_status = statuses[shown_as]
            failing_reads = self._failing_reads(parent) if self.failing else []  # none fails: nothing holds
            if failing_reads and not parent_status.needs_build:  # a rebuild runs them again
                read = last.inputs.get(parent) if last is not None else None
                current = parent_status.data_version
                if current is not None and (read is None or read.value != current.value):
                    failing = ", ".join(failing_reads)
                    holds.append(Reason(ReasonCode.UPSTREAM_CHECK_FAILED, f"held: upstream "
                                        f"{self.graph.assets[shown_as].display_name} fails {failing}; it is built "
                                        "once that passes", parent))
                    continue
            if parent_status.held:
                holds.append(Reason(ReasonCode.UPSTREAM_CHECK_FAILED, f"held: upstream "
                                    f"{self.graph.assets[shown_as].display_name} waits for a failing check", parent))
        return holds

    def _failing_reads(self, asset: UniqueId) -> list[str]:
        """The failing checks that read ``asset``'s data, described (with the asset each is on, when another)."""
        found = []
        for check in self.readers.get(asset, ()):
            for attached in check.assets:
                if (attached, check.unique_id) in self.failing:
                    other = self.graph.assets[attached].display_name if attached in self.graph else attached
                    on = "" if attached == asset else f" on {other}"
                    found.append(f"{check.describe()}{on}")
        return found

    def _notes(self, uid: UniqueId, last: Materialization, refresh: Refresh) -> list[Reason]:
        """What a fresh asset's rows hold besides the current logic."""
        if last.old_rows_before is None:
            return []
        node = self.graph.assets[uid]
        if refresh is Refresh.HISTORY:
            what = (f"its history before {last.old_rows_before} was recorded by older code "
                    "(a snapshot is never fully refreshed)")
        else:
            what = (f"rows built before {last.old_rows_before} keep the old logic ({opt_out_hint(node)}; "
                    f"`dbt build --full-refresh --select {node.display_name}` rebuilds them)")
        return [Reason(ReasonCode.OLD_ROWS_KEPT, what)]

    def _code_changed(self, uid: UniqueId, last: Materialization, code_version: str, refresh: Refresh) -> Reason:
        change = self.changes.get(uid)
        detail = f" ({change.description})" if change is not None and change.description else ""
        if change is not None and not change.breaking:
            unaffected = [self.graph.assets[c].display_name for c in self.graph.children(uid)
                          if not self._affects(c, uid, change.added_columns)]
            if unaffected:
                verb = "does" if len(unaffected) == 1 else "do"
                detail = f" ({change.description}; {', '.join(unaffected)} {verb} not read it)"
        node = self.graph.assets[uid]
        if node.resource_type == ResourceType.SEED and last.relation_name and node.relation_name != last.relation_name:
            # its code version covers where it is built: a changed schema, alias or database moves it
            return Reason(ReasonCode.CODE_CHANGED, f"moved from {last.relation_name} to {node.relation_name} "
                                                   f"since the build at {shown(last.finished_at)}")
        if node.resource_type == ResourceType.SEED:  # its code version is its file's checksum: its rows changed
            return Reason(ReasonCode.CODE_CHANGED,
                          f"content changed since the build at {shown(last.finished_at)}{detail or f' ({node.path})'}")
        rows = {
            Refresh.REWRITTEN: "",
            Refresh.FULL_ON_CHANGE: "; an incremental model: rebuilt with a full refresh",
            Refresh.KEPT: f"; {opt_out_hint(self.graph.assets[uid])}: rows built before this change will keep "
                          "the old logic",
            Refresh.HISTORY: "; a snapshot is never fully refreshed: its history before this change comes from "
                             "the old code",
        }[refresh]
        return Reason(ReasonCode.CODE_CHANGED,
                      f"code changed since the build at {shown(last.finished_at)}{detail} "
                      f"(code version {last.code_version[:8]} → {code_version[:8]}){rows}")

    def _upstream_updated(self, uid: UniqueId, parent: UniqueId, built_from: Version | None,
                          current: Version | None) -> Reason | None:
        if current is None or (built_from is not None and built_from.value == current.value):
            return None
        if (built_from is not None and built_from.base_value == current.base_value
                and not self._affects(uid, parent, current.added - built_from.added)):
            return None  # only columns this asset does not read were added upstream
        node = self.graph.assets[parent]
        if parent in self.graph.fed:
            what = (f"upstream {node.display_name} updated: {self.graph.assets[self.graph.fed[parent]].name} "
                    f"rebuilt it at {shown(current.at)}")
        elif node.resource_type == ResourceType.SOURCE:
            what = f"upstream {node.display_name} updated: new data observed at {shown(current.at)}"
        else:
            what = f"upstream {node.display_name} updated: rebuilt at {shown(current.at)}"
        since = f"built from the version of {shown(built_from.at)}" if built_from else "a new input"
        return Reason(ReasonCode.UPSTREAM_UPDATED, f"{what} ({since})", parent)

    def _passed(self, child: UniqueId, parent: UniqueId, added: frozenset[str] | None,
                refresh: Refresh) -> list[frozenset[str]]:
        """The new columns of ``parent`` that ``child`` passes on, as its own impact ([] when it may change more).

        Only a rebuild that rewrites ``child`` gains them: an incremental build keeps the table's columns.
        """
        if not added or refresh is not Refresh.REWRITTEN:
            return []
        gained = self.passes(child, parent, added)
        return [gained] if gained else []

    def _affects(self, child: UniqueId, parent: UniqueId, impact: frozenset[str] | None) -> bool:
        """Whether a change of ``impact`` (None: any column) in ``parent`` reaches ``child``."""
        return impact is None or (bool(impact) and self.reads(child, impact))


def _added_since(built_from: Version | None, current: Version | None) -> frozenset[str] | None:
    """The columns added to an input since a build read it, when only columns were (None: any change)."""
    if built_from is None or current is None or built_from.base_value != current.base_value:
        return None
    return current.added - built_from.added


def _passing(passed: list[frozenset[str]]) -> str:
    """What a reason adds when the asset only passes an upstream's new columns on."""
    if not passed:
        return ""
    names = ", ".join(f"`{c}`" for c in sorted(passed[0]))
    return f" (non-breaking: passes on its new {noun(len(passed[0]), 'column')} {names})"
