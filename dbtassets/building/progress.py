"""What dbt is doing, on a terminal: the phase, then one line per finished node (as ``watch`` shows them).

dbt's own output is long (and ``dbt compile`` prints compiled SQL); a person at a terminal wants
to see that something is happening and what failed, a pipe wants none of it. :class:`DbtProgress`
is given to the subprocess runner only when stderr is a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TIME = re.compile(r"^\d\d:\d\d:\d\d\s+")
# "3 of 11 OK created sql table model main.stg_orders ..... [OK in 0.23s]", and the same for
# ERROR, FAIL, PASS, WARN, SKIP; START lines are left out (the finished line follows).
_NODE = re.compile(r"^(\d+ of \d+) (OK|ERROR|FAIL|PASS|WARN|SKIP)\b(?: (?:created|creating|loaded|snapshotted))?"
                   r"\s*(.*?)\s*\.{2,}\s*\[(.*)\]$")


class DbtProgress:
    """Turns dbt's output lines into short progress lines for ``write``."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def command(self, args: str) -> None:
        """A dbt command starts: ``args`` as shown to users, e.g. ``dbt build --select stg_orders+``."""
        if not args.startswith("dbt parse"):  # the engine already says why it parses
            self.write(f"running {args}")

    def line(self, raw: str) -> None:
        text = _TIME.sub("", _ANSI.sub("", raw)).strip()
        node = _NODE.match(text)
        if node is not None:
            position, outcome, what, timing = node.groups()
            self.write(f"  {position} {outcome.lower():5} {what} [{timing}]")
        elif text.startswith(("Found ", "Completed with", "Done. ")):
            self.write(f"  {text}")
