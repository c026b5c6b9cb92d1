"""Benchmark semantic code versions (SQL fingerprints) on a synthetic project, and count what edits rebuild.

Everything runs on a private copy of ``benchmarks/.work/synth_N`` (made with ``bench_status``'s
``ensure_project``) in a scratch directory, with its mtimes kept, so the shared project is never
written to. In one run:

1. **Compile.** Real ``dbt compile`` runs once on the copy (its wall time is reported). Its
   ``target/manifest.json`` then holds every node's compiled SQL, which the rest reuses, and a
   copy of it plays production in step 4.
2. **First run.** :func:`dbtassets.sql.fingerprint.fingerprint` of every model asset's compiled SQL,
   in-process, ``--repeat`` passes (pass 1 is the cold one; sqlglot's import is timed apart).
   Per-model times come from ``perf_counter_ns``; a fallback is a model sqlglot could not parse
   (its code version is then the file checksum). Ephemeral models are not assets: their SQL is
   fingerprinted inside the models that inline them.
3. **Cached: the cost to ``status``.** Two state stores are filled by ``bench_status.populate_state``
   (a fake sync, no dbt build): (b) with its ``SuccessRunner``, whose results carry no compiled
   SQL, so code versions are manifest checksums (what dbtassets recorded before semantic
   versions); (a) with the same runner returning each node's real compiled SQL, as ``dbt build``'s
   run_results do, so the sync fingerprints every model and snapshot and fills the fingerprint
   cache. (c) is a copy of (a) in which every recorded ``manifest_version`` is altered, so every
   model and snapshot looks moved since its build: ``status`` must then find each one's current
   fingerprint in the cache and compile nothing. This is checked in-process first (a runner that
   counts ``compile`` calls, and the log must not say "compiling"). Then ``dbtassets --project-dir P
   --state S status --no-observe`` runs as whole processes, (b), (a) and (c) interleaved in a
   rotating order over ``--repeat`` rounds after an untimed warm-up round (``bench_status``'s
   ``time_variants``). Target: median (a) / median (b) < 1.10.
4. **Side-by-side count.** A scripted series of edits, each applied alone and reverted after,
   on models picked deterministically from the generated project (the first, by name, of the
   plain ones: no config block, no macro, no seed join, with a downstream model). For each edit:
   ``dbt ls --resource-type model --select state:modified+ --state PROD`` (real dbt, run in the
   project with ``--profiles-dir .``) against the models ``dbtassets plan --against
   PROD/manifest.json --format json`` lists (which compiles the changed candidates with dbt).
   dbt's ephemeral models are counted apart: dbtassets has no ephemeral assets (they are inlined
   into the models that select from them). Snapshots are left out of both counts. The set
   dbtassets lists is checked against the set each edit should give by the rules of DESIGN.md (a
   model that reads a column new upstream is stale, and its rebuild counts as a change of any
   column to its own downstream models); the run exits 1 on a mismatch.

Usage::

    .venv/bin/python benchmarks/bench_fingerprint.py [--models 5000] [--repeat 5] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import bench_status
from bench_scale import code_revision
from bench_status import CACHE_NAME, SuccessRunner, Variant, ensure_project, populate_state, time_variants
from bench_watch import environment
from generate_project import dbt_executable

from dbtassets.building.runner import BuildResult
from dbtassets.engine import Options, Project
from dbtassets.model.graph import AssetGraph
from dbtassets.model.manifest import UniqueId, compiled_sql, load_manifest
from dbtassets.rules.staleness import Status

COPY_IGNORE = shutil.ignore_patterns(".dbtassets", "logs", "*.duckdb", "*.duckdb.wal", CACHE_NAME, "compiled", "run")
SCRUBBED_ENV = ("DBTASSETS_STATE", "DBT_PROJECT_DIR", "DBT_PROFILES_DIR", "DBT_TARGET")
STATUS_TARGET = 1.10
NEW_COLUMN = "id_bucket"  # the column the edits add: no generated model reads a column of that name
MODEL_NAME = re.compile(r"m_(\d+)_(\d+)")


class CompiledRunner(SuccessRunner):
    """``SuccessRunner`` whose results carry each node's compiled SQL, as dbt build's run_results do."""

    def __init__(self, sql: dict[UniqueId, str]) -> None:
        super().__init__()
        self.sql = sql

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = ()) -> BuildResult:
        result = super().build(selectors, extra_args)
        return replace(result, results=tuple(replace(r, compiled_code=self.sql.get(r.unique_id))
                                             for r in result.results))


class CountingRunner(SuccessRunner):
    """``SuccessRunner`` that records every ``compile`` it is asked for (and compiles nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.compiles: list[int] = []

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> dict[UniqueId, str]:
        self.compiles.append(len(selectors))
        return {}


@dataclass
class Edit:
    """One scripted edit: new contents for some files, and what dbtassets should then list."""

    name: str
    detail: str
    files: dict[Path, str]
    expected: set[UniqueId]
    expectation: str


@dataclass
class EditResult:
    name: str
    detail: str
    files: list[str]
    dbt_models: list[str]
    dbt_ephemeral: list[str]
    dbt_seconds: float
    dbtassets_models: list[str]
    dbtassets_other: list[str]
    dbtassets_seconds: float
    expected: list[str]
    expectation: str
    ok: bool
    reasons: dict[str, list[str]] = field(default_factory=dict)


# -- helpers -------------------------------------------------------------------------------


def run(argv: Sequence[str], cwd: Path, env: dict[str, str], what: str) -> tuple[float, str]:
    """Run a command; return its wall time and stdout. Exits, with the output's tail, if it fails."""
    start = time.perf_counter()
    completed = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {completed.returncode}: {shlex.join(argv)} (in {cwd})\n"
                         f"{completed.stdout[-3000:]}{completed.stderr[-3000:]}")
    return elapsed, completed.stdout


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def copy_project(source: Path, destination: Path) -> Path:
    """A copy with its mtimes (so the manifest stays current and dbt's partial parse stays valid)."""
    shutil.copytree(source, destination, ignore=COPY_IGNORE)
    return destination


def copy_state(source: Path, destination: Path) -> None:
    """A consistent copy of an SQLite state store (WAL included), through SQLite's backup API."""
    with sqlite3.connect(source) as src, sqlite3.connect(destination) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def query_one(path: Path, sql: str) -> Any:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


# -- 2. first run ----------------------------------------------------------------------------


def fingerprint_passes(graph: AssetGraph, sql: dict[UniqueId, str], adapter_type: str,
                       passes: int) -> dict[str, Any]:
    """Fingerprint every model asset's compiled SQL ``passes`` times; per-model times in seconds."""
    already = "sqlglot" in sys.modules
    start = time.perf_counter()
    from dbtassets.sql.fingerprint import dialect_of, fingerprint

    import_seconds = None if already else time.perf_counter() - start
    dialect = dialect_of(adapter_type)
    models = sorted(uid for uid, n in graph.assets.items() if n.resource_type == "model")
    missing = [uid for uid in models if uid not in sql]
    if missing:
        raise SystemExit(f"dbt compile left {len(missing)} models without compiled SQL, e.g. {missing[:3]}")
    totals: list[float] = []
    per_model: list[list[float]] = []
    fallbacks: dict[str, str] = {}
    for number in range(passes):
        times = []
        pass_start = time.perf_counter()
        for uid in models:
            node = graph.assets[uid]
            t0 = time.perf_counter_ns()
            found = fingerprint(sql[uid], dialect, node.config_version, node.code_version)
            times.append((time.perf_counter_ns() - t0) / 1e9)
            if not found.semantic:
                fallbacks[uid] = found.note
        totals.append(time.perf_counter() - pass_start)
        per_model.append(times)
        print(f"fingerprint pass {number + 1}/{passes}: {len(models)} models in {totals[-1]:.2f}s", flush=True)
    return {"models": len(models), "import_seconds": import_seconds, "totals": totals, "per_model": per_model,
            "fallbacks": fallbacks, "dialect": dialect}


# -- 3. status with cached fingerprints ------------------------------------------------------


def populate_with_sql(project_dir: Path, state: Path, sql: dict[UniqueId, str]) -> dict[str, Any]:
    """``populate_state`` with a runner whose results carry the compiled SQL."""
    # populate_state makes its own SuccessRunner: hand it one that also returns the compiled SQL.
    with mock.patch.object(bench_status, "SuccessRunner", lambda: CompiledRunner(sql)):
        return populate_state(project_dir, state)


def move_every_manifest_version(state: Path) -> int:
    """Alter every recorded manifest version, as if every model had moved since its build; rows changed."""
    db = sqlite3.connect(state)
    try:
        with db:
            cursor = db.execute("UPDATE materializations SET manifest_version = 'x' || manifest_version "
                                "WHERE manifest_version IS NOT NULL")
        return cursor.rowcount
    finally:
        db.close()


def check_in_process(project_dir: Path, state: Path, label: str) -> dict[str, Any]:
    """Run status in-process with a runner that counts compiles: nothing may be compiled, all fresh."""
    runner = CountingRunner()
    logs: list[str] = []
    with Project(Options(project_dir, state_path=state), runner=runner, log=logs.append) as project:
        runner.project = project
        graph = project.graph
        view = project.store.view()
        moved = sum(1 for uid, m in view.last_success.items() if uid in graph and graph.assets[uid].resource_type
                    != "seed" and m.manifest_version != graph.assets[uid].code_version)
        start = time.perf_counter()
        report = project.status(observe=False)
        seconds = time.perf_counter() - start
    counts = {s.value: 0 for s in Status}
    for status in report.statuses.values():
        counts[status.status.value] += 1
    compiling = [line for line in logs if "compil" in line]
    problems = []
    if runner.compiles or compiling:
        problems.append(f"compile called {runner.compiles}, log {compiling[:2]}")
    if counts[Status.FRESH.value] != len(report.statuses):
        problems.append(f"not all fresh: {counts}")
    if report.notes:
        problems.append(f"{len(report.notes)} notes, e.g. {next(iter(report.notes.values()))}")
    if problems:
        raise SystemExit(f"status on state ({label}) {state}: " + "; ".join(problems))
    return {"moved": moved, "compile_calls": len(runner.compiles), "statuses": counts, "seconds": seconds}


# -- 4. side by side ---------------------------------------------------------------------------


def layer_of(name: str) -> int | None:
    found = MODEL_NAME.fullmatch(name)
    return int(found.group(1)) if found else None


def is_plain(text: str) -> bool:
    return "config(" not in text and "double(" not in text and "left join" not in text


def add_column(text: str, column: str) -> str:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("select "))
    lines[i] += f", {column}"
    return "\n".join(lines) + "\n"


def prefix_of(text: str) -> str:
    select = next(line for line in text.splitlines() if line.startswith("select "))
    return "a." if "a.id" in select else ""


def reformat(text: str) -> str:
    """Same query: one column a line, upper-case keywords, other spacing."""
    out = []
    for line in text.splitlines():
        if line.startswith("select "):
            out.append("SELECT\n    " + ",\n    ".join(line[len("select "):].split(", ")))
        elif line.startswith("from "):
            out.append("FROM   " + line[len("from "):])
        elif line.startswith("join "):
            out.append("  JOIN " + line[len("join "):].replace(" using ", "  USING  "))
        else:
            out.append(line)
    return "\n".join(out) + "\n\n"


def comment(text: str) -> str:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("select "))
    lines.insert(i, "-- one row per id; reviewed for the quarterly audit")
    return "\n".join(lines) + "\n"


def change_expression(text: str) -> str:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("select "))
    columns = lines[i][len("select "):].split(", ")
    value = columns[1].removesuffix(" as value")
    columns[1] = f"({value}) * 10 as value"
    lines[i] = "select " + ", ".join(columns)
    return "\n".join(lines) + "\n"


def ref_alias(text: str, name: str) -> str | None:
    """The alias ``text`` gives ``ref('name')``: ``a``/``b``/``c``, ``""`` if none; None if no such ref."""
    found = re.search(r"\{\{ ref\('" + re.escape(name) + r"'\) \}\}(?: ([abc])\b)?", text)
    return None if found is None else found.group(1) or ""


def scripted_edits(project_dir: Path, graph: AssetGraph) -> list[Edit]:
    """The edits, on models picked deterministically: the first plain ones, by name, with a downstream model."""
    assets = graph.assets
    models = sorted((uid for uid, n in assets.items() if n.resource_type == "model"), key=lambda u: assets[u].name)
    text = {uid: (project_dir / assets[uid].path).read_text() for uid in models}

    def downstream_models(uid: UniqueId) -> set[UniqueId]:
        return {d for d in graph.descendants(uid) if assets[d].resource_type == "model"}

    def plain(layer: int) -> list[UniqueId]:
        return [uid for uid in models if layer_of(assets[uid].name) == layer and is_plain(text[uid])
                and any(assets[c].resource_type == "model" for c in graph.children(uid))]

    layers = {layer_of(assets[uid].name) for uid in models} - {None}
    middle = max(layer for layer in layers if layer is not None) // 2
    staging, mids = plain(0), plain(middle)
    if not staging or len(mids) < 4:
        raise SystemExit(f"the project has too few plain models for the edits (layer 0: {len(staging)}, "
                         f"layer {middle}: {len(mids)}); generate a bigger one")
    stg, commented, widened, changed = staging[0], mids[0], mids[1], mids[2]
    upstream, reader, alias = None, None, None
    for candidate in mids[3:]:
        for child in sorted(graph.children(candidate), key=lambda u: assets[u].name):
            found = ref_alias(text[child], assets[candidate].name) if child in text else None
            if found is not None and is_plain(text[child]):
                upstream, reader, alias = candidate, child, found
                break
        if upstream is not None:
            break
    if upstream is None or reader is None or alias is None:
        raise SystemExit(f"no plain layer-{middle} model has a plain child that refs it directly")
    macro = project_dir / "macros" / "double.sql"
    macro_text = macro.read_text()
    reformatted_macro = macro_text.replace("%}({{ x }} * 2){%", "%}\n    ( {{ x }}  *  2 )\n{%")
    if reformatted_macro == macro_text:
        raise SystemExit(f"{macro}: not the macro generate_project.py writes; update this benchmark")

    def path(uid: UniqueId) -> Path:
        return project_dir / assets[uid].path

    def name(uid: UniqueId) -> str:
        return assets[uid].name

    column = f"{prefix_of(text[widened])}id * 100 as {NEW_COLUMN}"
    read = f"{alias}.{NEW_COLUMN}" if alias else NEW_COLUMN
    return [
        Edit("reformat a staging model", f"{name(stg)}: one column a line, upper-case keywords",
             {path(stg): reformat(text[stg])}, set(), "nothing (same query)"),
        Edit("comment in a mid-layer model", f"{name(commented)}: a `--` comment line",
             {path(commented): comment(text[commented])}, set(), "nothing (same query)"),
        Edit("unused new column", f"{name(widened)}: `, {column}`, read by nothing",
             {path(widened): add_column(text[widened], column)}, {widened}, "that model only (non-breaking)"),
        Edit("changed expression", f"{name(changed)}: `value` multiplied by 10",
             {path(changed): change_expression(text[changed])}, {changed} | downstream_models(changed),
             "it and all its downstream models (breaking)"),
        Edit("new column read downstream",
             f"{name(upstream)}: `, {prefix_of(text[upstream])}id * 100 as {NEW_COLUMN}`; "
             f"{name(reader)} selects it (`, {read}`)",
             {path(upstream): add_column(text[upstream], f"{prefix_of(text[upstream])}id * 100 as {NEW_COLUMN}"),
              path(reader): add_column(text[reader], read)},
             {upstream, reader} | downstream_models(reader),
             "both, and all downstream of the reader: it reads the new column, so its rebuild may change any column"),
        Edit("reformat the `double` macro", "macros/double.sql: same expression, other spacing",
             {macro: reformatted_macro}, set(), "nothing (same compiled queries)"),
    ]


def dbt_modified(project_dir: Path, prod: Path, env: dict[str, str]) -> tuple[list[str], list[str], float]:
    """``dbt ls ... state:modified+``: (non-ephemeral model ids, ephemeral model ids, wall seconds)."""
    seconds, out = run([dbt_executable(), "--quiet", "ls", "--resource-type", "model", "--select",
                        "state:modified+", "--state", str(prod), "--profiles-dir", ".", "--output", "json"],
                       project_dir, env, "dbt ls")
    models: list[str] = []
    ephemeral: list[str] = []
    for line in out.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            (ephemeral if row["config"]["materialized"] == "ephemeral" else models).append(row["unique_id"])
    return sorted(models), sorted(ephemeral), seconds


def dbtassets_plan(cli: Path, project_dir: Path, state: Path, prod: Path,
                   env: dict[str, str]) -> tuple[list[dict[str, Any]], float]:
    seconds, out = run([str(cli), "--project-dir", ".", "--profiles-dir", ".", "--state", str(state), "plan",
                        "--against", str(prod / "manifest.json"), "--format", "json"],
                       project_dir, env, "dbtassets plan")
    assets: list[dict[str, Any]] = json.loads(out)["assets"]
    return assets, seconds


def side_by_side(cli: Path, project_dir: Path, scratch: Path, prod: Path, env: dict[str, str],
                 log: Callable[[str], None]) -> list[EditResult]:
    graph = AssetGraph.from_manifest(load_manifest(prod / "manifest.json"))
    results = []
    for number, edit in enumerate(scripted_edits(project_dir, graph)):
        originals = {p: p.read_text() for p in edit.files}
        try:
            for p, new in edit.files.items():
                p.write_text(new)
            dbt_models, dbt_ephemeral, dbt_seconds = dbt_modified(project_dir, prod, env)
            listed, plan_seconds = dbtassets_plan(cli, project_dir, scratch / f"plan-{number}.db", prod, env)
        finally:
            for p, old in originals.items():
                p.write_text(old)
        models = sorted(a["unique_id"] for a in listed if a["resource_type"] == "model")
        other = sorted(a["unique_id"] for a in listed if a["resource_type"] != "model")
        reasons = {a["unique_id"]: [r["message"] for r in a["reasons"]] for a in listed[:20]}
        result = EditResult(edit.name, edit.detail, [str(p.relative_to(project_dir)) for p in edit.files],
                            dbt_models, dbt_ephemeral, dbt_seconds, models, other, plan_seconds,
                            sorted(edit.expected), edit.expectation, set(models) == edit.expected, reasons)
        results.append(result)
        log(f"edit {number + 1}: {edit.name}: dbt state:modified+ {len(dbt_models)} models "
            f"(+{len(dbt_ephemeral)} ephemeral) in {dbt_seconds:.1f}s; dbtassets plan {len(models)} in "
            f"{plan_seconds:.1f}s; expected {len(edit.expected)}: {'ok' if result.ok else 'MISMATCH'}")
    return results


# -- report ------------------------------------------------------------------------------------


def first_run_table(compile_seconds: float, fp: dict[str, Any], populate: dict[str, dict[str, Any]]) -> str:
    first = fp["per_model"][0]
    pooled = [t for times in fp["per_model"] for t in times]
    ms = 1000.0
    rows = [
        ("`dbt compile`, whole project, once (to get the compiled SQL)", f"{compile_seconds:.1f} s"),
        ("models fingerprinted (ephemeral ones are inlined, not fingerprinted alone)", f"{fp['models']:,}"),
        ("sqlglot import (once per process)",
         f"{fp['import_seconds'] * ms:.0f} ms" if fp["import_seconds"] is not None else "already imported"),
        ("all models, pass 1 (cold process)", f"{fp['totals'][0]:.2f} s"),
        (f"all models, median of {len(fp['totals'])} passes", f"{statistics.median(fp['totals']):.2f} s"),
        ("per model, pass 1: median / p95 / max",
         f"{statistics.median(first) * ms:.2f} / {percentile(first, 0.95) * ms:.2f} / {max(first) * ms:.2f} ms"),
        (f"per model, all {len(fp['totals'])} passes: median / p95",
         f"{statistics.median(pooled) * ms:.2f} / {percentile(pooled, 0.95) * ms:.2f} ms"),
        ("fell back to the file checksum (sqlglot could not parse)", f"{len(fp['fallbacks'])}"),
        ("`populate_state` (fake sync of every asset, observe, status): (b) checksum versions / "
         "(a) fingerprinting the compiled SQL as the sync records it",
         f"{populate['b']['seconds']:.1f} s / {populate['a']['seconds']:.1f} s"),
    ]
    return "\n".join(["| first run (in-process) | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)])


def status_table(variants: list[Variant], base: float) -> str:
    lines = ["| `dbtassets status --no-observe`, whole process | median (s) | min (s) | ratio to (b) |",
             "|---|---:|---:|---:|"]
    for v in variants:
        median = statistics.median(v.samples)
        lines.append(f"| {v.name} | {median:.3f} | {min(v.samples):.3f} | {median / base:.3f} |")
    return "\n".join(lines)


def edits_table(results: list[EditResult]) -> str:
    lines = ["| edit | dbt `state:modified+` models | + ephemeral | dbtassets `plan` models | expected of dbtassets "
             "| check | dbt ls (s) | plan (s) |",
             "|---|---:|---:|---:|---|---|---:|---:|"]
    for r in results:
        check = "ok" if r.ok else (f"MISMATCH: extra {sorted(set(r.dbtassets_models) - set(r.expected))[:3]}, "
                                   f"missing {sorted(set(r.expected) - set(r.dbtassets_models))[:3]}")
        lines.append(f"| {r.name}: {r.detail} | {len(r.dbt_models):,} | {len(r.dbt_ephemeral)} | "
                     f"{len(r.dbtassets_models):,} | {len(r.expected):,}: {r.expectation} | {check} | "
                     f"{r.dbt_seconds:.1f} | {r.dbtassets_seconds:.1f} |")
    total_dbt = sum(len(r.dbt_models) for r in results)
    total_ours = sum(len(r.dbtassets_models) for r in results)
    lines.append(f"| **all {len(results)} edits** | **{total_dbt:,}** | {sum(len(r.dbt_ephemeral) for r in results)} "
                 f"| **{total_ours:,}** | {sum(len(r.expected) for r in results):,} | | "
                 f"{sum(r.dbt_seconds for r in results):.1f} | {sum(r.dbtassets_seconds for r in results):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", type=int, default=5000, help="project size N (default: 5000)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="fingerprint passes and timed status rounds (default: 5)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw samples to PATH as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (its path is printed)")
    args = parser.parse_args(argv)
    if args.models < 100 or args.repeat < 1:
        parser.error("--models must be at least 100 and --repeat at least 1")
    cli = Path(sys.executable).parent / "dbtassets"
    if not cli.is_file():
        raise SystemExit(f"{cli} not found: run this with the interpreter of the venv dbtassets is installed in")
    command = shlex.join(["python", "benchmarks/bench_fingerprint.py", *(sys.argv[1:] if argv is None else argv)])
    env_info = {**environment(), "sqlglot": metadata.version("sqlglot"), "revision": code_revision()}
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"

    shared = ensure_project(args.models, None, None, None)
    scratch = Path(tempfile.mkdtemp(prefix="bench-fingerprint-"))
    print(f"scratch directory: {scratch}", flush=True)
    project_dir = copy_project(shared, scratch / "project")
    manifest = project_dir / "target" / "manifest.json"

    # 1. compile once
    print(f"dbt compile of {project_dir} ...", flush=True)
    compile_seconds, _ = run([dbt_executable(), "compile", "--profiles-dir", "."], project_dir, env, "dbt compile")
    print(f"dbt compile took {compile_seconds:.1f}s", flush=True)
    prod = scratch / "prod"
    prod.mkdir()
    shutil.copy2(manifest, prod / "manifest.json")
    sql = compiled_sql(manifest)
    loaded = load_manifest(manifest)
    graph = AssetGraph.from_manifest(loaded)

    # 2. first run
    fp = fingerprint_passes(graph, sql, loaded.adapter_type, args.repeat)

    # 3. status with (a) cached semantic versions, (b) checksum versions, (c) everything moved
    states = {key: scratch / f"state-{key}.db" for key in "abc"}
    print("populating (b): fake build, no compiled SQL ...", flush=True)
    populate = {"b": populate_state(project_dir, states["b"])}
    print("populating (a): fake build with the compiled SQL (fingerprints every model) ...", flush=True)
    populate["a"] = populate_with_sql(project_dir, states["a"], sql)
    cache_rows = {"fingerprints": query_one(states["a"], "SELECT COUNT(*) FROM fingerprints"),
                  "semantic": query_one(states["a"], "SELECT COUNT(*) FROM fingerprints WHERE semantic = 1"),
                  "compiled_sql": query_one(states["a"], "SELECT COUNT(*) FROM compiled_sql")}
    if not cache_rows["fingerprints"] or query_one(states["b"], "SELECT COUNT(*) FROM fingerprints"):
        raise SystemExit(f"expected a fingerprint cache in (a) only: {cache_rows}")
    copy_state(states["a"], states["c"])
    moved_rows = move_every_manifest_version(states["c"])
    checks = {key: check_in_process(project_dir, states[key], key) for key in "bac"}
    print(f"in-process checks: {checks}", flush=True)

    def status(state: Path) -> list[str]:
        return [str(cli), "--project-dir", str(project_dir), "--state", str(state), "status", "--no-observe"]

    variants = [
        Variant("(b) checksum code versions (no compiled SQL recorded)", status(states["b"])),
        Variant("(a) semantic code versions, fingerprint cache filled, nothing moved", status(states["a"])),
        Variant(f"(c) semantic, every model moved: {checks['c']['moved']:,} cached fingerprints looked up",
                status(states["c"])),
    ]
    says = {}
    for v in variants:
        _, out = run(v.argv, project_dir, env, v.name)
        says[v.name] = (out.strip().splitlines() or ["(no output)"])[-1]
    if len(set(says.values())) != 1:
        raise SystemExit(f"the three states do not give the same status: {says}")
    time_variants(variants, args.repeat, manifest.with_name(CACHE_NAME), env)
    base = statistics.median(variants[0].samples)
    ratio = statistics.median(variants[1].samples) / base

    # 4. side by side (edits the project: after step 3, which needs it unchanged)
    edits = side_by_side(cli, project_dir, scratch, prod, env, lambda line: print(line, flush=True))

    env_info["load_at_end"] = Path("/proc/loadavg").read_text().split(" ", 1)[0]
    kinds = populate["b"]["asset_kinds"]
    print()
    print(f"## Fingerprints, N = {args.models} models\n")
    print(f"Command: `{command}`\n")
    print("Environment: " + ", ".join(f"{k} {v}" for k, v in env_info.items()) + "\n")
    print(f"- project: copy of {shared} ({kinds['model']:,} model assets + {populate['b']['ephemeral_models']} "
          f"ephemeral, {kinds['snapshot']} snapshots, {kinds['seed']} seeds, {kinds['source']} sources); "
          f"compiled manifest {manifest.stat().st_size / 1e6:.0f} MB")
    print(f"- fingerprint cache of (a): {cache_rows['fingerprints']:,} fingerprints ({cache_rows['semantic']:,} "
          f"semantic), {cache_rows['compiled_sql']:,} distinct normalized queries; (c): {moved_rows:,} "
          f"materializations' manifest_version altered, {checks['c']['moved']:,} assets moved; in-process, "
          f"status compiled nothing in (a), (b) or (c) and found every asset fresh")
    print(f"- status says, for all three: {says[variants[0].name]}")
    print(f"- {args.repeat} interleaved rounds after one warm-up round; wall clock per whole process")
    print()
    print(first_run_table(compile_seconds, fp, populate))
    print()
    print(status_table(variants, base))
    print()
    verdict = "met" if ratio < STATUS_TARGET else "MISSED"
    print(f"Target: cached fingerprinting adds under {STATUS_TARGET - 1:.0%} to `dbtassets status`: "
          f"(a)/(b) = {ratio:.3f}, {verdict}. (c)/(b) = {statistics.median(variants[2].samples) / base:.3f}.")
    print()
    print(edits_table(edits))
    print()
    print("dbt: `dbt ls --resource-type model --select state:modified+ --state PROD`, ephemeral models counted "
          "apart; dbtassets: the models `dbtassets plan --against PROD/manifest.json` lists (it has no ephemeral "
          "assets). Snapshots are left out of both. Each edit is applied alone and reverted.")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "command": command, "environment": env_info, "arguments": {k: str(v) for k, v in vars(args).items()},
            "project": str(shared), "compile_seconds": compile_seconds, "fingerprint": fp, "populate": populate,
            "fingerprint_cache": cache_rows, "moved_rows": moved_rows, "in_process_checks": checks,
            "status_says": says, "status": [asdict(v) for v in variants], "status_ratio_a_b": ratio,
            "edits": [asdict(r) for r in edits],
        }, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    if args.keep:
        print(f"scratch directory kept: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    mismatches = [r.name for r in edits if not r.ok]
    if mismatches:
        raise SystemExit(f"bench_fingerprint: dbtassets did not list what these edits should give: {mismatches}")


if __name__ == "__main__":
    main()
