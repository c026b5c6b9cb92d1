"""OpenLineage events: sent to a real HTTP receiver by ``sync`` and a watcher on a copy of example_project, each
valid against the OpenLineage JSON schemas (tests/openlineage_spec/, copied from the spec with its license), with
parent links, dataset names, the cause of each build and the checks; a receiver that is down stops nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from dbtassets.engine import Project
from dbtassets.openlineage.cause import SCHEMA_PATH
from dbtassets.openlineage.config import reach
from dbtassets.openlineage.emitter import Emitter
from dbtassets.openlineage.sender import Sender
from dbtassets.sql.lineage import MAX_LINEAGE_SQL, Derived, column_sources
from dbtassets.state.leases import claim
from tests.conftest import FakeClock, FakeRunner, run_cli

SPEC_DIR = Path(__file__).parent / "openlineage_spec"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def _registry() -> Registry:
    documents = [json.loads(p.read_text()) for p in [SPEC_DIR / "OpenLineage.json", SCHEMA_PATH,
                                                      *sorted((SPEC_DIR / "facets").glob("*.json"))]]
    return Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in documents)


REGISTRY = _registry()


def validate(event: dict[str, Any]) -> None:
    """The event against the core schema, and each facet in it against the schema its _schemaURL names."""
    kind = "RunEvent" if "run" in event else "DatasetEvent"
    Draft202012Validator({"$ref": f"{SPEC}#/$defs/{kind}"}, registry=REGISTRY).validate(event)

    def facets(value: Any) -> Iterator[dict[str, Any]]:
        if isinstance(value, dict):
            if "_schemaURL" in value:
                yield value
            for inner in value.values():
                yield from facets(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from facets(inner)

    for facet in facets(event):
        url = facet["_schemaURL"]
        resource = url.partition("#")[0]
        assert resource in {*REGISTRY}, f"a facet names a schema the spec copy lacks: {url}"
        Draft202012Validator({"$ref": url}, registry=REGISTRY).validate(facet)


class Receiver:
    """A local OpenLineage HTTP receiver (POST /api/v1/lineage), in a thread."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def runs(self, job_suffix: str) -> list[dict[str, Any]]:
        return [e for e in self.events if "run" in e and e["job"]["name"].endswith(job_suffix)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _by_type(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["eventType"]: e for e in events}


@pytest.mark.slow
def test_sync_and_a_watcher_send_valid_linked_events_with_the_cause_of_each_build(project_dir: Path,
                                                                                 receiver: Receiver) -> None:
    project = str(project_dir)
    synced = run_cli("--project-dir", project, "sync", "--openlineage", receiver.url)
    assert synced.returncode == 0, synced.stderr
    for event in receiver.events:
        validate(event)
    passes = receiver.runs("shopflow.dbtassets")
    assert [e["eventType"] for e in passes] == ["START", "COMPLETE"]
    pass_id = passes[0]["run"]["runId"]
    stg = _by_type(receiver.runs(".shopflow.stg_orders.build.run"))
    assert set(stg) == {"START", "COMPLETE"}
    complete = stg["COMPLETE"]
    assert complete["job"]["name"] == "shopflow.main.shopflow.stg_orders.build.run"  # as openlineage-dbt names it
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == pass_id
    assert complete["outputs"][0] == {**complete["outputs"][0], "namespace": "duckdb://shopflow.duckdb",
                                      "name": "shopflow.main.stg_orders"}
    assert "select" in complete["job"]["facets"]["sql"]["query"].lower()
    assert complete["outputs"][0]["facets"]["schema"]["fields"]
    assert "outputFacets" not in complete["outputs"][0]  # dbt-duckdb reports no rows for a view
    seed = _by_type(receiver.runs(".shopflow.country_codes.build.seed"))["COMPLETE"]
    assert seed["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 5  # dbt's INSERT 5
    codes = {r["code"] for r in complete["run"]["facets"]["dbtassets_cause"]["reasons"]}
    assert "never_materialized" in codes
    fact = _by_type(receiver.runs(".shopflow.fact_sales.build.run"))["COMPLETE"]
    assert {"namespace": "duckdb://shopflow.duckdb", "name": "shopflow.main.stg_orders"} in fact["inputs"]
    lineage = fact["outputs"][0]["facets"]["columnLineage"]["fields"]  # (valid: validate() checked every facet)
    assert {(f["name"], f["field"]) for f in lineage["amount"]["inputFields"]} == {
        ("shopflow.main.stg_orders", "quantity"), ("shopflow.main.stg_orders", "unit_price")}
    tests = receiver.runs("shopflow.main.fact_sales.test")
    assertions = tests[-1]["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {"assertion": "assert_no_negative_amounts", "success": True} in [
        {k: a[k] for k in ("assertion", "success")} for a in assertions]

    # A file lands with a negative amount: the watcher observes it, rebuilds, and the check fails.
    receiver.events.clear()
    landed = project_dir / "data" / "raw" / "orders" / "orders_0002.csv"
    landed.write_text("order_id,customer_id,ordered_at,product,quantity,unit_price\n"
                      "99,1,2026-11-02 09:00:00,refund,-1,4.50\n")
    watched = run_cli("--project-dir", project, "watch", "--once", "--openlineage", receiver.url)
    assert watched.returncode == 1, watched.stderr  # the check failed
    for event in receiver.events:
        validate(event)
    moved = [e for e in receiver.events if "dataset" in e and e["dataset"]["name"] == "raw.orders"]
    assert len(moved) == 1
    version = moved[0]["dataset"]["facets"]["version"]["datasetVersion"]
    stg = _by_type(receiver.runs(".shopflow.stg_orders.build.run"))["COMPLETE"]
    reasons = stg["run"]["facets"]["dbtassets_cause"]["reasons"]
    observed = [r["observation"] for r in reasons if r["code"] == "upstream_updated"]
    assert observed and observed[0]["source"] == "source.shopflow.raw.orders"
    assert observed[0]["dataVersion"] == version
    assert observed[0]["detail"]["newest"].endswith("orders_0002.csv")
    failed = receiver.runs("shopflow.main.fact_sales.test")
    assert failed[-1]["eventType"] == "FAIL"
    assert receiver.runs("shopflow.dbtassets")[-1]["eventType"] == "FAIL"

    # A model that fails: its run FAILs, under the pass.
    receiver.events.clear()
    (project_dir / "models" / "staging" / "stg_orders.sql").write_text("select no_such_column from nowhere\n")
    broken = run_cli("--project-dir", project, "sync", "--openlineage", receiver.url)
    assert broken.returncode == 1
    for event in receiver.events:
        validate(event)
    stg_runs = _by_type(receiver.runs(".shopflow.stg_orders.build.run"))
    assert "FAIL" in stg_runs and "errorMessage" in stg_runs["FAIL"]["run"]["facets"]
    codes = {r["code"] for r in stg_runs["FAIL"]["run"]["facets"]["dbtassets_cause"]["reasons"]}
    assert "code_changed" in codes


@pytest.mark.slow
def test_a_receiver_that_is_down_stops_no_build_and_is_said_once(project_dir: Path) -> None:
    down = Receiver()
    url = down.url
    down.close()  # nothing listens there now
    result = run_cli("--project-dir", str(project_dir), "sync", "--openlineage", url)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("is not answering") == 1
    assert "of events not sent to the OpenLineage receiver" in result.stderr


def test_openlineage_configured_without_the_client_is_one_line_and_exit_2(project_dir: Path,
                                                                         tmp_path: Path) -> None:
    hidden = tmp_path / "hide" / "openlineage"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('openlineage-python hidden by the test')\n")
    worktree = Path(__file__).resolve().parent.parent
    state = project_dir / ".dbtassets"
    result = run_cli("--project-dir", str(project_dir), "sync", "--openlineage", "http://127.0.0.1:9",
                     env={"PYTHONPATH": f"{hidden.parent}:{worktree}"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dbtassets: error: OpenLineage is configured (--openlineage) but openlineage-python is not installed "
        "(pip install openlineage-python), or install dbtassets with its openlineage extra; or remove that setting"]
    assert not state.exists()  # the store untouched: nothing was built or recorded


def test_dbtassets_yml_takes_an_openlineage_key_and_rejects_a_wrong_one(project_dir: Path) -> None:
    config = project_dir / "dbtassets.yml"
    config.write_text("openlineage: 42\n")
    result = run_cli("--project-dir", str(project_dir), "sync", "--dry-run")
    assert result.returncode == 2
    assert "dbtassets.yml: openlineage: expected a URL, file:PATH" in result.stderr
    config.write_text("openlineage:\n  transport:\n    url: http://localhost:5000\n")
    result = run_cli("--project-dir", str(project_dir), "sync", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"dbtassets: error: {config}: openlineage: expected a transport: mapping with its type (http, file, console, "
        "kafka…), as the OpenLineage client's configuration has it"]
    config.write_text("openlineage: file:events.jsonl\n")
    assert run_cli("--project-dir", str(project_dir), "sync", "--dry-run").returncode == 0


def test_a_command_never_waits_for_the_client_s_import() -> None:
    """The client (half a second of imports) is made on the sender's thread; the command only checks it is there."""
    code = ("import sys; from pathlib import Path; from dbtassets.openlineage.config import resolve; "
            "connect, reach, where = resolve('http://127.0.0.1:9', None, Path('dbtassets.yml')); "
            "assert 'openlineage.client' not in sys.modules, sorted(sys.modules); "
            "print(where); print(type(connect()).__name__)")
    worktree = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=worktree, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["the OpenLineage receiver (http://127.0.0.1:9, from --openlineage)",
                                          "HttpTransport"]


def test_a_client_configuration_only_the_client_refuses_is_said_once_and_its_events_counted() -> None:
    said: list[str] = []

    def connect() -> Any:
        raise ValueError("Transport kafkaa not found")

    sender = Sender(connect, said.append, where="the OpenLineage receiver (from dbtassets.yml: openlineage)")
    for n in range(3):
        sender.put(lambda n=n: [{"n": n}])  # type: ignore[misc]
    sender.close(timeout=5)
    assert said == ["OpenLineage: cannot send to the OpenLineage receiver (from dbtassets.yml: openlineage): "
                    "ValueError: Transport kafkaa not found; fix that configuration (docs/openlineage.md): "
                    "events are not sent"]
    assert sender.dropped == 3 and sender.sent == 0


def test_a_sender_given_nothing_to_send_never_makes_its_transport() -> None:
    made: list[bool] = []

    def connect() -> Any:
        made.append(True)
        return Recorded()

    idle = Sender(connect, print)
    idle.close(timeout=5)
    assert made == [] and idle.dropped == 0
    busy = Sender(connect, print)
    busy.put(lambda: [{"n": 1}])
    busy.close(timeout=5)
    assert made == [True] and busy.sent == 1 and isinstance(busy.transport, Recorded)


def test_no_client_is_made_for_an_http_receiver_that_refuses_connections_until_it_takes_them() -> None:
    said: list[str] = []
    made: list[bool] = []
    listening = threading.Event()
    receiver = Receiver()
    port = int(receiver.url.rsplit(":", 1)[1])
    receiver.close()  # nothing listens there now

    def reach() -> None:
        if not listening.is_set():
            raise ConnectionRefusedError(111, "Connection refused")

    def connect() -> Any:
        made.append(True)
        return Recorded()

    sender = Sender(connect, said.append, retry_every=0.05, where=f"the OpenLineage receiver (http://127.0.0.1:{port})",
                    reach=reach)
    sender.put(lambda: [{"n": 1}])
    time.sleep(0.3)
    assert made == [] and sender.down
    listening.set()
    deadline = time.monotonic() + 10
    while sender.sent == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    sender.close(timeout=5)
    assert made == [True] and sender.sent == 1 and sender.dropped == 0
    assert len(said) == 2 and "is not answering (ConnectionRefusedError" in said[0] and "answers again" in said[1]


def test_reach_checks_the_port_of_an_http_url_only() -> None:
    receiver = Receiver()
    try:
        check = reach(receiver.url)
        assert check is not None
        check()  # takes connections: no error
    finally:
        receiver.close()
    with pytest.raises(OSError):
        check()
    assert reach("file:/tmp/events.jsonl") is None and reach(None) is None


def test_work_that_may_wait_is_sent_with_the_next_work_that_may_not_or_at_the_end() -> None:
    """sync's observations: the client is imported once its build starts (beside dbt), not while it plans."""
    made = threading.Event()

    def connect() -> Any:
        made.set()
        return Recorded()

    sender = Sender(connect, print)
    sender.put(lambda: [{"n": 1}], wait=True)
    assert not made.wait(0.3)  # an observation alone: not yet
    sender.put(lambda: [{"n": 2}])  # the build starts
    assert made.wait(5)
    sender.close(timeout=5)
    assert sender.sent == 2 and sender.transport.sent == [{"n": 1}, {"n": 2}]  # type: ignore[attr-defined]
    ended = Sender(lambda: Recorded(), print)
    ended.put(lambda: [{"n": 1}], wait=True)
    ended.close(timeout=5)  # no build came: sent as the command ends
    assert ended.sent == 1 and ended.dropped == 0


class FlakyTransport:
    """Refuses while ``down`` is set; records what it accepted."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.sent: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        if self.down.is_set():
            raise ConnectionError("refused")
        self.sent.append(event)


def test_the_sender_says_once_that_the_receiver_went_away_once_that_it_is_back_and_loses_nothing() -> None:
    transport, said = FlakyTransport(), []
    transport.down.set()
    sender = Sender(lambda: transport, said.append, retry_every=0.05)
    sender.put(lambda: [{"n": 1}, {"n": 2}])
    threading.Event().wait(0.3)
    transport.down.clear()
    for _ in range(100):  # the sender tries again every 0.05 s
        if len(said) == 2:
            break
        threading.Event().wait(0.05)
    sender.put(lambda: [{"n": 3}])
    sender.close(timeout=5)
    assert transport.sent == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert len(said) == 2 and "not answering" in said[0] and "answers again" in said[1]
    assert sender.dropped == 0


def test_a_full_queue_drops_and_counts_instead_of_waiting() -> None:
    transport, said = FlakyTransport(), []
    transport.down.set()
    sender = Sender(lambda: transport, said.append, capacity=2, retry_every=10)
    for n in range(10):
        sender.put(lambda n=n: [{"n": n}])  # type: ignore[misc]
    sender.close(timeout=0.5)
    assert sender.dropped == 10  # 7 or 8 at the full queue, the rest left unsent when closing
    assert sum("dropping new ones" in message for message in said) == 1


class Recorded:
    """A transport that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        self.sent.append(event)


def _synced_with_an_emitter(project: Project) -> list[dict[str, Any]]:
    """``project.sync()`` with the OpenLineage emitter listening; the events it sent, each valid."""
    transport, said = Recorded(), []
    sender = Sender(lambda: transport, said.append)
    try:
        project.builder.listeners.append(Emitter(sender, project.targets.selected.key))
        project.sync()
    finally:
        sender.close(timeout=10)
    assert not said and sender.dropped == 0
    for event in transport.sent:
        validate(event)
    return transport.sent


def _run(events: list[dict[str, Any]], job_suffix: str, kind: str) -> dict[str, Any]:
    (event,) = [e for e in events if "run" in e and e["job"]["name"].endswith(job_suffix) and e["eventType"] == kind]
    return event


def test_column_lineage_follows_an_output_column_through_the_inlined_ephemeral_model_to_its_inputs(
        semantic_project: tuple[Project, FakeRunner, FakeClock]) -> None:
    project, _, _ = semantic_project
    events = _synced_with_an_emitter(project)
    fact = _run(events, ".shopflow.fact_sales.build.run", "COMPLETE")["outputs"][0]["facets"]["columnLineage"]

    def inputs(column: str) -> set[tuple[str, str, str, str]]:
        return {(f["namespace"], f["name"], f["field"], f["transformations"][0]["subtype"])
                for f in fact["fields"][column]["inputFields"]}

    stg_orders = ("duckdb://shopflow.duckdb", "shopflow.main.stg_orders")
    # amount is computed in int_order_lines (ephemeral, inlined as a CTE): quantity * unit_price.
    assert inputs("amount") == {(*stg_orders, "quantity", "TRANSFORMATION"),
                                (*stg_orders, "unit_price", "TRANSFORMATION")}
    assert inputs("order_id") == {(*stg_orders, "order_id", "IDENTITY")}
    assert inputs("order_date") == {(*stg_orders, "ordered_at", "TRANSFORMATION")}
    assert set(fact["fields"]) == {"order_id", "customer_id", "order_date", "product", "quantity", "amount"}
    dim = _run(events, ".shopflow.dim_customer.build.run", "COMPLETE")["outputs"][0]["facets"]["columnLineage"]
    assert {f["subtype"] for i in dim["fields"]["lifetime_value"]["inputFields"] for f in i["transformations"]} == {
        "AGGREGATION"}
    assert "order_count" not in dim["fields"]  # count(*): computed from no input column
    # A source over files: its read_csv(...) relation is the dataset raw.orders.
    stg = _run(events, ".shopflow.stg_orders.build.run", "COMPLETE")["outputs"][0]["facets"]["columnLineage"]
    assert [(f["name"], f["field"]) for f in stg["fields"]["unit_price"]["inputFields"]] == [
        ("raw.orders", "unit_price")]


def test_column_sources_leave_out_what_sqlglot_cannot_follow() -> None:
    sql = "with a as (select * from db.main.x) select id, v + 1 as w from a"
    assert column_sources(sql, "duckdb", ["db.main.x"]) is None  # a star over columns nobody knows
    assert column_sources(sql, "duckdb", ["db.main.x"], {"db.main.x": ["id", "v"]}) == {
        "id": [Derived("db.main.x", "id", "IDENTITY")], "w": [Derived("db.main.x", "v", "TRANSFORMATION")]}
    assert column_sources("select * from (", "duckdb", ["db.main.x"]) is None
    assert column_sources("select id from db.main.other", "duckdb", ["db.main.x"]) is None  # not an input
    long = "select id from db.main.x" + " " * MAX_LINEAGE_SQL  # bounded: it runs beside builds
    assert column_sources(long, "duckdb", ["db.main.x"]) is None
    assert column_sources(long.strip(), "duckdb", ["db.main.x"]) == {"id": [Derived("db.main.x", "id", "IDENTITY")]}


def test_a_pass_names_the_stale_assets_it_leaves_to_another_watcher_and_who_holds_them(
        fake_project: tuple[Project, FakeRunner, FakeClock]) -> None:
    project, _, _ = fake_project
    assert project.sync().ok
    other = "machine-b:4242:0ther000"  # another machine's watcher, building dim_customer now
    dim_customer = project.graph.resolve("dim_customer")
    assert claim(project.store, {dim_customer}, other, 60, project.store.target).granted == {dim_customer}
    (project.dbt.directory / "data/raw/orders/batch_900.csv").write_text(
        "order_id,customer_id,ordered_at,product,quantity,unit_price\n900,1,2026-11-20 10:00:00,ink,1,7.25\n")
    events = _synced_with_an_emitter(project)
    cause = _run(events, "shopflow.dbtassets", "START")["run"]["facets"]["dbtassets_cause"]
    assert set(cause["selected"]) == {str(project.graph.resolve(n)) for n in ("stg_orders", "fact_sales")}
    left = {e["asset"]: {k: v for k, v in e.items() if k != "reasons"} for e in cause["notBuilt"]}
    assert left == {dim_customer: {"asset": dim_customer, "why": "leased", "holder": other}}
