"""Where a benchmark's figures come from: package versions, shared by the scripts that record them."""

from __future__ import annotations

from importlib import metadata


def package_version(name: str) -> str:
    """The installed version of ``name``, or ``?`` when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"
