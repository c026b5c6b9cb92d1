"""``dbtassets watch``: observe continuously, and sync when something becomes stale.

One thread does all the work, in a loop: it waits on an inbox that watchdog's thread fills
with file events, wakes for query polls, reported observations and backoff retries, and once
things have been quiet for ``settle`` seconds it observes what moved, plans, and builds. So
there is never more than one build, events that arrive during a build wait in the inbox for
the next one, and a burst of events becomes one build.

A file is *being written* from its first ``created``/``modified`` event until its ``closed``
(inotify's IN_CLOSE_WRITE) or the rename that lands it; observations leave such files out, and
the source's downstream assets are not built meanwhile: dbt reads a source's files by its own
glob, half-written ones included.

A failed asset is retried with exponential backoff; a change of its code or of an input's data
version retries it at once. A retry falls due only once its failing ancestors' retries do, so
a held asset never wakes the loop. A pass that fails as a whole (the state store cannot be
written, the project does not parse) keeps its work and is retried with the same backoff, or
at once when a new event arrives.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dbtassets.engine import Project
from dbtassets.errors import DbtAssetsError, LockError
from dbtassets.filewatch import FileEvents, Inbox, watching
from dbtassets.lock import BuildLock
from dbtassets.manifest import UniqueId
from dbtassets.policies import Severity, next_lateness_change, show_time
from dbtassets.results import SyncPlan, SyncResult
from dbtassets.runner import NodeResult
from dbtassets.sources import ObserverKind, WatchSettings
from dbtassets.staleness import AssetStatus, Status

REPORT_POLL = 0.25  # seconds between looks for `dbtassets report` observations


@dataclass(frozen=True)
class WatchEvent:
    """Something the watcher did or saw, for the live log (``kind`` names it; ``data`` details it)."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Backoff:
    attempts: int
    retry_at: float
    signature: tuple[Any, ...]


@dataclass
class _Pending:
    """What has changed since the last pass."""

    sources: set[UniqueId] = field(default_factory=set)
    project: bool = False
    everything: bool = False  # observe every source (a failed first pass owes that)
    last_event: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.sources) or self.project or self.everything


class Watcher:
    """Keeps one project fresh until ``stop`` is set. Create, then :meth:`run`."""

    def __init__(
        self,
        project: Project,
        emit: Callable[[WatchEvent], None],
        *,
        select: Sequence[str] = (),
        exclude: Sequence[str] = (),
        settle: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.project = project
        self.emit = emit
        self.select = tuple(select)
        self.exclude = tuple(exclude)
        self._settle = settle
        self._monotonic = monotonic
        self._inbox: Inbox = queue.SimpleQueue()
        self._files = FileEvents()
        self._pending = _Pending()
        self._backoff: dict[UniqueId, _Backoff] = {}
        self._retry_times: list[float] = []  # derived from _backoff by _backoff_changed, read every loop turn
        self._next_query: dict[UniqueId, float] = {}
        self._last_report = 0
        self._stop = threading.Event()
        self._failed_passes = 0
        self._pass_retry_at: float | None = None  # set while a failed pass waits out its backoff
        # Freshness policies: when the next asset falls due or a source crosses its SLA (wall clock),
        # what was last said about waiting assets, and which sources were last said to be late.
        self._policy_wake: datetime | None = None
        self._waiting_said: tuple[Any, ...] = ()
        self._late: dict[UniqueId, Severity] = {}

    def stop(self) -> None:
        """Ask the loop to finish: the build in flight completes and is recorded first. Thread- and signal-safe."""
        self._stop.set()
        self._inbox.put(("stop", ""))

    @property
    def settle(self) -> float:
        return self._settle if self._settle is not None else self.project.settings.watch.settle

    # -- the loop ------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> bool:
        """Watch until :meth:`stop` (or one pass with ``once``); True if the last build had no failure."""
        with self.project.watch_lock():
            self.project.recover()
            self._last_report = self.project.latest_report()
            if once:
                return self._pass(observe_all=True)
            with watching(self.project.snapshot, self._inbox):
                self.emit(WatchEvent("watching", self._describe()))
                ok = self._pass(observe_all=True)
                _settle_memory()
                while not self._stop.is_set():
                    self._wait()
                    if self._stop.is_set():
                        break
                    if self._due():
                        ok = self._pass(observe_all=False)
            self.emit(WatchEvent("stopped", {}))
            return ok

    def _wait(self) -> None:
        """Block until an event arrives or something falls due, then drain the inbox."""
        now = self._monotonic()
        if self._pass_retry_at is not None:
            deadlines = [self._pass_retry_at]
        else:
            deadlines = [now + REPORT_POLL, *self._next_query.values(), *self._retry_times]
            if self._policy_wake is not None:  # a wall-clock time, as a monotonic deadline
                deadlines.append(now + (self._policy_wake - self.project.clock.now()).total_seconds())
            if self._pending:
                deadlines.append(self._pending.last_event + self.settle)
        timeout = max(0.0, min(deadlines) - now)
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if item[0] != "stop":
                self._on_file(*item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _due(self) -> bool:
        now = self._monotonic()
        if self._pass_retry_at is not None:
            return now >= self._pass_retry_at
        if now >= self._pending.last_event + self.settle and self._pending:
            return True
        for uid, due in self._next_query.items():
            if now >= due:
                self._pending.sources.add(uid)
        latest = self.project.latest_report()
        if latest != self._last_report:
            self._last_report = latest
            self.emit(WatchEvent("reported", {}))
            return True
        if any(now >= retry_at for retry_at in self._retry_times):
            return True
        if self._policy_wake is not None and self.project.clock.now() >= self._policy_wake:
            return True  # an asset fell due, or a source crossed its warn_after/error_after
        return any(now >= due for due in self._next_query.values())

    def _backoff_changed(self) -> None:
        """Recompute when each failed asset can be retried: not before its failing ancestors can.

        Done once per change rather than on every turn of the loop: with a whole large project
        failing (a warehouse down), walking every failed asset's ancestors is not free.
        """
        graph = self.project.graph
        self._retry_times = [
            max([b.retry_at, *(self._backoff[a].retry_at for a in graph.ancestors(uid) if a in self._backoff)])
            for uid, b in self._backoff.items() if uid in graph]

    def _pass(self, *, observe_all: bool) -> bool:
        """Observe what changed, then build what is stale. Never raises a DbtAssetsError."""
        pending, self._pending = self._pending, _Pending()
        self._pass_retry_at = None
        try:
            if pending.project:
                self._reparse()
            self._observe(None if observe_all or pending.everything else pending.sources)
            plan = self.project.plan(self.select, self.exclude, observe=False)
            self._policies(plan)
            to_build = self._buildable(plan)
            ok = self._build(plan, to_build) if to_build or plan.checks else True  # checks: new or changed tests
        except DbtAssetsError as exc:
            # Keep the work (events already drained would be lost) and retry it after a backoff.
            self._pending.sources |= pending.sources
            self._pending.project |= pending.project
            self._pending.everything |= observe_all or pending.everything
            self._failed_passes += 1
            loaded = self.project.loaded  # None if even the first load failed
            watch = loaded.settings.watch if loaded is not None else WatchSettings()
            delay = min(watch.backoff_initial * 2 ** (self._failed_passes - 1), watch.backoff_max)
            self._pass_retry_at = self._monotonic() + delay
            self.emit(WatchEvent("error", {"message": str(exc), "retry_in": delay}))
            return False
        self._failed_passes = 0
        return ok

    def _reparse(self) -> None:
        self.emit(WatchEvent("parsing", {}))
        started = self._monotonic()
        self.project.reparse()
        _settle_memory()
        self._next_query = {}
        self.emit(WatchEvent("parsed", {"seconds": round(self._monotonic() - started, 2),
                                        "assets": len(self.project.graph)}))

    def _observe(self, sources: set[UniqueId] | None) -> None:
        declarations = self.project.settings.sources
        now = self._monotonic()
        queries = {uid for uid, d in declarations.items() if d.kind is ObserverKind.QUERY}
        for uid in queries:
            self._next_query.setdefault(uid, now)
        due = {uid for uid in queries if now >= self._next_query[uid]}
        wanted = set(declarations) if sources is None else (sources | due)
        relative = set(self._files.relative(self.project.dbt.directory))
        for outcome in self.project.observe(wanted, in_progress=relative if sources is not None else None):
            name = self.project.graph.assets[outcome.unique_id].display_name
            if outcome.error:
                self.emit(WatchEvent("observe_failed", {"source": name, "message": outcome.error}))
            elif outcome.changed and outcome.observation is not None:
                self.emit(WatchEvent("new_data", {"source": name, "observer": outcome.kind.value,
                                                  **outcome.observation.detail}))
        for uid in due:
            self._next_query[uid] = now + declarations[uid].every

    def _policies(self, plan: SyncPlan) -> None:
        """After planning: say which sources became late or recovered (once each), what waits on a
        freshness policy and until when, and set the wake-up for the next due time or SLA crossing."""
        verdict = plan.verdict
        if verdict is None:
            self._policy_wake = None
            return
        for uid, late in verdict.late.items():
            if self._late.get(uid) is not late.severity:
                self._late[uid] = late.severity
                self.emit(WatchEvent("source_late", {
                    "source": self._name(uid), "severity": late.severity.value, "message": late.reason.message,
                    "last_data_at": late.last_data_at, "late_for": round(late.late_for, 1),
                    "threshold": late.threshold.to_json()}))
        for uid in [u for u in self._late if u not in verdict.late]:
            del self._late[uid]
            version = plan.statuses[uid].data_version if uid in plan.statuses else None
            self.emit(WatchEvent("source_recovered", {"source": self._name(uid),
                                                      "last_data_at": version.at if version else None}))
        waiting = [u for u in verdict.schedule.waiting() if u in plan.statuses]
        due = verdict.schedule.next_due_at
        wakes = [t for t in (due, next_lateness_change(self.project.policies, plan.statuses, verdict.schedule.now))
                 if t is not None]
        self._policy_wake = min(wakes, default=None)
        said = (tuple(waiting), due)
        if waiting and said != self._waiting_said:
            self.emit(WatchEvent("not_due", {"assets": [self._name(u) for u in waiting],
                                             "next_due_at": show_time(due) if due is not None else None}))
        self._waiting_said = said

    def _buildable(self, plan: SyncPlan) -> list[UniqueId]:
        """The plan's assets that can be built now (says "fresh" when there are none and none wait)."""
        to_build, held = self._apply_backoff(plan)
        to_build, unfinished = self._hold_for_open_files(to_build)
        waiting = plan.verdict is not None and plan.verdict.schedule.waiting()
        if not to_build and not held and not unfinished and not waiting:
            self.emit(WatchEvent("fresh", {"assets": len(plan.statuses)}))
        return to_build

    def _apply_backoff(self, plan: SyncPlan) -> tuple[list[UniqueId], list[UniqueId]]:
        """The plan's assets minus those (and their descendants) still waiting out a backoff."""
        now = self._monotonic()
        for uid in [u for u in self._backoff if u not in plan.to_build]:
            del self._backoff[uid]  # built by someone else, no longer selected, or gone: nothing to retry
        held: set[UniqueId] = set()
        for uid in plan.to_build:
            backoff = self._backoff.get(uid)
            if backoff is None:
                continue
            if backoff.signature != self._signature(plan.statuses, uid):
                del self._backoff[uid]  # its code or an input changed: retry at once
            elif now < backoff.retry_at:
                held.add(uid)
                held |= self.project.graph.descendants(uid)
        self._backoff_changed()
        to_build = [uid for uid in plan.to_build if uid not in held]
        if held:
            waits = {self._name(u): round(b.retry_at - now, 1) for u, b in self._backoff.items() if u in held}
            self.emit(WatchEvent("backing_off", {"assets": sorted(self._name(u) for u in held if u in plan.to_build),
                                                 "retry_in": waits}))
        return to_build, sorted(held)

    def _hold_for_open_files(self, to_build: list[UniqueId]) -> tuple[list[UniqueId], list[UniqueId]]:
        """``to_build`` minus what reads a source with a file still being written (its close brings a pass)."""
        held, files = self._files.held(self.project.snapshot)
        waiting = [uid for uid in to_build if uid in held]
        if waiting:
            names = ", ".join(self._name(u) for u in waiting)
            self.emit(WatchEvent("waiting", {
                "message": f"{names} will be built once {', '.join(files)} is complete (still being written)",
                "assets": [self._name(u) for u in waiting], "files": files}))
        return [uid for uid in to_build if uid not in held], waiting

    def _build(self, plan: SyncPlan, to_build: list[UniqueId]) -> bool:
        acquired = self._acquire_build_lock()
        if acquired is None:
            return True  # asked to stop while waiting for the lock
        lock, waited = acquired
        try:
            if waited:  # another process was building: plan again, now that nobody else can
                plan = self.project.plan(self.select, self.exclude, observe=False)
                to_build = self._buildable(plan)
                if not to_build and not plan.checks:
                    return True
            if to_build != list(plan.to_build):
                plan = self.project.plan_for(to_build, plan.statuses, verdict=plan.verdict, checks=plan.checks)
            self.emit(WatchEvent("stale", {"assets": [
                {"name": self._name(u), "status": plan.statuses[u].status.value,
                 "reasons": [r.message for r in plan.statuses[u].reasons]} for u in to_build]}))
            started = self._monotonic()
            self.emit(WatchEvent("build_started", {"count": len(to_build), "command": plan.command}))
            result = self.project.build(plan, on_node=self._on_node)
        finally:
            lock.release()
        self._after_build(plan, result, self._monotonic() - started)
        return result.ok

    def _after_build(self, plan: SyncPlan, result: SyncResult, seconds: float) -> None:
        now = self._monotonic()
        failed = set(result.failed)
        if result.build is not None and result.build.crashed:
            failed |= set(result.not_run)
        initial, ceiling = self.project.settings.watch.backoff_initial, self.project.settings.watch.backoff_max
        # The inputs a retry would see include what this very build rebuilt upstream.
        after = self.project.status(observe=False).statuses if failed else {}
        for uid in failed:
            attempts = self._backoff[uid].attempts + 1 if uid in self._backoff else 1
            delay = min(initial * 2 ** (attempts - 1), ceiling)
            self._backoff[uid] = _Backoff(attempts, now + delay, ())
        for uid in result.built:
            self._backoff.pop(uid, None)
        for uid in failed:  # signatures name the failing ancestors: only once all of them are in
            self._backoff[uid].signature = self._signature(after, uid)
        self._backoff_changed()
        self.emit(WatchEvent("build_finished", {
            "built": [self._name(u) for u in result.built],
            "failed": {self._name(u): m for u, m in result.failed.items()},
            "failed_checks": {self.project.manifest.checks[c].name: m for c, m in result.failed_checks.items()},
            "skipped": [self._name(u) for u in result.skipped], "seconds": round(seconds, 2),
            "command": plan.command, "error": result.build.crashed if result.build else None,
            "log_path": str(result.build.log_path) if result.build else None,
            "retry_in": {self._name(u): round(self._backoff[u].retry_at - now, 1) for u in failed},
        }))

    def _signature(self, statuses: Mapping[UniqueId, AssetStatus], uid: UniqueId) -> tuple[Any, ...]:
        """What a retry depends on: the asset's code and its inputs' data versions."""
        graph = self.project.graph
        versions = tuple((p, v.value if (v := statuses[p].data_version) else None) for p in graph.parents(uid))
        upstream_failing = tuple(sorted(p for p in graph.ancestors(uid) if p in self._backoff))
        return graph.assets[uid].code_version, versions, upstream_failing

    # -- helpers -------------------------------------------------------------------------

    def _acquire_build_lock(self) -> tuple[BuildLock, bool] | None:
        """The per-build lock a CLI ``sync`` also takes, and whether it had to wait for it.

        Waits rather than fails; None if :meth:`stop` is called meanwhile.
        """
        lock = self.project.build_lock("watch build")
        waited = False
        while True:
            try:
                lock.acquire()
                return lock, waited
            except LockError as exc:
                if not waited:
                    self.emit(WatchEvent("waiting", {"message": str(exc)}))
                    waited = True
                if self._stop.wait(0.5):
                    return None

    def _on_node(self, result: NodeResult) -> None:
        node = self.project.graph.assets.get(result.unique_id)
        if node is not None or result.status in ("fail", "error"):
            name = node.display_name if node else result.unique_id
            self.emit(WatchEvent("node_finished", {"name": name, "status": result.status,
                                                   "seconds": round(result.execution_time, 2),
                                                   "message": result.message}))

    def _name(self, uid: UniqueId) -> str:
        return self.project.graph.assets[uid].display_name

    def _describe(self) -> dict[str, Any]:
        graph = self.project.graph
        return {
            "project": str(self.project.dbt.directory),
            "assets": len(graph),
            "sources": {self._name(uid): d.describe() for uid, d in self.project.settings.sources.items()},
            "runner": self.project.runner_name,
            "settle": self.settle,
            "stale": sum(1 for s in self.project.status(observe=False).statuses.values()
                         if s.status is not Status.FRESH),
        }

    def _on_file(self, what: str, path: str) -> None:
        """A file event from the inbox: note what it touches (watchdog's thread only fills the inbox)."""
        touched = self._files.note(self.project.snapshot, what, path)
        self._pending.sources |= touched.sources
        self._pending.project |= touched.project
        if touched:
            self._pending.last_event = self._monotonic()
            self._pass_retry_at = None  # news: a failed pass is retried at once (after settle)


def _settle_memory() -> None:
    """Move dbt's long-lived objects (the parsed manifest…) out of the garbage collector's sight.

    Otherwise full collections walk ~180,000 of them every few seconds while data lands, and one
    in three builds pays 0.1-0.3 s for it (measured by benchmarks/bench_watch.py's author).
    """
    gc.collect()
    gc.freeze()
