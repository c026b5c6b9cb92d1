"""``python -m dbtassets``."""

from dbtassets.cli.commands import main

main()
