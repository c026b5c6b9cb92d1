"""Which output formats each command offers, and the renderer of each: the tables the CLI picks from.

A command's ``--format`` choices are its table's keys, in order (the first is the default), and
every renderer in a table takes the same arguments, so the CLI renders with ``TABLE[fmt](...)``
and never compares formats itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec

from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import Node, UniqueId
from dbtassets.model.sources import SourceDeclaration
from dbtassets.report import documents, github, graphs, text
from dbtassets.report.common import Gate, OutputFormat, to_json
from dbtassets.results import Explanation, ObserveOutcome, StatusReport, SyncResult
from dbtassets.rules.savings import Savings
from dbtassets.state.records import HistoryEntry

P = ParamSpec("P")
TEXT, JSON, GITHUB = OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.GITHUB


def _json(document: Callable[P, Any]) -> Callable[P, str]:
    """The renderer that prints ``document``'s result as indented JSON."""

    def render(*args: P.args, **kwargs: P.kwargs) -> str:
        return to_json(document(*args, **kwargs))

    return render


ASSETS: Mapping[OutputFormat, Callable[[AssetGraph, StatusReport, Mapping[UniqueId, SourceDeclaration]], str]] = {
    TEXT: text.assets_text, JSON: _json(documents.assets_document)}
STATUS: Mapping[OutputFormat, Callable[[AssetGraph, StatusReport, bool], str]] = {
    TEXT: text.status_text, JSON: _json(documents.status_document)}
WHY: Mapping[OutputFormat, Callable[[AssetGraph, Explanation], str]] = {
    TEXT: text.why_text, JSON: _json(documents.why_document)}
LINEAGE: Mapping[OutputFormat, Callable[[AssetGraph, UniqueId], str]] = {
    OutputFormat.TREE: graphs.tree, OutputFormat.MERMAID: graphs.mermaid, OutputFormat.DOT: graphs.dot,
    JSON: _json(documents.lineage_document)}
GATE: Mapping[OutputFormat, Callable[[AssetGraph, Gate], str]] = {  # check and plan
    TEXT: text.gate_text, JSON: _json(documents.gate_document), GITHUB: github.gate_annotations}
LINT: Mapping[OutputFormat, Callable[[AssetGraph, Mapping[UniqueId, Sequence[str]], Sequence[str]], str]] = {
    TEXT: text.lint_text, JSON: _json(documents.lint_document)}
OBSERVE: Mapping[OutputFormat, Callable[[AssetGraph, Sequence[ObserveOutcome]], str]] = {
    TEXT: text.observe_text, JSON: _json(documents.observe_document)}
HISTORY: Mapping[OutputFormat, Callable[[Node, Sequence[HistoryEntry], AssetGraph], str]] = {
    TEXT: text.history_text, JSON: _json(documents.history_document)}
SAVINGS: Mapping[OutputFormat, Callable[[Savings], str]] = {
    TEXT: text.savings_text, JSON: _json(documents.savings_document)}
SYNC: Mapping[OutputFormat, Callable[[AssetGraph, SyncResult, bool], str]] = {
    TEXT: text.sync_text, JSON: _json(documents.sync_document)}
