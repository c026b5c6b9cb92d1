"""Mutation testing of dbtassets' core against its fast tests, with mutmut.

It mutates ``staleness.py``, ``selection.py``, ``fingerprint.py``, ``versions.py`` and the
watcher's planning code (``backoff.py``, its retries, and the ``Watcher`` methods named in
``WATCH_PLANNING``), runs the fast
tests (``-m "not slow"``) against every mutant, and prints the score of each module and every
surviving mutant with its diff. A survivor is a change of the code that no fast test notices:
kill it with a test that states the rule it breaks, or say why it changes no behaviour.

Why mutmut rather than cosmic-ray (both maintained): mutmut 3 writes every mutant of a function
into one copy of the code behind a trampoline, runs the suite once to learn which tests reach
which function, then forks each mutant from a process that has already imported pytest, dbt and
sqlglot and runs only those tests. cosmic-ray rewrites the module on disk and starts the test
command afresh for each mutant: with dbt's imports and pytest's start-up that is 3-5 s per
mutant before any test runs, over an hour for this code on 2 cores; mutmut takes minutes.

Everything happens under ``benchmarks/.work/mutation/``: a venv of its own (mutmut and the
project with its test dependencies, from PyPI; dbtassets is reinstalled there on every run), a
copy of the repository with mutmut's configuration, and a copy of example_project parsed once
(``DBTASSETS_TEST_PARSED_EXAMPLE``), so that the many short pytest sessions do not each run
``dbt parse``; another project a test parses (``dbt_parse`` in tests/conftest.py) is parsed once
per run too (``DBTASSETS_TEST_PARSE_CACHE``). mutmut puts its mutated copy first on the path of
the tests; a child process (``python -m dbtassets``) runs the installed, unmutated code
(mutmut's trampolines only work inside its own process), so it cannot notice a mutant. The run
sets ``DBTASSETS_MUTATION_RUN=1``, and tests/conftest.py then leaves out the tests that call
``run_cli`` themselves and skips one where a helper would start such a child (after its
in-process part, which counts), runs the state-store tests on SQLite
only (no store is mutated; a PostgreSQL server per mutant is seconds), and draws a tenth of the
hypothesis examples, derandomized so that every mutant meets the same ones: the seconds go to
the tests that can fail.

Usage::

    python3 benchmarks/mutation.py [--jobs 2] [--modules staleness selection] [--json out.json] [--markdown]

Exit status: 0 when it ran (whatever the score), 1 when the clean fast tests fail.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work" / "mutation"
MUTMUT = "mutmut==3.8.1"
# each mutated module by its short name, with where it lives in the package
MODULES = {"staleness": "rules.staleness", "selection": "model.selection", "fingerprint": "sql.fingerprint",
           "versions": "sql.versions", "watch": "watch.watcher", "backoff": "watch.backoff"}
# The watcher's planning: what a pass builds, holds and retries (backoff.py, all of it, and these
# Watcher methods). The rest of watch.py is threads, inotify and the loop's timing, which the slow
# end-to-end tests cover.
WATCH_PLANNING = ("_buildable", "_hold_for_open_files", "_after_build")
KILLED = {"killed", "timeout", "caught by type check"}
_IGNORE = shutil.ignore_patterns("target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal", "__pycache__")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--json", type=Path, help="write every mutant's status and the survivors' diffs here")
    parser.add_argument("--markdown", action="store_true", help="print the score table as Markdown")
    parser.add_argument("--docs", action="store_true",
                        help="write the score table and the survivors into docs/mutation.md (between its markers)")
    parser.add_argument("--modules", nargs="+", choices=MODULES, default=list(MODULES), metavar="MODULE",
                        help=f"mutate only these (default: all of {', '.join(MODULES)})")
    parser.add_argument("--report-only", action="store_true",
                        help="report the results of the last run (benchmarks/.work/mutation/tree) without running")
    args = parser.parse_args()
    if args.docs and set(args.modules) != set(MODULES):
        parser.error("--docs publishes the score of every module: run it without --modules")

    started = time.monotonic()
    if args.report_only:  # while a run goes on, too: mutmut saves each result as it comes
        return finish(WORK / "venv" / "bin" / "python", WORK / "tree", None, args)
    python = venv()
    tree = copy_tree(args.modules)
    parsed = parse_example(python)
    env = {**os.environ, "DBTASSETS_TEST_PARSED_EXAMPLE": str(parsed), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env["DBTASSETS_MUTATION_RUN"] = "1"  # tests/conftest.py: no child processes, fewer hypothesis examples
    env["DBTASSETS_TEST_PARSE_CACHE"] = str(parsed.parent)  # other projects a test parses: once per run
    env.pop("CI", None)  # the fault tests' CI rules concern the slow tests, which do not run here
    patterns = [f"dbtassets.{MODULES[m]}.*" for m in args.modules if m != "watch"]
    if "watch" in args.modules:
        patterns += [f"dbtassets.watch.watcher.x\u01c1Watcher\u01c1{name}__mutmut_*" for name in WATCH_PLANNING]
    log = WORK / "mutmut.log"
    print(f"mutmut: {len(patterns)} patterns, {args.jobs} jobs; log in {log}", flush=True)
    with log.open("w") as out:
        run = subprocess.run([str(python.parent / "mutmut"), "run", "--max-children", str(args.jobs), *patterns],
                             cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    tail = log.read_text(errors="replace")[-3000:]
    if run.returncode != 0 or "Failed to run clean test" in tail:
        print(tail, file=sys.stderr)
        return 1
    return finish(python, tree, time.monotonic() - started, args)


def finish(python: Path, tree: Path, seconds: float | None, args: argparse.Namespace) -> int:
    statuses = collect(tree)
    # Diffs for the modules meant to have no survivor (`mutmut show NAME` gives any other's); names for the rest.
    survivors = {name: show(python, tree, name) if module_of(name) in ("staleness", "selection") else ""
                 for name, status in sorted(statuses.items()) if status not in KILLED and status != "not checked"}
    text = report(statuses, survivors, seconds, args.jobs, args.markdown or args.docs)
    print(text)
    if args.docs:
        write_docs(text)
    if args.json:
        args.json.write_text(json.dumps({"statuses": statuses, "survivors": survivors}, indent=1))
    return 0


def venv() -> Path:
    """The mutation venv's python: mutmut and dbtassets' dependencies, not dbtassets itself."""
    python = WORK / "venv" / "bin" / "python"
    stamp = WORK / "venv" / "installed"
    wanted = f"{MUTMUT}\n{(REPO / 'pyproject.toml').read_text()}"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        pip(python, "install", "-q", "--no-deps", "--force-reinstall", str(REPO))  # this revision's dbtassets
        return python
    shutil.rmtree(WORK / "venv", ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    print("creating the mutation venv (mutmut and the test dependencies, from PyPI)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(WORK / "venv")], check=True)
    pip(python, "install", "-q", MUTMUT, f"{REPO}[test]")
    stamp.write_text(wanted)
    return python


def pip(python: Path, *args: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def copy_tree(modules: list[str]) -> Path:
    """The repository's files (as git tracks them, benchmarks aside), with mutmut's configuration added."""
    tree = WORK / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split("\0")
    for name in tracked:
        if name and not name.startswith("benchmarks/") and (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    copied = sorted({name.split("/")[0] for name in tracked if name and "/" in name} - {"benchmarks", "dbtassets",
                                                                                            "tests"})
    copied += sorted(name for name in tracked if name and "/" not in name and name != "pyproject.toml")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "dbtassets", "tests"],
                           cwd=REPO, capture_output=True, text=True).stdout.strip()
    (tree / "REVISION").write_text(f"{head.strip()}{' with uncommitted changes' if dirty else ''}\n")
    only = ", ".join(f'"dbtassets/{MODULES[m].replace(".", "/")}.py"' for m in modules)
    (tree / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + f"""
[tool.mutmut]
source_paths = ["dbtassets"]
only_mutate = [{only}]
also_copy = [{", ".join(f'"{n}"' for n in copied)}]
pytest_add_cli_args = ["-m", "not slow", "-p", "no:cacheprovider", "-q"]
pytest_add_cli_args_test_selection = ["tests/"]
""")
    return tree


def parse_example(python: Path) -> Path:
    """example_project parsed once, for every pytest session of the run."""
    parsed = WORK / "parsed" / "shopflow"
    shutil.rmtree(parsed.parent, ignore_errors=True)
    shutil.copytree(REPO / "example_project", parsed, ignore=_IGNORE)
    subprocess.run([str(python), "-m", "dbt.cli.main", "parse", "--profiles-dir", str(parsed), "--project-dir",
                    str(parsed)], cwd=parsed, check=True, capture_output=True,
                   env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    return parsed


def collect(tree: Path) -> dict[str, str]:
    """Every mutant's status, from mutmut's per-file results (exit codes, as ``mutmut results`` reads them)."""
    statuses: dict[str, str] = {}
    for meta in sorted((tree / "mutants" / "dbtassets").glob("**/*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            if module_of(name) != "watch" or name.split("\u01c1")[-1].split("__mutmut_")[0] in WATCH_PLANNING:
                statuses[name] = _STATUS.get(code, "suspicious")
    return statuses


# mutmut.stats.status_by_exit_code (3.8), for the codes a run leaves.
_STATUS: dict[Any, str] = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
                           36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
                           37: "caught by type check", None: "not checked"}


def show(python: Path, tree: Path, name: str) -> str:
    done = subprocess.run([str(python.parent / "mutmut"), "show", name], cwd=tree, capture_output=True, text=True)
    return done.stdout.strip()


def module_of(name: str) -> str:
    """The short name of the module a mutant's name (``dbtassets.rules.staleness.x_…``) is in."""
    return next((short for short, path in MODULES.items() if name.startswith(f"dbtassets.{path}.")), "")


def report(statuses: dict[str, str], survivors: dict[str, str], seconds: float | None, jobs: int,
           markdown: bool) -> str:
    stamp = WORK / "tree" / "REVISION"  # what the run copied, not what the working tree has now
    revision = stamp.read_text().strip() if stamp.exists() else "unknown"
    out = [f"Revision `{revision}`, {MUTMUT}, {jobs} jobs on "
           f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end, "
           + (f"{seconds / 60:.1f} min in all (venv, copy, parse and mutmut), {_cpu_minutes():.1f} min of CPU "
              "(on a busy machine, CPU / jobs is closer to what a quiet one takes)." if seconds is not None else
              f"report taken at {time.strftime('%H:%M UTC', time.gmtime())} while the run went on."), ""]
    rows = []
    for module in MODULES:
        counts = Counter(s for n, s in statuses.items() if module_of(n) == module)
        total = sum(counts.values())
        if not total:  # not mutated in this run (--modules)
            continue
        killed = sum(counts[s] for s in KILLED)
        tried = total - counts["not checked"]
        score = f"{100 * killed / tried:.1f}%" if tried else "-"
        path = MODULES[module].replace(".", "/")
        rows.append((f"{path}.py" + (" (planning)" if module == "watch" else ""), total, counts["not checked"],
                     killed, counts["survived"], counts["no tests"],
                     total - killed - counts["survived"] - counts["no tests"] - counts["not checked"], score))
    header = ("module", "mutants", "not yet run", "killed", "survived", "no fast test reaches it", "other",
              "score (killed / run)")
    if markdown:
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    else:
        out.append(f"{header[0]:<26}" + "".join(f"{h:>24}" for h in header[1:]))
        out += [f"{row[0]:<26}" + "".join(f"{c!s:>24}" for c in row[1:]) for row in rows]
    if survivors:
        out += ["", f"{len(survivors)} mutants not killed:", ""]
        for diff in survivors.values():
            if diff:
                out += (["```diff", diff, "```", ""] if markdown else [diff, ""])
        rest = [f"`{name}` ({statuses[name]})" for name, diff in survivors.items() if not diff]
        if rest:
            out += ["Not killed elsewhere (`mutmut show NAME` in benchmarks/.work/mutation/tree shows each): "
                    + ", ".join(rest)]
    return "\n".join(out).rstrip()


def _cpu_minutes() -> float:
    """The CPU time of every child process waited for (pip, dbt parse, mutmut and the mutants it forked)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (used.ru_utime + used.ru_stime) / 60


def write_docs(text: str) -> None:
    path = REPO / "docs" / "mutation.md"
    begin, end = "<!-- mutation:begin -->", "<!-- mutation:end -->"
    page = path.read_text()
    if begin not in page or end not in page:
        raise SystemExit(f"{path} has no {begin} … {end} block to fill")
    head, rest = page.split(begin, 1)
    path.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")
    print(f"\nwrote the table into {path}")


if __name__ == "__main__":
    sys.exit(main())
