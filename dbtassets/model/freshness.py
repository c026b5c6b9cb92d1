"""Freshness policies as declared: dbt's own ``freshness`` configs, read and checked into policy values.

A model's ``build_after: {count, period, updates_on}`` becomes a :class:`BuildAfter`, a source's
``warn_after``/``error_after`` a :class:`SourceSla`; :class:`Policies` holds them for every asset
and reports every config it cannot read in one error. Acting on them (what is due, which sources
are late) is :mod:`dbtassets.rules.policies`' job.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum

from dbtassets.errors import ManifestError
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import FreshnessConfig, Period, ResourceType, UniqueId

_PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class UpdatesOn(str, Enum):
    ANY = "any"
    ALL = "all"


class Severity(str, Enum):
    """How late a source is: past ``warn_after`` or past ``error_after``."""

    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class Interval:
    """A dbt ``{count, period}``."""

    count: int
    period: str

    @property
    def seconds(self) -> float:
        return float(self.count * _PERIOD_SECONDS[self.period])

    @property
    def label(self) -> str:
        """``1h``, ``30m``, ``2d``."""
        return f"{self.count}{self.period[0]}"

    def to_json(self) -> dict[str, object]:
        return {"count": self.count, "period": self.period}


@dataclass(frozen=True)
class BuildAfter:
    """A model's ``build_after``; ``every`` is None when only ``updates_on`` is given."""

    every: Interval | None
    updates_on: UpdatesOn = UpdatesOn.ANY

    @property
    def seconds(self) -> float:
        return self.every.seconds if self.every is not None else 0.0

    @functools.cached_property
    def text(self) -> str:
        """``build_after 1h``, ``build_after 1h, updates_on: all``, ``updates_on: all``."""
        parts = [f"build_after {self.every.label}"] if self.every is not None else []
        if self.updates_on is UpdatesOn.ALL or not parts:
            parts.append(f"updates_on: {self.updates_on.value}")
        return ", ".join(parts)

    def describe(self) -> str:
        return self.text

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = self.every.to_json() if self.every is not None else {}
        return {**out, "updates_on": self.updates_on.value}


@dataclass(frozen=True)
class SourceSla:
    """A source's ``warn_after``/``error_after``."""

    warn_after: Interval | None = None
    error_after: Interval | None = None

    def breached(self, age: float) -> tuple[Severity, Interval] | None:
        if self.error_after is not None and age > self.error_after.seconds:
            return Severity.ERROR, self.error_after
        if self.warn_after is not None and age > self.warn_after.seconds:
            return Severity.WARN, self.warn_after
        return None

    def describe(self) -> str:
        parts = [f"{name} {i.label}" for name, i in (("warn_after", self.warn_after), ("error_after", self.error_after))
                 if i is not None]
        return ", ".join(parts)

    def thresholds(self) -> list[float]:
        return [i.seconds for i in (self.warn_after, self.error_after) if i is not None]


@dataclass(frozen=True)
class Policies:
    """Every asset's freshness policy, read from the manifest (through :class:`~dbtassets.model.manifest.Node`)."""

    build_after: Mapping[UniqueId, BuildAfter] = field(default_factory=dict)
    slas: Mapping[UniqueId, SourceSla] = field(default_factory=dict)

    @classmethod
    def from_graph(cls, graph: AssetGraph) -> Policies:
        """Raises ManifestError naming every asset whose freshness config dbtassets cannot read."""
        build_after: dict[UniqueId, BuildAfter] = {}
        slas: dict[UniqueId, SourceSla] = {}
        problems: list[str] = []
        # Most models share a few configs (set per project or folder): one value per distinct config.
        models_seen: dict[FreshnessConfig, BuildAfter] = {}
        sources_seen: dict[FreshnessConfig, SourceSla] = {}
        for uid, node in graph.assets.items():
            config = node.freshness
            if config is None:
                continue
            try:
                if node.resource_type == ResourceType.MODEL and config.updates_on:
                    if config not in models_seen:
                        models_seen[config] = BuildAfter(_interval(config.build_after), UpdatesOn(config.updates_on))
                    build_after[uid] = models_seen[config]
                elif node.resource_type == ResourceType.SOURCE and (config.warn_after or config.error_after):
                    if config not in sources_seen:
                        sources_seen[config] = SourceSla(_interval(config.warn_after), _interval(config.error_after))
                    slas[uid] = sources_seen[config]
            except ValueError as exc:
                problems.append(f"{node.display_name} ({node.path}): {exc}")
        if problems:
            raise ManifestError(f"cannot read freshness config of {'; '.join(problems)}; "
                                "fix it (periods are minute, hour or day; updates_on is any or all) and re-parse")
        return cls(build_after, slas)

    def blind(self, graph: AssetGraph, observable: Collection[UniqueId]) -> list[str]:
        """A warning about the sources with a freshness SLA that nothing observes: one line however many
        (a project of 250 such sources is not 250 lines on every command)."""
        blind = [(graph.assets[uid].display_name, sla) for uid, sla in self.slas.items() if uid not in observable]
        if len(blind) == 1:
            (name, sla), = blind
            return [f"source {name} has a freshness SLA ({sla.describe()}) but no observer: "
                    "its lateness cannot be checked"]
        if not blind:
            return []
        listed = ", ".join(name for name, _ in blind[:3]) + (", …" if len(blind) > 3 else "")
        return [f"{len(blind)} sources have a freshness SLA but no observer ({listed}): their lateness cannot be "
                "checked; declare files, query or reported for them in dbtassets.yml"]


def _interval(period: Period | None) -> Interval | None:
    if period is None:
        return None
    count, unit = period
    if unit not in _PERIOD_SECONDS:
        raise ValueError(f"unknown period {unit!r}")
    if count < 0:
        raise ValueError(f"negative count {count}")
    return Interval(count, unit)
