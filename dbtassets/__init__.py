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
from dbtassets.rules.staleness import AssetStatus, Reason, ReasonCode, Status
from dbtassets.state.records import HistoryEntry

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
