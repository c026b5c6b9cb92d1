"""What the in-process runner assumes about dbt-core's and dbt-duckdb's internals, checked, not hoped.

:mod:`dbtassets.building.inprocess` reaches past dbt's documented programmatic API (``dbtRunner``): it resets
the compile state dbt leaves on a reused manifest's nodes, reads its run results and
``NodeFinished`` events field by field, and closes dbt-duckdb's connections through private names.
Each such reliance is one :class:`Assumption` here. ``tests/test_dbt_contract.py`` checks every
one against the installed dbt, and the watcher checks them at start: if one does not hold, it
says so once and runs dbt as a subprocess instead (which relies on none of them).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Assumption:
    """One thing dbt must provide; ``check`` returns what is missing, or None when it holds."""

    name: str
    why: str  # what inprocess.py does with it
    check: Callable[[], str | None]

    def problem(self) -> str | None:
        """None when the assumption holds; else one line naming it, what broke and why it matters."""
        try:
            missing = self.check()
        except Exception as exc:  # an import error, a renamed module: the assumption is broken too
            missing = f"{type(exc).__name__}: {exc}"
        return None if missing is None else f"{self.name}: {missing} (inprocess.py {self.why})"


def _attribute(module: str, path: str) -> Any:
    value: Any = importlib.import_module(module)
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _has(module: str, path: str) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            _attribute(module, path)
        except AttributeError:
            return f"{module}.{path} does not exist"
        return None
    return check


def _fields(module: str, cls: str, *names: str) -> Callable[[], str | None]:
    def check() -> str | None:
        have = {f.name for f in dataclasses.fields(_attribute(module, cls))}
        missing = [n for n in names if n not in have]
        return f"{module}.{cls} has no field {', '.join(missing)}" if missing else None
    return check


def _parameters(module: str, path: str, *names: str) -> Callable[[], str | None]:
    def check() -> str | None:
        have = inspect.signature(_attribute(module, path)).parameters
        missing = [n for n in names if n not in have]
        return f"{module}.{path} takes no {', '.join(missing)}" if missing else None
    return check


def _message(module: str, message: str, field: str, *names: str) -> Callable[[], str | None]:
    """A protobuf event message whose ``field`` is a message with fields ``names``."""
    def check() -> str | None:
        descriptor = getattr(importlib.import_module(module), message).DESCRIPTOR
        if field not in descriptor.fields_by_name:
            return f"{module}.{message} has no field {field}"
        have = {f.name for f in descriptor.fields_by_name[field].message_type.fields}
        missing = [n for n in names if n not in have]
        return f"{module}.{message}.{field} has no field {', '.join(missing)}" if missing else None
    return check


CONTRACT: tuple[Assumption, ...] = (
    Assumption("dbtRunner(manifest=, callbacks=)", "reuses the parsed manifest and hears each finished node",
               _parameters("dbt.cli.main", "dbtRunner.__init__", "manifest", "callbacks")),
    Assumption("dbtRunnerResult", "reads success, exception and result of every invocation",
               _fields("dbt.cli.main", "dbtRunnerResult", "success", "exception", "result")),
    Assumption("compile state on manifest nodes", "resets it before each invocation, or a second build from the "
               "same manifest loses its ephemeral CTEs",
               _fields("dbt.contracts.graph.nodes", "ModelNode", "compiled", "compiled_code", "extra_ctes_injected",
                       "extra_ctes", "_pre_injected_sql")),
    Assumption("RunResult fields", "turns each node's result into a NodeResult",
               _fields("dbt.artifacts.schemas.run", "RunResult", "status", "timing", "execution_time",
                       "adapter_response", "message", "node", "agate_table")),
    Assumption("NodeFinished event", "reports each finished node live to the watcher",
               _message("dbt.events.core_types_pb2", "NodeFinished", "run_result", "status", "message",
                        "execution_time")),
    Assumption("NodeFinished node_info", "names the node each event is about",
               _message("dbt.events.core_types_pb2", "NodeFinished", "node_info", "unique_id")),
    Assumption("dbt.adapters.factory.cleanup_connections", "closes the warehouse connections after each invocation",
               _has("dbt.adapters.factory", "cleanup_connections")),
    Assumption("dbt-duckdb DuckDBConnectionManager._LOCK, _ENV, close_all_connections",
               "closes the DuckDB file after each invocation, so other processes can open it while the watcher idles",
               lambda: _duckdb_connection_manager()),
)


def _duckdb_connection_manager() -> str | None:
    try:
        importlib.import_module("dbt.adapters.duckdb.connections")
    except ImportError:
        return None  # no dbt-duckdb: nothing to close
    missing = [name for name in ("_LOCK", "_ENV", "close_all_connections")
               if not hasattr(_attribute("dbt.adapters.duckdb.connections", "DuckDBConnectionManager"), name)]
    return f"DuckDBConnectionManager has no {', '.join(missing)}" if missing else None


def problems() -> list[str]:
    """Every assumption that does not hold in the installed dbt (empty when all do)."""
    return [p for a in CONTRACT if (p := a.problem()) is not None]
