"""Whether dbt's output says the warehouse cannot be reached at all (down, unknown host, a firewall).

Then no query is to blame, and asking again source by source would only wait longer: the runner
raises :class:`~dbtassets.errors.WarehouseUnreachable` instead of an ObservationError.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dbtassets.building._dbt import TIMED_OUT

# What drivers say when the warehouse cannot be reached at all (psycopg2, Snowflake, BigQuery, Databricks…):
# no query is to blame, and asking again source by source would only wait longer.
_CONNECTION_FAILURE = re.compile(
    r"could not connect|failed to connect|connection to server at .* failed|connection refused|"
    r"could not translate host name|name or service not known|temporary failure in name resolution|"
    r"network is unreachable|no route to host|timeout expired|timed out|connection reset|"
    r"server closed the connection unexpectedly|failedtoconnect|unable to connect", re.IGNORECASE)

def why_unreachable(returncode: int, output: Sequence[str], timeout: float | None) -> str | None:
    """Why a ``dbt show`` that ended with ``returncode`` and ``output`` did not reach the warehouse, if it did not."""
    if timeout is not None and returncode == TIMED_OUT:
        return f"no answer within {timeout:.3g}s"
    return connection_failure(output) if returncode != 0 else None


def connection_failure(output: Sequence[str]) -> str | None:
    """The line of dbt's output saying the warehouse cannot be reached, if it says so."""
    for line in output:
        if _CONNECTION_FAILURE.search(line):
            return _one_line(line.strip())
    return None

def _one_line(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
