"""The data tests and unit tests the project's YAML declares, against those the manifest holds.

dbt's partial parsing can lose tests: a model file moved away, parsed without it, then moved back
(an editor's safe-save, a branch switch) comes back without the tests its unchanged schema YAML
declares, and only ``dbt parse --no-partial-parse`` brings them back. A test that is not in the
manifest is never run, so nothing would fail. :func:`missing_checks` reads the project's own schema
YAML (not its packages') and names each declared test the manifest does not hold, so that a parse can
be made again in full and, if they are still missing, ``status``, ``check`` and ``watch`` say so.

It errs on the side of silence: a test is counted only in a form it understands (a test name, or a
mapping with one test name or a ``test_name``), on a model, seed, snapshot or source the manifest has
(a YAML entry for a disabled or missing model declares nothing), and matched by the YAML file, the
entry (``models.dim_customer``) and the test's name, as dbt records them (``original_file_path``,
``file_key_name``, ``test_metadata.name``); disabled tests count as present.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dbtassets.model.ids import UniqueId
from dbtassets.model.project import DbtProject, YamlError, load_yaml

_SECTIONS = {"models": "model", "seeds": "seed", "snapshots": "snapshot"}
CACHE = "dbtassets-declared.cache"  # beside the manifest: each YAML file's declared tests, by its size and mtime
_FORMAT = 2  # bump when what is kept per file changes

TestKey = tuple[str, str, str]  # (YAML file relative to the project, entry as dbt's file_key_name, test name)


@dataclass(frozen=True)
class MissingCheck:
    """A test the YAML declares that the manifest does not hold."""

    asset: UniqueId  # the asset it is declared on
    label: str  # ``unique on dim_customer.customer_id``, or a unit test's name
    file: str  # the YAML file declaring it, relative to the project
    unit_test: bool = False

    def describe(self) -> str:
        return f"{'unit' if self.unit_test else 'data'} test {self.label} (declared in {self.file})"


@dataclass(frozen=True)
class _Declared:
    key: TestKey
    label: str
    section: str  # models, seeds, snapshots, sources, unit_tests
    owner: str  # the model/seed/snapshot name, or "source.table", or the unit test's model


def missing_checks(dbt: DbtProject, yaml_files: Mapping[str, tuple[int, int]], held: Iterable[TestKey],
                   assets: Callable[[], Mapping[tuple[str, str], tuple[UniqueId, ...]]]) -> tuple[MissingCheck, ...]:
    """The declared tests that are not in the manifest, in file order.

    Args:
        yaml_files: the project's files (relative path -> size and mtime); its ``.yml``/``.yaml`` ones under
            its own source directories are read (those unchanged since the last time, from a cache).
        held: the key of every test the manifest holds, enabled or disabled.
        assets: makes (section's resource type, name) -> the asset uids of that name (``("source", "raw.orders")``);
            called once a test is missing, if one is (indexing every node would cost a large project every time).
    """
    own = tuple(os.path.relpath(d, dbt.directory) for d in dbt.source_dirs)
    cached = _read_cache(dbt)
    found: dict[str, Any] = {}
    left = Counter(held)
    out: list[MissingCheck] = []
    owners: Mapping[tuple[str, str], tuple[UniqueId, ...]] | None = None
    for path in sorted(yaml_files):
        if not path.endswith((".yml", ".yaml")) or not any(_under(path, d) for d in own):
            continue
        stamp = tuple(yaml_files[path])
        previous = cached.get(path)
        declared = previous[1] if previous is not None and previous[0] == stamp else \
            tuple((d.key, d.label, d.section, d.owner) for d in _declared_in(dbt, path))
        found[path] = (stamp, declared)  # marshal keeps tuples: what is read back compares equal
        for key, label, section, owner in declared:
            if left[key] > 0:
                left[key] -= 1
                continue
            kind = "source" if section == "sources" else _SECTIONS.get(section, "model")
            owners = assets() if owners is None else owners
            out.extend(MissingCheck(uid, label, path, section == "unit_tests") for uid in owners.get((kind, owner), ()))
    if found != cached:
        _write_cache(dbt, found)
    return tuple(out)


def _read_cache(dbt: DbtProject) -> dict[str, Any]:
    try:
        stored_format, found = marshal.loads((dbt.target_path / CACHE).read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    return found if stored_format == _FORMAT and isinstance(found, dict) else {}


def _write_cache(dbt: DbtProject, found: Mapping[str, Any]) -> None:
    """Best effort, as the manifest cache: a read-only target/ just means reading the YAML each time."""
    kept = dbt.target_path / CACHE
    temporary = kept.with_name(f".{CACHE}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError, ValueError):
        try:
            temporary.write_bytes(marshal.dumps((_FORMAT, dict(found))))
            os.replace(temporary, kept)
        finally:
            temporary.unlink(missing_ok=True)


def _under(path: str, directory: str) -> bool:
    return directory == "." or path.startswith(directory.rstrip("/") + "/")


def _declared_in(dbt: DbtProject, path: str) -> Iterator[_Declared]:
    try:
        document: Any = load_yaml((dbt.directory / path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlError):
        return  # dbt reports what it cannot read
    if not isinstance(document, dict):
        return
    for section in _SECTIONS:
        for entry in _entries(document.get(section)):
            name = entry["name"]
            yield from _tests_of(entry, path, f"{section}.{name}", section, name, name)
    for source in _entries(document.get("sources")):
        for table in _entries(source.get("tables")):
            owner = f"{source['name']}.{table['name']}"
            yield from _tests_of(table, path, f"sources.{source['name']}", "sources", owner, owner)
    for test in _entries(document.get("unit_tests")):
        if isinstance(test.get("model"), str):
            yield _Declared((path, "unit_tests", test["name"]), test["name"], "unit_tests", test["model"])


def _entries(value: Any) -> Iterator[dict[str, Any]]:
    for entry in value if isinstance(value, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            yield entry


def _tests_of(entry: Mapping[str, Any], path: str, file_key: str, section: str, owner: str,
              shown: str) -> Iterator[_Declared]:
    """The tests of an entry, and of its columns (a versioned model's are declared once, at the top)."""
    for test in _test_names(entry):
        yield _Declared((path, file_key, test), f"{test} on {shown}", section, owner)
    for column in _entries(entry.get("columns")):
        for test in _test_names(column):
            yield _Declared((path, file_key, test), f"{test} on {shown}.{column['name']}", section, owner)


def _test_names(entry: Mapping[str, Any]) -> Iterator[str]:
    for key in ("data_tests", "tests"):
        tests = entry.get(key)
        for test in tests if isinstance(tests, list) else ():
            name = _test_name(test)
            if name:
                yield name


def _test_name(test: Any) -> str:
    """``unique`` for ``unique``, ``dbt_utils.at_least_one`` and ``{accepted_values: {...}}``; "" when unsure."""
    if isinstance(test, str):
        return test.rsplit(".", 1)[-1]
    if isinstance(test, dict):
        if isinstance(test.get("test_name"), str):
            return str(test["test_name"]).rsplit(".", 1)[-1]
        if len(test) == 1:
            (name,) = test
            return str(name).rsplit(".", 1)[-1]
    return ""
