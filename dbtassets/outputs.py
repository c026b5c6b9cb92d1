"""What ``--format`` can ask for: one enum, below every renderer, so the watch log and the reports share it."""

from __future__ import annotations

from enum import Enum


class OutputFormat(str, Enum):
    """What ``--format`` can ask for (each command accepts some of them)."""

    TEXT = "text"
    JSON = "json"
    GITHUB = "github"  # GitHub Actions workflow commands (annotations)
    TREE = "tree"
    MERMAID = "mermaid"
    DOT = "dot"

    def __str__(self) -> str:
        return self.value
