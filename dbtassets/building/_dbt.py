"""Child-process entry point that runs one dbt invocation: ``python -m dbtassets.building._dbt REQUEST.json``.

The request file carries dbt's arguments, so a selection of thousands of models never meets
the operating system's limit on command-line length. For a ``query`` request, the first row's
values of each query are written as JSON to ``out``. Exit codes follow dbt's: 0 success,
1 a node failed, 2 dbt could not run; and ``TIMED_OUT`` when the request's ``timeout`` (seconds,
counted from dbt's first connection to the warehouse) ran out: a warehouse that never answers
(a dropped packet, a firewall) would otherwise hold dbt for minutes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any


def main(request_path: str) -> int:
    request: dict[str, Any] = json.loads(Path(request_path).read_text())
    from dbt.cli.main import dbtRunner

    timeout = request.get("timeout")
    callbacks = [_give_up_after(float(timeout))] if timeout is not None else []
    result = dbtRunner(callbacks=callbacks).invoke(request["args"])
    if request.get("out"):
        rows: list[list[Any]] = []
        if result.success and result.result is not None:
            for node_result in getattr(result.result, "results", []):
                table = getattr(node_result, "agate_table", None)
                if table is not None:
                    rows.extend([_plain(v) for v in row.values()] for row in table.rows)
        Path(request["out"]).write_text(json.dumps(rows))
    if result.exception is not None:
        print(f"dbt could not run: {result.exception}", file=sys.stderr)
        return 2
    return 0 if result.success else 1


TIMED_OUT = 124  # like timeout(1)


def _give_up_after(seconds: float) -> Any:
    """A dbt event callback that ends this process ``seconds`` after dbt first opens a connection."""
    started = threading.Event()

    def give_up() -> None:
        print(f"dbtassets: the warehouse did not answer within {seconds:g}s", file=sys.stderr, flush=True)
        os._exit(TIMED_OUT)  # dbt's thread is blocked in the driver: only ending the process frees it

    def on_event(event: Any) -> None:
        if not started.is_set() and getattr(getattr(event, "info", None), "name", "") == "NewConnection":
            started.set()
            timer = threading.Timer(seconds, give_up)
            timer.daemon = True
            timer.start()

    return on_event


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
