"""What the last ``dbt parse`` saw, kept beside the manifest: the half of "is target/manifest.json current?"
that file times cannot answer.

A manifest older than a file dbt parses is stale (:func:`dbtassets.model.snapshot.load_snapshot` checks
that first). File times miss the rest: a deleted file leaves nothing newer behind, ``mv`` keeps a file's
time, and an env var's new value (``schema: "{{ env_var('DBT_SCHEMA') }}"`` in the profile) touches no
file at all. So after each parse dbtassets runs, or the first time it finds a manifest current, it keeps a
:class:`ParseRecord`: every file dbt parses (path, size, mtime, and the profile), and a hash of each env
var that the project's SQL and YAML and the selected profile target read. The next load compares them
with the walk it made for file times anyway (:meth:`~dbtassets.model.project.DbtProject.files`).

``dbt build`` writes the manifest too, from the files as they are then: when the manifest is not the one
the record was made with, a difference in files counts only if a directory changed after the manifest
was written (a file added, removed or renamed since); otherwise the record is brought up to date.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbtassets.model.project import DbtProject, ProjectFiles
from dbtassets.model.values import env_digest, env_names_in
from dbtassets.words import noun

NAME = "dbtassets-parse.record"  # marshalled, like the manifest cache beside it: read before every command
FORMAT = 2  # 2: the --vars digest
_SCANNED = (".sql", ".yml", ".yaml")  # where env_var() may be (not seeds' CSV: large, and never rendered)
_SHOWN = 3  # changed files named in a message


@dataclass(frozen=True)
class ParseRecord:
    """The files and env vars a parse saw."""

    files: Mapping[str, tuple[int, int]]  # path relative to the project -> (size, mtime_ns)
    env: Mapping[str, str]  # env var name -> env_digest of its value (never the value: it may be a secret)
    env_names: Mapping[str, tuple[str, ...]]  # file -> the env vars it reads, for the files that read some
    manifest_mtime_ns: int  # of the manifest that parse wrote
    vars: str = ""  # vars_digest of the --vars it was parsed with ("" without)

    def why_stale(self, files: Mapping[str, tuple[int, int]], manifest: os.stat_result, newest_dir: float,
                  env_names: Collection[str], environ: Mapping[str, str], cli_vars: str = "") -> str | None:
        """Why a manifest whose files are all older than it is stale all the same, or None.

        Args:
            files: the files now (:func:`files_now`).
            manifest: the manifest's stat.
            newest_dir: the newest mtime of a directory holding the files.
            env_names: the env vars the selected profile target reads now.
            cli_vars: :func:`vars_digest` of the ``--vars`` given now.
        """
        if cli_vars != self.vars:  # dbt renders configs (enabled, schema, ...) with them: parse again
            return "was parsed with other --vars" if cli_vars else "was parsed with --vars, given no more"
        moved = [name for name in sorted({*self.env, *env_names})
                 if self.env.get(name) != env_digest(name, environ.get(name))]
        if moved:  # named, never shown: a value may be a secret
            return (f"was parsed with another value of the environment {noun(len(moved), 'variable')} "
                    f"{', '.join(moved)}")
        if files == self.files:
            return None
        if manifest.st_mtime_ns != self.manifest_mtime_ns and newest_dir <= manifest.st_mtime:
            return None  # a later dbt command wrote the manifest after the files last moved: it saw them
        return f"was parsed before {describe_changes(self.files, files)}"


def vars_digest(cli_vars: Mapping[str, Any]) -> str:
    """What a record keeps of ``--vars``: a digest ("" without any), never the values (a var may be a secret)."""
    if not cli_vars:
        return ""
    return hashlib.sha256(json.dumps(cli_vars, sort_keys=True, default=str).encode()).hexdigest()


def forget_partial_parse(dbt: DbtProject) -> None:
    """Delete dbt's saved parse state (``target/partial_parse.msgpack``): its next parse is a full one."""
    with contextlib.suppress(OSError):
        dbt.partial_parse_path.unlink()


def describe_changes(before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]]) -> str:
    """``models/a.sql was removed, models/b/a.sql was added`` (the first few)."""
    changes = [f"{path} was removed" for path in sorted(before.keys() - after.keys())]
    changes += [f"{path} was added" for path in sorted(after.keys() - before.keys())]
    changes += [f"{path} changed" for path in sorted(before.keys() & after.keys()) if before[path] != after[path]]
    more = len(changes) - _SHOWN
    return ", ".join(changes[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def files_now(dbt: DbtProject, files: ProjectFiles, profiles: Path | None) -> dict[str, tuple[int, int]]:
    """The walk's files and the profile (which dbt reads at each parse, wherever it is)."""
    entries = dict(files.entries)
    if profiles is not None:
        with contextlib.suppress(OSError):
            stat = profiles.stat()
            entries[_profile_key(dbt, profiles)] = (stat.st_size, stat.st_mtime_ns)
    return entries


def _profile_key(dbt: DbtProject, profiles: Path) -> str:
    return f"profile:{os.path.relpath(profiles, dbt.directory)}"


def read_record(dbt: DbtProject) -> ParseRecord | None:
    """The record beside the manifest; None when there is none (or it is unreadable, or of another format)."""
    try:
        # One read, then loads (as the manifest cache): marshal.load on a file object makes many small reads.
        stored_format, files, env, env_names, manifest_mtime_ns, cli_vars = marshal.loads(
            (dbt.target_path / NAME).read_bytes())
    except (OSError, EOFError, ValueError, TypeError):  # TypeError, ValueError: not a tuple of six
        return None
    if stored_format != FORMAT or not all(isinstance(part, dict) for part in (files, env, env_names)) \
            or not isinstance(manifest_mtime_ns, int) or not isinstance(cli_vars, str):
        return None
    return ParseRecord(files, env, env_names, manifest_mtime_ns, cli_vars)


def write_record(dbt: DbtProject, files: Mapping[str, tuple[int, int]], profile_env_names: Collection[str],
                 previous: ParseRecord | None, environ: Mapping[str, str], cli_vars: str = "") -> None:
    """Keep what a parse saw: ``files`` (:func:`files_now`, taken before it ran), the env vars they read now and
    ``cli_vars`` (:func:`vars_digest` of the ``--vars`` it ran with).

    A file unchanged since ``previous`` is not read again. Best effort: without a record, the next load
    judges by file times alone (and writes one).
    """
    if not os.access(dbt.target_path, os.W_OK):
        return  # a read-only target/ (a CI checkout): no record, and no reading every file to make one
    env_names: dict[str, tuple[str, ...]] = {}
    for path, stat in files.items():
        if not path.endswith(_SCANNED) or path.startswith("profile:"):
            continue
        if previous is not None and previous.files.get(path) == stat:
            names = previous.env_names.get(path, ())
        else:
            try:
                names = tuple(sorted(env_names_in((dbt.directory / path).read_text(encoding="utf-8",
                                                                                   errors="replace"))))
            except OSError:
                continue
        if names:
            env_names[path] = names
    every = sorted({*profile_env_names, *(n for names in env_names.values() for n in names)})
    kept = dbt.target_path / NAME
    temporary = kept.with_name(f".{NAME}.{os.getpid()}.tmp")
    try:
        env = {name: env_digest(name, environ.get(name)) for name in every}
        with temporary.open("wb") as f:
            marshal.dump((FORMAT, dict(files), env, env_names, dbt.manifest_path.stat().st_mtime_ns, cli_vars), f)
        os.replace(temporary, kept)
    except (OSError, ValueError):
        temporary.unlink(missing_ok=True)
