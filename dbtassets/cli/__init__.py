"""The click commands: parse options, make one call into the engine, render.

The console script ``dbtassets`` is :func:`main`.
"""

from dbtassets.cli.commands import main

__all__ = ["main"]
