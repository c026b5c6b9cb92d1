"""Make the README's picture of the page (docs/assets/ui.png) from a real run on a copy of example_project.

In a scratch copy: ``dbtassets sync`` builds everything, a customers file lands, and a watcher that
leaves ``stg_customers+`` alone serves the page (so those stay stale, with a why chain down to
``raw.customers``); a batch of orders lands and is rebuilt live; then Debian's Chromium (Playwright)
opens the page, clicks ``dim_customer`` and takes the picture.

Usage::

    .venv/bin/python benchmarks/ui_screenshot.py [--out docs/assets/ui.png]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("DBTASSETS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SKIP = shutil.ignore_patterns("target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal", "__pycache__")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "assets" / "ui.png")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "example_project"
        shutil.copytree(ROOT / "example_project", project, ignore=SKIP)
        dbtassets = [sys.executable, "-m", "dbtassets", "--project-dir", str(project)]
        subprocess.run([*dbtassets, "sync"], check=True, capture_output=True, env=env)
        (project / "data" / "raw" / "customers" / "customers_0002.csv").write_text(
            "customer_id,name,country_code\n7,Edsger Dijkstra,NL\n")
        watcher = subprocess.Popen([*dbtassets, "watch", "--format", "json", "--ui", "0", "--exclude",
                                    "stg_customers+"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=env)
        try:
            assert watcher.stderr is not None and watcher.stdout is not None
            url = next(m.group(1) for line in watcher.stderr
                       if (m := re.search(r"the page is at (http://\S+?/)", line)))
            next(line for line in watcher.stdout if '"event": "watching"' in line)
            subprocess.run([sys.executable, "ingest_orders.py"], cwd=project, check=True, capture_output=True)
            next(line for line in watcher.stdout if '"event": "build_finished"' in line)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1500, "height": 760})
                page.goto(url)
                page.wait_for_selector("body[data-ready='1']")
                page.wait_for_selector("#log li")
                page.click("#graph .node[data-name='dim_customer']")
                page.wait_for_selector("#why li")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=60)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
