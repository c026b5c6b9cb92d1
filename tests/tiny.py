"""Small real dbt projects written by a test: a seed, a few models, DuckDB in the project directory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

PROJECT = """name: tiny
version: "1.0.0"
config-version: 2
profile: tiny
"""
PROFILES = """tiny:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: tiny.duckdb
      threads: 1
"""


def write_project(directory: Path, files: Mapping[str, str]) -> Path:
    """A dbt project in ``directory`` with ``files`` (path → text) besides dbt_project.yml and profiles.yml."""
    directory.mkdir(parents=True, exist_ok=True)
    write(directory, {"dbt_project.yml": PROJECT, "profiles.yml": PROFILES, **files})
    return directory


def write(directory: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def dbt(directory: Path, *args: str) -> None:
    """Run dbt itself in the project, as a user would between dbtassets commands."""
    subprocess.run([sys.executable, "-m", "dbt.cli.main", *args, "--profiles-dir", str(directory),
                    "--project-dir", str(directory)], cwd=directory, check=True, capture_output=True)


def rows(directory: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the warehouse (and let go of it at once: DuckDB allows one writer process)."""
    with duckdb.connect(str(directory / "tiny.duckdb"), read_only=True) as db:
        return db.execute(sql).fetchall()
