"""The answer about an asset: its :class:`Status`, every :class:`Reason` for it, and what a rebuild must be.

What :func:`dbtassets.rules.staleness.compute_statuses` returns and every command shows; the rules that
decide it live there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dbtassets.model.manifest import UniqueId
from dbtassets.rules.checks import CheckState, CheckStatus
from dbtassets.state.records import Version


class Status(str, Enum):
    """Whether an asset is up to date with its code and inputs: the ``status`` of every answer."""

    FRESH = "fresh"
    STALE = "stale"
    MISSING = "missing"
    UNOBSERVED = "unobserved"  # a source nothing observes: whether it changed is unknowable, never "fresh"


class ReasonCode(str, Enum):
    """Why an asset is not fresh (or, for UNOBSERVED, why its freshness is unknowable)."""

    NEVER_MATERIALIZED = "never_materialized"
    CODE_CHANGED = "code_changed"
    UPSTREAM_UPDATED = "upstream_updated"
    UPSTREAM_STALE = "upstream_stale"
    UPSTREAM_MISSING = "upstream_missing"
    LAST_BUILD_FAILED = "last_build_failed"
    UNOBSERVED = "unobserved"
    # Freshness policies (dbtassets.rules.policies): not reasons to be stale, but why a stale asset waits,
    # and why a source is late.
    NOT_DUE = "not_due"
    LATE_WARN = "late_warn"
    LATE_ERROR = "late_error"
    # On an asset that may be fresh: they say something true about it without calling for a build.
    OLD_ROWS_KEPT = "old_rows_kept"
    UPSTREAM_CHECK_FAILED = "upstream_check_failed"  # stale, but held: building it would spread failing data
    CHECK_FAILED = "check_failed"
    CHECK_PENDING = "check_pending"
    CHECK_MISSING = "check_missing"  # the YAML declares it, the manifest lacks it: it never runs (fails `check`)
    CHECK_REMOVED = "check_removed"  # it ran here and is no longer declared: a note until the asset's next build


@dataclass(frozen=True)
class Reason:
    """One rule that holds for an asset: its code, a message for people, and the upstream it names, if any."""

    code: ReasonCode
    message: str
    upstream: UniqueId | None = None

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code.value, "message": self.message}
        if self.upstream is not None:
            out["upstream"] = self.upstream
        return out


@dataclass(frozen=True)
class AssetStatus:
    """An asset's status (fresh, stale, missing, unobserved), every reason for it, and what a rebuild must be."""

    unique_id: UniqueId
    status: Status
    reasons: tuple[Reason, ...]
    data_version: Version | None
    impact: frozenset[str] | None = None  # columns a rebuild would change; None: any
    due_at: str | None = None  # set by rules.policies on a stale asset that has or waits on a freshness policy
    full_refresh: bool = False  # its rebuild must be a full refresh (an incremental model whose code changed)
    checks: tuple[CheckStatus, ...] = ()
    held: bool = False  # not built until an upstream check passes (dbt build would skip it)

    @property
    def needs_build(self) -> bool:
        return self.status in (Status.STALE, Status.MISSING)

    @property
    def pending_checks(self) -> list[CheckStatus]:
        """Checks to run without rebuilding the asset (a rebuild runs them all anyway)."""
        return [] if self.needs_build else [c for c in self.checks if c.state is CheckState.PENDING]

    @property
    def failing_checks(self) -> list[CheckStatus]:
        return [c for c in self.checks if c.state.failing]

    @property
    def needs_attention(self) -> bool:
        """What ``check`` fails on: stale, missing, or a check failing or not yet run."""
        return self.needs_build or (bool(self.checks) and (bool(self.failing_checks) or bool(self.pending_checks)))
