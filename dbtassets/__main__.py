"""``python -m dbtassets``."""

from dbtassets.cli import main

main()
