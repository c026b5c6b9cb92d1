"""The watcher's view of files: inotify watches through watchdog, and what each file event touches.

watchdog's thread only puts ``(what, path)`` pairs in the watcher's inbox (``writing`` from a
file's first ``created``/``modified`` event until ``complete``: its close or the rename that
lands it; ``gone`` when deleted or renamed away). The watcher's own thread reads them through
:meth:`FileEvents.note`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dbtassets.model.manifest import UniqueId
from dbtassets.model.snapshot import Snapshot

_SIBLINGS_PER_WATCH = 8  # more source directories than this under one parent: watch the parent
_IGNORED_DIRS = ("target", "logs", "dbt_packages", ".dbtassets", ".git")
_PROJECT_FILES = ("dbt_project.yml", "packages.yml", "dependencies.yml", "dbtassets.yml")

Inbox = queue.SimpleQueue[tuple[str, str]]


@dataclass(frozen=True)
class Touched:
    """What one file event concerns: the project's own files (a re-parse), and which sources."""

    project: bool = False
    sources: frozenset[UniqueId] = frozenset()

    def __bool__(self) -> bool:
        return self.project or bool(self.sources)


@dataclass
class FileEvents:
    """The files being written right now, and what each event touches."""

    writing: set[str] = field(default_factory=set)

    def note(self, snapshot: Snapshot, what: str, path: str) -> Touched:
        root = snapshot.dbt.directory
        relative = os.path.relpath(path, root)
        parts = Path(relative).parts
        if not parts or Path(path).name.startswith("."):
            return Touched()
        project_file = _is_project_file(snapshot, Path(path))  # a package's files too, in dbt_packages/ or outside
        if parts[0] in _IGNORED_DIRS and not project_file:
            return Touched()
        if what == "writing":
            self.writing.add(path)
        else:
            self.writing.discard(path)
        sources = frozenset(uid for uid, declaration in snapshot.settings.sources.items()
                            if any(fnmatch.fnmatch(relative, g) for g in declaration.globs))
        return Touched(project_file, sources)

    def relative(self, root: Path) -> list[str]:
        """The files being written, relative to ``root``, sorted."""
        return sorted(os.path.relpath(p, root) for p in self.writing)

    def held(self, snapshot: Snapshot) -> tuple[set[UniqueId], list[str]]:
        """The assets downstream of a source with a file still being written, and those files."""
        writing = self.relative(snapshot.dbt.directory)
        held: set[UniqueId] = set()
        files: set[str] = set()
        for uid, declaration in snapshot.settings.sources.items():
            open_files = [p for p in writing if any(fnmatch.fnmatch(p, g) for g in declaration.globs)]
            if open_files:
                held |= snapshot.graph.descendants(uid)
                files.update(open_files)
        return held, sorted(files)


@contextlib.contextmanager
def watching(snapshot: Snapshot, inbox: Inbox) -> Iterator[None]:
    """inotify watches on the project's files and its file sources, feeding ``inbox`` until the block ends."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

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
    observer.name = "dbtassets-filewatch"
    handler = Handler()
    for directory, recursive in watched_directories(snapshot):
        observer.schedule(handler, str(directory), recursive=recursive)
    observer.daemon = True
    observer.start()
    try:
        yield
    finally:
        observer.stop()
        observer.join(timeout=10)


def watched_directories(snapshot: Snapshot) -> list[tuple[Path, bool]]:
    """(directory, recursive) pairs covering the project's files and every file source's globs."""
    root = snapshot.dbt.directory
    wanted: dict[Path, bool] = {root: False}
    for directory in snapshot.dbt.parsed_dirs:  # the project's, and its packages' (maybe outside it)
        if directory.is_dir():
            wanted[directory] = True
    # resolved: a source may live outside the project (external_location: '../data/…')
    bases = {_glob_base(root, pattern).resolve() for d in snapshot.settings.sources.values() for pattern in d.globs}
    # watchdog runs a thread per watch: many sibling source directories (data/raw/<table>) share
    # one recursive watch on their parent instead; note() filters events by glob anyway.
    siblings: dict[Path, int] = {}
    for base in bases:
        siblings[base.parent] = siblings.get(base.parent, 0) + 1
    for base in bases:
        crowded = siblings[base.parent] > _SIBLINGS_PER_WATCH and base.parent.is_relative_to(root)
        wanted[base.parent if crowded else base] = True
    # A recursive watch on an ancestor covers its descendants (a set lookup per ancestor, not a scan).
    recursive = {d for d, r in wanted.items() if r}
    return [(d, r) for d, r in wanted.items() if not any(a in recursive for a in d.parents)]


def _is_project_file(snapshot: Snapshot, path: Path) -> bool:
    dbt = snapshot.dbt
    if path.parent == dbt.directory:
        return path.name in _PROJECT_FILES
    return any(path.is_relative_to(d) for d in dbt.parsed_dirs)


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
