"""Shared fixtures: example_project parsed once per session and copied per test; fakes for the boundaries."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from dbtassets.building.runner import BuildResult, DbtTarget, NodeResult, NodeStatus, Verb, build_command, display
from dbtassets.engine import Options, Project
from dbtassets.model.manifest import Check, CheckKind, UniqueId
from tests.pg import PostgresServer

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "example_project"
_SKIP = shutil.ignore_patterns("target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal", "__pycache__")

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

# benchmarks/mutation.py runs the fast tests once per mutant with this set. A child process runs the
# installed, unmutated code, so a test's child cannot notice a mutant: such tests stop there (skipped,
# after their in-process part), and the property tests draw fewer, fixed examples.
MUTATION_RUN = os.environ.get("DBTASSETS_MUTATION_RUN") == "1"
settings.register_profile("mutation", derandomize=True, database=None)
if MUTATION_RUN:
    settings.load_profile("mutation")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a mutation run, leave out the tests that call ``run_cli`` themselves: all they check is a child's
    output, and their set-up (a state store to refuse input against) would run before every mutant's
    first test that can fail (mutmut orders tests by the time of their body, not of their set-up)."""
    if not MUTATION_RUN:
        return
    child = [item for item in items if _calls_a_child(item)]
    if child:
        config.hook.pytest_deselected(items=child)
        items[:] = [item for item in items if item not in set(child)]


def _calls_a_child(item: pytest.Item) -> bool:
    try:
        source = inspect.getsource(item.function)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, OSError):
        return False
    return "run_cli(" in source or "dbtassets(" in source


def examples(n: int) -> int:
    """How many examples a property test draws: ``n``, or a tenth of it (at least 10) in a mutation run."""
    return max(10, n // 10) if MUTATION_RUN else n


def dbt_parse(project: Path, key: str) -> None:
    """``dbt parse`` in ``project``, a fresh copy of some project that ``key`` names.

    With ``DBTASSETS_TEST_PARSE_CACHE`` set (benchmarks/mutation.py runs a session per mutant), the
    parsed copy is kept there under ``key`` and later sessions copy it instead of parsing again.
    """
    cache = os.environ.get("DBTASSETS_TEST_PARSE_CACHE")
    saved = Path(cache) / key if cache else None
    if saved is not None and saved.is_dir():
        shutil.rmtree(project)
        shutil.copytree(saved, project, symlinks=True)
        return
    subprocess.run([sys.executable, "-m", "dbt.cli.main", "parse", "--profiles-dir", str(project),
                    "--project-dir", str(project)], cwd=project, check=True, capture_output=True)
    if saved is not None:
        partial = saved.with_name(f".{key}.{os.getpid()}")
        shutil.copytree(project, partial, symlinks=True)
        try:
            partial.rename(saved)
        except OSError:  # another session saved it first
            shutil.rmtree(partial)


@pytest.fixture(scope="session")
def parsed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """example_project with target/manifest.json, parsed once for the whole session.

    ``DBTASSETS_TEST_PARSED_EXAMPLE`` names a copy parsed beforehand, for runners of many short
    sessions (benchmarks/mutation.py runs one per mutant).
    """
    template = tmp_path_factory.mktemp("template") / "shopflow"
    prepared = os.environ.get("DBTASSETS_TEST_PARSED_EXAMPLE")
    if prepared:
        shutil.copytree(prepared, template, symlinks=True)
        return template
    shutil.copytree(EXAMPLE, template, ignore=_SKIP)
    subprocess.run([sys.executable, "-m", "dbt.cli.main", "parse", "--profiles-dir", str(template),
                    "--project-dir", str(template)], cwd=template, check=True, capture_output=True)
    return template


@pytest.fixture
def project_dir(parsed_example: Path, tmp_path: Path) -> Path:
    """A private copy of the parsed example project (mtimes kept, so the manifest stays current)."""
    target = tmp_path / "shopflow"
    shutil.copytree(parsed_example, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session; skips (fails under CI=true) where none can start."""
    from tests.pg import PostgresServer, binaries

    def unavailable(reason: str) -> None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests (install postgresql and psycopg2)")
        pytest.skip(reason)

    try:
        import psycopg2  # noqa: F401
    except ImportError:
        unavailable('psycopg2 is not installed (pip install -e ".[postgres]")')
    bin_dir = binaries()
    if bin_dir is None:
        unavailable("PostgreSQL is not installed here (no initdb on PATH or under /usr/lib/postgresql)")
    assert bin_dir is not None
    try:
        server = PostgresServer.start(bin_dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        unavailable(f"cannot start a private PostgreSQL server: {exc}")
        raise
    yield server
    server.stop()


# A mutation run mutates no store: the PostgreSQL variants would only start a server per mutant.
@pytest.fixture(params=["sqlite"] if MUTATION_RUN else ["sqlite", "postgresql"])
def state_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's state store lives, once per backend: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "state" / "state.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url(server.database("state"))


@pytest.fixture(autouse=True)
def _profiles_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt finds profiles.yml in the working directory; keep the user's environment out of tests."""
    for name in ("DBT_PROJECT_DIR", "DBT_PROFILES_DIR", "DBT_TARGET", "DBTASSETS_STATE"):
        monkeypatch.delenv(name, raising=False)


def leaked_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """The live threads not in ``before``: daemon ones too (watchdog's observer and emitters are daemons)."""
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = leaked_threads(before)
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        self.moment += timedelta(milliseconds=1)
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


# What dbt-duckdb 1.11 compiles example_project's models to (from `dbt compile`), so that fast tests
# take the semantic path: fingerprints, non-breaking changes and column reads.
SHOPFLOW_SQL = {
    "stg_orders": """select
    cast(order_id as integer) as order_id,
    cast(customer_id as integer) as customer_id,
    cast(ordered_at as timestamp) as ordered_at,
    cast(product as varchar) as product,
    cast(quantity as integer) as quantity,
    cast(unit_price as decimal(10, 2)) as unit_price
from read_csv('data/raw/orders/*.csv', header = true, union_by_name = true)""",
    "stg_customers": """select
    cast(c.customer_id as integer) as customer_id,
    cast(c.name as varchar) as customer_name,
    cast(c.country_code as varchar) as country_code,
    cc.country_name
from read_csv('data/raw/customers/*.csv', header = true, union_by_name = true) as c
left join "shopflow"."main"."country_codes" as cc
    on cc.country_code = c.country_code""",
    "fact_sales": """with __dbt__cte__int_order_lines as (
select
    order_id, customer_id, ordered_at, product, quantity, unit_price,
    cast(quantity * unit_price as decimal(12, 2)) as amount
from "shopflow"."main"."stg_orders"
) select
    order_id,
    customer_id,
    cast(ordered_at as date) as order_date,
    product,
    quantity,
    amount
from __dbt__cte__int_order_lines""",
    "dim_customer": """with orders as (
    select
        customer_id,
        count(*) as order_count,
        sum(quantity * unit_price) as lifetime_value,
        max(ordered_at) as last_ordered_at
    from "shopflow"."main"."stg_orders"
    group by customer_id
)
select
    c.customer_id,
    c.customer_name,
    c.country_name,
    coalesce(o.order_count, 0) as order_count,
    coalesce(o.lifetime_value, 0) as lifetime_value,
    o.last_ordered_at
from "shopflow"."main"."stg_customers" as c
left join orders as o
    on o.customer_id = c.customer_id""",
    "customers_snapshot": 'select customer_id, customer_name, country_code from "shopflow"."main"."stg_customers"',
}


@dataclass
class FakeRunner:
    """A dbt runner that builds nothing: every selected model succeeds unless told otherwise.

    It resolves selectors against the project graph exactly as dbt would for names and ``+``.
    With ``compiled`` (model name → SQL) it compiles those models to that SQL, in ``compile`` and
    in its build results, as dbt does; without, code versions fall back to the manifest's checksums.
    A model in ``incremental`` (name → SQL) compiles to that SQL instead where dbt's ``is_incremental()``
    renders true: once its table exists (in ``tables``: built by this runner, or there before), in
    builds and compiles without ``--full-refresh``.
    """

    project: Project | None = None
    fail: set[str] = field(default_factory=set)
    fail_message: str = "Runtime Error in model {name}"
    crash: bool = False
    calls: list[list[str]] = field(default_factory=list)
    query_rows: list[list[Any]] = field(default_factory=list)
    timeouts: list[float | None] = field(default_factory=list)  # each query's time budget
    queries: list[str] = field(default_factory=list)  # the SQL of each query call
    during_build: Callable[[], None] | None = None  # called as the build starts, e.g. to edit the project
    compiled: dict[str, str] = field(default_factory=dict)
    compiles: list[list[str]] = field(default_factory=list)  # the selectors of each compile call (and its flag)
    incremental: dict[str, str] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)  # models whose table exists
    failing_checks: set[str] = field(default_factory=set)  # names of data tests and unit tests that fail
    unreported: set[str] = field(default_factory=set)  # names of checks dbt leaves out (as with --exclude)
    on_node: Callable[[NodeResult], None] | None = None  # never called, as by dbt in a subprocess
    target: DbtTarget | None = None  # what the project last pointed it at

    def retarget(self, target: DbtTarget) -> None:
        self.target = target

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = (),
              verb: Verb = Verb.BUILD) -> BuildResult:
        from dbtassets.model.selection import select_assets

        assert self.project is not None
        args = build_command(selectors, extra_args, verb)
        self.calls.append(args)
        if self.during_build is not None:
            self.during_build()
        log = self.project.dbt.dbt_log
        if self.crash:
            return BuildResult(display(args), 2, (), log, crashed="dbt exited with code 2 without writing run results")
        graph = self.project.graph
        checks = {c.name: c for c in self.project.manifest.checks.values()}
        assets = [s for s in selectors if s not in checks]
        chosen = graph.topological_order(select_assets(graph, assets)) if assets and verb is Verb.BUILD else []
        # As dbt: `dbt build` runs no unit test whose model it does not build; `dbt test` runs what it selects.
        results: list[NodeResult] = [self._check(checks[s]) for s in selectors if s in checks and (
            verb is Verb.TEST or checks[s].kind is CheckKind.DATA_TEST)]
        broken: set[UniqueId] = set()
        for uid in chosen:
            node = graph.assets[uid]
            if node.resource_type == "source":
                continue
            if any(p in broken for p in graph.parents(uid)):
                results.append(NodeResult(uid, NodeStatus.SKIPPED, "skipped", 0.0))
                broken.add(uid)
            elif node.name in self.fail:
                results.append(NodeResult(uid, NodeStatus.ERROR, self.fail_message.format(name=node.name), 0.1))
                broken.add(uid)
            else:  # as dbt build: its unit tests first, its data tests after it
                own = self.project.manifest.checks_of(uid)
                unit = [self._check(c) for c in own if c.kind is CheckKind.UNIT_TEST]
                results.extend(unit)
                if any(r.status is NodeStatus.FAIL for r in unit):
                    results.append(NodeResult(uid, NodeStatus.SKIPPED, "skipped", 0.0))
                    broken.add(uid)
                    continue
                results.append(NodeResult(uid, NodeStatus.SUCCESS, "OK", 0.1, 3,
                                          compiled_code=self._sql(node.name, "--full-refresh" in extra_args)))
                self.tables.add(node.name)
                data = [self._check(c) for c in own if c.kind is CheckKind.DATA_TEST]
                results.extend(data)
                if any(r.status is NodeStatus.FAIL for r in data):  # dbt build then skips what is downstream
                    broken.add(uid)
        results = [r for r in results if r.unique_id not in {checks[n].unique_id for n in self.unreported}]
        failed = broken or any(r.status is NodeStatus.FAIL for r in results)
        return BuildResult(display(args), 1 if failed else 0, tuple(results), log)

    def _check(self, check: Check) -> NodeResult:
        if check.name in self.failing_checks:
            return NodeResult(check.unique_id, NodeStatus.FAIL,
                              f"Got 1 result, configured to fail if != 0 ({check.name})", 0.1)
        return NodeResult(check.unique_id, NodeStatus.PASS, "", 0.1)

    def parse(self) -> None:
        raise AssertionError("FakeRunner.parse: the test project should already be parsed")

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> dict[UniqueId, str]:
        """The ``compiled`` SQL of the selected models that have some."""
        from dbtassets.model.selection import select_assets

        assert self.project is not None
        self.compiles.append([*selectors, *(["--full-refresh"] if full_refresh else [])])
        graph = self.project.graph
        found = {uid: self._sql(graph.assets[uid].name, full_refresh) for uid in select_assets(graph, selectors)}
        return {uid: sql for uid, sql in found.items() if sql is not None}

    def _sql(self, name: str, full_refresh: bool) -> str | None:
        if name in self.incremental and name in self.tables and not full_refresh:
            return self.incremental[name]
        return self.compiled.get(name)

    def edit(self, name: str, sql: str, config: dict[str, Any] | None = None) -> None:
        """The user edits model ``name`` so that it compiles to ``sql``: what ``dbt parse`` changes, done here.

        The node's file checksum (and with ``config``, those config keys) moves in target/manifest.json,
        which stays newer than the project's files, so nothing parses again; ``compile`` returns ``sql``
        from now on.
        """
        assert self.project is not None
        path = self.project.dbt.manifest_path
        manifest = json.loads(path.read_text())
        (node,) = [n for n in manifest["nodes"].values()
                   if n["name"] == name and n["resource_type"] in ("model", "snapshot", "seed")]
        node["checksum"]["checksum"] = hashlib.sha256(sql.encode()).hexdigest()
        node["config"].update(config or {})
        path.write_text(json.dumps(manifest))
        self.compiled[name] = sql
        self.project.reload()

    def query(self, sql: str, timeout: float | None = None) -> list[list[Any]]:
        self.queries.append(sql)
        self.timeouts.append(timeout)
        return self.query_rows


@pytest.fixture
def fake_project(project_dir: Path) -> Iterator[tuple[Project, FakeRunner, FakeClock]]:
    """A Project on a real copy of example_project, with a fake runner and clock."""
    runner = FakeRunner()
    clock = FakeClock()
    project = Project(Options(project_dir), runner=runner, clock=clock)
    runner.project = project
    yield project, runner, clock
    project.close()


@pytest.fixture
def semantic_project(fake_project: tuple[Project, FakeRunner, FakeClock]) -> tuple[Project, FakeRunner, FakeClock]:
    """``fake_project`` whose runner compiles every model to the SQL dbt would."""
    fake_project[1].compiled.update(SHOPFLOW_SQL)
    return fake_project


def dbtassets(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dbtassets --project-dir PROJECT ARGS`` in its own process."""
    return run_cli("--project-dir", str(project), *args)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dbtassets ARGS`` as a user would, in its own process."""
    if MUTATION_RUN:
        pytest.skip("a child process runs the unmutated code (benchmarks/mutation.py)")
    return subprocess.run([sys.executable, "-m", "dbtassets", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
