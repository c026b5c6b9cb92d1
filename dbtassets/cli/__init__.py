"""The command line: each command parses options, makes one call into the engine, renders the result.

:func:`main` is the ``dbtassets`` click group (the console script and ``python -m dbtassets``
run it); :mod:`~dbtassets.cli.group` holds it with the global options and the one place library
errors become messages, :mod:`~dbtassets.cli.answers` the commands that answer questions and
:mod:`~dbtassets.cli.builds` those that observe and build.
"""

from dbtassets.cli.group import main  # its commands' modules are imported when a command is looked up

__all__ = ["main"]
