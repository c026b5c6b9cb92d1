"""Benchmark the page on the 5,000-model synthetic project: navigation to the graph drawn, in real Chromium.

``dbtassets ui`` serves the project's state (populated as ``bench_status.py`` does: a fake build
records every asset fresh, every source observed); Debian's Chromium, driven by Playwright, opens
the page ``--repeat`` times, each in a new browser context (no cache), and reads the page's own
``drawnAt`` (``performance.now()`` when the graph is first drawn: milliseconds since navigation
started). The first load after the server starts (its first ``status``) is reported apart from the
median of the rest. The page shows a collapsed overview by folder at this size; one folder is then
opened and timed too.

Usage::

    .venv/bin/python benchmarks/bench_ui.py [--models 5000] [--repeat 9] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_status import WORK, ensure_project, populate_state

CHROMIUM = os.environ.get("DBTASSETS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def serve(project: Path, state: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "dbtassets", "--project-dir", str(project), "--state",
                                str(state), "ui", "--port", "0"], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"the page is at (http://\S+?/)", line)
        if found:
            return process, found.group(1)
    raise SystemExit(f"dbtassets ui exited ({process.wait()}) without serving the page")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    project = ensure_project(args.models, None, None, None)
    state = WORK / f"ui_{args.models}_state.db"
    if not state.exists():
        print(f"populating {state} ...", flush=True)
        populate_state(project, state)
    process, url = serve(project, state)
    loads: list[float] = []
    walls: list[float] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for _ in range(args.repeat + 1):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                started = time.perf_counter()
                page.goto(url)
                page.wait_for_function("window.drawnAt !== undefined", timeout=120_000)
                walls.append((time.perf_counter() - started) * 1000)
                loads.append(page.evaluate("window.drawnAt"))
                drawn = page.evaluate("document.getElementById('graph').getAttribute('data-drawn')")
                assets = page.evaluate("document.getElementById('overview-note').textContent")
                context.close()
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_function("window.drawnAt !== undefined", timeout=120_000)
            started = time.perf_counter()
            page.click("#graph .group >> nth=-1")
            page.wait_for_function(f"document.getElementById('graph').getAttribute('data-drawn') !== '{drawn}'")
            expand_ms = (time.perf_counter() - started) * 1000
            expanded = page.evaluate("document.getElementById('graph').getAttribute('data-drawn')")
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    result: dict[str, Any] = {
        "models": args.models, "repeat": args.repeat, "first_load_ms": round(loads[0]),
        "median_load_ms": round(statistics.median(loads[1:])), "loads_ms": [round(x) for x in loads],
        "median_wall_ms": round(statistics.median(walls[1:])), "units_drawn": int(drawn), "overview": assets,
        "expand_one_folder_ms": round(expand_ms), "units_after_expanding": int(expanded),
        "chromium": subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip(),
    }
    print(json.dumps(result, indent=2))
    print(f"\n## The page, {args.models} models ({result['chromium']}, load average {os.getloadavg()[0]:.1f} "
          "at the end)\n")
    print(f"At this size and without a selector the page draws the collapsed overview: {result['overview']}.\n")
    print("| measured | value |\n|---|---:|")
    print(f"| navigation → graph drawn, median of {args.repeat} loads | {result['median_load_ms'] / 1000:.2f} s |")
    print(f"| the same, wall time seen by the test driver (goto → drawn) | {result['median_wall_ms'] / 1000:.2f} s |")
    print(f"| the same, first load after the server started | {result['first_load_ms'] / 1000:.2f} s |")
    print(f"| the {args.repeat} loads (ms) | {', '.join(str(x) for x in result['loads_ms'][1:])} |")
    print(f"| units drawn in the overview | {result['units_drawn']} |")
    print(f"| opening one folder ({result['units_after_expanding']} units drawn after), click → drawn | "
          f"{result['expand_one_folder_ms'] / 1000:.2f} s |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
