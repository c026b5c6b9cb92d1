"""``observe``: read each source's data version now, and record the ones that moved.

Files observers fingerprint their files here; every watermark query runs in one ``dbt show``
(one at a time only to name a failing one).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dbtassets.clock import parse_time
from dbtassets.errors import ObservationError
from dbtassets.model.manifest import UniqueId
from dbtassets.model.snapshot import Snapshot
from dbtassets.model.sources import DataVersionKind, Observation, ObserverKind, observe_files
from dbtassets.state.store import StateStore


class Querier(Protocol):
    """What observing needs of the dbt runner (:class:`~dbtassets.building.runner.Runner` is one)."""

    def query(self, sql: str) -> Sequence[Sequence[Any]]:
        """The rows ``sql`` returns, run as ``dbt show`` does.

        Raises:
            ObservationError: the query failed.
        """
        ...


@dataclass(frozen=True)
class ObserveOutcome:
    """One source observed: its new data version, or why it could not be read."""

    unique_id: UniqueId
    kind: ObserverKind
    observation: Observation | None
    changed: bool
    error: str | None = None


@dataclass(frozen=True)
class Observer:
    """Observes the sources of one snapshot into one store."""

    snapshot: Snapshot
    store: StateStore
    querier: Querier
    now: Callable[[], str]

    def observe(self, wanted: Collection[UniqueId] | None, queries: bool,
                in_progress: Collection[str] | None, reuse_recent: bool = False) -> list[ObserveOutcome]:
        """``reuse_recent``: leave out the query sources read within their ``every:`` (their last reading stands)."""
        settings = self.snapshot.settings
        outcomes: list[ObserveOutcome] = []
        query_sources = []
        for uid, declaration in settings.sources.items():
            if wanted is not None and uid not in wanted:
                continue
            if declaration.kind is ObserverKind.FILES:
                observation = observe_files(self.snapshot.dbt.directory, declaration, settings.watch.settle,
                                            in_progress=in_progress)
                outcomes.append(self._record(observation))
            elif declaration.kind is ObserverKind.QUERY and queries:
                query_sources.append(declaration)
        if query_sources and reuse_recent:
            checked = self.store.last_checked(ObserverKind.QUERY.value)
            now = parse_time(self.now())
            query_sources = [d for d in query_sources if d.unique_id not in checked
                             or (now - parse_time(checked[d.unique_id])).total_seconds() >= d.every]
        if query_sources:
            outcomes.extend(self._queries({d.unique_id: d.query for d in query_sources}))
        return outcomes

    def _queries(self, queries: Mapping[UniqueId, str]) -> list[ObserveOutcome]:
        """All watermark queries in one ``dbt show``; one at a time only to name a failing one."""
        union = " union all ".join(
            f"select '{uid}' as source, cast(({sql}) as varchar) as watermark" for uid, sql in queries.items())
        try:
            rows = {str(row[0]): row[1] for row in self.querier.query(union)}
        except ObservationError as exc:
            if len(queries) == 1:  # the database's error inline, then the query and where dbt logged the rest
                uid, sql = next(iter(queries.items()))
                return [ObserveOutcome(uid, ObserverKind.QUERY, None, False,
                                       f"{exc} (query: {sql}; dbt log: {self.snapshot.dbt.dbt_log})")]
            return [o for uid, sql in queries.items() for o in self._queries({uid: sql})]
        return [
            self._record(Observation(uid, DataVersionKind.QUERY.of(rows.get(uid)), ObserverKind.QUERY,
                                     {"watermark": rows.get(uid)}))
            for uid in queries
        ]

    def _record(self, observation: Observation) -> ObserveOutcome:
        changed = self.store.record_observation(observation.unique_id, observation.data_version,
                                                observation.kind.value, self.now(), observation.detail)
        return ObserveOutcome(observation.unique_id, observation.kind, observation, changed)
