"""The compact, marshalled extract of a manifest that :func:`~dbtassets.model.manifest.load_manifest` keeps
beside it, so that ``status`` does not parse tens of megabytes of JSON every time.

It is keyed by the manifest's path, size and modification time, and by :data:`FORMAT`: bump that
whenever the extract's tuples (built in :mod:`dbtassets.model.manifest`) change shape or meaning.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path
from typing import Any

FORMAT = 12
NAME = "dbtassets-manifest.cache"
# The asset graph derived from the manifest (model.graph.AssetGraph.compiled), keyed by GRAPH_FORMAT and the
# manifest cache's key: bump GRAPH_FORMAT whenever what it stores, or how the graph is derived, changes.
GRAPH_NAME = "dbtassets-graph.cache"
GRAPH_FORMAT = 1

Key = tuple[Any, ...]


def cache_of(manifest: Path, name: str = NAME) -> Path:
    """Where the cache of ``manifest`` lives: beside it."""
    return manifest.with_name(name)


def key_of(manifest: Path, stat: os.stat_result) -> Key:
    """What must match for the cache to be current: the format, the manifest's path, size and mtime."""
    return (FORMAT, str(manifest.resolve()), stat.st_size, stat.st_mtime_ns)


def read_cache(cache_path: Path, key: Key) -> tuple[Any, ...] | None:
    """The stored extract when its key is ``key``; None when missing, stale or unreadable."""
    try:
        # One read, then loads: marshal.load on a file object makes many small reads (10x slower).
        stored_key, compact = marshal.loads(cache_path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return compact if stored_key == key else None


def write_cache(cache_path: Path, key: Key, compact: tuple[Any, ...]) -> None:
    """Best effort: a read-only target directory just means no cache."""
    temporary = cache_path.with_name(f".{cache_path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as f:
            marshal.dump((key, compact), f)
        os.replace(temporary, cache_path)
    except (OSError, ValueError):
        temporary.unlink(missing_ok=True)
