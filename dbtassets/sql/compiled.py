"""The SQL ``dbt compile`` rendered for each model, kept beside the manifest by the model's manifest version.

``lint``, ``check --against`` and ``status`` after an edit all need some models' compiled SQL, and as
readers they record nothing in the state store: without this cache each run started ``dbt compile``
again for the same, unchanged models. A model's manifest version (:mod:`dbtassets.model.code`: its file,
the configuration that changes the built object, the macros it calls, the ephemeral models it inlines,
the values of the vars and env vars it reads, its relation name) is what the state store's fingerprint
cache already trusts to stand for its compiled SQL; so an edit, a macro change or a new var value
compiles that model again, and nothing else does. Each target keeps its own directory
(:meth:`~dbtassets.model.project.DbtProject.for_target`), hence its own cache.

The file is keyed by :data:`FORMAT`, the dbt version and the adapter that wrote the manifest; writing it
is best effort (a read-only ``target/`` just means no cache).
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Collection, Mapping
from pathlib import Path

from dbtassets.model.manifest import Manifest, UniqueId

NAME = "dbtassets-compiled.cache"
FORMAT = 1



def _name(uid: UniqueId, full_refresh: bool) -> str:
    return f"{'full-refresh' if full_refresh else 'plain'} {uid}"


class CompiledCache:
    """Compiled SQL by (model, ``--full-refresh`` or not), each entry valid for one manifest version."""

    def __init__(self, path: Path, key: tuple[int, str, str]) -> None:
        self.path = path
        self.key = key
        self._read_entries: dict[str, tuple[str, str]] | None = None

    @classmethod
    def beside(cls, manifest: Manifest) -> CompiledCache:
        return cls(manifest.path.with_name(NAME), (FORMAT, manifest.dbt_version, manifest.adapter_type))

    def lookup(self, versions: Mapping[UniqueId, str], *, full_refresh: bool = False) -> tuple[dict[UniqueId, str],
                                                                                             list[UniqueId]]:
        """The kept SQL of each model in ``versions`` (unique id -> manifest version) whose version is the one kept,
        and the models left to compile."""
        entries = self._entries()
        found: dict[UniqueId, str] = {}
        missing: list[UniqueId] = []
        for uid, version in versions.items():
            entry = entries.get(_name(uid, full_refresh))
            if entry is not None and entry[0] == version:
                found[uid] = entry[1]
            else:
                missing.append(uid)
        return found, missing

    def keep(self, versions: Mapping[UniqueId, str], compiled: Mapping[UniqueId, str], *, full_refresh: bool = False,
             live: Collection[UniqueId] = ()) -> None:
        """Keep what was just compiled (a model that did not compile is tried again next time); the entries of
        models neither in ``live`` nor in ``versions`` (deleted, renamed) are dropped."""
        if not compiled:
            return
        entries = self._entries()
        entries.update((_name(uid, full_refresh), (versions[uid], sql)) for uid, sql in compiled.items()
                       if uid in versions)
        kept = {*live, *versions}
        self._write({name: entry for name, entry in entries.items() if name.split(" ", 1)[1] in kept})

    def _entries(self) -> dict[str, tuple[str, str]]:
        if self._read_entries is None:
            self._read_entries = self._read()
        return self._read_entries

    def _read(self) -> dict[str, tuple[str, str]]:
        try:
            # One read, then loads (as the manifest cache): marshal.load on a file object makes many small reads.
            stored_key, entries = marshal.loads(self.path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return {}
        return entries if stored_key == self.key and isinstance(entries, dict) else {}

    def _write(self, entries: dict[str, tuple[str, str]]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("wb") as f:
                marshal.dump((self.key, entries), f)
            os.replace(temporary, self.path)
        except (OSError, ValueError):
            temporary.unlink(missing_ok=True)
