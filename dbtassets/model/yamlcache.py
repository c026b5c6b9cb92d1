"""What the project's YAML files gave, kept in ``target/`` beside the manifest cache, so that a command
whose dbt_project.yml, profiles.yml and dbtassets.yml did not change neither imports PyYAML nor parses them
(importing it was a twentieth of ``status`` on a large project).

Each entry is keyed by a hash of the file's path, its text and the context the result depends on
(for profiles.yml: the profile, the target and the values of the env vars the file names, hashed), so
an edit, a switch or a changed variable is a miss. What is kept is what the caller derived from the
text, stored with marshal: plain data only. A document marshal cannot hold (a YAML date) is not kept;
profiles.yml's credentials never are (:func:`dbtassets.model.targets.resolve_targets` keeps only the
warehouses it resolved). Best effort throughout: a read-only or missing ``target/`` means no cache.
"""

from __future__ import annotations

import hashlib
import marshal
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

NAME = "dbtassets-yaml.cache"
FORMAT = 1
_KEEP = 64  # entries kept at most: older ones (of edits long gone) are dropped when the cache is written


def cache_directory(project_dir: Path) -> Path:
    """Where the cache of a project lives: its default artifacts directory (dbt_project.yml is read from it
    before its ``target-path`` is known; a project that moves it just has no cache)."""
    return project_dir / (os.environ.get("DBT_TARGET_PATH") or "target")


class YamlCache:
    """Results derived from YAML files, by file, text and context; :meth:`save` writes back what was added."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / NAME
        self._entries: dict[str, bytes] | None = None
        self._used: set[str] = set()
        self._added = False

    def load(self, path: Path, derive: Callable[[str], Any],
             context: Callable[[str], Sequence[str]] = lambda text: ()) -> Any:
        """``derive(text of path)``, from the cache when the file and ``context(text)`` are what they were.

        Raises:
            OSError, UnicodeDecodeError: as reading the file does; whatever ``derive`` raises (never kept).
        """
        text = path.read_text(encoding="utf-8")
        key = hashlib.sha256("\0".join((str(path), *context(text), text)).encode()).hexdigest()
        entries = self._read()
        self._used.add(key)
        kept = entries.get(key)
        if kept is not None:
            return marshal.loads(kept)  # a new copy each time: the caller may change what it gets
        value = derive(text)
        try:
            entries[key] = marshal.dumps(value)
            self._added = True
        except ValueError:
            pass  # not plain data: derived again next time
        return value

    def save(self) -> None:
        if not self._added or not self.path.parent.is_dir():
            return
        entries = self._read()
        if len(entries) > _KEEP:
            entries = {k: v for k, v in entries.items() if k in self._used}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(marshal.dumps((FORMAT, entries)))
            os.replace(temporary, self.path)
            self._added = False
        except OSError:
            temporary.unlink(missing_ok=True)

    def _read(self) -> dict[str, bytes]:
        if self._entries is None:
            try:
                stored_format, entries = marshal.loads(self.path.read_bytes())
            except (OSError, EOFError, ValueError, TypeError):
                stored_format, entries = None, None
            self._entries = entries if stored_format == FORMAT and isinstance(entries, dict) else {}
        return self._entries
