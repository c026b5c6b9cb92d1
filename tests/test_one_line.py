"""``one_line``: every multi-line, coloured message (dbt errors, unit test diffs) shown in a table or a log line."""

from __future__ import annotations

from pathlib import Path

import dbtassets
from dbtassets.rules.checks import one_line


def test_ansi_colour_codes_are_stripped() -> None:
    assert one_line("\x1b[31mexpected\x1b[0m \x1b[1;32mgot\x1b[0m") == "expected got"


def test_whitespace_and_line_breaks_fold_into_single_spaces() -> None:
    assert one_line("  Database Error in model x\n\n  syntax error\tat or near  'from'\n") == \
        "Database Error in model x syntax error at or near 'from'"


def test_a_long_message_is_cut_to_the_limit_with_an_ellipsis() -> None:
    assert one_line("x" * 300) == "x" * 300
    assert one_line("x" * 301) == "x" * 299 + "…"
    assert one_line("abcdefgh", limit=5) == "abcd…"


def test_colour_codes_do_not_count_towards_the_limit() -> None:
    assert one_line("\x1b[31m" + "x" * 10 + "\x1b[0m", limit=10) == "x" * 10


def test_there_is_one_definition() -> None:
    package = Path(dbtassets.__file__).parent
    defined = [p.relative_to(package).as_posix() for p in package.rglob("*.py") if "def one_line(" in p.read_text()]
    assert defined == ["rules/checks.py"]
