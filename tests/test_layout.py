"""The package's rooms and the one direction of its imports (CONTRIBUTING.md, "Package layout").

Reads the source with ``ast``, imports nothing. An import from a lower room into a higher one, or a
module over the size guideline, fails here with the file and the line to look at.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import MUTATION_RUN

PACKAGE = Path(__file__).resolve().parent.parent / "dbtassets"
# From the bottom up: a module may import from its own room or from a room listed before it.
ORDER = ["errors", "clock", "words", "outputs", "model", "state", "rules", "sql", "building", "observe", "results",
         "explain", "builder", "engine", "openlineage", "watch", "report", "ui", "cli", "__init__", "__main__"]
MAX_LINES = 400


def room(module: str) -> str:
    """``dbtassets.state.store`` → ``state``; ``dbtassets.engine`` → ``engine``; ``dbtassets`` → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> dict[Path, str]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[path] = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return found


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every ``dbtassets`` import in ``path``, type-checking ones included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names] if base == "dbtassets" else [base]
            out += [(node.lineno, name) for name in names if name.startswith("dbtassets")]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("dbtassets")]
    return out


def test_every_room_is_placed() -> None:
    rooms = {room(m) for m in modules().values()}
    assert rooms - set(ORDER) == set(), "a new room: place it in ORDER (and in CONTRIBUTING.md's table)"
    assert len(rooms) > 10  # the walk found the package


def test_imports_point_down_never_up() -> None:
    up = []
    for path, module in modules().items():
        here = ORDER.index(room(module))
        for line, imported in imports(path, module):
            if ORDER.index(room(imported)) > here:
                up.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert up == []


def test_the_direction_check_sees_an_upward_import(tmp_path: Path) -> None:
    store = tmp_path / "dbtassets" / "state" / "store.py"
    store.parent.mkdir(parents=True)
    store.write_text("from dbtassets.building.recording import Outcome\nfrom ..rules import staleness\n")
    found = [room(name) for _, name in imports(store, "dbtassets.state.store")]
    assert found == ["building", "rules"] and all(ORDER.index(r) > ORDER.index("state") for r in found)


@pytest.mark.skipif(MUTATION_RUN, reason="mutmut's copy of the package holds every mutant of each function beside it")
def test_no_module_is_over_the_size_guideline() -> None:
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in modules()}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}
