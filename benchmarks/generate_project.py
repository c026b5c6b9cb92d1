"""Generate a synthetic dbt project on DuckDB, sized for benchmarking dbtassets.

The project mirrors a real one: CSV-backed sources read through dbt-duckdb's
``external_location``, a staging layer, several layers of models joining each other,
seeds, snapshots, a project macro and ``not_null`` data tests. Output is deterministic
for a given seed.

Usage::

    python benchmarks/generate_project.py OUT_DIR --models N [--sources S] [--seeds K]
        [--snapshots J] [--layers L] [--seed R] [--policies] [--realistic [--unread-sources U]
        [--macros M]] [--parse]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from realistic import Counts, decorate

PROJECT_NAME = "synth"
EPHEMERAL_SHARE = 0.02
REF_COUNT_WEIGHTS = {1: 0.3, 2: 0.45, 3: 0.25}
BELOW_SHARE = 0.75
ALIASES = "abc"

DBT_PROJECT_YML = f"""\
name: {PROJECT_NAME}
version: "1.0.0"
config-version: 2
profile: {PROJECT_NAME}

model-paths: ["models"]
seed-paths: ["seeds"]
snapshot-paths: ["snapshots"]
macro-paths: ["macros"]

clean-targets: ["target", "dbt_packages"]

models:
  {PROJECT_NAME}:
    +materialized: table
"""

PROFILES_YML = f"""\
{PROJECT_NAME}:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: {PROJECT_NAME}.duckdb
      threads: 4
"""

SOURCES_HEADER = """\
version: 2

sources:
  - name: raw
    meta:
      external_location: "read_csv('data/raw/{name}/*.csv', header = true)"
    tables:
"""

# With --policies: dbt's own freshness configs on every model and every source (dbtassets acts on them).
POLICIES_YML = f"""\
    +freshness:
      build_after: {{count: 1, period: hour}}

sources:
  {PROJECT_NAME}:
    +freshness:
      warn_after: {{count: 12, period: hour}}
      error_after: {{count: 1, period: day}}
"""

DOUBLE_MACRO = "{% macro double(x) %}({{ x }} * 2){% endmacro %}\n"


@dataclass
class Model:
    """One generated model and the choices that shape its SQL."""

    name: str
    layer: int
    ordinal: int
    materialized: str = "table"
    source: str | None = None
    refs: list[str] = field(default_factory=list)
    seed: str | None = None

    @property
    def tagged(self) -> bool:
        """Every 10th model carries the ``hourly`` tag."""
        return self.ordinal % 10 == 0

    @property
    def tested(self) -> bool:
        """Every 5th model gets a ``not_null`` test on ``id``."""
        return self.ordinal % 5 == 0

    @property
    def uses_macro(self) -> bool:
        """Every 20th model (5%) doubles its value with the project macro."""
        return self.ordinal % 20 == 7

    def sql(self) -> str:
        """Render the model's SQL file."""
        config = []
        if self.materialized != "table":
            config.append(f"materialized='{self.materialized}'")
        if self.tagged:
            config.append("tags=['hourly']")
        lines = [f"{{{{ config({', '.join(config)}) }}}}"] if config else []

        if self.source:
            inputs = [f"{{{{ source('raw', '{self.source}') }}}}"]
        else:
            inputs = [f"{{{{ ref('{ref}') }}}}" for ref in self.refs]
        aliases = ALIASES[: len(inputs)]
        # A single input without a seed join reads like plain staging SQL, without aliases.
        qualified = len(inputs) > 1 or self.seed is not None
        prefix = "a." if qualified else ""
        value = " + ".join(f"{alias}.value" for alias in aliases) if qualified else "value"
        if self.uses_macro:
            value = f"{{{{ double('{value}') }}}}"
        columns = [f"{prefix}id", value if value == "value" else f"{value} as value", f"{prefix}loaded_at"]
        if self.seed:
            columns.append("s.label")
        lines.append(f"select {', '.join(columns)}")
        lines.append(f"from {inputs[0]} a" if qualified else f"from {inputs[0]}")
        lines.extend(
            f"join {inp} {alias} using (id)" for inp, alias in zip(inputs[1:], aliases[1:], strict=True)
        )
        if self.seed:
            lines.append(f"left join {{{{ ref('{self.seed}') }}}} s on s.id = a.id")
        return "\n".join(lines) + "\n"


def layer_sizes(models: int, sources: int, layers: int) -> list[int]:
    """Spread ``models`` over ``layers``; layer 0 gets at least one model per source.

    Upper layers are filled lowest first, so an empty layer is never below a non-empty one.
    """
    if layers == 1:
        return [models]
    first = min(models, max(math.ceil(models / layers), sources))
    base, extra = divmod(models - first, layers - 1)
    return [first] + [base + (1 if i < extra else 0) for i in range(layers - 1)]


def plan_models(
    rng: random.Random, sizes: list[int], source_names: list[str], seed_names: list[str]
) -> list[list[Model]]:
    """Decide every model's inputs and materialization, layer by layer."""
    by_layer: list[list[Model]] = []
    ordinal = 0
    for layer, size in enumerate(sizes):
        models = []
        for index in range(size):
            ordinal += 1
            model = Model(f"m_{layer}_{index:04d}", layer, ordinal)
            if ordinal % 25 == 0:
                model.materialized = "view"
            models.append(model)
        by_layer.append(models)

    for index, model in enumerate(by_layer[0]):
        model.source = source_names[index % len(source_names)]

    # Only models with a non-empty layer above can be ephemeral, so each one gets referenced.
    eligible = [m for layer in by_layer[1:-1] for m in layer if sizes[m.layer + 1]]
    non_staging = sum(sizes[1:])
    for model in rng.sample(eligible, min(len(eligible), round(EPHEMERAL_SHARE * non_staging))):
        model.materialized = "ephemeral"

    pending: list[Model] = []  # ephemeral models nobody refs yet
    for layer in range(1, len(sizes)):
        below = by_layer[layer - 1]
        lower = [m for models in by_layer[:layer] for m in models]
        for model in by_layer[layer]:
            count = rng.choices(list(REF_COUNT_WEIGHTS), weights=list(REF_COUNT_WEIGHTS.values()))[0]
            refs = [pending.pop(0).name] if pending else []
            while len(refs) < min(count, len(lower)):
                pool = below if not refs or rng.random() < BELOW_SHARE else lower
                name = rng.choice(pool).name
                if name not in refs:
                    refs.append(name)
            model.refs = refs
        pending.extend(m for m in by_layer[layer] if m.materialized == "ephemeral")

    joiners = [m for models in by_layer[:2] for m in models if m.ordinal % 10 == 5]
    if seed_names:
        for index, model in enumerate(joiners):
            model.seed = seed_names[index % len(seed_names)]
    return by_layer


def schema_yml(models: list[Model]) -> str:
    """Render a layer's ``schema.yml`` with ``not_null`` tests for every 5th model."""
    entries = [
        f"  - name: {model.name}\n    columns:\n      - name: id\n        data_tests: [not_null]\n"
        for model in models
        if model.tested
    ]
    return "version: 2\n\nmodels:\n" + "".join(entries) if entries else "version: 2\n\nmodels: []\n"


def snapshot_sql(name: str, model: Model) -> str:
    """Render a check-strategy snapshot of ``model``."""
    return (
        f"{{% snapshot {name} %}}\n"
        "{{ config(strategy='check', unique_key='id', check_cols=['value']) }}\n"
        f"select id, value, loaded_at from {{{{ ref('{model.name}') }}}}\n"
        "{% endsnapshot %}\n"
    )


def prepare_out_dir(out_dir: Path) -> None:
    """Empty ``out_dir``, refusing to delete anything that is not a previous synthetic project."""
    if out_dir.exists() and any(out_dir.iterdir()):
        project_file = out_dir / "dbt_project.yml"
        if not project_file.is_file() or f"name: {PROJECT_NAME}\n" not in project_file.read_text():
            raise FileExistsError(f"{out_dir} is not empty and is not a generated '{PROJECT_NAME}' project")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def generate(
    out_dir: Path, models: int, sources: int, seeds: int, snapshots: int, layers: int = 6, seed: int = 0,
    policies: bool = False, realistic: bool = False, unread_sources: int | None = None, macros: int | None = None,
) -> Path:
    """Generate the project into ``out_dir`` (replacing a previous one) and return its path.

    With ``policies``, every model gets ``freshness.build_after: {count: 1, period: hour}`` and every
    source ``warn_after``/``error_after`` (in dbt_project.yml). With ``realistic``, the project also gets
    what real manifests carry (``realistic.py``): local packages of macros (``unread_sources`` and
    ``macros`` override their default counts), docs blocks, documented columns, groups with access, model
    versions, exposures, semantic models and metrics on a time spine, and sources no model reads.
    """
    if models < 1 or layers < 1 or sources < 1 or seeds < 0 or snapshots < 0:
        raise ValueError("need models, layers, sources >= 1 and seeds, snapshots >= 0")
    if sources > models:
        raise ValueError(f"{sources} sources need at least as many models to stage them")
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    prepare_out_dir(out_dir)

    write(out_dir / "dbt_project.yml", DBT_PROJECT_YML + (POLICIES_YML if policies else ""))
    write(out_dir / "profiles.yml", PROFILES_YML)
    write(out_dir / "macros" / "double.sql", DOUBLE_MACRO)

    source_names = [f"src_{i:04d}" for i in range(sources)]
    write(
        out_dir / "models" / "sources.yml",
        SOURCES_HEADER + "".join(f"      - name: {name}\n" for name in source_names),
    )
    for name in source_names:
        rows = [f"{i},{rng.randint(1, 100)},2024-01-0{i} 0{i}:00:00" for i in range(1, 4)]
        csv = "\n".join(["id,value,loaded_at", *rows]) + "\n"
        write(out_dir / "data" / "raw" / name / "batch_0001.csv", csv)

    seed_names = [f"seed_{k:04d}" for k in range(seeds)]
    for name in seed_names:
        rows = [f"{i},{name}_label_{i}" for i in range(1, 6)]
        write(out_dir / "seeds" / f"{name}.csv", "\n".join(["id,label", *rows]) + "\n")

    by_layer = plan_models(rng, layer_sizes(models, sources, layers), source_names, seed_names)
    for layer, layer_models in enumerate(by_layer):
        layer_dir = out_dir / "models" / f"layer_{layer}"
        for model in layer_models:
            write(layer_dir / f"{model.name}.sql", model.sql())
        write(layer_dir / "schema.yml", schema_yml(layer_models))

    snapshot_layer = by_layer[1] if len(by_layer) > 1 and by_layer[1] else by_layer[0]
    candidates = [m for m in snapshot_layer if m.materialized != "ephemeral"]
    snapshot_targets = set()
    for j in range(snapshots):
        name = f"snap_{j:04d}"
        target = rng.choice(candidates)
        snapshot_targets.add(target.name)
        write(out_dir / "snapshots" / f"{name}.sql", snapshot_sql(name, target))
    if realistic:
        counts = Counts.for_models(models, unread_sources=unread_sources, macros=macros)
        decorate(out_dir, by_layer, source_names, snapshot_targets, SOURCES_HEADER, write, seed, counts)
    return out_dir


def dbt_executable() -> str:
    """Prefer the ``dbt`` installed next to this interpreter, else the one on PATH."""
    local = Path(sys.executable).with_name("dbt")
    return str(local) if local.exists() else shutil.which("dbt") or "dbt"


def run_dbt(project_dir: Path, *args: str) -> None:
    """Run a dbt command in ``project_dir`` with the project's own ``profiles.yml``."""
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    subprocess.run(
        [dbt_executable(), *args, "--profiles-dir", str(project_dir)], cwd=project_dir, env=env, check=True
    )


def parse(project_dir: Path) -> Path:
    """Run ``dbt parse`` on the project and return the path of ``target/manifest.json``.

    A realistic project's local packages are installed first (``dbt deps``: offline for ``local:`` ones).
    """
    project_dir = Path(project_dir).resolve()
    if (project_dir / "packages.yml").is_file():
        run_dbt(project_dir, "deps")
    run_dbt(project_dir, "parse")
    return project_dir / "target" / "manifest.json"


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Generate a synthetic dbt project on DuckDB.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--models", type=int, required=True)
    parser.add_argument("--sources", type=int, help="default: max(2, models // 50)")
    parser.add_argument("--seeds", type=int, help="default: max(1, models // 200)")
    parser.add_argument("--snapshots", type=int, help="default: max(1, models // 500)")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--realistic", action="store_true",
                        help="add what real manifests carry: packages of macros, docs blocks, exposures, "
                             "semantic models and metrics, groups, versions, column descriptions, unread sources")
    parser.add_argument("--unread-sources", type=int,
                        help="with --realistic: sources declared but read by no model (default: max(1, N // 20))")
    parser.add_argument("--macros", type=int, help="with --realistic: package macros (default: 300 + N // 10)")
    parser.add_argument("--parse", action="store_true", help="run dbt parse and report its time")
    parser.add_argument("--policies", action="store_true",
                        help="give every model a build_after and every source warn_after/error_after")
    args = parser.parse_args(argv)

    n = args.models
    project = generate(
        args.out_dir,
        models=n,
        sources=args.sources if args.sources is not None else max(2, n // 50),
        seeds=args.seeds if args.seeds is not None else max(1, n // 200),
        snapshots=args.snapshots if args.snapshots is not None else max(1, n // 500),
        layers=args.layers,
        seed=args.seed,
        policies=args.policies,
        realistic=args.realistic,
        unread_sources=args.unread_sources,
        macros=args.macros,
    )
    print(f"generated {project}")
    if args.parse:
        start = time.perf_counter()
        manifest = parse(project)
        elapsed = time.perf_counter() - start
        size_mb = manifest.stat().st_size / 1_000_000
        print(f"dbt parse: {elapsed:.1f}s, manifest.json {size_mb:.1f} MB")


if __name__ == "__main__":
    main()
