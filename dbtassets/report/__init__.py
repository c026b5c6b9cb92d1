"""Renderers: engine results as text, JSON documents, GitHub annotations and Mermaid/DOT graphs, and the watch log.

:mod:`~dbtassets.report.formats` says which formats each command offers and which renderer
draws each; the output kinds live apart (:mod:`~dbtassets.report.text`,
:mod:`~dbtassets.report.documents`, :mod:`~dbtassets.report.github`,
:mod:`~dbtassets.report.graphs`) over what they share (:mod:`~dbtassets.report.common`).
"""

from dbtassets.report.common import Gate, OutputFormat, plural, summary, to_json
from dbtassets.report.documents import asset_json
from dbtassets.report.github import github_annotations
from dbtassets.report.text import history_text, status_text

__all__ = ["Gate", "OutputFormat", "asset_json", "github_annotations", "history_text", "plural", "status_text",
           "summary", "to_json"]
