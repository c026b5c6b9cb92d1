"""The sample outputs in README.md and docs/getting-started.md, made by a real run of the commands.

    python docs/samples.py           # run them on a fresh copy of example_project and rewrite the blocks
    python docs/samples.py --check   # run them and exit 1 if a block says what the commands no longer print

A sample block is the fenced block after a ``<!-- samples: NAME -->`` line. Times, file stamps, durations
and column padding differ from run to run: :func:`normalised` replaces them before comparing, and a
``...`` line in a block stands for lines left out (the lines kept must still come, in order).
tests/test_samples.py runs the check in CI, so the samples cannot drift from what the commands print.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", REPO / "docs" / "getting-started.md"]
_SKIP = shutil.ignore_patterns("target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal", "__pycache__")
_MARKER = re.compile(r"(<!-- samples: (\w+) -->\n```\n)(.*?)(\n```)", re.S)
ELIDED = "..."

# What differs between two runs of the same commands, and what it becomes for comparing.
_VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"), "<time>"),
    (re.compile(r"orders_\d{8}T\d{12}Z"), "orders_<stamp>"),
    (re.compile(r"^\d\d:\d\d:\d\d ", re.M), "<clock> "),
    (re.compile(r"\b\d+\.\d\ds\b"), "<seconds>"),
    (re.compile(r"[ \t]+"), " "),
]

LOOP = [  # the getting-started loop: (what the reader types, what runs)
    ("dbtassets status", ["status"]),
    ("dbtassets sync", ["sync"]),
    ("dbtassets status", ["status"]),
    ("python example_project/ingest_orders.py --seed 1", []),
    ("dbtassets status", ["status"]),
    ("dbtassets why fact_sales", ["why", "fact_sales"]),
    ("dbtassets check --format github", ["check", "--format", "github"]),
    ("dbtassets sync --dry-run", ["sync", "--dry-run"]),
    ("dbtassets sync", ["sync"]),
    ("dbtassets history fact_sales", ["history", "fact_sales"]),
    ("dbtassets lineage fact_sales --upstream --format mermaid", ["lineage", "fact_sales", "--upstream", "--format",
                                                                 "mermaid"]),
    ("dbtassets report raw.customers", ["report", "raw.customers"]),
    ("dbtassets status", ["status"]),
    ("dbtassets assets", ["assets"]),
]


def normalised(text: str) -> list[str]:
    """The lines of ``text`` with what differs between runs replaced, trailing blanks dropped."""
    lines = []
    for line in text.splitlines():
        for pattern, replacement in _VARYING:
            line = pattern.sub(replacement, line)
        lines.append(line.rstrip())
    return lines


def drift(block: str, output: str) -> list[str]:
    """What the block says that the output no longer prints; [] when it matches.

    Without ``...`` the block must be the output. With it, the block's lines must come in the output
    in order, except that the lines of an indented list (dbt's nodes finish in any order) may come in
    any order after the line that heads them.
    """
    said, kept = normalised(output), normalised(block)
    if ELIDED not in kept:
        return [] if kept == said else [f"expected:\n{block}\n\nprinted today:\n{output}"]
    at = head = 0
    for raw, line in zip(block.splitlines(), kept, strict=True):
        if line == ELIDED:
            continue
        listed = re.match(r"^\S+ {3}", raw) is not None
        try:
            found = said.index(line, head if listed else at)
        except ValueError:
            return [f"{line!r} is no longer printed (in this order); printed today:\n{output}"]
        if not listed:
            at = head = found + 1
    return []


def _copy(workdir: Path) -> Path:
    project = workdir / "example_project"
    shutil.copytree(REPO / "example_project", project, ignore=_SKIP)
    for landed in (project / "data" / "raw" / "orders").glob("orders_2*.csv"):
        landed.unlink()  # batches an earlier ingest left in the repository's copy
    return project


def _env() -> dict[str, str]:
    return {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "NO_COLOR": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _dbtassets(workdir: Path, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "dbtassets", "--project-dir", "example_project", *args]


def loop(workdir: Path) -> str:
    """The getting-started loop, as a terminal shows it (stderr lines first, then stdout)."""
    _copy(workdir)
    out = []
    for shown, args in LOOP:
        command = _dbtassets(workdir, args) if args else [sys.executable, *shown.split()[1:]]
        run = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=_env(), timeout=600)
        exit_note = f"          # exit code {run.returncode}" if run.returncode else ""
        out += [f"$ {shown}{exit_note}", *run.stderr.splitlines(), *run.stdout.splitlines()]
    return "\n".join(out).replace(f"{workdir}/", "")


def watch(workdir: Path) -> str:
    """``dbtassets watch`` while a batch of orders lands and a loader reports new customers, then Ctrl-C."""
    _copy(workdir)
    watcher = subprocess.Popen(_dbtassets(workdir, ["watch"]), cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=_env())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()

    def wait_for(builds: int) -> None:
        deadline = time.monotonic() + 600
        while sum(" built " in line for line in lines) < builds:
            if time.monotonic() > deadline or watcher.poll() is not None:
                raise RuntimeError("the watcher did not build:\n" + "".join(lines))
            time.sleep(0.2)

    steps: list[Callable[[], object]] = [
        lambda: subprocess.run([sys.executable, "example_project/ingest_orders.py", "--seed", "1"], cwd=workdir,
                               check=True, capture_output=True, env=_env()),
        lambda: subprocess.run(_dbtassets(workdir, ["report", "raw.customers"]), cwd=workdir, check=True,
                               capture_output=True, env=_env()),
    ]
    try:
        wait_for(1)
        for number, step in enumerate(steps, 2):
            time.sleep(1)  # lines a second apart, as a person would do it
            step()
            wait_for(number)
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=60)
        reader.join(timeout=10)
        if watcher.stdout is not None:
            watcher.stdout.close()
    return "".join(lines).rstrip("\n").replace(f"{workdir}/", "")


def elided(output: str, keep: int = 3) -> str:
    """A watch log shortened for a page: a list of more than ``keep`` indented lines shows its first, then ``...``."""
    return "\n".join(_whole_short_lists(output.splitlines(), keep))


def _whole_short_lists(lines: list[str], keep: int) -> list[str]:
    out: list[str] = []
    group: list[str] = []

    def flush() -> None:
        out.extend(group if len(group) <= keep else [group[0], ELIDED])
        group.clear()

    for line in lines:
        if re.match(r"^\S+ {3}", line):
            group.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return out


SAMPLES: dict[str, Callable[[Path], str]] = {"loop": loop, "watch": lambda w: elided(watch(w))}
RUNS: dict[str, Callable[[Path], str]] = {"loop": loop, "watch": watch}


def blocks() -> list[tuple[Path, str, str]]:
    """(page, sample name, block text) for every marked block."""
    return [(page, m.group(2), m.group(3)) for page in PAGES for m in _MARKER.finditer(page.read_text())]


def main(argv: Sequence[str]) -> int:
    check = "--check" in argv
    names = sorted({name for _, name, _ in blocks()})
    outputs = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"samples-{name}-") as workdir:
            outputs[name] = (RUNS if check else SAMPLES)[name](Path(workdir))
    if check:
        problems = [f"{page.relative_to(REPO)}, sample {name}: {p}" for page, name, block in blocks()
                    for p in drift(block, outputs[name])]
        print("\n\n".join(problems) or "every sample block matches what the commands print", file=sys.stderr)
        return 1 if problems else 0
    for page in PAGES:
        text = _MARKER.sub(lambda m: m.group(1) + outputs[m.group(2)] + m.group(4), page.read_text())
        page.write_text(text)
    print(f"rewrote the sample blocks ({', '.join(names)}) in README.md and docs/getting-started.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
