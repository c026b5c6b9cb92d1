"""dbtassets: a dbt project as a live asset graph.

The public surface is listed in ``__all__`` (guarded by a test); everything else is internal.
"""

from __future__ import annotations

from dbtassets.engine import Project
from dbtassets.errors import (
    ConfigError,
    DbtAssetsError,
    LockError,
    ManifestError,
    ObservationError,
    ProjectError,
    RunnerError,
    SelectionError,
    StateError,
)
from dbtassets.results import Options, StatusReport, SyncPlan, SyncResult
from dbtassets.rules.staleness import AssetStatus, Reason, ReasonCode, Status

__version__ = "0.1.0"

__all__ = [
    "AssetStatus",
    "ConfigError",
    "DbtAssetsError",
    "LockError",
    "ManifestError",
    "ObservationError",
    "Options",
    "Project",
    "ProjectError",
    "Reason",
    "ReasonCode",
    "RunnerError",
    "SelectionError",
    "StateError",
    "Status",
    "StatusReport",
    "SyncPlan",
    "SyncResult",
    "__version__",
]
