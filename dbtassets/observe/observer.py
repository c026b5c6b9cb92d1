"""``observe``: read each source's data version now, and record the ones that moved.

Files observers fingerprint their files here; every watermark query runs in one ``dbt show``.
The queries share one time budget (``observe.timeout``). When the combined query fails:

- the warehouse cannot be reached, or does not answer within the budget: no query is to blame and
  none is asked again; every query source keeps its recorded observation, said in one line that
  names the warehouse (a watcher backs off before asking again);
- the error names sources' tables or columns: those are set apart and the rest asked again in one
  query; a part whose error names every source in it is halved, so k failing sources of n cost
  about k·log n queries, never n, and never more than the budget.

A watermark that is a timestamp (``max(loaded_at_field)``) is also the newest data's own time
(``data_at``), which a source's freshness SLA is measured from, as ``dbt source freshness`` does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dbtassets.clock import data_time, parse_time, timestamp
from dbtassets.errors import ObservationError, SelectionError, WarehouseUnreachable
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import ResourceType, UniqueId
from dbtassets.model.snapshot import Snapshot
from dbtassets.model.sources import (
    DEFAULT_OBSERVE_TIMEOUT,
    DataVersionKind,
    Observation,
    ObserverKind,
    observe_files,
)
from dbtassets.state.store import StateStore


class Querier(Protocol):
    """What observing needs of the dbt runner (:class:`~dbtassets.building.runner.Runner` is one)."""

    def query(self, sql: str, timeout: float | None = None) -> Sequence[Sequence[Any]]:
        """The rows ``sql`` returns, run as ``dbt show`` does; given up after ``timeout`` seconds.

        Raises:
            WarehouseUnreachable: the warehouse cannot be reached, or did not answer in time.
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
    unreachable: bool = False  # the warehouse did not answer: ``error`` is the same line for every such source


@dataclass(frozen=True)
class Observer:
    """Observes the sources of one snapshot into one store."""

    snapshot: Snapshot
    store: StateStore
    querier: Querier
    now: Callable[[], str]
    timeout: float = DEFAULT_OBSERVE_TIMEOUT  # seconds all of one observation's queries may take
    warehouse: str = "the warehouse"  # how messages name it: adapter, host, target
    monotonic: Callable[[], float] = time.monotonic

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
            kept: dict[UniqueId, str] = {}
            outcomes.extend(self._queries({d.unique_id: d.query for d in query_sources},
                                          self.monotonic() + self.timeout, kept))
            if kept:
                message = (f"{self.warehouse} cannot be reached ({next(iter(kept.values()))}): {len(kept)} query "
                           f"source{' keeps its' if len(kept) == 1 else 's keep their'} last recorded observation"
                           f"{'' if len(kept) == 1 else 's'}")
                outcomes.extend(ObserveOutcome(uid, ObserverKind.QUERY, None, False, message, unreachable=True)
                                for uid in kept)
        return outcomes

    def _queries(self, queries: Mapping[UniqueId, str], deadline: float,
                 kept: dict[UniqueId, str]) -> list[ObserveOutcome]:
        """The queries in one ``dbt show``; on an error that names some of them, those apart. The ones the
        warehouse did not answer (down, or the budget spent) go into ``kept`` with the reason."""
        left = deadline - self.monotonic()
        if left <= 0:
            kept.update(dict.fromkeys(queries, f"the observation's time budget of {self.timeout:g}s is spent"))
            return []
        union = " union all ".join(
            f"select '{uid}' as source, cast(({sql}) as varchar) as watermark" for uid, sql in queries.items())
        try:
            rows = {str(row[0]): row[1] for row in self.querier.query(union, timeout=left)}
        except WarehouseUnreachable as exc:
            kept.update(dict.fromkeys(queries, str(exc)))
            return []
        except ObservationError as exc:
            if len(queries) == 1:  # the database's error inline, then the query and where dbt logged the rest
                uid, sql = next(iter(queries.items()))
                return [ObserveOutcome(uid, ObserverKind.QUERY, None, False,
                                       f"{exc} (query: {sql}; dbt log: {self.snapshot.dbt.dbt_log})")]
            named = _named(str(exc), queries)
            if not named:  # nothing to tell the culprit by: say so for all, without a query per source
                return [ObserveOutcome(uid, ObserverKind.QUERY, None, False,
                                       f"{exc} (in one query with {len(queries) - 1} other sources, naming none "
                                       f"of them; dbt log: {self.snapshot.dbt.dbt_log})") for uid in queries]
            if len(named) == len(queries):
                named = set(list(queries)[: len(queries) // 2])
            rest = {uid: sql for uid, sql in queries.items() if uid not in named}
            apart = {uid: sql for uid, sql in queries.items() if uid in named}
            return self._queries(rest, deadline, kept) + self._queries(apart, deadline, kept)
        outcomes = []
        for uid in queries:
            watermark = rows.get(uid)
            detail: dict[str, Any] = {"watermark": watermark}
            moment = data_time(watermark)
            if moment is not None:
                detail["data_at"] = timestamp(moment)
            outcomes.append(self._record(Observation(uid, DataVersionKind.QUERY.of(watermark), ObserverKind.QUERY,
                                                     detail)))
        return outcomes

    def _record(self, observation: Observation) -> ObserveOutcome:
        changed = self.store.record_observation(observation.unique_id, observation.data_version,
                                                observation.kind.value, self.now(), observation.detail)
        return ObserveOutcome(observation.unique_id, observation.kind, observation, changed)


_NAME = re.compile(r"""["'`]([^"'`\s]+)["'`]|\b(?:table|relation|column|object|view)(?: with name)? ([\w.$]+)""",
                   re.IGNORECASE)


def _named(error: str, queries: Mapping[UniqueId, str]) -> set[UniqueId]:
    """The sources whose SQL mentions a table, relation or column the error names (quoted, or after
    ``Table with name``, ``relation``…): ``relation "raw.orders" does not exist`` names raw.orders."""
    names = {part.lower() for match in _NAME.finditer(error) for part in (match.group(1) or match.group(2),)
             if part}
    words = {name.rsplit(".", 1)[-1] for name in names} | names
    found = set()
    for uid, sql in queries.items():
        tokens = {t.lower() for t in re.findall(r"[\w.$]+", sql)}
        tokens |= {t.rsplit(".", 1)[-1] for t in tokens}
        if tokens & words:
            found.add(uid)
    return found


def record_report(graph: AssetGraph, store: StateStore, source: str, version: str | None, note: str | None,
                  at: str) -> Observation:
    """A loader says it loaded ``source`` (``version``: its own name for the data, else the time): recorded.

    Raises:
        SelectionError: ``source`` names no source.
    """
    uid = graph.resolve(source)
    if graph.assets[uid].resource_type != ResourceType.SOURCE:
        raise SelectionError(f"{source!r} is a {graph.assets[uid].resource_type}, not a source; "
                             "report takes a source such as raw.orders")
    detail = {"note": note} if note else {}
    observation = Observation(uid, DataVersionKind.REPORT.of(version or at), ObserverKind.REPORTED, detail)
    store.record_observation(uid, observation.data_version, ObserverKind.REPORTED.value, at, detail)
    return observation
