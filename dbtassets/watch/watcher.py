"""``dbtassets watch``: observe continuously, and sync when something becomes stale.

One thread does all the work, in a loop: it waits on an inbox that watchdog's thread fills
with file events, wakes for query polls, reported observations and backoff retries, and once
things have been quiet for ``settle`` seconds it observes what moved, plans, and builds. So
there is never more than one build, events that arrive during a build wait in the inbox for
the next one, and a burst of events becomes one build.

A file is *being written* until it is closed or renamed into place (:mod:`dbtassets.watch.files`):
observations leave it out and its source's downstream assets wait (dbt would read it half-written).

A failed asset is retried with backoff (:mod:`dbtassets.watch.backoff`). A pass that fails as a whole
(the state store cannot be written, the project does not parse) keeps its work and is retried
with the same backoff, or at once when a new event arrives. A state store whose server cannot be
reached (at start, or mid-run) is waited for: retried with a backoff of its own until it answers,
then every source is observed again (see ``store_unreachable`` in ``docs/events.md``).

It talks to the project only through the engine's verbs, says what it does in typed events
(:mod:`dbtassets.watch.events`), and takes its time from a :class:`Ticker` (tests drive it with a fake one).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dbtassets.engine import Project
from dbtassets.errors import DbtAssetsError, StoreUnreachable
from dbtassets.model.manifest import UniqueId
from dbtassets.model.sources import ObserverKind, WatchSettings
from dbtassets.results import SyncPlan, SyncResult
from dbtassets.rules.statuses import Status
from dbtassets.state.heartbeats import Heartbeat
from dbtassets.watch import events as ev
from dbtassets.watch import narration
from dbtassets.watch.backoff import Backoffs, Outage, Unreachable, delay
from dbtassets.watch.files import FileEvents, Inbox, watching
from dbtassets.watch.policies import PolicyWatch
from dbtassets.watch.ticker import RealTicker, Ticker, settle_memory

REPORT_POLL = 0.25  # seconds between looks for `dbtassets report` observations (and others' builds)
HELD_POLL = 2.0  # seconds between looks at assets another build holds (team mode)


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

    def __init__(self, project: Project, emit: Callable[[ev.WatchEvent], None], *, select: Sequence[str] = (),
                 exclude: Sequence[str] = (), settle: float | None = None, ticker: Ticker | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # monotonic: a RealTicker's, without ticker
        self.project = project
        self._emit = emit
        self.select = tuple(select)
        self.exclude = tuple(exclude)
        self._settle = settle
        self._ticker = ticker or RealTicker(monotonic)
        self._inbox: Inbox = queue.SimpleQueue()
        self._files = FileEvents()
        self._pending = _Pending()
        self._backoffs = Backoffs()
        self._next_query: dict[UniqueId, float] = {}
        self._last_report = 0
        self._stop = threading.Event()
        self._failed_passes = 0
        self._outage = Outage()  # the state store's server cannot be reached: since when
        self._begun = False  # dead runs recovered and the start announced (waits for a reachable store)
        self._once = False
        self._pass_retry_at: float | None = None  # set while a failed pass waits out its backoff
        # Team mode: the newest build outcome seen (another watcher's build may make ours stale), and
        # when to look again at assets another build holds (its end, or its lease's expiry).
        self._last_materialization = 0
        self._held_retry_at: float | None = None
        self._said: object = None  # the last state announced (fresh, holding…): said again only when it changes
        self._warehouse = Unreachable()  # observations in a row the warehouse did not answer, and the wait after
        self._policies = PolicyWatch(project.lateness_said)  # wakes when an asset falls due or a source crosses its SLA
        self._heartbeat: Heartbeat | None = None  # this watcher's row in the store, once begun
        self.woke_at: float | None = None  # the loop's last pass or wake-up (monotonic): is it alive? (/healthz)

    def stop(self) -> None:
        """Ask the loop to finish: the build in flight completes and is recorded first. Thread- and signal-safe."""
        self._stop.set()
        self._inbox.put(("stop", ""))

    @property
    def settle(self) -> float:
        return self._settle if self._settle is not None else self.project.settings.watch.settle

    def emit(self, event: ev.WatchEvent) -> None:
        self._said = None
        self._emit(event)

    def _announce(self, event: ev.WatchEvent, state: object) -> None:
        """Emit a state event (nothing to do, holding…) only when the state differs from the last one said."""
        if state != self._said:
            self.emit(event)
        self._said = state

    # -- the loop ------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> bool:
        """Watch until :meth:`stop` (or one pass with ``once``); True if the last build had no failure."""
        with self.project.watch_lock():
            if once:
                self._once = True
                self._begin()  # a store that cannot be reached is a StateError: one line, exit 2
                ok = self._pass(observe_all=True)
                self._beat(stopped=True)
                return ok
            with watching(self.project.snapshot, self._inbox):
                ok = self._pass(observe_all=True)
                settle_memory()
                while not self._stop.is_set():
                    self.woke_at = self._ticker.monotonic()
                    self._wait()
                    if self._stop.is_set():
                        break
                    if self._due():
                        ok = self._pass(observe_all=False)
                    self._beat()
            self._beat(stopped=True)
            self.emit(ev.Stopped())
            return ok

    def _begin(self) -> None:
        """Close the runs dead processes left open, note the store's newest records, say what is watched."""
        self.project.recover()
        self._heartbeat = self.project.heartbeat()
        self._heartbeat.start()
        self._last_report = self.project.latest_report()
        self._last_materialization = self.project.latest_build()
        if not self._once:
            self.emit(self._describe())
        self._begun = True

    def _wait(self) -> None:
        """Block until an event arrives or something falls due, then drain the inbox."""
        now = self._ticker.monotonic()
        if self._pass_retry_at is not None:
            deadlines = [self._pass_retry_at]
        else:
            deadlines = [now + REPORT_POLL, *self._next_query.values(), *self._backoffs.retry_times]
            if self._held_retry_at is not None:
                deadlines.append(self._held_retry_at)
            if self._policies.wake is not None:  # a wall-clock time, as a monotonic deadline
                deadlines.append(now + (self._policies.wake - self.project.clock.now()).total_seconds())
            if self._pending:
                deadlines.append(self._pending.last_event + self.settle)
        item = self._ticker.wait(self._inbox, max(0.0, min(deadlines) - now))
        while item is not None:
            if item[0] != "stop":
                self._on_file(*item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _due(self) -> bool:
        now = self._ticker.monotonic()
        if self._pass_retry_at is not None:
            return now >= self._pass_retry_at
        if now >= self._pending.last_event + self.settle and self._pending:
            return True
        for uid, due in self._next_query.items():
            if now >= due:
                self._pending.sources.add(uid)
        if self._held_retry_at is not None and now >= self._held_retry_at:
            return True
        try:
            latest = self.project.latest_report()
            built = self.project.latest_build()
        except DbtAssetsError:
            return True  # the store is unreachable: a pass says so, and retries with a backoff
        if latest != self._last_report:
            self._last_report = latest
            self.emit(ev.Reported())
            return True
        if built != self._last_materialization:  # another process built something (team mode, a sync)
            self._last_materialization = built
            return True
        if any(now >= retry_at for retry_at in self._backoffs.retry_times):
            return True
        if self._policies.wake is not None and self.project.clock.now() >= self._policies.wake:
            return True  # an asset fell due, or a source crossed its warn_after/error_after
        return any(now >= due for due in self._next_query.values())

    def _pass(self, *, observe_all: bool) -> bool:
        """Observe what changed, then build what is stale. Never raises a DbtAssetsError."""
        pending, self._pending = self._pending, _Pending()
        self._pass_retry_at = self._held_retry_at = None
        try:
            if self._outage.since is not None:
                self.project.latest_build()  # raises while it still cannot be reached
                self.emit(ev.StoreReconnected(self._outage.ended(self._ticker.monotonic())))
            if not self._begun:
                self._begin()
            if pending.project:
                self._reparse()
            self._observe(None if observe_all or pending.everything else pending.sources)
            seen = self.project.latest_build()
            plan = self.project.plan(self.select, self.exclude, observe=False)
            for event in self._policies.after_plan(plan, self.project.policies, self._name):
                self.emit(event)
            to_build = self._buildable(plan)
            ok = self._build(plan, to_build, seen) if to_build or plan.checks else True  # checks: new or changed tests
            self._last_materialization = self.project.latest_build()
            self._beat(passed=True)
        except DbtAssetsError as exc:
            unreachable = isinstance(exc, StoreUnreachable)
            if (unreachable and self._once) or not (unreachable or self._begun):
                raise  # `watch --once`, or a start that waiting cannot fix (a wrong password): exit 2
            # Keep the work (events already drained would be lost) and retry it after a backoff.
            self._pending.sources |= pending.sources
            self._pending.project |= pending.project
            self._pending.everything |= observe_all or pending.everything or unreachable
            if unreachable:  # what landed meanwhile is observed once it answers; no news cuts the wait short
                wait = self._outage.failed(self._ticker.monotonic())
                self._pass_retry_at = self._ticker.monotonic() + wait
                self.emit(ev.StoreUnreachable(str(exc), wait))
                return False
            self._failed_passes += 1
            loaded = self.project.loaded  # None if even the first load failed
            watch = loaded.settings.watch if loaded is not None else WatchSettings()
            wait = delay(self._failed_passes, watch.backoff_initial, watch.backoff_max)
            self._pass_retry_at = self._ticker.monotonic() + wait
            self.emit(ev.Error(str(exc), wait))
            return False
        self._failed_passes = 0
        return ok

    def _reparse(self) -> None:
        self.emit(ev.Parsing())
        started, before = self._ticker.monotonic(), self.project.loaded
        snapshot = self.project.reparse()
        settle_memory()
        self._next_query = {}
        self.emit(ev.Parsed(round(self._ticker.monotonic() - started, 2), len(snapshot.graph)))
        for event in narration.removed_checks(before, snapshot):
            self.emit(event)

    def _observe(self, sources: set[UniqueId] | None) -> None:
        declarations = self.project.settings.sources
        now = self._ticker.monotonic()
        queries = {uid for uid, d in declarations.items() if d.kind is ObserverKind.QUERY}
        for uid in queries:
            self._next_query.setdefault(uid, now)
        due = {uid for uid in queries if now >= self._next_query[uid]}
        wanted = set(declarations) if sources is None else (sources | due)
        relative = set(self._files.relative(self.project.dbt.directory))
        outcomes = self.project.observe(wanted, in_progress=relative if sources is not None else None)
        for event in narration.observed(outcomes, self._name):  # an unreachable warehouse is said once, below
            self.emit(event)
        for uid in due:
            self._next_query[uid] = now + declarations[uid].every
        down = [o for o in outcomes if o.unreachable]
        retry = self._warehouse.retry_at([o.unique_id for o in down], self.project.settings.watch, declarations, now)
        self._next_query.update(retry)
        if down:
            self.emit(ev.WarehouseUnreachable(str(down[0].error), len(down), round(min(retry.values()) - now, 1)))

    def _buildable(self, plan: SyncPlan) -> list[UniqueId]:
        """The plan's assets that can be built now (says "fresh" when there are none and none wait)."""
        now = self._ticker.monotonic()
        held = self._backoffs.held(self.project.graph, plan.to_build, plan.statuses, now)
        if held:
            names = sorted(self._name(u) for u in held if u in plan.to_build)
            retry_in = {self._name(u): s for u, s in self._backoffs.retry_in(held, now).items()}
            self._announce(ev.BackingOff(tuple(names), retry_in), ("backing_off", names))
        to_build, unfinished = self._hold_for_open_files([uid for uid in plan.to_build if uid not in held])
        not_due = plan.verdict is not None and plan.verdict.schedule.waiting()
        if not to_build and not plan.checks and not held and not unfinished and not not_due:
            self._announce(ev.Fresh(len(plan.statuses)), "fresh")
        return to_build

    def _hold_for_open_files(self, to_build: list[UniqueId]) -> tuple[list[UniqueId], list[UniqueId]]:
        """``to_build`` minus what reads a source with a file still being written (its close brings a pass)."""
        held, files = self._files.held(self.project.snapshot)
        waiting = [uid for uid in to_build if uid in held]
        if waiting:
            names = tuple(self._name(u) for u in waiting)
            message = f"{', '.join(names)} will be built once {', '.join(files)} is complete (still being written)"
            self._announce(ev.Waiting(message, names, tuple(files)), ("waiting", names, files))
        return [uid for uid in to_build if uid not in held], waiting

    def _build(self, plan: SyncPlan, to_build: list[UniqueId], seen: int) -> bool:
        lock = self.project.build_lock("watch build")  # the per-build lock a CLI `sync` also takes
        waited = lock.wait(self._stop, lambda message: self.emit(ev.Waiting(message)))
        if waited is None:
            return True  # asked to stop while waiting for the lock
        try:
            self.project.recover()  # a build another machine's watcher left when it died (its leases expired)
            if waited:  # another process was building: plan again, now that nobody else can
                seen = self.project.latest_build()
                plan = self.project.plan(self.select, self.exclude, observe=False)
                to_build = self._buildable(plan)
                if not to_build and not plan.checks:
                    return True
            if to_build != list(plan.to_build):
                plan = self.project.plan_for(to_build, plan.statuses, verdict=plan.verdict, checks=plan.checks)

            def replan() -> SyncPlan:
                fresh = self.project.plan(self.select, self.exclude, observe=False)
                return self.project.plan_for(self._buildable(fresh), fresh.statuses, verdict=fresh.verdict,
                                             checks=fresh.checks)

            with self.project.leased(plan, replan, seen) as share:
                if share.left:
                    self._leave(share.left_to(), share.claim.next_expiry)
                plan, to_build = share.plan, list(share.plan.to_build)
                if plan.empty:
                    return True
                self.emit(narration.stale(plan, self.project.snapshot))
                started = self._ticker.monotonic()
                self.emit(ev.BuildStarted(len(to_build), plan.command, len(plan.checks)))
                nodes = narration.Nodes(self.project.snapshot)
                with self._heartbeat.keep() if self._heartbeat else contextlib.nullcontext():  # a long build
                    result = self.project.build(plan, on_node=lambda node: self._say(nodes.finished(node)),
                                                holder=share.claim.holder)
        finally:
            lock.release()
        self._after_build(plan, result, self._ticker.monotonic() - started, nodes)
        return result.ok

    def _leave(self, holders: Mapping[UniqueId, str], expiry: float | None) -> None:
        """Say what another build holds, and look again when it should be done or its lease expires."""
        names = tuple(self._name(u) for u in holders)
        listed = ", ".join(f"{self._name(u)} ({holder})" for u, holder in holders.items())
        self.emit(ev.Waiting(f"left to another build: {listed}", names, ()))
        self._held_retry_at = self._ticker.monotonic() + min(
            HELD_POLL, expiry + 0.1 if expiry is not None else HELD_POLL)

    def _after_build(self, plan: SyncPlan, result: SyncResult, seconds: float, nodes: narration.Nodes) -> None:
        now = self._ticker.monotonic()
        if result.lost:  # another build holds them now: plan again at once (build, or leave them to it)
            self.emit(ev.LeaseLost(tuple(self._name(u) for u in result.lost),
                                   {self._name(u): holder for u, holder in result.lost.items()}))
            self._held_retry_at = now
        failed = set(result.failed)
        if result.build is not None and result.build.crashed:
            failed |= set(result.not_run)
        for event in nodes.unsaid(result.failed):  # a runner that said nothing live
            self.emit(event)
        watch = self.project.settings.watch
        after = self.project.status(observe=False).statuses if failed else {}
        self._backoffs.after_build(self.project.graph, result.built, failed, after, now, watch.backoff_initial,
                                   watch.backoff_max)
        self.emit(narration.finished(plan, result, seconds, self._backoffs.retry_in(failed, now),
                                     self.project.snapshot))

    # -- helpers -------------------------------------------------------------------------

    def _beat(self, *, passed: bool = False, stopped: bool = False) -> None:
        """Say in the store that this watcher is alive (``passed``: it finished a pass), or has stopped."""
        if self._heartbeat is not None:
            with contextlib.suppress(DbtAssetsError):  # the next pass says what is wrong with the store
                self._heartbeat.stop() if stopped else self._heartbeat.beat(passed=passed)

    def _say(self, event: ev.WatchEvent | None) -> None:
        if event is not None:
            self.emit(event)

    def _name(self, uid: UniqueId) -> str:
        return self.project.graph.assets[uid].display_name

    def _describe(self) -> ev.Watching:
        stale = sum(1 for s in self.project.status(observe=False).statuses.values() if s.status is not Status.FRESH)
        sources = {self._name(uid): d.describe() for uid, d in self.project.settings.sources.items()}
        return ev.Watching(str(self.project.dbt.directory), len(self.project.graph), sources,
                           self.project.runner_name, self.settle, stale)

    def _on_file(self, what: str, path: str) -> None:
        """A file event from the inbox: note what it touches (watchdog's thread only fills the inbox)."""
        touched = self._files.note(self.project.snapshot, what, path)
        self._pending.sources |= touched.sources
        self._pending.project |= touched.project
        if touched:
            self._pending.last_event = self._ticker.monotonic()
            if self._outage.since is None:
                self._pass_retry_at = None  # news: a failed pass is retried at once (after settle)
