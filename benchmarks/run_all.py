"""Run every benchmark whose figures the README and docs/ quote, and write those figures from this one run.

One command reproduces every published number::

    .venv/bin/python benchmarks/run_all.py

It records the environment (git revision and whether the tree had uncommitted changes, dbt-core
and dbt-duckdb versions, Python, core count, the load average before and after each step), runs
each step below as its own process, keeps each one's output and JSON under
``benchmarks/.work/run_all/<revision>-<time>/``, and then writes:

- ``docs/performance.md``: every table, each under the command that produced it, as the scripts
  printed them in this run;
- the block between ``<!-- run_all:begin -->`` and ``<!-- run_all:end -->`` in ``README.md``: the
  handful of headline figures, each taken from this run's JSON;
- the block between the same markers in ``docs/reliability.md``: the figures the fault tests print.

Steps (about 40 minutes on a quiet 2-core machine; the synthetic projects are generated and
parsed first if ``benchmarks/.work`` does not have them yet):

- ``status``: ``bench_status.py --models 5000 --repeat 5 --with-policies --postgres --realistic``
- ``edits``: ``bench_edits.py --repeat 5`` (skipped, and said so, while that script does not exist)
- ``policies``: ``bench_policies.py --models 5000 --repeat 21``
- ``query_status``: ``bench_query_status.py --repeat 5``
- ``watch``: ``bench_watch.py --landings 15``
- ``fingerprint``: ``bench_fingerprint.py --models 5000 --repeat 5``
- ``scale``: ``bench_scale.py --sizes 1000,5000,20000,5000:2000 --repeat 5 --snapshot --realistic``
- ``dagster``: ``bench_vs_dagster.py --models 5000 --repeat 5``
- ``ui``: ``bench_ui.py --models 5000 --repeat 9``
- ``watch_ui``: ``bench_watch_ui.py --repeat 5``
- ``openlineage``: ``bench_openlineage.py --repeat 7``
- ``faults``: the two fault tests whose figures docs/reliability.md quotes, with their prints.

The ``status`` and ``scale`` steps run on ``generate_project.py --realistic`` projects (packages of
macros, docs blocks, exposures, semantic models and metrics, groups, versions, unread sources), the
shape of a real manifest (benchmarks/README.md compares them). Every figure is printed with the load
average before and after the step that measured it, in both documents.

``--only STEP ...`` runs some steps and renders from the latest results of the others (with no earlier
run, only docs/performance.md is written: the README's figures need every step they quote);
``--render`` only renders, from the latest results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from provenance import package_version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / ".work" / "run_all"
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"
FAULT_TESTS = ("test_kill_9_at_random_points", "test_an_event_storm_of_2000_files")


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    argv: tuple[str, ...]
    about: str  # what it measures, in words: every figure comes from the script's own output

    @property
    def available(self) -> bool:
        """Whether its script exists (a step may name a benchmark that is not written yet)."""
        return self.name == "faults" or (HERE / self.argv[0]).is_file()

    def command(self) -> list[str]:
        if self.name == "faults":
            return [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_faults.py",
                    "-k", " or ".join(FAULT_TESTS)]
        return [sys.executable, str(HERE / self.argv[0]), *self.argv[1:], "--json", "{json}"]


STEPS = (
    Step("dagster", "Side by side: Dagster + dagster-dbt, dbt, dbtassets",
         ("bench_vs_dagster.py", "--models", "5000", "--repeat", "5"),
         "On the same 5,000-model project with 1% of its sources updated since a production state: a process "
         "that builds Dagster's asset graph with dagster-dbt (from a venv of its own), `dbt source freshness` "
         "and `dbt ls --select state:modified+ source_status:fresher+ --state PROD` (dbt's own way to list what "
         "to rebuild), `dbtassets status` and `dbtassets sync --dry-run`, paired and interleaved. Every process "
         "is new; page cache, bytecode caches, dbt's partial parse file and dbtassets' manifest extract are warm."),
    Step("status", "`status` at 5,000 models",
         ("bench_status.py", "--models", "5000", "--repeat", "5", "--with-policies", "--postgres", "--realistic"),
         "`dbtassets status` as a whole process on a generated 5,000-model project shaped like a real one "
         "(`generate_project.py --realistic`: packages of macros, docs blocks, exposures, semantic models and "
         "metrics, groups, versions, sources no model reads; every asset recorded as "
         "built by a fake runner, so all are fresh), next to a process that only runs `json.load` on the same "
         "manifest. *Warm*: dbtassets' compact manifest extract (`target/dbtassets-manifest.cache`) is present. "
         "*Cache deleted*: it is deleted before each run, so the manifest JSON is parsed, which is what the "
         "first command after every `dbt parse` pays. The OS page cache is warm in both. In the same "
         "interleaved rounds: `status` on `synth_5000_policies` (the same project with `build_after` on every "
         "model and `warn_after`/`error_after` on every source), and `status` with the state store on a "
         "private PostgreSQL 15 server on loopback (team mode; started as the tests start theirs, "
         "`tests/pg.py`), filled the same way. The store uses psycopg2: `import psycopg` (3) alone took about "
         "0.4 s here against 0.05 s."),
    Step("edits", "Edits answered", ("bench_edits.py", "--repeat", "5"),
         "`status` after a one-model edit, `lint`, `check --against` and a target switch on example_project, "
         "side by side with the dbt command each replaces or wraps (`bench_edits.py`)."),
    Step("policies", "Freshness policies inside `status`",
         ("bench_policies.py", "--models", "5000", "--repeat", "21"),
         "The policy steps timed in one process on `synth_5000_policies`, against the whole "
         "`Project.status` for scale: reading every freshness config, deciding when everything is fresh, "
         "and deciding after new data in every source (nearly every model stale, each one decided)."),
    Step("query_status", "`status` with a query source (example_project)",
         ("bench_query_status.py", "--repeat", "5"),
         "A copy of example_project whose `raw.orders` is observed by a watermark query (`every: 1h`), synced "
         "once with real dbt; then, as whole processes interleaved over the rounds: `status` when the last "
         "observation is younger than `every:` (reused, no `dbt show`), `status --observe` (one `dbt show`) "
         "and `status --no-observe`."),
    Step("watch", "Watch latency", ("bench_watch.py", "--landings", "15"),
         "`dbtassets watch` on a fresh copy of `example_project`: order batches land one at a time (atomic "
         "rename), and each is timed from the rename to `fact_sales` recorded as materialized; in the same run, "
         "`dbt build --select stg_orders+` as a subprocess, a watcher with the other runner, and the idle watcher."),
    Step("fingerprint", "Semantic versions: cost and effect",
         ("bench_fingerprint.py", "--models", "5000", "--repeat", "5"),
         "A real `dbt compile` of the 5,000-model project, every model's SQL fingerprinted in-process; then "
         "`dbtassets status --no-observe` on three state stores, interleaved: (b) checksum code versions, (a) "
         "semantic versions, (c) semantic versions with every model moved (each fingerprint looked up in the "
         "cache); then six edits, each alone, listed by `dbt ls --select state:modified+` and by "
         "`dbtassets plan --against`."),
    Step("ui", "The page at 5,000 models", ("bench_ui.py", "--models", "5000", "--repeat", "9"),
         "`dbtassets ui` over the 5,000-model synthetic project (state populated as `bench_status.py` does: every "
         "asset fresh), opened `--repeat` + 1 times in Debian's Chromium driven by Playwright, each in a new "
         "browser context; the time is the page's own `performance.now()` when the graph is first drawn, i.e. "
         "from navigation start to the graph drawn (the collapsed overview by folder at this size); then one "
         "folder is opened and timed."),
    Step("watch_ui", "`watch` with and without the page", ("bench_watch_ui.py", "--repeat", "5"),
         "`watch` as a whole process on copies of example_project, side by side and interleaved: a8a053b (the "
         "last commit without the page, exported with `git archive`), this tree, and this tree with "
         "`--ui 127.0.0.1:0`: start-up to the `watching` event, and a landing to `fact_sales` built; then the "
         "modules each imports (`python -X importtime`), naming any of the page's server."),
    Step("openlineage", "OpenLineage on a receiver that is down", ("bench_openlineage.py", "--repeat", "7"),
         "A build pass with OpenLineage off and on a receiver that is down (`--openlineage http://127.0.0.1:PORT` "
         "where nothing listens): on a copy of example_project, each round lands a new orders file and runs "
         "`dbtassets sync` as a whole process, the two interleaved in a rotating order; wall time, and the CPU "
         "time (user + system) of the process and its dbt child. The OpenLineage client is imported on the "
         "sender's thread while dbt builds, so its CPU shows in the CPU column, not in the wall time."),
    Step("faults", "Fault tests", ("pytest",), "The figures that the fault tests print."),
    Step("scale", "Scale", ("bench_scale.py", "--sizes", "1000,5000,20000,5000:2000", "--repeat", "5", "--snapshot",
                            "--realistic"),
         "`status`, `sync --dry-run` (after 1% of the sources got a new file) and a watcher as whole processes "
         "on synthetic projects of 1,000 to 20,000 models shaped like real ones (`--realistic`), with wall time, "
         "CPU time and peak RSS. Its `status` "
         "runs through a small intermediate process that measures the child's peak RSS, and imports the "
         "committed code (`--snapshot`); the `status` table above runs the venv's console script directly, so "
         "the two 5,000-model figures differ by that harness, not by the code."),
)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def environment() -> dict[str, Any]:
    return {
        "revision": git("rev-parse", "--short", "HEAD"),
        "uncommitted": bool(git("status", "--porcelain", "--untracked-files=no", "--", "dbtassets", "benchmarks",
                                 "tests")),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dbt-core": package_version("dbt-core"), "dbt-duckdb": package_version("dbt-duckdb"),
        "python": platform.python_version(),
        "cores": os.cpu_count(), "platform": platform.platform(), "load_start": os.getloadavg()[0],
    }


def run_step(step: Step, out: Path) -> dict[str, Any]:
    argv = [a.replace("{json}", str(out / f"{step.name}.json")) for a in step.command()]
    load = os.getloadavg()[0]
    started = time.monotonic()
    print(f"[run_all] {step.name}: {shlex.join(argv)}", flush=True)
    with (out / f"{step.name}.log").open("w") as log:
        done = subprocess.run(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    record = {"command": shlex.join(["python", *argv[1:]]).replace(str(REPO) + "/", "").replace(str(out), "OUT"),
              "exit_code": done.returncode, "minutes": (time.monotonic() - started) / 60, "load_before": load,
              "load_after": os.getloadavg()[0]}
    print(f"[run_all] {step.name}: exit {done.returncode} in {record['minutes']:.1f} min, load average "
          f"{record['load_before']:.1f} before, {record['load_after']:.1f} after", flush=True)
    return record


def latest(required: bool = True) -> Path | None:
    runs = sorted(p for p in RESULTS.iterdir() if p.is_dir() and (p / "run.json").exists()) if RESULTS.exists() else []
    if not runs and required:
        raise SystemExit("no earlier run under benchmarks/.work/run_all: run without --render first")
    return runs[-1] if runs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STEPS], help="run only these steps")
    parser.add_argument("--render", action="store_true", help="only write the docs, from the latest run")
    args = parser.parse_args()
    if args.render:
        run = latest()
        assert run is not None  # latest() exits when there is none
        render(run)
        return
    env = environment()
    out = RESULTS / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{env['revision']}"
    out.mkdir(parents=True)
    steps: dict[str, Any] = {}
    base = latest(required=False) if args.only else None
    if args.only and base is None:
        print("[run_all] no earlier run: the other steps' sections of docs/performance.md are kept as they are, "
              "and README.md is not written", flush=True)
    if base is not None:  # the other steps' results come from the latest full run, and say so
        previous = json.loads((base / "run.json").read_text())
        for name, record in previous["steps"].items():
            if name not in args.only:
                for suffix in (".json", ".log"):
                    if (base / f"{name}{suffix}").exists():
                        (out / f"{name}{suffix}").write_bytes((base / f"{name}{suffix}").read_bytes())
                steps[name] = {**record, "from_run": record.get("from_run", base.name)}
    for step in STEPS:
        if args.only and step.name not in args.only:
            continue
        if not step.available:
            print(f"[run_all] {step.name}: skipped, benchmarks/{step.argv[0]} does not exist", flush=True)
            continue
        steps[step.name] = run_step(step, out)
        (out / "run.json").write_text(json.dumps({"environment": env, "steps": steps}, indent=1))
    env["load_end"] = os.getloadavg()[0]
    (out / "run.json").write_text(json.dumps({"environment": env, "steps": steps}, indent=1))
    failed = [name for name, record in steps.items() if record["exit_code"] != 0]
    if failed:
        raise SystemExit(f"[run_all] steps failed: {', '.join(failed)}; see their logs in {out}; docs not written")
    render(out)


# -- rendering ------------------------------------------------------------------------------


def report_of(log: str, name: str) -> str:
    """The part of a benchmark's output that is its report (headings and tables), without file paths."""
    lines = log.splitlines()
    starts = {"watch": "Command: `"}.get(name, "## ")
    begin = next((i for i, line in enumerate(lines) if line.startswith(starts)), None)
    if begin is None:
        raise SystemExit(f"[run_all] no report found in the {name} log")
    kept = []
    for line in lines[begin:]:
        if line.startswith(("wrote ", "raw samples written", "scratch directory")):
            continue
        if line.startswith("## "):
            line = "#" + line  # one level down, under the section's own heading
        kept.append(line)
    return "\n".join(kept).strip()


def render(run: Path) -> None:
    meta = json.loads((run / "run.json").read_text())
    env, steps = meta["environment"], meta["steps"]
    summary = (f"revision `{env['revision']}`{' (with uncommitted changes)' if env['uncommitted'] else ''}, "
               f"dbt-core {env['dbt-core']}, dbt-duckdb {env['dbt-duckdb']}, Python {env['python']}, "
               f"{env['cores']} cores, started {env['started']}")
    parts = [
        "# Performance: the evidence",
        "",
        "Every figure on this page was written by one run of `benchmarks/run_all.py`, which runs each",
        "benchmark below and pastes what it printed, except in the sections that say otherwise. Rerun it",
        "to check any figure. The machine is shared and noisy: the load average before and after each",
        "step is given with it (compare figures within one table), and every timing is a median over",
        "interleaved rounds. Timed tests are not used.",
        "",
        f"This run: {summary}.",
    ]
    earlier = _sections((REPO / "docs" / "performance.md").read_text())
    page_order = ("status", "edits", "policies", "query_status", "watch", "watch_ui", "openlineage", "fingerprint",
                  "scale", "dagster", "ui")
    for name in page_order:
        step = next(s for s in STEPS if s.name == name)
        record = steps.get(name)
        if record is None:  # a run cut short: keep what the page had, and say that this run did not make it
            if step.title in earlier:
                parts += ["", f"## {step.title}", "", f"{_NOT_RUN} `python benchmarks/run_all.py --only {name}` "
                          "regenerates it.", "", earlier[step.title]]
            continue
        origin = f" (from the earlier run {record['from_run']})" if "from_run" in record else ""
        report = report_of((run / f"{step.name}.log").read_text(), step.name)
        parts += ["", f"## {step.title}", "", step.about, "",
                  f"`{record['command']}`: {record['minutes']:.1f} min, load {record['load_before']:.1f} before, "
                  f"{record['load_after']:.1f} after{origin}.", "", report]
        for heading, body in _subsections(earlier.get(step.title, "")).items():
            if f"### {heading}" not in report:  # added to the page by hand, from a script run_all does not run
                parts += ["", f"### {heading}", "", _BY_HAND, "", body]
    titles = {s.title for s in STEPS}
    for heading, body in earlier.items():
        if heading not in titles:
            parts += ["", f"## {heading}", "", _BY_HAND, "", body]
    (REPO / "docs" / "performance.md").write_text("\n".join(parts) + "\n")
    loads = [v for r in steps.values() for v in (r["load_before"], r["load_after"])]
    load = f"; load average {min(loads):.1f} to {max(loads):.1f} during the steps quoted" if loads else ""
    reused: dict[str, list[str]] = {}
    for name, record in steps.items():
        if "from_run" in record:
            reused.setdefault(record["from_run"], []).append(name)
    load += "".join(f"; {'the step' if len(names) == 1 else 'the steps'} {', '.join(sorted(names))} "
                    f"{'is' if len(names) == 1 else 'are'} from the earlier run {origin} (`--only` reran the others)"
                    for origin, names in sorted(reused.items()))
    written = ["docs/performance.md"]
    missing = sorted(README_STEPS - set(steps))
    if missing:
        print(f"[run_all] README.md not written: this run has no results for {', '.join(missing)}", flush=True)
    else:
        replace_block(REPO / "README.md", readme_block(run, summary + load))
        written.append("the figures in README.md")
    if "faults" in steps:
        replace_block(REPO / "docs" / "reliability.md", faults_block(run, summary))
        written.append("docs/reliability.md")
    print(f"[run_all] wrote {', '.join(written)} from {run}", flush=True)


_NOT_RUN = "*Not measured in this run of `benchmarks/run_all.py` (it was cut short): an earlier run's figures.*"


_BY_HAND = "*Not produced by `benchmarks/run_all.py`: kept from the page as it was, figures from the run named here.*"


def _subsections(section: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in section.split("\n### ")[1:]:
        heading, _, body = chunk.partition("\n")
        found[heading.strip()] = "\n".join(line for line in body.strip().splitlines()
                                           if not line.startswith(_BY_HAND[:30])).strip()
    return found


def _sections(page: str) -> dict[str, str]:
    """The page's ``## `` sections by heading, without a previous not-measured or kept-by-hand note (so that
    rendering twice does not repeat them)."""
    found: dict[str, str] = {}
    for chunk in page.split("\n## ")[1:]:
        heading, _, body = chunk.partition("\n")
        lines = [line for line in body.strip().splitlines()
                 if not line.startswith((_NOT_RUN.split(":")[0], _BY_HAND[:30]))]
        found[heading.strip()] = "\n".join(lines).strip()
    return found


def replace_block(path: Path, block: str) -> None:
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"[run_all] {path} has no {BEGIN} … {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{block}\n{END}{rest.split(END, 1)[1]}")


def _load(run: Path, name: str) -> Any:
    path = run / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


FLOOR_VARIANTS = (
    ("dbtassets status (warm cache)", "`status`"),
    ("dbtassets status --format json (warm cache)", "`status --format json`"),
    ("dbtassets status (fresh state: no store yet)", "`status` on a fresh state"),
    ("dbtassets status --format json (fresh state: no store yet)", "`status --format json` on a fresh state"),
)
README_STEPS = frozenset({"watch", "status", "query_status", "scale", "dagster"})  # the steps readme_block quotes


def readme_block(run: Path, summary: str) -> str:
    """The README's headline figures, each with the load average before and after the step it comes from."""
    steps = json.loads((run / "run.json").read_text())["steps"]
    rows: list[tuple[str, str, str]] = []

    def add(step: str, what: str, value: str) -> None:
        record = steps[step]
        rows.append((what, value, f"{record['load_before']:.1f} → {record['load_after']:.1f}"))

    watch = _load(run, "watch")
    if watch:
        latency = statistics.median(x["latency"] for x in watch["watch"]["landings"])
        add("watch", "file landed → `fact_sales` rebuilt and recorded, `watch` on example_project (median)",
            f"{latency:.2f} s")
        idle = watch["watch"]["idle"]
        add("watch", "idle watcher", f"{idle['cpu_percent']:.1f} % of one core, {idle['rss_mib']:.0f} MiB")
    status = _load(run, "status")
    if status:
        by_name = {r["variant"]: r["median"] for r in status["results"]}
        shaped = " shaped like a real one" if status["meta"].get("realistic") else ""
        warm = next(v for k, v in by_name.items() if k.startswith("dbtassets status (warm"))
        alone = by_name["json.load"]
        add("status", f"`dbtassets status`, 5,000 models{shaped} (json.load of the manifest alone: {alone:.2f} s)",
            f"{warm:.2f} s")
        for variant, label in FLOOR_VARIANTS:  # those bench_status.py times: the floor, in text and JSON
            if variant in by_name:
                add("status", f"{label} over a bare `json.load` of its manifest (the floor)",
                    f"{by_name[variant] / alone:.2f}x")
        policed = next((v for k, v in by_name.items() if k.startswith("dbtassets status (warm")
                        and k.endswith("policies on every model")), None)
        if policed is not None:
            add("status", "the same with freshness policies on every model and source", f"{policed:.2f} s")
        ratio = status["meta"].get("postgres_over_sqlite status (warm cache)")
        if ratio is not None:
            add("status", "the same with the state store on PostgreSQL (loopback), over SQLite", f"{ratio:.2f}x")
    query = _load(run, "query_status")
    if query:
        add("query_status", "`status` on example_project with a query source read within its `every:`",
            f"{query['status (last observation fresh)']['median']:.2f} s")
    scale = _load(run, "scale")
    if scale:
        for result in scale["results"]:
            if result["models"] == 20000:
                add("scale", f"`dbtassets status`, 20,000 models, {result['sources']:,} sources",
                    f"{result['summary']['status_s']:.2f} s")
    dagster = _load(run, "dagster")
    if dagster:
        medians = {v["name"]: statistics.median(v["samples"]) for v in dagster["variants"]}
        add("dagster", "a process building Dagster's asset graph of the 5,000 models (dagster-dbt)",
            f"{medians['dagster: asset graph']:.2f} s")
        ls = next(v for k, v in medians.items() if k.startswith("dbt ls"))
        add("dagster", "`dbt ls --select state:modified+ source_status:fresher+` on them", f"{ls:.2f} s")
        add("dagster", "`dbtassets status` on them, in the same interleaved rounds",
            f"{medians['dbtassets status']:.2f} s")
    lines = ["| measured | value | load average (before → after its step) |", "|---|---:|---:|",
             *(f"| {a} | {b} | {c} |" for a, b, c in rows), "",
             f"From one run of `benchmarks/run_all.py`: {summary}."]
    return "\n".join(lines)


def faults_block(run: Path, summary: str) -> str:
    log = (run / "faults.log").read_text()
    # pytest's progress dots share the line a print starts on: match anywhere in the line
    found = re.findall(r"(?:20 kills|storm): .*$", log, re.M)
    lines = [f"Figures printed by the fault tests in one run of `benchmarks/run_all.py` ({summary}); the kill -9 "
             "test runs once per state store backend (SQLite, then PostgreSQL):", ""]
    lines += [f"- `{line.strip()}`" for line in found]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
