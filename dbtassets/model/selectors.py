"""dbt's node selection syntax, parsed: each selector a method match plus graph operators.

:func:`parse` turns ``--select``/``--exclude`` strings into a union of intersections of
:class:`Atom`; each atom carries the predicate its method (:class:`Method`, one strategy each)
matches nodes with. Parsing needs no graph: :mod:`dbtassets.model.selection` evaluates the atoms
over one, and says what a selector that matches nothing could have meant.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from dbtassets.model.manifest import ASSET_TYPES, Node, ResourceType

Predicate = Callable[[Node], bool]


class Method(Enum):
    """The ``method:`` part of a selector."""

    FQN = "fqn"
    TAG = "tag"
    PATH = "path"
    FILE = "file"
    SOURCE = "source"
    RESOURCE_TYPE = "resource_type"
    PACKAGE = "package"
    CONFIG = "config"
    UNIQUE_ID = "unique_id"


_BY_NAME = {m.value: m for m in Method}
_METHOD_NAMES = ", ".join(_BY_NAME)
USAGE = f"a selector is [@][N+][METHOD:]VALUE[+N] with METHOD one of {_METHOD_NAMES}"
_UNLIMITED = sys.maxsize
_WILDCARDS = frozenset("*?[]")
FILE_SUFFIXES = (".sql", ".csv", ".py", ".yml", ".yaml")
# dbt's RAW_SELECTOR_PATTERN, except that any prefix without a slash before a colon is a method,
# so that `colour-x:red` is reported as an unknown method rather than searched for as a name.
_ATOM = re.compile(
    r"(?P<at>@)?(?:(?P<up>\d*)\+)?(?:(?P<method>[^:/\\]*):)?(?P<value>.*?)(?:\+(?P<down>\d*))?"
)


def _fqn_selects(fqn: Sequence[str], selector: str, versioned: bool = False) -> bool:
    """dbt's ``is_selected_node``: the leaf name, a dotted prefix, or a glob.

    A versioned model's fqn ends with its version (``[..., "stg_customers", "v2"]``): its leaf name is
    the model's name, and ``stg_customers.v2`` or ``stg_customers_v2`` select that one version.
    """
    if len(fqn) < (2 if versioned else 1):
        return False
    if versioned:
        if fqn[-2] == selector or "_".join(fqn[-2:]) == "_".join(selector.split(".")[-2:]):
            return True
    elif fqn[-1] == selector:
        return True
    flat = [part for segment in fqn for part in segment.split(".")]
    parts = selector.split(".")
    if len(flat) < len(parts):
        return False
    for i, part in enumerate(parts):
        if _WILDCARDS & set(part):
            rest = fnmatchcase(".".join(flat[i:]), ".".join(parts[i:]))
            return rest or ("." not in selector and fnmatchcase(fqn[-2] if versioned else fqn[-1], selector))
        if flat[i] != part:
            return False
    return True


def _fqn(value: str, _: str) -> Predicate:
    # Like dbt: also across packages (the fqn without its package), and never sources.
    return lambda n: (n.resource_type != ResourceType.SOURCE
                      and (_fqn_selects(n.fqn, value, bool(n.version))
                           or _fqn_selects(n.fqn[1:], value, bool(n.version))))


def _bare_name(value: str, _: str) -> Predicate:
    """dbt's fqn match, plus our extension: a bare `raw.orders` also names that source table."""
    fqn = _fqn(value, "")
    return lambda n: fqn(n) or (n.resource_type == ResourceType.SOURCE and fnmatchcase(n.display_name, value))


def _glob(parts: Sequence[str], pattern: Sequence[str]) -> bool:
    """Path-segment glob: ``*`` stays within a directory, ``**`` spans any number of them."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and _glob(parts[1:], pattern[1:])


def _path(value: str, _: str) -> Predicate:
    pattern = value.replace("\\", "/").removeprefix("./").rstrip("/")
    if pattern in ("", "."):
        return lambda n: True
    wanted = pattern.split("/")

    def matches(node: Node) -> bool:
        # The file itself or any directory above it, as dbt's glob-then-compare-parents does.
        parts = node.path.replace("\\", "/").split("/")
        return any(_glob(parts[:k], wanted) for k in range(1, len(parts) + 1))

    return matches


def _file(value: str, _: str) -> Predicate:
    def matches(node: Node) -> bool:
        path = PurePosixPath(node.path.replace("\\", "/"))
        return fnmatchcase(path.name, value) or fnmatchcase(path.stem, value)

    return matches


def _source(value: str, _: str) -> Predicate:
    parts = value.split(".")
    if len(parts) > 3:
        raise ValueError("a source is SOURCE, SOURCE.TABLE or PACKAGE.SOURCE.TABLE")
    package, source, table = ["*"] * (len(parts) < 3) + parts + ["*"] * (len(parts) == 1)
    return lambda n: (n.resource_type == ResourceType.SOURCE and fnmatchcase(n.package_name, package)
                      and fnmatchcase(n.source_name, source) and fnmatchcase(n.name, table))


def _resource_type(value: str, _: str) -> Predicate:
    if value not in ASSET_TYPES:
        raise ValueError(f"assets are of resource_type {', '.join(ASSET_TYPES)}")
    return lambda n: n.resource_type == value


def _config(value: str, key: str) -> Predicate:
    if not key:
        raise ValueError("config needs a key, as in config.materialized:table")

    def matches(node: Node) -> bool:
        if key not in node.config:
            return False
        found = node.config[key]
        # dbt compares booleans case-insensitively ("true" selects True); everything else as text.
        return str(found).lower() == value.lower() if isinstance(found, bool) else str(found) == value

    return matches


_STRATEGIES: dict[Method, Callable[[str, str], Predicate]] = {
    Method.FQN: _fqn,
    Method.TAG: lambda v, _: lambda n: any(fnmatchcase(t, v) for t in n.tags),
    Method.PATH: _path,
    Method.FILE: _file,
    Method.SOURCE: _source,
    Method.RESOURCE_TYPE: _resource_type,
    Method.PACKAGE: lambda v, _: lambda n: fnmatchcase(n.package_name, v),
    Method.CONFIG: _config,
    Method.UNIQUE_ID: lambda v, _: lambda n: fnmatchcase(n.unique_id, v),
}


@dataclass(frozen=True)
class Atom:
    """One selector between commas: a method match plus graph operators."""

    raw: str
    method: Method
    argument: str  # the KEY of config.KEY
    value: str
    matches: Predicate
    bare: bool  # no method given: a name
    parents: int | None  # None: no "+" prefix; else how many edges up
    children: int | None
    childrens_parents: bool


def _default_method(value: str) -> str:
    """dbt's: a path if it has a slash, a file name if it ends like one, else an fqn."""
    bare = value.replace("\\", "/")
    return "path" if "/" in bare else "file" if bare.lower().endswith(FILE_SUFFIXES) else "fqn"


def _parse_atom(raw: str) -> Atom:
    """Raises ValueError with the reason when ``raw`` is not a selector."""
    match = _ATOM.fullmatch(raw)
    assert match is not None  # every group is optional and `value` takes anything
    at, up, method, value, down = match.group("at", "up", "method", "value", "down")
    if not value:
        raise ValueError("nothing to select after the graph operators")
    if "+" in value or "@" in value:
        raise ValueError("'+' and '@' go only at the start or end")
    if at and down is not None:
        raise ValueError("'@' and a trailing '+' cannot be combined")
    name, _, argument = (method or _default_method(value)).partition(".")
    kind = _BY_NAME.get(name)
    if kind is None or (argument and kind is not Method.CONFIG):
        raise ValueError(f"unknown method {method!r}")
    bare_name = method is None and kind is Method.FQN
    matches = (_bare_name if bare_name else _STRATEGIES[kind])(value, argument)
    return Atom(
        raw, kind, argument, value, matches,
        bare=method is None,
        parents=None if up is None else int(up) if up else _UNLIMITED,
        children=None if down is None else int(down) if down else _UNLIMITED,
        childrens_parents=bool(at),
    )


def parse(expressions: Sequence[str], problems: list[str]) -> list[list[Atom]]:
    """A union (outer list) of intersections; adds each unparsable part to ``problems``."""
    union: list[list[Atom]] = []
    for term in (term for expression in expressions for term in expression.split()):
        intersection = []
        for raw in term.split(","):
            try:
                if not raw:
                    raise ValueError("empty part between commas")
                intersection.append(_parse_atom(raw))
            except ValueError as exc:
                problems.append(f"invalid selector {raw or term!r}: {exc}")
        union.append(intersection)
    return union
