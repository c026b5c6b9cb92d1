"""What rebuilding only the stale set saved: dbtassets' recorded builds against a full ``dbt build`` each time.

For every run dbtassets started in a window, the assets it built are in the state store with dbt's
own execution time (``run_results.json``). A full ``dbt build`` at the same moment would have
built every model, seed and snapshot of the project. Each asset's cost is estimated as the median
of its recorded build times, so the warehouse seconds avoided are, per asset, the runs that did not
build it times that median. The estimate's assumptions travel with the result (:data:`ASSUMPTIONS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from dbtassets.model.graph import BUILDABLE, AssetGraph
from dbtassets.model.manifest import UniqueId
from dbtassets.words import noun, plural

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|w)\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_ATTEMPTED = frozenset({"success", "error"})  # a skipped asset cost nothing

ASSUMPTIONS = (
    "a full `dbt build` at each run would have built every model, seed and snapshot of today's manifest",
    "an asset's cost is the median of its recorded dbt execution times (run_results.json); data tests, "
    "dbt start-up and parsing are not counted",
    "seconds are dbt's execution times summed: concurrency, warehouse size and per-query billing minimums "
    "are ignored",
)


@dataclass(frozen=True)
class AssetSavings:
    """One asset's share of :class:`Savings`: its builds in the window, and the seconds they cost and saved."""

    unique_id: UniqueId
    name: str
    builds: int  # builds dbtassets ran (successful or failed) in the window
    median: float | None  # seconds; None when it was never built successfully
    spent: float
    avoided: float  # estimated

    def to_json(self, runs: int) -> dict[str, object]:
        return {"unique_id": self.unique_id, "name": self.name, "builds": self.builds, "full_builds": runs,
                "median_seconds": _round(self.median), "spent_seconds": _round(self.spent),
                "avoided_seconds": _round(self.avoided)}


@dataclass(frozen=True)
class Savings:
    """``dbtassets savings``: build time spent and avoided since a moment, against rebuilding everything."""

    since: datetime
    until: datetime
    runs: int
    assets: tuple[AssetSavings, ...]  # most seconds avoided first
    untimed: tuple[str, ...]  # assets with no recorded build time: their savings count as 0

    @property
    def builds(self) -> int:
        return sum(a.builds for a in self.assets)

    @property
    def full_builds(self) -> int:
        return self.runs * len(self.assets)

    @property
    def spent(self) -> float:
        return sum(a.spent for a in self.assets)

    @property
    def avoided(self) -> float:
        return sum(a.avoided for a in self.assets)

    @property
    def full_estimate(self) -> float:
        """What a full build at each run would have spent: what was spent, plus the estimate of the rest."""
        return self.spent + self.avoided

    def assumptions(self) -> list[str]:
        notes = list(ASSUMPTIONS)
        if self.untimed:
            untimed = len(self.untimed)
            notes.append(f"{plural(untimed, 'asset')} never built successfully {noun(untimed, 'has', 'have')} "
                         "no time and count as 0: "
                         f"{', '.join(self.untimed[:5])}{', …' if len(self.untimed) > 5 else ''}")
        return notes

    def to_json(self) -> dict[str, object]:
        return {
            "since": _iso(self.since), "until": _iso(self.until), "runs": self.runs,
            "builds": {"done": self.builds, "full_build": self.full_builds,
                       "avoided": self.full_builds - self.builds},
            "seconds": {"spent": _round(self.spent), "full_build_estimate": _round(self.full_estimate),
                        "avoided_estimate": _round(self.avoided)},
            "assets": [a.to_json(self.runs) for a in self.assets],
            "assumptions": self.assumptions(),
        }


def compute(graph: AssetGraph, outcomes: Iterable[tuple[int, str | None, str | None, float | None]],
            durations: Mapping[UniqueId, Sequence[float]], since: datetime, until: datetime) -> Savings:
    """Savings over the runs of ``outcomes`` (as :meth:`~dbtassets.state.store.StateStore.outcomes_since` gives them).

    Args:
        durations: every recorded execution time of a successful build, by asset (for the medians).
    """
    runs: set[int] = set()
    builds: dict[UniqueId, int] = {}
    spent: dict[UniqueId, float] = {}
    for run_id, uid, status, seconds in outcomes:
        runs.add(run_id)
        if uid is None or status not in _ATTEMPTED:
            continue
        asset = UniqueId(uid)
        builds[asset] = builds.get(asset, 0) + 1
        spent[asset] = spent.get(asset, 0.0) + (seconds or 0.0)
    rows = []
    untimed = []
    for uid in graph.topological_order():
        node = graph.assets[uid]
        if node.resource_type not in BUILDABLE:
            continue
        times = durations.get(uid)
        import statistics  # imported where used: most commands never get here

        median = statistics.median(times) if times else None
        if median is None:
            untimed.append(node.display_name)
        built = builds.get(uid, 0)
        rows.append(AssetSavings(uid, node.display_name, built, median, spent.get(uid, 0.0),
                                 (len(runs) - built) * (median or 0.0)))
    rows.sort(key=lambda a: -a.avoided)
    return Savings(since, until, len(runs), tuple(rows), tuple(untimed))


def window_start(text: str, now: datetime) -> datetime:
    """The start of ``--since``: ``7d``, ``12h``, ``30m``, ``2w`` before ``now``, or an ISO date or time (UTC).

    Raises:
        ValueError: neither form.
    """
    match = _WINDOW.match(text)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a span such as 7d, 12h or 30m nor an ISO date such as "
                         "2026-11-01") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=now.tzinfo)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
