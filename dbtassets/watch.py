"""``dbtassets watch``: observe continuously, and sync when something becomes stale.

One thread does all the work, in a loop: it waits on an inbox that watchdog's thread fills
with file events, wakes for query polls, reported observations and backoff retries, and once
things have been quiet for ``settle`` seconds it observes what moved, plans, and builds. So
there is never more than one build, events that arrive during a build wait in the inbox for
the next one, and a burst of events becomes one build.

A file is *being written* from its first ``created``/``modified`` event until its ``closed``
(inotify's IN_CLOSE_WRITE) or the rename that lands it; observations leave such files out.

A failed asset is retried with exponential backoff; a change of its code or of an input's data
version retries it at once.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbtassets.engine import Project, SyncPlan, SyncResult
from dbtassets.errors import DbtAssetsError, LockError
from dbtassets.lock import BuildLock
from dbtassets.manifest import UniqueId
from dbtassets.runner import NodeResult
from dbtassets.sources import ObserverKind
from dbtassets.staleness import AssetStatus, Status

REPORT_POLL = 0.25  # seconds between looks for `dbtassets report` observations
_IGNORED_DIRS = ("target", "logs", "dbt_packages", ".dbtassets", ".git")


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
    last_event: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.sources) or self.project


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
        self._inbox: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._writing: set[str] = set()
        self._pending = _Pending()
        self._backoff: dict[UniqueId, _Backoff] = {}
        self._next_query: dict[UniqueId, float] = {}
        self._last_report = 0
        self._stop = threading.Event()

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
        directory = self.project.dbt.directory
        with BuildLock(directory / ".dbtassets" / "watch.lock", "watch"):
            self.project.store.interrupt_dead_runs(self.project.now())
            self._last_report = self._latest_report_id()
            if once:
                return self._pass(observe_all=True)
            with self._file_watch():
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
        deadlines = [now + REPORT_POLL, *self._next_query.values(), *(b.retry_at for b in self._backoff.values())]
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
        if now >= self._pending.last_event + self.settle and self._pending:
            return True
        for uid, due in self._next_query.items():
            if now >= due:
                self._pending.sources.add(uid)
        latest = self._latest_report_id()
        if latest != self._last_report:
            self._last_report = latest
            self.emit(WatchEvent("reported", {}))
            return True
        if any(now >= b.retry_at for b in self._backoff.values()):
            return True
        return any(now >= due for due in self._next_query.values())

    def _pass(self, *, observe_all: bool) -> bool:
        """Observe what changed, then build what is stale. Never raises a DbtAssetsError."""
        pending, self._pending = self._pending, _Pending()
        try:
            if pending.project:
                self._reparse()
            self._observe(None if observe_all else pending.sources)
            plan = self.project.plan(self.select, self.exclude, observe=False)
            to_build, held = self._apply_backoff(plan)
            if not to_build:
                if not held:
                    self.emit(WatchEvent("fresh", {"assets": len(plan.statuses)}))
                return True
            return self._build(plan, to_build)
        except DbtAssetsError as exc:
            self.emit(WatchEvent("error", {"message": str(exc)}))
            return False

    def _reparse(self) -> None:
        self.emit(WatchEvent("parsing", {}))
        started = self._monotonic()
        self.project.runner.parse()
        self.project.reload()
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
        relative = {os.path.relpath(p, self.project.dbt.directory) for p in self._writing}
        for outcome in self.project.observe(wanted, in_progress=relative if sources is not None else None):
            name = self.project.graph.assets[outcome.unique_id].display_name
            if outcome.error:
                self.emit(WatchEvent("observe_failed", {"source": name, "message": outcome.error}))
            elif outcome.changed and outcome.observation is not None:
                self.emit(WatchEvent("new_data", {"source": name, "observer": outcome.kind.value,
                                                  **outcome.observation.detail}))
        for uid in due:
            self._next_query[uid] = now + declarations[uid].every

    def _apply_backoff(self, plan: SyncPlan) -> tuple[list[UniqueId], list[UniqueId]]:
        """The plan's assets minus those (and their descendants) still waiting out a backoff."""
        now = self._monotonic()
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
        to_build = [uid for uid in plan.to_build if uid not in held]
        if held:
            waits = {self._name(u): round(b.retry_at - now, 1) for u, b in self._backoff.items() if u in held}
            self.emit(WatchEvent("backing_off", {"assets": sorted(self._name(u) for u in held if u in plan.to_build),
                                                 "retry_in": waits}))
        return to_build, sorted(held)

    def _build(self, plan: SyncPlan, to_build: list[UniqueId]) -> bool:
        if to_build != list(plan.to_build):
            plan = self.project.plan_for(to_build, plan.statuses)
        self.emit(WatchEvent("stale", {"assets": [
            {"name": self._name(u), "status": plan.statuses[u].status.value,
             "reasons": [r.message for r in plan.statuses[u].reasons]} for u in to_build]}))
        started = self._monotonic()
        with self._build_lock():
            self.emit(WatchEvent("build_started", {"count": len(to_build), "command": plan.command}))
            with self._node_events():
                result = self.project.build(plan)
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
            self._backoff[uid] = _Backoff(attempts, now + delay, self._signature(after, uid))
        for uid in result.built:
            self._backoff.pop(uid, None)
        self.emit(WatchEvent("build_finished", {
            "built": [self._name(u) for u in result.built],
            "failed": {self._name(u): m for u, m in result.failed.items()},
            "skipped": [self._name(u) for u in result.skipped], "seconds": round(seconds, 2),
            "error": result.build.crashed if result.build else None,
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

    @contextlib.contextmanager
    def _build_lock(self) -> Iterator[None]:
        """The per-build lock a CLI ``sync`` also takes; wait for it rather than fail."""
        lock = BuildLock(self.project.dbt.directory / ".dbtassets" / "build.lock", "watch build")
        announced = False
        while True:
            try:
                lock.acquire()
                break
            except LockError as exc:
                if not announced:
                    self.emit(WatchEvent("waiting", {"message": str(exc)}))
                    announced = True
                time.sleep(0.5)
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _node_events(self) -> Iterator[None]:
        runner = self.project.runner
        if not hasattr(runner, "on_node"):
            yield
            return
        previous = runner.on_node

        def on_node(result: NodeResult) -> None:
            node = self.project.graph.assets.get(result.unique_id)
            if node is not None or result.status in ("fail", "error"):
                name = node.display_name if node else result.unique_id
                self.emit(WatchEvent("node_finished", {"name": name, "status": result.status,
                                                       "seconds": round(result.execution_time, 2),
                                                       "message": result.message}))

        runner.on_node = on_node
        try:
            yield
        finally:
            runner.on_node = previous

    def _name(self, uid: UniqueId) -> str:
        return self.project.graph.assets[uid].display_name

    def _latest_report_id(self) -> int:
        return self.project.store.latest_observation_id(ObserverKind.REPORTED.value)

    def _describe(self) -> dict[str, Any]:
        graph = self.project.graph
        return {
            "project": str(self.project.dbt.directory),
            "assets": len(graph),
            "sources": {self._name(uid): d.describe() for uid, d in self.project.settings.sources.items()},
            "runner": type(self.project.runner).__name__,
            "settle": self.settle,
            "stale": sum(1 for s in self.project.status(observe=False).statuses.values()
                         if s.status is not Status.FRESH),
        }

    # -- file events (called from watchdog's thread through the inbox) -------------------

    @contextlib.contextmanager
    def _file_watch(self) -> Iterator[None]:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        inbox = self._inbox

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in ("opened", "closed_no_write"):
                    return
                if event.event_type == "moved":
                    inbox.put(("gone", os.fsdecode(event.src_path)))
                    inbox.put(("complete", os.fsdecode(event.dest_path)))
                elif event.event_type == "closed":
                    inbox.put(("complete", os.fsdecode(event.src_path)))
                elif event.event_type == "deleted":
                    inbox.put(("gone", os.fsdecode(event.src_path)))
                else:
                    inbox.put(("writing", os.fsdecode(event.src_path)))

        observer = Observer()
        handler = Handler()
        for directory, recursive in self._watched_directories():
            observer.schedule(handler, str(directory), recursive=recursive)
        observer.daemon = True
        observer.start()
        try:
            yield
        finally:
            observer.stop()
            observer.join(timeout=10)

    def _watched_directories(self) -> list[tuple[Path, bool]]:
        root = self.project.dbt.directory
        wanted: dict[Path, bool] = {root: False}
        for directory in self.project.dbt.source_dirs:
            if directory.is_dir():
                wanted[directory] = True
        for declaration in self.project.settings.sources.values():
            for pattern in declaration.globs:
                base = _glob_base(root, pattern)
                wanted[base] = True
        # A recursive watch on an ancestor covers its descendants.
        recursive = [d for d, r in wanted.items() if r]
        return [(d, r) for d, r in wanted.items()
                if not any(d != a and d.is_relative_to(a) for a in recursive)]

    def _on_file(self, what: str, path: str) -> None:
        relative = os.path.relpath(path, self.project.dbt.directory)
        parts = Path(relative).parts
        if not parts or parts[0] in _IGNORED_DIRS or parts[0] == ".." or Path(path).name.startswith("."):
            return
        if what == "writing":
            self._writing.add(path)
        else:
            self._writing.discard(path)
        touched = False
        if self._is_project_file(Path(path)):
            self._pending.project = True
            touched = True
        for uid, declaration in self.project.settings.sources.items():
            if any(fnmatch.fnmatch(relative, g) for g in declaration.globs):
                self._pending.sources.add(uid)
                touched = True
        if touched:
            self._pending.last_event = self._monotonic()

    def _is_project_file(self, path: Path) -> bool:
        dbt = self.project.dbt
        if path.parent == dbt.directory:
            return path.name in ("dbt_project.yml", "packages.yml", "dependencies.yml", "dbtassets.yml")
        return any(path.is_relative_to(d) for d in dbt.source_dirs)


def _settle_memory() -> None:
    """Move dbt's long-lived objects (the parsed manifest…) out of the garbage collector's sight.

    Otherwise full collections walk ~180,000 of them every few seconds while data lands, and one
    in three builds pays 0.1-0.3 s for it (measured by benchmarks/bench_watch.py's author).
    """
    gc.collect()
    gc.freeze()


def _glob_base(root: Path, pattern: str) -> Path:
    """The deepest existing directory above the first wildcard of ``pattern``."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    base = root.joinpath(*fixed)
    while not base.is_dir() and base != root:
        base = base.parent
    return base

