"""What the watcher says about freshness policies, and when they wake it.

After each plan: which sources became late or recovered (said once each, and recorded in the store:
a restarted watcher does not say it again), which stale assets wait
for their freshness policy and until when (said when that changes), and the next moment an asset
falls due or a source crosses its ``warn_after``/``error_after`` (a wall-clock time to wake at).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from dbtassets.clock import to_the_second
from dbtassets.model.freshness import Policies, Severity
from dbtassets.model.manifest import UniqueId
from dbtassets.results import SyncPlan
from dbtassets.rules.policies import next_lateness_change
from dbtassets.watch import events as ev


class PolicyWatch:
    """``said`` records lateness changes (a severity, or None: recovered) and returns all that was said
    (:meth:`dbtassets.engine.Project.lateness_said`)."""

    def __init__(self, said: Callable[[Mapping[UniqueId, str | None] | None], Mapping[UniqueId, str]]) -> None:
        self.wake: datetime | None = None
        self._said = said
        self._late: dict[UniqueId, Severity] | None = None  # read from the store at the first plan
        self._waiting_said: tuple[object, ...] = ()

    def after_plan(self, plan: SyncPlan, policies: Policies, name: Callable[[UniqueId], str]) -> list[ev.WatchEvent]:
        verdict = plan.verdict
        if verdict is None:
            self.wake = None
            return []
        if self._late is None:
            self._late = {uid: Severity(severity) for uid, severity in self._said({}).items()}
        said: list[ev.WatchEvent] = []
        changes: dict[UniqueId, str | None] = {}
        for uid, late in verdict.late.items():
            if self._late.get(uid) is not late.severity:
                changes[uid] = late.severity.value
                said.append(ev.SourceLate(name(uid), late.severity.value, late.reason.message, late.last_data_at,
                                          round(late.late_for, 1), late.threshold.to_json()))
        for uid in [u for u in self._late if u not in verdict.late]:
            changes[uid] = None
            version = plan.statuses[uid].data_version if uid in plan.statuses else None
            said.append(ev.SourceRecovered(name(uid), version.data_time if version else None))
        if changes:  # recorded first: a store that cannot be written fails the pass, which says it all again
            self._said(changes)
            for uid, severity in changes.items():
                if severity is None:
                    del self._late[uid]
                else:
                    self._late[uid] = Severity(severity)
        waiting = tuple(u for u in verdict.schedule.waiting() if u in plan.statuses)
        due = verdict.schedule.next_due_at
        wakes = [t for t in (due, next_lateness_change(policies, plan.statuses, verdict.schedule.now))
                 if t is not None]
        self.wake = min(wakes, default=None)
        if waiting and (waiting, due) != self._waiting_said:
            said.append(ev.NotDue(tuple(name(u) for u in waiting), to_the_second(due) if due is not None else None))
        self._waiting_said = (waiting, due)
        return said
