"""dbtassets: a dbt project as a live asset graph.

The public surface is listed in ``__all__`` (guarded by a test); everything else is internal and
may move. It is :class:`Project`, the one facade over a dbt project, with the :class:`Options` it
opens with, and the types its verbs return::

    from dbtassets import Options, Project

    with Project(Options(Path("example_project"))) as project:
        report = project.status()                 # StatusReport: AssetStatus per asset, with Reasons
        project.why("fact_sales")                 # Explanation, down to the source that moved
        result = project.sync()                   # SyncResult: what was built, failed, skipped

Errors are :class:`DbtAssetsError` and its subclasses; :class:`Interrupted` (a ``BaseException``,
like ``KeyboardInterrupt``) is raised when a signal stops a build.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbtassets.engine import Project
    from dbtassets.errors import (
        ConfigError,
        DbtAssetsError,
        Interrupted,
        LockError,
        ManifestError,
        ObservationError,
        ProjectError,
        RunnerError,
        SelectionError,
        StateError,
        StoreUnreachable,
    )
    from dbtassets.model.graph import AssetGraph
    from dbtassets.model.manifest import Node, UniqueId
    from dbtassets.model.snapshot import Snapshot
    from dbtassets.model.sources import Observation
    from dbtassets.observe.observer import ObserveOutcome
    from dbtassets.results import Explanation, Options, StatusReport, SyncPlan, SyncResult
    from dbtassets.rules.policies import Verdict
    from dbtassets.rules.savings import AssetSavings, Savings
    from dbtassets.rules.statuses import AssetStatus, Reason, ReasonCode, Status
    from dbtassets.state.records import HistoryEntry

# Where each public name is defined: imported on first use (PEP 562), so that the command line,
# which imports this package first, pays only for the modules its command needs.
_HOMES = {
    "Project": "dbtassets.engine",
    **dict.fromkeys(["ConfigError", "DbtAssetsError", "Interrupted", "LockError", "ManifestError", "ObservationError",
                     "ProjectError", "RunnerError", "SelectionError", "StateError", "StoreUnreachable"],
                    "dbtassets.errors"),
    "AssetGraph": "dbtassets.model.graph",
    "Node": "dbtassets.model.manifest",
    "UniqueId": "dbtassets.model.manifest",
    "Snapshot": "dbtassets.model.snapshot",
    "Observation": "dbtassets.model.sources",
    "ObserveOutcome": "dbtassets.observe.observer",
    **dict.fromkeys(["Explanation", "Options", "StatusReport", "SyncPlan", "SyncResult"], "dbtassets.results"),
    "Verdict": "dbtassets.rules.policies",
    "AssetSavings": "dbtassets.rules.savings",
    "Savings": "dbtassets.rules.savings",
    **dict.fromkeys(["AssetStatus", "Reason", "ReasonCode", "Status"], "dbtassets.rules.statuses"),
    "HistoryEntry": "dbtassets.state.records",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dbtassets' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "AssetGraph",
    "AssetSavings",
    "AssetStatus",
    "ConfigError",
    "DbtAssetsError",
    "Explanation",
    "HistoryEntry",
    "Interrupted",
    "LockError",
    "ManifestError",
    "Node",
    "Observation",
    "ObservationError",
    "ObserveOutcome",
    "Options",
    "Project",
    "ProjectError",
    "Reason",
    "ReasonCode",
    "RunnerError",
    "Savings",
    "SelectionError",
    "Snapshot",
    "StateError",
    "Status",
    "StatusReport",
    "StoreUnreachable",
    "SyncPlan",
    "SyncResult",
    "UniqueId",
    "Verdict",
    "__version__",
]
