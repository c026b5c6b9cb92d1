"""What ``generate_project.py --realistic`` adds: the sections a real project's manifest carries.

Shapes from dbt's documentation (dbt 1.11): local packages full of macros (``packages.yml`` with
``local:``, installed by ``dbt deps`` offline), ``{% docs %}`` blocks referenced from descriptions,
documented columns on every model and source, models written in dbt's style (import CTEs, a header
comment, a package macro here and there), groups with ``access``, model versions, exposures, a
time spine with semantic models and metrics (simple, ratio, derived), sources that no model reads
(declared for other teams, as real projects have), and a ``not_null`` test on every model's key and
a ``unique`` one on every other model's (1.5 tests a model, as in a real 302-model project).

It draws from its own random generator, so the models' graph is the same with and without it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGES = ("synth_utils", "synth_dates", "synth_audit")
COLUMNS = (("id", "col_id"), ("value", "col_value"), ("loaded_at", "col_loaded_at"))
TIME_SPINE = "metricflow_time_spine"
ALIASES = "abc"
EXPOSURE_TYPES = ("dashboard", "notebook", "analysis", "ml", "application")

TIME_SPINE_SQL = """\
{{ config(materialized='table') }}
select cast(range as date) as date_day
from range(date '2024-01-01', date '2026-01-01', interval 1 day)
"""

TIME_SPINE_YML = f"""\
version: 2

models:
  - name: {TIME_SPINE}
    description: "One row per day: the time spine MetricFlow joins metrics to."
    time_spine:
      standard_granularity_column: date_day
    columns:
      - name: date_day
        description: "The day."
        granularity: day
"""


@dataclass(frozen=True)
class Counts:
    """How many of each section to write, by default scaled from the number of models."""

    macros: int
    docs: int
    exposures: int
    semantic_models: int
    unread_sources: int
    versioned: int

    @classmethod
    def for_models(cls, models: int, unread_sources: int | None = None, macros: int | None = None) -> Counts:
        return cls(
            macros=macros if macros is not None else 300 + models // 10,
            docs=max(3, models // 10),
            exposures=max(1, models // 25),
            semantic_models=max(1, models // 100),
            unread_sources=unread_sources if unread_sources is not None else max(1, models // 20),
            versioned=max(1, models // 200),
        )


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def package_files(counts: Counts) -> dict[str, str]:
    """Each local package: a ``dbt_project.yml`` and its macros, as packages write them.

    Every third macro is dispatched (``adapter.dispatch`` with a ``default__`` implementation), as
    dbt_utils does; each file holds a handful of macros, and each package documents its macros.
    """
    files: dict[str, str] = {}
    per_package = -(-counts.macros // len(PACKAGES))
    made = 0
    for package in PACKAGES:
        base = f"packages/{package}"
        files[f"{base}/dbt_project.yml"] = (
            f'name: {package}\nversion: "1.0.0"\nconfig-version: 2\nrequire-dbt-version: [">=1.3.0", "<3.0.0"]\n'
            'macro-paths: ["macros"]\n'
        )
        docs = ["version: 2\n\nmacros:\n"]
        for start in range(0, per_package, 8):
            body = []
            for i in range(start, min(start + 8, per_package)):
                if made >= counts.macros:
                    break
                name = f"{package.removeprefix('synth_')}_{i:04d}"
                if i % 3 == 0:
                    body.append(
                        f"{{% macro {name}(column, n=1) -%}}\n"
                        f"  {{{{ return(adapter.dispatch('{name}', '{package}')(column, n)) }}}}\n"
                        "{%- endmacro %}\n\n"
                        f"{{% macro default__{name}(column, n=1) -%}}\n"
                        "  coalesce({{ column }}, 0) * {{ n }}\n{%- endmacro %}\n"
                    )
                    made += 2
                else:
                    body.append(
                        f"{{% macro {name}(column, n=1) -%}}\n"
                        "  {%- if n > 1 -%} ({{ column }} + {{ n }}) {%- else -%} {{ column }} {%- endif -%}\n"
                        "{%- endmacro %}\n"
                    )
                    made += 1
                docs.append(
                    f"  - name: {name}\n    description: {_quote(f'Adjusts a column ({package}, macro {i}).')}\n"
                    "    arguments:\n      - name: column\n        type: string\n"
                    "        description: \"The column's SQL.\"\n"
                    "      - name: n\n        type: integer\n        description: \"How much.\"\n"
                )
            if body:
                files[f"{base}/macros/group_{start // 8:03d}.sql"] = "\n".join(body)
        files[f"{base}/macros/macros.yml"] = "".join(docs)
    return files


def styled_sql(model: Any) -> str:
    """The model's SQL as dbt's style guide writes it: a header comment, import CTEs, a logical CTE and
    ``final``; the same inputs, columns and values as ``Model.sql()``, with a package macro on every
    fourth model (as models call dbt_utils)."""
    config = []
    if model.materialized != "table":
        config.append(f"materialized='{model.materialized}'")
    if model.tagged:
        config.append("tags=['hourly']")
    head = [f"{{{{ config({', '.join(config)}) }}}}", ""] if config else []
    head += [f"-- {model.name}: layer {model.layer}, one row per id.",
             "-- Inputs are imported first, joined in `joined`, and selected in `final`.", ""]
    if model.source:
        imports = [("a", f"{{{{ source('raw', '{model.source}') }}}}")]
    else:
        imports = [(ALIASES[i], f"{{{{ ref('{ref}') }}}}") for i, ref in enumerate(model.refs)]
    if model.seed:
        imports.append(("s", f"{{{{ ref('{model.seed}') }}}}"))
    inputs = [alias for alias, _ in imports if alias != "s"]
    value = " + ".join(f"{alias}.value" for alias in inputs)
    if model.uses_macro:
        value = f"{{{{ double('{value}') }}}}"
    if model.ordinal % 4 == 1:
        value = f"{{{{ synth_utils.utils_0000('{value}') }}}}"
    ctes = [f"{alias} as (\n\n    select * from {relation}\n\n)" for alias, relation in imports]
    columns = ["a.id", f"{value} as value", "a.loaded_at", *(["s.label"] if model.seed else [])]
    joins = [f"    join {alias} using (id)" for alias in inputs[1:]]
    if model.seed:
        joins.append("    left join s on s.id = a.id")
    ctes.append("joined as (\n\n    select\n" + ",\n".join(f"        {c}" for c in columns)
                + "\n    from a\n" + "".join(f"{j}\n" for j in joins) + "\n)")
    names = ["id", "value", "loaded_at", *(["label"] if model.seed else [])]
    ctes.append("final as (\n\n    select\n" + ",\n".join(f"        {c}" for c in names) + "\n    from joined\n\n)")
    return "\n".join(head) + "with\n\n" + ",\n\n".join(ctes) + "\n\nselect * from final\n"


def docs_blocks(count: int) -> str:
    """``{% docs %}`` blocks: one per column kind and ``count`` topic blocks models reference."""
    blocks = [
        "{% docs col_id %}\nThe row's key: unique and never null, joined on across layers.\n{% enddocs %}\n",
        "{% docs col_value %}\nThe measure, summed along the way from the sources.\n{% enddocs %}\n",
        "{% docs col_loaded_at %}\nWhen the source row was loaded (UTC).\n{% enddocs %}\n",
    ]
    for i in range(count):
        blocks.append(
            f"{{% docs topic_{i:04d} %}}\n## Topic {i}\n\nHow this part of the business is modelled: the grain "
            f"is one row per id, refreshed when its sources land. Owned by team {i % 7}.\n{{% enddocs %}}\n"
        )
    return "\n".join(blocks)


def columns_yml(indent: str, tests: Sequence[str] = (), extra: int = 0) -> str:
    """The three documented columns, with ``tests`` on ``id``, and ``extra`` described ones more.

    The extra columns are documented but not selected, as a wide table's YAML documents more of it
    than one model selects (dbt checks columns only under an enforced contract).
    """
    out = []
    for column, doc in COLUMNS:
        out.append(f"{indent}- name: {column}\n{indent}  description: '{{{{ doc(\"{doc}\") }}}}'\n")
        if column == "id" and tests:
            out.append(f"{indent}  data_tests: [{', '.join(tests)}]\n")
    for k in range(extra):
        out.append(f"{indent}- name: attribute_{k}\n{indent}  description: 'Attribute {k} of the row, as loaded.'\n")
    return "".join(out)


def decorate(
    out_dir: Path, by_layer: list[list[Any]], source_names: list[str], snapshot_targets: set[str],
    source_header: str, write: Callable[[Path, str], None], seed: int, counts: Counts,
) -> None:
    """Write the realistic sections into the generated project at ``out_dir``.

    ``by_layer`` holds the generator's models (``name``, ``layer``, ``ordinal``, ``materialized``,
    ``refs``, ``source``, ``seed``, ``tagged``, ``uses_macro``); it rewrites their SQL files, each layer's
    ``schema.yml`` and ``sources.yml``.
    """
    rng = random.Random(seed + 1)
    models = [m for layer in by_layer for m in layer]
    referenced = {ref for m in models for ref in m.refs} | snapshot_targets
    leaves = [m for m in models if m.name not in referenced and m.materialized != "ephemeral" and m.layer > 0]
    if not leaves:  # staging models only, or every model read by another or a snapshot: the last one, made public
        leaves = [m for m in models if m.materialized != "ephemeral"][-1:]
    exposed = leaves[: counts.exposures + counts.semantic_models + counts.versioned]
    public = {m.name for m in exposed}
    private = {m.name for m in leaves} - public
    versioned = {m.name for m in exposed[: counts.versioned]}
    semantic = exposed[-counts.semantic_models:]

    for name, text in package_files(counts).items():
        write(out_dir / name, text)
    write(out_dir / "packages.yml", "packages:\n" + "".join(f"  - local: packages/{p}\n" for p in PACKAGES))
    write(out_dir / "models" / "docs" / "overview.md", docs_blocks(counts.docs))

    layers_with_groups = sorted({m.layer for m in models if m.layer > 0}) or [0]
    groups = ["version: 2\n\ngroups:\n"]
    for layer in layers_with_groups:
        groups.append(f"  - name: layer_{layer}\n    owner:\n      name: Team {layer}\n"
                      f"      email: team{layer}@example.com\n")
    write(out_dir / "models" / "groups.yml", "".join(groups))

    for layer, layer_models in enumerate(by_layer):
        entries = []
        for model in layer_models:
            tests = ["not_null"] + (["unique"] if model.ordinal % 2 == 0 else [])  # 1.5 a model, as real ones
            topic = f"topic_{model.ordinal % counts.docs:04d}"
            entry = [f"  - name: {model.name}\n",
                     f"    description: '{{{{ doc(\"{topic}\") }}}}'\n"]
            if layer in layers_with_groups:
                access = "public" if model.name in public else ("private" if model.name in private else "protected")
                entry.append(f"    config:\n      group: layer_{layer}\n      access: {access}\n")
            sql = styled_sql(model)
            if model.name in versioned:
                entry.append("    latest_version: 2\n    versions:\n      - v: 1\n      - v: 2\n")
                (out_dir / "models" / f"layer_{layer}" / f"{model.name}.sql").unlink()
                write(out_dir / "models" / f"layer_{layer}" / f"{model.name}_v1.sql", sql)
                write(out_dir / "models" / f"layer_{layer}" / f"{model.name}_v2.sql", sql)
            else:
                write(out_dir / "models" / f"layer_{layer}" / f"{model.name}.sql", sql)
            entry.append("    columns:\n" + columns_yml("      ", tests, extra=2))
            entries.append("".join(entry))
        write(out_dir / "models" / f"layer_{layer}" / "schema.yml", "version: 2\n\nmodels:\n" + "".join(entries))

    tables = "".join(
        f"      - name: {name}\n        description: 'Raw table {name}, one file per batch.'\n"
        f"        columns:\n" + columns_yml("          ")
        for name in source_names
    )
    unread = [f"  - name: app_{k:03d}\n    description: 'An application database other teams read.'\n"
              "    schema: app\n    tables:\n" + "".join(
                  f"      - name: t_{k:03d}_{i:02d}\n        description: 'Declared, not read by this project.'\n"
                  "        columns:\n          - name: id\n            description: 'The key.'\n"
                  for i in range(min(20, counts.unread_sources - 20 * k)))
              for k in range(-(-counts.unread_sources // 20))]
    write(out_dir / "models" / "sources.yml",
          source_header.replace("  - name: raw\n", "  - name: raw\n    description: 'Files landed by the loaders.'\n")
          + tables + "".join(unread))

    exposures = ["version: 2\n\nexposures:\n"]
    for i in range(counts.exposures):
        target = exposed[i % len(exposed)].name
        extra = rng.choice(exposed).name
        depends = sorted({target, extra})
        exposures.append(
            f"  - name: dashboard_{i:04d}\n    label: Dashboard {i}\n    type: {rng.choice(EXPOSURE_TYPES)}\n"
            f"    maturity: {rng.choice(['high', 'medium', 'low'])}\n    url: https://bi.example.com/d/{i}\n"
            f"    description: 'Dashboard {i}, read every morning.'\n"
            "    depends_on:\n" + "".join(f"      - ref('{d}')\n" for d in depends)
            + f"    owner:\n      name: Analyst {i % 11}\n      email: analyst{i % 11}@example.com\n"
        )
    write(out_dir / "models" / "exposures.yml", "".join(exposures))

    write(out_dir / "models" / "marts" / f"{TIME_SPINE}.sql", TIME_SPINE_SQL)
    write(out_dir / "models" / "marts" / f"{TIME_SPINE}.yml", TIME_SPINE_YML)
    semantic_models, metrics = [], []
    for model in semantic:
        sm = f"sm_{model.name}"
        semantic_models.append(
            f"  - name: {sm}\n    description: 'The {model.name} facts.'\n    model: ref('{model.name}')\n"
            "    defaults:\n      agg_time_dimension: loaded_at\n"
            f"    entities:\n      - name: {sm}_row\n        type: primary\n        expr: id\n"
            "    dimensions:\n      - name: loaded_at\n        type: time\n        type_params:\n"
            "          time_granularity: day\n"
            f"    measures:\n      - name: {sm}_value\n        agg: sum\n        expr: value\n"
            f"      - name: {sm}_rows\n        agg: count\n        expr: id\n"
            f"      - name: {sm}_max\n        agg: max\n        expr: value\n"
        )
        metrics.append(
            f"  - name: {sm}_value_total\n    label: Value of {model.name}\n    type: simple\n"
            f"    type_params:\n      measure: {sm}_value\n"
            f"  - name: {sm}_row_count\n    label: Rows of {model.name}\n    type: simple\n"
            f"    type_params:\n      measure: {sm}_rows\n"
            f"  - name: {sm}_value_per_row\n    label: Value per row of {model.name}\n    type: ratio\n"
            f"    type_params:\n      numerator: {sm}_value_total\n      denominator: {sm}_row_count\n"
            f"  - name: {sm}_value_doubled\n    label: Twice the value of {model.name}\n    type: derived\n"
            f"    type_params:\n      expr: total * 2\n      metrics:\n        - name: {sm}_value_total\n"
            "          alias: total\n"
        )
    write(out_dir / "models" / "marts" / "semantic.yml",
          "version: 2\n\nsemantic_models:\n" + "".join(semantic_models) + "\nmetrics:\n" + "".join(metrics))
