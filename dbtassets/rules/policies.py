"""Freshness policies: dbt's own ``freshness`` configs, acted on. Pure: statuses and a time in, decisions out.

**build_after** (models). dbt documents ``freshness.build_after: {count, period, updates_on}`` as
"build this model no more often than every ``count`` ``period``s, as long as it has new data";
``updates_on: any`` (the default) needs new data from any direct upstream asset, ``all`` from every
one, since the model's last build. dbt-core parses it and does nothing with it; here a stale model
is *due* once both hold, and ``sync``/``watch`` build only what is due. A code change or a missing
asset is due at once (only new *data* waits).

The **chain rule** (README, "Freshness policies"). dbt's docs define ``build_after`` per model and a
model without one is built whenever it has new data. Taken literally that rebuilds a model whose
every downstream model waits, for nobody: its new data sits unread until they fall due. So a model
with no ``build_after`` of its own whose children all wait (on their own ``build_after``, or, being
held themselves, on their children's) is *held* until the first of them falls due, and built in the
same ``dbt build`` as that child. Unlike propagating the smallest child ``build_after`` up as the
parent's own period (orchestra-hq/sao-paolo), this keeps the parent on its children's clock: the
child, at its due time, reads the parent's newest data, never a copy that is itself waiting out a
period of its own. A model with its own ``build_after``, a snapshot (holding it would lose history)
and a seed are never held.

**Source SLAs.** ``freshness.warn_after``/``error_after`` of a source are checked, as ``dbt source
freshness`` does, against its newest data's own time where the observer read one (a timestamp
watermark: ``max(loaded_at_field)``), else against when its last new data was observed (the latest
observation that changed its data version): a loader that re-loads old rows does not make it fresh.

The policies themselves, as read from the manifest, are :mod:`dbtassets.model.freshness`' values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from dbtassets.clock import parse_time, show_time, shown, timestamp
from dbtassets.model.freshness import Interval, Policies, Severity, UpdatesOn
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import ResourceType, UniqueId
from dbtassets.rules.statuses import AssetStatus, Reason, ReasonCode, Status

_IMMEDIATE = frozenset({ReasonCode.NEVER_MATERIALIZED, ReasonCode.CODE_CHANGED})
_UPSTREAM = frozenset({ReasonCode.UPSTREAM_UPDATED, ReasonCode.UPSTREAM_STALE, ReasonCode.UPSTREAM_MISSING})


@dataclass(frozen=True)
class Decision:
    """When a stale or missing asset may be built. ``reason`` (code ``not_due``) is set while it may not.

    ``due_at`` is when it fell or falls due; None while it waits for new data that has not come.
    """

    due_at: datetime | None
    reason: Reason | None = None

    @property
    def due(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Schedule:
    """The decisions for every stale or missing buildable asset, at ``now``."""

    now: datetime
    decisions: Mapping[UniqueId, Decision]

    def is_due(self, uid: UniqueId) -> bool:
        decision = self.decisions.get(uid)
        return decision is None or decision.due

    def waiting(self) -> list[UniqueId]:
        return [uid for uid, d in self.decisions.items() if not d.due]

    @property
    def next_due_at(self) -> datetime | None:
        """The earliest time a waiting asset falls due (None when none waits on a time)."""
        times = [d.due_at for d in self.decisions.values() if not d.due and d.due_at is not None]
        return min(times, default=None)


@dataclass(frozen=True)
class Verdict:
    """Statuses with the policies applied (``not_due`` and ``late_*`` reasons, ``due_at``), and why."""

    statuses: Mapping[UniqueId, AssetStatus]
    schedule: Schedule
    late: Mapping[UniqueId, Lateness]

    def failing(self, uid: UniqueId) -> bool:
        """Whether ``check`` fails on ``uid``: stale or missing and due (so overdue), or late past error_after."""
        status = self.statuses[uid]
        if status.needs_build:
            return self.schedule.is_due(uid)
        late = self.late.get(uid)
        return late is not None and late.severity is Severity.ERROR


def apply(graph: AssetGraph, statuses: Mapping[UniqueId, AssetStatus], policies: Policies,
          now: datetime) -> Verdict:
    """The policies' verdict at ``now``: which stale assets wait (and until when), which sources are late."""
    plan = schedule(graph, statuses, policies, now)
    late = lateness(policies, statuses, now)
    if not plan.decisions and not late:
        return Verdict(statuses, plan, late)
    annotated = dict(statuses)
    for uid, decision in plan.decisions.items():
        due_at = decision.due_at
        shown = due_at is not None and (not decision.due or uid in policies.build_after)
        if decision.reason is not None or shown:
            status = annotated[uid]
            annotated[uid] = replace(status, reasons=status.reasons + ((decision.reason,) if decision.reason else ()),
                                     due_at=_stamp(due_at) if shown and due_at is not None else None)
    for uid, lateness_ in late.items():
        status = annotated[uid]
        annotated[uid] = replace(status, reasons=(*status.reasons, lateness_.reason))
    return Verdict(annotated, plan, late)


_stamp = functools.lru_cache(maxsize=4096)(timestamp)  # a large project's builds share a few due times


def schedule(graph: AssetGraph, statuses: Mapping[UniqueId, AssetStatus], policies: Policies,
             now: datetime) -> Schedule:
    """Decide, for every stale or missing buildable asset, whether it is due at ``now``, and if not, until when."""
    return _Scheduler(graph, statuses, policies, now).run()


class _Scheduler:
    def __init__(self, graph: AssetGraph, statuses: Mapping[UniqueId, AssetStatus], policies: Policies,
                 now: datetime) -> None:
        self.graph, self.statuses, self.policies, self.now = graph, statuses, policies, now
        self.decisions: dict[UniqueId, Decision] = {}
        self._holds: dict[UniqueId, tuple[datetime, UniqueId] | None] = {}

    def run(self) -> Schedule:
        graph, statuses = self.graph, self.statuses
        for uid in graph.topological_order():
            status = statuses[uid]
            if status.status is Status.FRESH or graph.assets[uid].resource_type == ResourceType.SOURCE:
                continue
            self.decisions[uid] = self._decide(uid, status)
        return Schedule(self.now, self.decisions)

    def _decide(self, uid: UniqueId, status: AssetStatus) -> Decision:
        if status.status is Status.MISSING or any(r.code in _IMMEDIATE for r in status.reasons):
            return Decision(self.now)
        policy = self.policies.build_after.get(uid)
        news, other = self._news(status)
        names = self.graph.assets
        waiting_on: list[UniqueId] = []
        data_at: datetime | None
        if policy is not None and policy.updates_on is UpdatesOn.ALL and not other:
            waiting_on = [p for p in self.graph.parents(uid) if news.get(p) is None]
            data_at = None if waiting_on else max(t for t in news.values() if t is not None)
        else:
            times = [t for t in news.values() if t is not None] + ([self.now] if other else [])
            data_at = min(times, default=None)
            waiting_on = [] if times else [p for p in news]
        if data_at is None:
            what = ", ".join(names[p].display_name for p in waiting_on)
            why = (f"waiting for new data from {what} ({policy.describe()})" if policy is not None
                   and policy.updates_on is UpdatesOn.ALL else f"waiting for upstream {what}, which waits too")
            return Decision(None, Reason(ReasonCode.NOT_DUE, why))
        gate = None
        if policy is not None and policy.every is not None and status.data_version is not None:
            gate = parse_time(status.data_version.at) + timedelta(seconds=policy.seconds)
        hold = self._hold(uid)
        due_at = max(data_at, gate or data_at, hold[0] if hold else data_at)
        if due_at <= self.now:
            return Decision(due_at)
        when = show_time(due_at)
        if gate is not None and due_at == gate:
            message = (f"not due until {when} ({policy.describe() if policy else ''}; "
                       f"last built at {shown(status.data_version.at) if status.data_version else '-'})")
        elif hold is not None and due_at == hold[0]:
            child = hold[1]
            child_policy = self.policies.build_after[child]
            message = (f"not due until {when}, when {names[child].display_name} falls due ({child_policy.describe()}): "
                       "every model downstream waits on a build_after")
        else:
            upstream = [names[p].display_name for p, t in news.items() if t == due_at]
            message = f"not due until {when}: upstream {', '.join(upstream) or '-'} is not due until then"
        return Decision(due_at, Reason(ReasonCode.NOT_DUE, message))

    def _news(self, status: AssetStatus) -> tuple[dict[UniqueId, datetime | None], bool]:
        """For each parent with new data (or new data coming), when it is (or will be) there; and whether
        some other reason (a failed build…) makes the asset due regardless of its parents."""
        news: dict[UniqueId, datetime | None] = {}
        other = False
        for reason in status.reasons:
            parent = reason.upstream
            if reason.code not in _UPSTREAM or parent is None:
                other = other or reason.code is not ReasonCode.NOT_DUE
            elif reason.code is ReasonCode.UPSTREAM_UPDATED:
                version = self.statuses[parent].data_version
                news[parent] = parse_time(version.at) if version is not None else self.now
            elif parent not in news:  # a fed source (dbtassets.model.graph) is due when what builds its table is
                decision = self.decisions.get(self.graph.fed.get(parent, parent))
                news[parent] = decision.due_at if decision is not None else self.now
        return news, other

    def _hold(self, uid: UniqueId) -> tuple[datetime, UniqueId] | None:
        """Until when a model with no build_after of its own, all of whose children wait, is held; and for whom."""
        if uid in self._holds:
            return self._holds[uid]
        self._holds[uid] = None  # a guard; the graph is acyclic
        node = self.graph.assets[uid]
        children = self.graph.children(uid)
        held: tuple[datetime, UniqueId] | None = None
        if node.resource_type == ResourceType.MODEL and uid not in self.policies.build_after and children:
            clocks = [self._clock(child) for child in children]
            if all(c is not None for c in clocks):
                held = min((c for c in clocks if c is not None), key=lambda c: c[0])
        self._holds[uid] = held
        return held

    def _clock(self, uid: UniqueId) -> tuple[datetime, UniqueId] | None:
        """The earliest time ``uid``'s own waiting lets it build (None: it does not wait)."""
        policy = self.policies.build_after.get(uid)
        if policy is None:
            return self._hold(uid)
        if policy.every is None:
            return None
        status = self.statuses[uid]
        if (status.status is Status.MISSING or status.data_version is None
                or any(r.code in _IMMEDIATE for r in status.reasons)):
            return None  # it is built at once, and wants its parents' newest data
        return parse_time(status.data_version.at) + timedelta(seconds=policy.seconds), uid


@dataclass(frozen=True)
class Lateness:
    """A source past its ``warn_after`` or ``error_after``."""

    unique_id: UniqueId
    severity: Severity
    threshold: Interval
    last_data_at: str
    late_for: float  # seconds since the last new data
    from_data: bool = False  # last_data_at is the data's own timestamp, not when it was observed

    @property
    def reason(self) -> Reason:
        code = ReasonCode.LATE_ERROR if self.severity is Severity.ERROR else ReasonCode.LATE_WARN
        return Reason(code, f"late: no new data for {_span(self.late_for)} "
                            f"({self.severity.value}_after {self.threshold.label}); "
                            f"{'newest data from' if self.from_data else 'last new data observed at'} "
                            f"{shown(self.last_data_at)}")


def lateness(policies: Policies, statuses: Mapping[UniqueId, AssetStatus], now: datetime,
             sources: Iterable[UniqueId] | None = None) -> dict[UniqueId, Lateness]:
    """The sources (all with an SLA, or those of ``sources``) whose last new data is older than their SLA allows."""
    late: dict[UniqueId, Lateness] = {}
    for uid in policies.slas if sources is None else [s for s in sources if s in policies.slas]:
        status = statuses.get(uid)
        version = status.data_version if status is not None else None
        if version is None:
            continue  # never observed: its status says why (unobserved)
        age = (now - parse_time(version.data_time)).total_seconds()
        breach = policies.slas[uid].breached(age)
        if breach is not None:
            late[uid] = Lateness(uid, breach[0], breach[1], version.data_time, age, version.data_at is not None)
    return late


def next_lateness_change(policies: Policies, statuses: Mapping[UniqueId, AssetStatus],
                         now: datetime) -> datetime | None:
    """The next time a source crosses its warn_after or error_after, if no new data lands before."""
    times = []
    for uid, sla in policies.slas.items():
        status = statuses.get(uid)
        if status is None or status.data_version is None:
            continue
        last = parse_time(status.data_version.data_time)
        times += [t for s in sla.thresholds() if (t := last + timedelta(seconds=s)) > now]
    return min(times, default=None)


def _span(seconds: float) -> str:
    """``2h 05m``, ``12m``, ``3d 4h``."""
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
