"""A manifest's assets as the compact rows that :func:`~dbtassets.model.manifest.load_manifest` builds its
nodes from, and that :mod:`dbtassets.model.cache` stores: plain tuples, so marshal can write them.

A row's layout is read back by ``manifest._from_compact``: change both together and bump ``cache.FORMAT``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dbtassets.model.code import Macros, NodeVersions, config_version


def compact_nodes(
    nodes: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, Mapping[str, Any]],
    macros: Macros,
    where: list[str],
) -> tuple[tuple[Any, ...], ...]:
    """One row per asset: the tuple layout that the cache stores (change it and bump cache.FORMAT)."""
    versions = NodeVersions(nodes, macros)
    compact: list[tuple[Any, ...]] = []
    for uid, node in nodes.items():
        where[0] = uid
        config = node.get("config") or {}
        compact.append((
            uid, text(node["name"]), text(node["resource_type"]), text(node["package_name"]), texts(node["fqn"]),
            text(node["original_file_path"]), texts(node.get("tags") or ()), str(config.get("materialized") or ""),
            tuple(p for p in texts(node["depends_on"].get("nodes", ())) if p in nodes or p in sources),
            versions.code_version(uid), "", "", str(node.get("relation_name") or ""),
            _plain({**(node.get("meta") or {}), **(config.get("meta") or {})}),
            _plain_config(config), config_version(node), _model_freshness(config.get("freshness")),
            str(node.get("language") or "sql"), versions.varies_by_command(node),
            _version(node.get("version")), _version(node.get("latest_version")), versions.reads(uid),
        ))
    for uid, source in sources.items():
        where[0] = uid
        config = source.get("config") or {}
        meta = {**(source.get("source_meta") or {}), **(source.get("meta") or {}), **(config.get("meta") or {})}
        compact.append((
            uid, text(source["name"]), "source", text(source["package_name"]), texts(source["fqn"]),
            text(source["original_file_path"]), texts(source.get("tags") or ()), "", (), "",
            text(source["source_name"]), str(source.get("loaded_at_field") or config.get("loaded_at_field") or ""),
            str(source.get("relation_name") or ""), _plain(meta), _plain_config(config), "",
            _source_freshness(source.get("freshness") or config.get("freshness"),
                              source.get("loaded_at_query") or config.get("loaded_at_query")),
            "sql", False, "", "", (),
        ))
    return tuple(compact)


def _version(value: Any) -> str:
    """A model version as dbt writes it in names (``2`` for ``v2``); "" for an unversioned model."""
    return "" if value is None else str(value)


def _period(value: Any) -> tuple[int, str] | None:
    """``{count: 1, period: hour}`` as ``(1, "hour")``; None when either part is missing."""
    if not isinstance(value, dict) or value.get("count") is None or value.get("period") is None:
        return None
    count, period = value["count"], value["period"]
    if isinstance(count, bool) or not isinstance(count, int) or not isinstance(period, str):
        raise ValueError(f"freshness period {{count: {count!r}, period: {period!r}}} is not a count and a period")
    return count, period


def _model_freshness(freshness: Any) -> tuple[Any, ...] | None:
    build_after = freshness.get("build_after") if isinstance(freshness, dict) else None
    if not isinstance(build_after, dict):
        return None
    return (_period(build_after), str(build_after.get("updates_on") or "any"), None, None, "")


def _source_freshness(freshness: Any, loaded_at_query: Any) -> tuple[Any, ...] | None:
    freshness = freshness if isinstance(freshness, dict) else {}
    warn, error = _period(freshness.get("warn_after")), _period(freshness.get("error_after"))
    query = loaded_at_query if isinstance(loaded_at_query, str) else ""
    if warn is None and error is None and not query:
        return None
    return (None, "", warn, error, query)


def text(value: Any) -> str:
    """A manifest field that must be text (a ValueError names what it was instead)."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, found {type(value).__name__} {value!r:.40}")
    return value


def texts(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list | tuple):
        raise ValueError(f"expected a list of text, found {type(values).__name__}")
    return tuple(text(v) for v in values)


def _plain(value: Any) -> Any:
    """Only what marshal can store: JSON-like values, with tuples for lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar config values, for `config.KEY:value` selection."""
    return {k: v for k, v in config.items() if isinstance(v, str | int | float | bool)}
