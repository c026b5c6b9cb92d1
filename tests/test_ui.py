"""The page's server (``dbtassets ui``, ``watch --ui``): real processes on copies of example_project, plain HTTP.

What the page reads must be what the CLI answers (the same documents), the server must never
write to the store nor accept anything but GET/HEAD, bind to loopback unless given a token, and
say on ``/healthz`` and ``/metrics`` how the watcher is doing. The browser's view is tested in
``test_ui_browser.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dbtassets.engine import Options, Project
from dbtassets.rules.statuses import AssetStatus, Reason, ReasonCode, Status
from dbtassets.ui import views
from dbtassets.ui.views import shown_status
from tests.conftest import dbtassets
from tests.pageserver import Served, get, get_json, stream

ASSETS = ("raw.orders", "raw.customers", "country_codes", "stg_orders", "stg_customers", "fact_sales",
          "dim_customer")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_json(project: Path, *args: str) -> Any:
    result = dbtassets(project, *args, "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def observed(project_dir: Path) -> Path:
    """The example project with a state store holding its sources' first observations (nothing built)."""
    assert dbtassets(project_dir, "observe").returncode == 0
    return project_dir


def test_the_page_reads_what_the_cli_answers_and_writes_nothing(observed: Path) -> None:
    store = observed / ".dbtassets" / "state.db"
    before = digest(store)
    expected = {a["name"]: a for a in cli_json(observed, "status", "--no-observe", "--all")["assets"]}
    why = cli_json(observed, "why", "fact_sales", "--no-observe")
    with Served(observed, "ui", "--port", "0") as served:
        url = served.url()
        status, graph = get_json(url + "api/graph")
        assert status == 200
        assert {a["name"]: (a["status"], a["reasons"]) for a in graph["assets"]} == {
            name: (a["status"], a["reasons"]) for name, a in expected.items()}
        assert set(ASSETS) <= {a["name"] for a in graph["assets"]}
        assert sum(graph["counts"].values()) == len(graph["assets"])
        parents = {a["name"]: a["parents"] for a in graph["assets"]}
        assert "model.shopflow.stg_orders" in parents["fact_sales"]
        status, asset = get_json(url + "api/asset?name=fact_sales")
        assert status == 200 and asset["why"] == why
        assert "model.shopflow.stg_orders" in asset["upstream"]
        assert "model.shopflow.dim_customer" not in asset["upstream"] + asset["downstream"]
        page = get(url)
        assert page[0] == 200 and b"<svg" in page[1]
        script = get(url + "static/app.js")
        assert script[0] == 200 and "javascript" in script[2]["Content-Type"]
        for method in ("POST", "PUT", "DELETE"):
            assert get(url + "api/graph", method=method)[0] == 405
        assert get(url + "static/../../engine.py")[0] == 404
    assert digest(store) == before, "the page's server wrote to the state store"


def test_a_selector_is_evaluated_and_its_errors_worded_as_the_cli_words_them(observed: Path) -> None:
    with Served(observed, "ui", "--port", "0") as served:
        url = served.url()
        status, graph = get_json(url + "api/graph?select=%2Bfact_sales")
        assert status == 200
        assert sorted(a["name"] for a in graph["assets"]) == sorted(
            a["name"] for a in cli_json(observed, "assets", "--select", "+fact_sales")["assets"])
        assert graph["selected"] < graph["total"]
        for wrong in ("fact_sale", "tag:", "tag:no_such_tag"):
            status, error = get_json(url + "api/graph?select=" + wrong.replace("+", "%2B").replace(" ", "+"))
            cli = dbtassets(observed, "status", "--no-observe", "--select", *wrong.split())
            assert status == 400 and cli.returncode == 2
            assert error["error"] == cli.stderr.strip().splitlines()[-1]


def test_binding_beyond_loopback_needs_a_token_and_every_request_carries_it(observed: Path) -> None:
    refused = dbtassets(observed, "ui", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "--ui-token" in refused.stderr and "DBTASSETS_UI_TOKEN" in refused.stderr
    with Served(observed, "ui", "--host", "0.0.0.0", "--port", "0", env={"DBTASSETS_UI_TOKEN": "s3cret"}) as served:
        url = served.url().replace("0.0.0.0", "127.0.0.1")
        for path in ("", "api/graph", "events", "healthz", "metrics", "static/app.js"):
            assert get(url + path)[0] == 401, path
            assert get(url + path + "?token=wrong")[0] == 401, path
        assert get(url + "api/graph?token=s3cret")[0] == 200
        assert get(url + "api/graph", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert "s3cret" not in "".join(served.stderr)  # the token is not printed


def test_metrics_are_prometheus_text_that_its_own_parser_reads(observed: Path) -> None:
    try:
        from prometheus_client import parser
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus-client is not installed: CI installs the test extra, which has it")
        pytest.skip("prometheus-client is not installed (the test extra has it)")
    counts = cli_json(observed, "status", "--no-observe", "--all")["assets"]
    with Served(observed, "ui", "--port", "0") as served:
        status, body, headers = get(served.url() + "metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in parser.text_string_to_metric_families(body.decode())}
        assets = {s.labels["status"]: s.value for s in families["dbtassets_assets"].samples}
        for word in ("fresh", "stale", "missing", "unobserved"):
            assert assets[word] == sum(1 for a in counts if a["status"] == word)
        sources = {s.labels["source"] for s in families["dbtassets_source_last_observation_timestamp_seconds"].samples}
        assert "raw.orders" in sources
        assert [s.value for s in families["dbtassets_up"].samples] == [1.0]
        status, health = get_json(served.url() + "healthz")
        assert status == 200 and health["ok"] is True and "no watcher" in health["why"]


def test_healthz_says_503_with_why_when_the_watchers_loop_stops_or_stalls(observed: Path) -> None:
    from dbtassets.ui.live import Live
    from dbtassets.ui.reader import STUCK_AFTER, Reader

    beat: list[float | None] = [None]
    live = Live(watcher=True)
    reader = Reader(lambda: Project(Options(observed)), live, lambda: beat[0])
    reader.poll.start()
    try:
        deadline = time.monotonic() + 10
        while reader.poll.last_ok is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.health() == (False, "the watcher has not made its first pass yet")
        beat[0] = time.monotonic()
        assert reader.health()[0] is True
        beat[0] = time.monotonic() - STUCK_AFTER - 5
        ok, why = reader.health()
        assert not ok and "last ran" in why
        live.publish({"event": "stale", "assets": [{"name": "stg_orders"}]})
        assert reader.health()[0] is True  # an event is a sign of life too
        live.publish({"event": "build_started"})
        live.last_event = time.monotonic() - STUCK_AFTER - 5
        assert reader.health()[0] is True and live.building == {"stg_orders"}  # a long build is not a stall
        live.publish({"event": "node_finished", "name": "stg_orders"})
        assert live.building == set()
        live.publish({"event": "stopped"})
        assert reader.health() == (False, "the watcher stopped")
    finally:
        live.close()
        reader.close()


def imported_page_modules(project: Path, *args: str) -> list[str]:
    """The ``dbtassets.ui`` modules loaded after running ``dbtassets ARGS`` in a fresh interpreter."""
    code = ("import sys; from dbtassets.cli import main\n"
            f"try: main(['--project-dir', {str(project)!r}, *{list(args)!r}])\n"
            "except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('dbtassets.ui')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_status_does_not_import_the_page(observed: Path) -> None:
    assert imported_page_modules(observed, "status", "--no-observe") == []
    assert "dbtassets.ui.server" in imported_page_modules(observed, "ui", "--host", "0.0.0.0")  # refused, exit 2


@pytest.mark.slow
def test_watch_without_ui_does_not_import_the_page(project_dir: Path) -> None:
    assert imported_page_modules(project_dir, "watch", "--once") == []


@pytest.mark.slow
def test_ui_follows_another_processes_sync_within_two_seconds(observed: Path) -> None:
    with Served(observed, "ui", "--port", "0") as served:
        url = served.url()
        _, before = get_json(url + "api/graph")
        assert before["counts"]["missing"] > 0
        seen: list[tuple[float, dict[str, Any]]] = []

        def listen() -> None:
            for event in stream(url + "events", timeout=120):
                seen.append((time.monotonic(), event))
                if event["event"] == "changed" and seen[-1][0] > finished[0]:
                    return

        finished = [float("inf")]
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.5)
        assert dbtassets(observed, "sync").returncode == 0
        finished[0] = time.monotonic()
        listener.join(timeout=30)
        changed = [at for at, e in seen if e["event"] == "changed"]
        assert changed and changed[-1] - finished[0] < 2.0
        _, after = get_json(url + "api/graph")
        assert after["counts"]["missing"] == 0
        assert {a["name"]: a["status"] for a in after["assets"]} == {
            a["name"]: a["status"] for a in cli_json(observed, "status", "--no-observe", "--all")["assets"]}
        # A model edited: the page parses the project again but never compiles (dbt would reach the
        # warehouse, and the compiled SQL would be written to the store).
        store = observed / ".dbtassets" / "state.db"
        before = digest(store)
        model = observed / "models" / "marts" / "fact_sales.sql"
        _, old = get_json(url + "api/asset?name=fact_sales")
        model.write_text(model.read_text() + "\n-- a comment\n")
        time.sleep(2.5)
        status, edited = get_json(url + "api/asset?name=fact_sales", timeout=300)  # a dbt parse, on a busy machine
        assert status == 200 and edited["code_version"] != old["code_version"]  # the page read the edit
        assert digest(store) == before


@pytest.mark.slow
def test_watch_ui_streams_a_landing_live_and_reports_its_health(project_dir: Path) -> None:
    with Served(project_dir, "watch", "--format", "json", "--ui", "127.0.0.1:0") as served:
        url = served.url()
        served.wait_event("build_finished")  # the first pass builds what is missing
        status, health = get_json(url + "healthz")
        assert status == 200 and health["ok"], health
        seen: list[dict[str, Any]] = []

        def listen() -> None:
            for event in stream(url + "events", timeout=120):
                seen.append(event)
                if event["event"] == "build_finished":
                    return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.5)
        subprocess.run([sys.executable, "ingest_orders.py"], cwd=project_dir, check=True, capture_output=True)
        listener.join(timeout=120)
        kinds = [e["event"] for e in seen]
        assert "new_data" in kinds and "build_started" in kinds and kinds[-1] == "build_finished", kinds
        started = seen[kinds.index("build_started")]
        assert {"stg_orders", "fact_sales", "dim_customer"} <= set(started["building"])
        finished = {e["name"] for e in seen if e["event"] == "node_finished"}
        assert {"stg_orders", "fact_sales", "dim_customer"} <= finished
        _, graph = get_json(url + "api/graph")
        assert {a["name"]: a["shown"] for a in graph["assets"] if a["name"] in ASSETS[3:]} == dict.fromkeys(
            ASSETS[3:], "fresh")
        _, body, _ = get(url + "metrics")
        assert b"dbtassets_watcher_last_pass_age_seconds" in body
        assert served.stop() == 0


@pytest.mark.parametrize(("status", "codes", "shown"), [
    (Status.STALE, (ReasonCode.UPSTREAM_UPDATED, ReasonCode.NOT_DUE), "not_due"),  # waits under its policy
    (Status.UNOBSERVED, (ReasonCode.UNOBSERVED,), "unobserved"),
    (Status.FRESH, (ReasonCode.LATE_WARN,), "late"),  # a source past its SLA
    (Status.UNOBSERVED, (ReasonCode.LATE_ERROR,), "late"),
    (Status.STALE, (ReasonCode.UPSTREAM_UPDATED, ReasonCode.LAST_BUILD_FAILED, ReasonCode.NOT_DUE), "failed"),
    (Status.STALE, (ReasonCode.UPSTREAM_UPDATED,), "stale"),
    (Status.MISSING, (ReasonCode.NEVER_MATERIALIZED,), "missing"),
    (Status.FRESH, (), "fresh"),
])
def test_each_status_has_its_own_colour_in_the_legend_and_on_the_node(status: Status, codes: tuple[ReasonCode, ...],
                                                                      shown: str) -> None:
    asset = AssetStatus("source.shop.raw.orders", status, tuple(Reason(c, c.value) for c in codes), None)
    assert shown_status(asset) == shown
    assert shown_status(asset, building=True) == "building"
    static = Path(views.__file__).parent / "static"
    script, css = (static / "app.js").read_text(), (static / "style.css").read_text()
    # The page's legend lists what the server says, in its order; the node and its swatch take one colour.
    legend = json.loads(script.split("const SHOWN = ", 1)[1].split(";", 1)[0])
    assert legend == list(views.SHOWN)
    colour = {name.strip(): value for name, value in
              (d.split(":", 1) for d in css.split(":root {", 1)[1].split("font-family", 1)[0].replace("\n", "")
               .split(";") if d.strip().startswith("--"))}
    assert f".s-{shown} rect, .swatch.s-{shown} {{ fill: var(--{shown}); background: var(--{shown}); }}" in css
    values = [colour[f"--{s}"].strip() for s in views.SHOWN]
    assert len(set(values)) == len(values), colour  # no two statuses look alike
