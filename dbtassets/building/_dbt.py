"""Child-process entry point that runs one dbt invocation: ``python -m dbtassets.building._dbt REQUEST.json``.

The request file carries dbt's arguments, so a selection of thousands of models never meets
the operating system's limit on command-line length. For a ``query`` request, the first row's
values of each query are written as JSON to ``out``. Exit codes follow dbt's: 0 success,
1 a node failed, 2 dbt could not run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(request_path: str) -> int:
    request: dict[str, Any] = json.loads(Path(request_path).read_text())
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(request["args"])
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


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
