"""``/metrics``: the Prometheus text format (version 0.0.4), written here and checked by prometheus-client's parser.

Written by hand so the page needs nothing beyond the runtime dependencies; ``tests/test_ui.py``
parses the output with ``prometheus_client.parser`` (a test dependency).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Family:
    """One metric: its name, type, help, and samples (labels → value)."""

    name: str
    kind: str  # gauge, counter, summary
    help: str
    samples: list[tuple[str, Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> Family:
        self.samples.append((self.name + suffix, labels, value))
        return self


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(families: Iterable[Family]) -> str:
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for name, labels, value in family.samples:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{inner}}} {float(value)!r}" if inner else f"{name} {float(value)!r}")
    return "\n".join(lines) + "\n"


def epoch(at: str) -> float:
    """An ISO time from the store (``2026-11-25T10:00:00Z`` or with an offset) as Unix seconds."""
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
