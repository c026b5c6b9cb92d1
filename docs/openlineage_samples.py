"""Rewrite the sample events in docs/openlineage.md from a real run.

On a fresh copy of example_project: ``dbtassets sync`` (everything is missing), then a file lands with a
negative amount and ``dbtassets watch --once`` observes it, rebuilds what reads it and runs the failing
check, then a model is broken and ``sync`` fails it; each with ``--openlineage file:EVENTS``. One event of
each kind is written into the page between the ``<!-- openlineage-sample: KIND -->`` markers and the next
fence's end. Long SQL is cut (``…``); ids and times are the run's.

Usage::

    .venv/bin/python docs/openlineage_samples.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "openlineage.md"
Event = dict[str, Any]


def run(project: Path, events: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dbtassets", "--project-dir", str(project), *args,
                    "--openlineage", f"file:{events}"], capture_output=True, text=True, check=False,
                   env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "PYTHONPATH": str(ROOT)})


def cut(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (v[:160] + " …" if k == "query" and isinstance(v, str) and len(v) > 160 else cut(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [cut(v) for v in value]
    return value


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project, events = Path(tmp) / "shopflow", Path(tmp) / "events.jsonl"
        shutil.copytree(ROOT / "example_project", project,
                        ignore=shutil.ignore_patterns("target", ".dbtassets", "*.duckdb", "logs"))
        run(project, events, "sync")
        (project / "data" / "raw" / "orders" / "orders_0002.csv").write_text(
            "order_id,customer_id,ordered_at,product,quantity,unit_price\n99,1,2026-11-02 09:00:00,refund,-1,4.50\n")
        run(project, events, "watch", "--once")
        (project / "models" / "staging" / "stg_customers.sql").write_text("select no_such_column from nowhere\n")
        run(project, events, "sync")
        all_events: list[Event] = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]

    def first(test: Callable[[Event], bool]) -> Event:
        return next(e for e in reversed(all_events) if test(e))

    def job(e: Event) -> str:
        return str(e.get("job", {}).get("name", ""))

    samples = {
        "dataset": first(lambda e: "dataset" in e),
        "pass-start": first(lambda e: job(e).endswith(".dbtassets") and e["eventType"] == "START"),
        "model-complete": first(lambda e: job(e).endswith("stg_orders.build.run") and e["eventType"] == "COMPLETE"),
        "model-fail": first(lambda e: job(e).endswith(".build.run") and e["eventType"] == "FAIL"),
        "check-fail": first(lambda e: job(e).endswith(".test") and e["eventType"] == "FAIL"),
        "pass-fail": first(lambda e: job(e).endswith(".dbtassets") and e["eventType"] == "FAIL"),
    }
    text = PAGE.read_text()
    for kind, event in samples.items():
        block = "```json\n" + json.dumps(cut(event), indent=2) + "\n```"
        marker = f"<!-- openlineage-sample: {kind} -->\n"
        text, n = re.subn(re.escape(marker) + r"```json\n.*?\n```", lambda m, new=marker + block: new, text,
                          flags=re.S)
        if n != 1:
            raise SystemExit(f"{PAGE}: no block after <!-- openlineage-sample: {kind} -->")
    PAGE.write_text(text)
    print(f"{PAGE}: {len(samples)} samples from {len(all_events)} events")


if __name__ == "__main__":
    main()
