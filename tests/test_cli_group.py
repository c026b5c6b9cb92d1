"""The command group's one error handler: a library error from any command is one line and exit code 2."""

from __future__ import annotations

import click
from click.testing import CliRunner

from dbtassets.cli.group import Group
from dbtassets.errors import ConfigError, DbtAssetsError


def group_raising(error: Exception) -> click.Group:
    @click.group(cls=Group)
    def group() -> None:
        pass

    @group.command()
    def fails() -> None:
        raise error

    return group


def test_a_library_error_from_a_command_is_one_line_on_stderr_and_exit_code_2() -> None:
    result = CliRunner().invoke(group_raising(ConfigError("dbtassets.yml: line 3:\n  'every' is not a duration")),
                                ["fails"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "dbtassets: error: dbtassets.yml: line 3: 'every' is not a duration\n"


def test_other_errors_are_not_turned_into_messages() -> None:
    result = CliRunner().invoke(group_raising(ValueError("a bug")), ["fails"])
    assert isinstance(result.exception, ValueError) and not isinstance(result.exception, DbtAssetsError)
    assert result.exit_code == 1
