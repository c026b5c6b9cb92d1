"""Manifest-based code versions: what a node's code is, read from the manifest without compiling it.

A node's code version is its file checksum, the configuration that changes the built object, the
macros it calls (transitively) and the code versions of the ephemeral models it inlines. A Python
model's is its code as ``ast`` parses it (comments and layout left out) and its configuration: the
macros dbt lists for it differ between a manifest from ``dbt parse`` and one from ``dbt build``
(``py_script_postfix``), so they must not count. A model whose Jinja (or a macro it calls) looks at
the dbt command renders differently under ``dbt compile`` than under ``dbt build``, so its compiled SQL
cannot be compared across the two: its version is its Jinja source and its macros' as the Jinja lexer
reads them (layout inside tags left out). What a node's SQL reads besides its code (vars, env vars) is
found here too, in its Jinja and its macros' (:func:`NodeVersions.reads`); their values are
:mod:`dbtassets.model.values`' to resolve, on every load.

Everything here works on the manifest's raw JSON, while :mod:`dbtassets.model.manifest` extracts it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dbtassets.model.ephemeral import EphemeralWalk
from dbtassets.model.ids import UniqueId
from dbtassets.model.values import Read, calls_in

# Configuration that changes the object dbt builds (not docs, tags or meta).
_BUILD_CONFIG_KEYS = (
    "materialized", "incremental_strategy", "unique_key", "on_schema_change", "contract",
    "pre-hook", "post-hook", "partition_by", "cluster_by", "strategy", "check_cols", "updated_at",
    "invalidate_hard_deletes", "hard_deletes", "snapshot_meta_column_names", "dbt_valid_to_current",
    "column_types", "delimiter", "quote_columns", "full_refresh", "incremental_predicates",
    "merge_update_columns", "merge_exclude_columns", "batch_size", "lookback", "begin", "event_time",
)
# Test configuration that changes what a data test checks or when it fails.
_TEST_CONFIG_KEYS = ("severity", "where", "limit", "fail_calc", "warn_if", "error_if")
# Jinja that renders differently under `dbt compile` than under `dbt build` (a real package's macros do).
_READS_COMMAND = re.compile(r"flags\s*\.\s*which|invocation_args_dict|\binvocation_command\b", re.IGNORECASE)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Macros:
    """Each macro's SQL fingerprint, the macros it calls, and whether it looks at the dbt command."""

    versions: Mapping[str, str]
    calls: Mapping[str, tuple[str, ...]]
    reads_command: Mapping[str, bool]
    sql: Mapping[str, str]
    _jinja: dict[str, str] = field(default_factory=dict)
    _reads: dict[str, frozenset[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, macros: Mapping[str, Mapping[str, Any]]) -> Macros:
        return cls(
            {uid: hashlib.sha256((m.get("macro_sql") or "").encode()).hexdigest()[:16] for uid, m in macros.items()},
            {uid: tuple(m.get("depends_on", {}).get("macros", ())) for uid, m in macros.items()},
            {uid: bool(_READS_COMMAND.search(m.get("macro_sql") or "")) for uid, m in macros.items()},
            {uid: str(m.get("macro_sql") or "") for uid, m in macros.items()},
        )

    def jinja_version(self, uid: str) -> str:
        """The macro's fingerprint as the Jinja lexer reads it: layout inside its tags does not count."""
        if uid not in self._jinja:
            self._jinja[uid] = hashlib.sha256(jinja_text(self.sql[uid]).encode()).hexdigest()[:16]
        return self._jinja[uid]

    def reads(self, uid: str) -> frozenset[tuple[str, str]]:
        """The vars and env vars the macro reads (see :func:`dbtassets.model.values.calls_in`)."""
        if uid not in self._reads:
            self._reads[uid] = calls_in(self.sql[uid])
        return self._reads[uid]

    def closure(self, roots: Iterable[str]) -> set[str]:
        """The macros in ``roots`` and every macro they call, transitively."""
        seen: set[str] = set()
        stack = [m for m in roots if m in self.versions]
        while stack:
            macro = stack.pop()
            if macro not in seen:
                seen.add(macro)
                stack.extend(m for m in self.calls.get(macro, ()) if m not in seen)
        return seen


def data_test_version(node: Mapping[str, Any], config: Mapping[str, Any], macros: Macros, builtin: set[str]) -> str:
    """A data test's code version: its SQL (or generic test and arguments), failure config and macros.

    dbt's own macros and its adapter's are left out: running a test adds the test materialization's
    helpers to its ``depends_on`` in the manifest ``dbt build`` writes, which ``dbt parse`` then drops
    again, so they would make every test look changed after each build.
    """
    metadata = node.get("test_metadata") or {}
    macro_versions = [macros.versions[m] for m in sorted(macros.closure(node["depends_on"].get("macros", ())))
                      if m.split(".")[1] not in builtin]
    return _digest([node.get("raw_code") or "", (node.get("checksum") or {}).get("checksum") or "",
                    metadata.get("name"), metadata.get("namespace"), metadata.get("kwargs"),
                    {k: config.get(k) for k in _TEST_CONFIG_KEYS}, macro_versions])


def unit_test_version(test: Mapping[str, Any]) -> str:
    """A unit test's code version: its fixtures and expectations (the model's own code is the model's)."""
    return _digest([test.get(k) for k in ("checksum", "given", "expect", "overrides", "versions")])


class NodeVersions:
    """The code versions of a manifest's asset nodes (raw JSON, by unique_id), each computed once."""

    def __init__(self, nodes: Mapping[str, Mapping[str, Any]], macros: Macros) -> None:
        self._nodes = nodes
        self._macros = macros
        self._code_versions: dict[str, str] = {}
        self._ephemerals = EphemeralWalk(
            lambda uid: (UniqueId(p) for p in nodes[uid]["depends_on"].get("nodes", ()) if p in nodes),
            lambda uid: (nodes[uid].get("config") or {}).get("materialized") == "ephemeral")

    def varies_by_command(self, node: Mapping[str, Any]) -> bool:
        """Whether its SQL, or a macro it calls, looks at which dbt command runs."""
        if _READS_COMMAND.search(str(node.get("raw_code") or "")):
            return True
        macros = self._macros
        return any(macros.reads_command[m] for m in macros.closure(node["depends_on"].get("macros", ())))

    def code_version(self, uid: str) -> str:
        """Its own version, plus those of the ephemeral models it inlines."""
        if uid not in self._code_versions:
            own = self._own_version(uid)
            python = self._nodes[uid].get("language") == "python"
            inlined = () if python else self._ephemerals.upstream(UniqueId(uid)).inlined
            if inlined:
                own = hashlib.sha256("".join([own, *(self._own_version(e) for e in inlined)]).encode()).hexdigest()
            self._code_versions[uid] = own[:16]
        return self._code_versions[uid]

    def reads(self, uid: str) -> tuple[Read, ...]:
        """The vars and env vars its SQL reads: in its Jinja, the macros it calls and the ephemeral models it
        inlines (a var in the scope of the package whose node reads it); none for a Python model."""
        node = self._nodes[uid]
        if node.get("language") == "python":
            return ()
        found: set[Read] = set()
        for inlined in (uid, *self._ephemerals.upstream(UniqueId(uid)).inlined):
            model = self._nodes[inlined]
            package = str(model.get("package_name") or "")
            calls = set(calls_in(str(model.get("raw_code") or "")))
            for macro in self._macros.closure(model["depends_on"].get("macros", ())):
                calls |= self._macros.reads(macro)
            found.update((kind, name, package if kind == "var" else "") for kind, name in calls)
        return tuple(sorted(found))

    def _own_version(self, uid: str) -> str:
        """Its code (the checksum; a Python model's code; the Jinja of SQL that depends on the command),
        build config and the macros it calls."""
        node, macros = self._nodes[uid], self._macros
        digest = hashlib.sha256()
        if node.get("language") == "python":
            digest.update(_python_code(node).encode())
            digest.update(config_version(node).encode())
            return digest.hexdigest()
        varies = self.varies_by_command(node)
        code = jinja_text(str(node.get("raw_code") or "")) if varies else node["checksum"]["checksum"]
        digest.update(code.encode())
        digest.update(config_version(node).encode())
        for macro in sorted(macros.closure(node["depends_on"].get("macros", ()))):
            digest.update(macros.jinja_version(macro).encode() if varies else macros.versions[macro].encode())
        return digest.hexdigest()


def config_version(node: Mapping[str, Any]) -> str:
    """The configuration that changes the built object, and where it is built."""
    config = node.get("config") or {}
    build_config = {k: config[k] for k in _BUILD_CONFIG_KEYS if config.get(k) not in (None, [], {})}
    text = json.dumps([build_config, node.get("relation_name")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_QUOTED_OR_SPACE = re.compile(r"'(?:[^']|'')*'|\s+")


def jinja_text(source: str) -> str:
    """A Jinja template's tokens, without whitespace inside tags or comments; runs of spaces in its text are one.

    Text inside single quotes keeps its spaces (it may be a SQL string). Unlexable Jinja is kept as is.
    """
    from jinja2 import Environment, TemplateSyntaxError

    try:
        tokens = list(Environment().lex(source))
    except TemplateSyntaxError:
        return source
    kept = []
    for _, kind, value in tokens:
        if kind in ("whitespace", "comment_begin", "comment", "comment_end"):
            continue
        if kind == "data":
            value = _QUOTED_OR_SPACE.sub(lambda m: m.group(0) if m.group(0).startswith("'") else " ", value)
        kept.append(f"{kind}:{value}")
    return "\n".join(kept)


def _python_code(node: Mapping[str, Any]) -> str:
    """A Python model's code as ``ast`` sees it (no comments, no layout); its checksum if it does not parse."""
    try:
        return ast.dump(ast.parse(str(node.get("raw_code") or "")))
    except (SyntaxError, ValueError, RecursionError):
        return str(node["checksum"]["checksum"])
