"""dbtassets installs off this repository: the wheel holds the whole package, and every install instruction
says where dbtassets comes from (it is on no package index, so ``pip install dbtassets`` finds nothing).

The wheel is the one ``pip`` builds from a copy of the checkout, as ``pip install "dbtassets @ git+…"``
does; ``.ci/run`` also builds it through the sdist and runs the Quick start from it (tests/wheels.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.wheels import compare, copy_checkout, pip_wheel, wheel_files

# Where users read how to install dbtassets, and the messages that tell them.
_INSTRUCTIONS = ("README.md", "CONTRIBUTING.md", "docs/**/*.md", "examples/**/*", "dbtassets/**/*.py")
_BY_NAME = re.compile(r"dbtassets(\[[\w,-]+\])?")


# Files a later change might put beside the code (a page template, SQL a migration runs): they must ship too.
_PROBES = {"dbtassets/templates/page.html": "<html></html>\n", "dbtassets/state/schema.sql": "select 1;\n"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout, as a clone has it, with the probe files added."""
    tree = copy_checkout(tmp_path_factory.mktemp("clone"))
    for name, text in _PROBES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    return tree


@pytest.fixture(scope="module")
def wheel(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_wheel(tree, tmp_path_factory.mktemp("wheel"))


@pytest.mark.slow  # builds a wheel; pip fetches setuptools for the isolated build
def test_the_wheel_holds_every_file_of_the_package_and_nothing_else(tree: Path, wheel: Path) -> None:
    assert compare(tree, wheel) == []


@pytest.mark.slow
def test_a_data_file_put_beside_the_code_ships_in_the_wheel(wheel: Path) -> None:
    assert set(_PROBES) <= wheel_files(wheel)


@pytest.mark.slow
def test_the_wheel_tells_type_checkers_the_package_is_typed(wheel: Path) -> None:
    # PEP 561: without py.typed, mypy in a user's project ignores the annotations of `from dbtassets import Project`.
    assert "dbtassets/py.typed" in wheel_files(wheel)


def _installs_by_name(text: str) -> list[str]:
    """The ``pip install`` commands in ``text`` that ask an index for dbtassets by name (no ``@ URL``)."""
    found = []
    for match in re.finditer(r"pip install\s+([^\n)#;|&`]*)", text):  # to the command's end, or the code span's
        words = [w.strip("\"',") for w in match.group(1).split()]
        for i, word in enumerate(words):
            if _BY_NAME.fullmatch(word) and (i + 1 == len(words) or words[i + 1] != "@"):
                found.append(match.group(0).strip())
    return found


@pytest.mark.parametrize("command, by_name", [
    ("pip install dbtassets dbt-duckdb", True),
    ('pip install "dbtassets[postgres]"', True),
    ("'pip install \"dbtassets[postgres]\"') from None", True),
    ('pip install "dbtassets[postgres] @ git+https://github.com/o/dbtassets@v1"', False),
    ('pip install "$DBTASSETS_INSTALL" dbt-duckdb', False),
    ('pip install -e ".[test]"', False),
    ('pip install "dist/dbtassets-0.1.0-py3-none-any.whl[postgres]"', False),
    ("pip install dbt-duckdb  # then dbtassets", False),
    ("`pip install dbtassets` finds nothing", True),
    ("(pip install psycopg2-binary), or install dbtassets with its extra", False),
])
def test_an_install_by_name_is_told_from_one_that_says_where_from(command: str, by_name: bool) -> None:
    assert bool(_installs_by_name(command)) is by_name


def test_no_instruction_installs_dbtassets_from_a_package_index() -> None:
    wrong = [f"{path.relative_to(REPO)}: {command}"
             for pattern in _INSTRUCTIONS for path in sorted(REPO.glob(pattern)) if path.is_file()
             for command in _installs_by_name(path.read_text(encoding="utf-8", errors="replace"))]
    assert wrong == [], "dbtassets is on no package index; install it from git or a wheel:\n" + "\n".join(wrong)
    workflow = yaml.safe_load((REPO / "examples" / "ci" / "dbtassets.yml").read_text())
    assert re.fullmatch(r"dbtassets(\[[\w,]+\])? @ git\+https://\S+@\S+", workflow["env"]["DBTASSETS_INSTALL"])
