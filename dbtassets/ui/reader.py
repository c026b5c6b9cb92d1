"""The server's one way into the project: a :class:`Project` of its own, read under a lock, never written through.

The page's answers are ``status --no-observe``'s: no source is read, no build started, no lock
taken. The project is loaded again when ``target/manifest.json`` changes (the watcher re-parsed),
and the graph document is kept until the store's newest records, the building set or the minute
change.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from dbtassets.building.runner import BuildResult, DbtTarget, NodeResult, SubprocessRunner, Verb
from dbtassets.engine import Project
from dbtassets.errors import RunnerError
from dbtassets.model.manifest import ResourceType, UniqueId
from dbtassets.model.sources import ObserverKind
from dbtassets.state.records import RunStatus
from dbtassets.ui import views
from dbtassets.ui.live import Live, StorePoll
from dbtassets.ui.metrics import Family, epoch, render

STUCK_AFTER = 60.0  # seconds without a loop pass (and no build in flight) before /healthz says 503
POLL_STALE = 10.0  # `dbtassets ui`: seconds since the store last answered before /healthz says 503
FILES_EVERY = 2.0  # `dbtassets ui`: seconds between looks for edited project files (a parse follows one)


class ReadOnlyRunner:
    """The runner of the page's project: it never builds, compiles or queries (dbt would reach the warehouse
    and the compiled SQL would be written to the store); it parses only where nobody else does (``ui``).

    A model whose changed SQL no watcher or ``status`` has compared yet is therefore shown by its file
    checksum, with the note that says so, until one does.
    """

    def __init__(self, parse: bool) -> None:
        self.on_node: Callable[[NodeResult], None] | None = None
        self._parse = parse
        self._target: DbtTarget | None = None

    def retarget(self, target: DbtTarget) -> None:
        self._target = target

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = (), verb: Verb = Verb.BUILD) -> BuildResult:
        raise RunnerError("the page is read-only: it never runs dbt build")

    def parse(self) -> None:
        if self._parse and self._target is not None:  # with a watcher, the watcher parses
            SubprocessRunner(self._target).parse()

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> dict[UniqueId, str]:
        return {}

    def query(self, sql: str, timeout: float | None = None) -> list[list[Any]]:
        raise RunnerError("the page is read-only: it never queries the warehouse")


class Reader:
    """Answers the page's questions from a project opened for it alone."""

    def __init__(self, open_project: Callable[[], Project], live: Live,
                 beat: Callable[[], float | None] | None = None, dropped: Callable[[], int] | None = None) -> None:
        self._open = open_project
        self._project: Project | None = None
        self._stamp: int | None = None
        self._lock = threading.RLock()
        self._parses = not live.watcher  # `dbtassets ui` follows edits itself; a watcher parses for its page
        self._looked = 0.0
        self._cache: tuple[Hashable, dict[str, Any]] | None = None
        self.live = live
        self.beat = beat  # the watcher's last loop pass (monotonic), with `watch --ui`
        self.dropped = dropped  # OpenLineage batches the watcher could not send, with `watch --ui --openlineage`
        self.poll = StorePoll(live, self.token)

    def close(self) -> None:
        self.poll.stop()
        with self._lock:
            if self._project is not None:
                self._project.close()
                self._project = None

    def _current(self) -> Project:
        """The project, loaded again if the manifest changed since it was loaded. Call under the lock."""
        if self._project is None:
            self._project = self._open()
        project = self._project
        if self._parses and time.monotonic() - self._looked > FILES_EVERY:  # nobody else parses: an edit is ours
            self._looked = time.monotonic()
            with contextlib.suppress(OSError):
                if project.dbt.newest_file()[0] > project.dbt.manifest_path.stat().st_mtime:
                    project.reload()  # runs dbt parse (ReadOnlyRunner.parse), so the manifest's mtime moves
        try:
            stamp: int | None = (project.options.manifest_path or project.dbt.manifest_path).stat().st_mtime_ns
        except OSError:
            stamp = None
        if stamp != self._stamp:
            if self._stamp is not None:
                project.reload()
            self._stamp = stamp
            self._cache = None
        return project

    def token(self) -> Hashable:
        """Changes whenever the store records a build outcome or an observation (cheap: a few MAX(id))."""
        with self._lock:
            project = self._current()
            store = project.store
            return (self._stamp, store.latest_materialization_id(),
                    *(store.latest_observation_id(k.value) for k in ObserverKind if k is not ObserverKind.NONE))

    def graph(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> dict[str, Any]:
        with self._lock:
            building = frozenset(self.live.building)
            key = (self.token(), building, tuple(select), tuple(exclude), int(time.time() // 30))
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            document = views.graph_document(self._current(), building, select, exclude)
            document["watcher"] = self.live.watcher
            self._cache = (key, document)
            return document

    def warm(self) -> None:
        """Read the statuses once now, so the first page opened is as fast as the next (a large project)."""
        with contextlib.suppress(Exception):  # a request will say what is wrong; this only saves time
            self.graph()

    def asset(self, name: str) -> dict[str, Any]:
        with self._lock:
            return views.asset_document(self._current(), name)

    def health(self) -> tuple[bool, str]:
        """(healthy, why): what ``/healthz`` answers."""
        if self.poll.error is not None:
            return False, f"the state store cannot be read: {self.poll.error}"
        if not self.poll.alive:
            return False, "the server's store poll is not running"
        if not self.live.watcher:
            if self.poll.last_ok is None or time.monotonic() - self.poll.last_ok > POLL_STALE:
                return False, f"the state store has not answered for over {POLL_STALE:.0f}s"
            return True, "serving the state store (no watcher in this process)"
        if self.live.stopped:
            return False, "the watcher stopped"
        started = self.live.build_started
        if started is not None:
            return True, f"building for {time.monotonic() - started:.0f}s"
        beats = [b for b in (self.beat() if self.beat is not None else None, self.live.last_event) if b is not None]
        if not beats:
            return False, "the watcher has not made its first pass yet"
        beat = max(beats)
        age = time.monotonic() - beat
        if age > STUCK_AFTER:
            return False, f"the watcher's loop last ran {age:.0f}s ago (limit {STUCK_AFTER:.0f}s)"
        return True, f"the watcher's loop last ran {age:.1f}s ago"

    def metrics(self) -> str:
        with self._lock:
            project = self._current()
            report = project.status(observe=False)
            store = project.store
            graph = project.graph
            assets = Family("dbtassets_assets", "gauge", "Assets by status (fresh, stale, missing, unobserved).")
            for status, n in views.counts_by_status(report).items():
                assets.add(n, status=status)
            runs = Family("dbtassets_runs", "gauge", "Recorded builds (dbt runs) of this target by outcome.")
            counted = dict.fromkeys((s.value for s in RunStatus), 0)
            for run in store.runs():
                counted[run.status.value] += 1
            for status, n in counted.items():
                runs.add(n, status=status)
            outcomes = Family("dbtassets_build_outcomes", "gauge", "Recorded asset build outcomes by dbt status.")
            by_outcome: dict[str, int] = {}
            for _, uid, outcome, _ in store.outcomes_since(""):
                if uid is not None and outcome is not None:
                    by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
            for outcome, n in sorted(by_outcome.items()):
                outcomes.add(n, outcome=outcome)
            durations = [d for ds in store.build_durations().values() for d in ds]
            seconds = Family("dbtassets_build_duration_seconds", "summary",
                             "dbt execution time of successful asset builds.")
            seconds.add(len(durations), "_count").add(sum(durations), "_sum")
            observed = Family("dbtassets_source_last_observation_timestamp_seconds", "gauge",
                              "When each source's data version last moved (Unix time).")
            for uid, version in sorted(store.latest_observations().items()):
                node = graph.assets.get(uid)
                if node is not None and node.resource_type == ResourceType.SOURCE and version.at:
                    observed.add(epoch(version.at), source=node.display_name)
            late = Family("dbtassets_source_late_seconds", "gauge",
                          "Seconds since a late source's last new data, by the threshold it crossed.")
            for uid, lateness in sorted((report.verdict.late if report.verdict else {}).items()):
                late.add(lateness.late_for, source=graph.assets[uid].display_name, severity=lateness.severity.value)
        families = [assets, runs, outcomes, seconds, observed, late]
        healthy, _ = self.health()
        families.append(Family("dbtassets_up", "gauge", "1 while /healthz answers 200.").add(int(healthy)))
        building = Family("dbtassets_assets_building", "gauge", "Assets the build in flight is building.")
        families.append(building.add(len(self.live.building)))
        if self.dropped is not None:
            families.append(Family("dbtassets_openlineage_dropped", "counter", "OpenLineage batches of events not "
                                   "sent (queue full, or left when the receiver was down).").add(self.dropped(),
                                                                                                  "_total"))
        beat = self.beat() if self.beat is not None else None
        if beat is not None:
            families.append(Family("dbtassets_watcher_last_pass_age_seconds", "gauge",
                                   "Seconds since the watcher's loop last ran.").add(time.monotonic() - beat))
        return render(families)

