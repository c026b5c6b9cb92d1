"""What a node's SQL reads besides its code: dbt vars and environment variables.

dbt renders ``{{ var('min_subtotal') }}`` and ``{{ env_var('MIN_SUBTOTAL', '0') }}`` when it compiles a
node, so the same code builds other SQL under other values. dbt tracks them for partial parsing, but
manifest.json does not list them: :func:`calls_in` finds the calls in a node's raw code and in the macros
it calls (:mod:`dbtassets.model.code` gathers them per node), and :class:`Values` resolves each as dbt
would for that node (``--vars``, then the root project's vars scoped to the node's package, then its
global ones, then the package's own) and folds a digest of each value into the node's code version
(:func:`versioned`). A changed value is then a changed version, and :func:`changed_reads` says which.

Values are never kept or shown, only hashes of them: an env var may hold a secret (dbt's
``DBT_ENV_SECRET_*``), and a var may render one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbtassets.model.project import DbtProject

VAR = "var"
ENV = "env"
ANY_VAR = "*"  # var() with a name that is not a literal: it may read any var
# (kind, name, package): the package whose var scope applies ("" for an env var)
Read = tuple[str, str, str]

_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)  # Jinja expressions and statements, not comments
_VAR = re.compile(r"""\bvar\s*\(\s*(?:(['"])([^'"]*)\1\s*(?=[,)]))?""")
_ENV = re.compile(r"""\benv_var\s*\(\s*(['"])([^'"]+)\1""")
_DIGEST = 8  # hex characters of each value's digest in a code version
_UNSET = "\0unset"


def calls_in(code: str) -> frozenset[tuple[str, str]]:
    """The ``(VAR, name)`` and ``(ENV, name)`` that Jinja ``code`` reads; ``(VAR, ANY_VAR)`` for a var whose
    name is computed. An env var whose name is computed is not found (it could be any)."""
    if "var" not in code:
        return frozenset()
    found: set[tuple[str, str]] = set()
    for tag in _TAG.finditer(code):
        text = tag.group(0)
        found.update((VAR, m.group(2) if m.group(1) else ANY_VAR) for m in _VAR.finditer(text))
        found.update((ENV, m.group(2)) for m in _ENV.finditer(text))
    return frozenset(found)


def env_names_in(text: str) -> frozenset[str]:
    """The names of the env vars ``env_var('NAME')`` reads anywhere in ``text`` (YAML, a profile, a var's value)."""
    return frozenset(m.group(2) for m in _ENV.finditer(text)) if "env_var" in text else frozenset()


def env_digest(name: str, value: str | None) -> str:
    """A hash of an env var's value: what is kept instead of the value, which may be a secret."""
    if value is None:
        return "unset"
    return hashlib.sha256(f"{name}\0{value}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Values:
    """The vars and env vars as dbt would resolve them now, for the project's nodes."""

    root: str
    project_vars: Mapping[str, Any] = field(default_factory=dict)
    package_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cli_vars: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    _digests: dict[Read, str] = field(default_factory=dict, compare=False, repr=False)  # many nodes share a read

    @classmethod
    def of(cls, dbt: DbtProject, cli_vars: Mapping[str, Any] | None = None,
           environ: Mapping[str, str] | None = None) -> Values:
        """The project's vars (and its packages'), ``--vars`` and the environment (this process's by default)."""
        return cls(dbt.name, dbt.vars, dbt.package_vars, cli_vars or {}, os.environ if environ is None else environ)

    def _layers(self, package: str) -> list[Mapping[str, Any]]:
        """Where dbt looks up a var for a node of ``package``, first found wins (dbt's ModelConfiguredVar)."""
        layers: list[Mapping[str, Any]] = [self.cli_vars, _scoped(self.project_vars, package), self.project_vars]
        if package != self.root:
            own = self.package_vars.get(package, {})
            layers += [_scoped(own, package), own]
        return layers

    def var(self, package: str, name: str) -> Any:
        """The value of var ``name`` for a node of ``package``; a marker when no layer defines it (the call's
        default applies, and that is in the code)."""
        for layer in self._layers(package):
            if name in layer:
                return layer[name]
        return _UNSET

    def digest(self, read: Read) -> str:
        """A short hash of what ``read`` resolves to now (for a var: with the env vars its value renders)."""
        if read not in self._digests:
            self._digests[read] = self._digest(read)
        return self._digests[read]

    def _digest(self, read: Read) -> str:
        kind, name, package = read
        if kind == ENV:
            value: Any = env_digest(name, self.environ.get(name))
        else:
            if name == ANY_VAR:
                value = {}
                for layer in reversed(self._layers(package)):
                    value.update(layer)
            else:
                value = self.var(package, name)
            text = json.dumps(value, sort_keys=True, default=str)
            # dbt renders a var's string value: `min: "{{ env_var('MIN') }}"` reads MIN
            value = [text, sorted((n, env_digest(n, self.environ.get(n))) for n in env_names_in(text))]
        return hashlib.sha256(json.dumps([kind, name, value]).encode()).hexdigest()[:_DIGEST]


def _scoped(variables: Mapping[str, Any], package: str) -> Mapping[str, Any]:
    scoped = variables.get(package)
    return scoped if isinstance(scoped, dict) else {}


def versioned(base: str, reads: Sequence[Read], values: Values | None) -> str:
    """A node's code version: its manifest version ``base`` with the values it reads folded in.

    The digests of those values follow the version, in the order of ``reads``, so that
    :func:`changed_reads` can tell which changed; the value itself is in none of it.
    """
    if not reads or values is None:
        return base
    digests = "".join(values.digest(read) for read in reads)
    return f"{hashlib.sha256((base + digests).encode()).hexdigest()[:16]}+{base[:8]}{digests}"


def changed_reads(old: str, new: str, reads: Sequence[Read]) -> list[Read] | None:
    """The reads whose values differ between code versions ``old`` and ``new`` of a node that reads ``reads``
    now; None when its code itself changed too (or ``old`` predates the values in versions)."""
    old_base, old_digests = _split(old)
    new_base, new_digests = _split(new)
    count = len(reads)
    if (old_base is None or old_base != new_base or len(old_digests) != count * _DIGEST
            or len(new_digests) != count * _DIGEST):
        return None
    return [read for i, read in enumerate(reads)
            if old_digests[i * _DIGEST:(i + 1) * _DIGEST] != new_digests[i * _DIGEST:(i + 1) * _DIGEST]]


def _split(version: str) -> tuple[str | None, str]:
    _, plus, rest = version.partition("+")
    return (rest[:8], rest[8:]) if plus else (None, "")


def describe(reads: Iterable[Read]) -> str:
    """``var('min_subtotal') and env_var('MIN_SUBTOTAL') changed`` (names only: values may be secrets)."""
    names = sorted({_label(read) for read in reads})
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{listed} changed"


def _label(read: Read) -> str:
    kind, name, _ = read
    if kind == ENV:
        return f"env_var('{name}')"
    return "the vars (it reads one by a computed name)" if name == ANY_VAR else f"var('{name}')"
