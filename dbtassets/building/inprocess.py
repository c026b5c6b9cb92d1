"""dbt kept loaded in this process, its parsed manifest reused between builds (for ``watch``).

Parsing is most of a small build's cost: reusing the manifest turns a 5-6 s ``dbt build``
subprocess into well under a second. Three things make that safe:

- one invocation at a time (dbt documents that a process must not run two at once): a lock;
- dbt's compiler marks manifest nodes as compiled and CTE-injected in place, and a second
  build from the same manifest then loses its ephemeral CTEs; the compile state is reset
  before every invocation;
- dbt-duckdb keeps the DuckDB file open after ``invoke()`` returns, and DuckDB then lets no
  other process open it, even read-only; every invocation ends by closing the adapter's
  connections, so the warehouse is free while the watcher is idle.

The reset and the closing reach into dbt's internals: :mod:`dbtassets.building.dbt_contract` names each
such reliance. :func:`in_process_runner` checks them before dbt is used, and an internal that
breaks at run time anyway switches the runner to dbt as a subprocess, said once, for good.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dbtassets.building.runner import (
    NO_PARTIAL_PARSE,
    BuildResult,
    DbtTarget,
    NodeResult,
    NodeStatus,
    Runner,
    SubprocessRunner,
    Verb,
    build_command,
    compile_command,
    database_error,
    display,
    error_line,
    partial_parse_broke,
)
from dbtassets.errors import Interrupted, ObservationError, RunnerError
from dbtassets.model.manifest import UniqueId


class _Broken(Exception):
    """One of dbt's internals this runner relies on is not what it expects."""


def in_process_runner(target: DbtTarget, warn: Callable[[str], None]) -> Runner:
    """The in-process runner, or, if an assumption about dbt's internals does not hold, the subprocess one."""
    from dbtassets.building import dbt_contract
    problems = dbt_contract.problems()
    if problems:
        warn(f"dbt's internals are not what the in-process runner relies on ({'; '.join(problems)}); "
             "running dbt as a subprocess instead")
        return SubprocessRunner(target, warn=warn)
    return InProcessRunner(target, warn=warn)


class ParsingInProcess:
    """For the commands that answer questions (``status``, ``check``, ``lint``, ``plan``…): ``dbt parse`` and
    ``dbt compile`` in this process, dbt imported at the first of them and its parsed manifest reused by the
    next; ``dbt show`` queries and builds in a subprocess, as :class:`SubprocessRunner` runs them.

    A command that parses after an edit and then compiles the changed models paid for two dbt processes
    (each starting Python, importing dbt and loading the partial parse); here it pays for dbt once, and
    a command that needs no dbt imports none. Parse and compile do not keep the warehouse open: each
    invocation ends by closing dbt's connections (:func:`release_connections`).
    """

    def __init__(self, target: DbtTarget, *, warn: Callable[[str], None] = lambda message: None) -> None:
        self.target = target
        self._warn = warn
        self.subprocess = SubprocessRunner(target, warn=warn)
        self.on_node: Callable[[NodeResult], None] | None = None  # builds run in a subprocess: never called
        self._dbt: Runner | None = None

    def retarget(self, target: DbtTarget) -> None:
        self.target = target
        self.subprocess.retarget(target)
        if self._dbt is not None:
            self._dbt.retarget(target)

    def _loaded(self) -> Runner:
        if self._dbt is None:
            try:
                self._dbt = in_process_runner(self.target, self._warn)
            except ImportError:  # dbt cannot be loaded here: each command in its own process, as before
                self._dbt = self.subprocess
        return self._dbt

    def parse(self) -> None:
        self._loaded().parse()

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> dict[UniqueId, str]:
        return self._loaded().compile(selectors, full_refresh=full_refresh)

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = (),
              verb: Verb = Verb.BUILD) -> BuildResult:
        return self.subprocess.build(selectors, extra_args, verb)

    def query(self, sql: str, timeout: float | None = None) -> list[list[Any]]:
        return self.subprocess.query(sql, timeout)


class InProcessRunner:
    """A :class:`~dbtassets.building.runner.Runner` that calls ``dbtRunner`` directly."""

    def __init__(self, target: DbtTarget, on_node: Callable[[NodeResult], None] | None = None, *,
                 warn: Callable[[str], None] = lambda message: None) -> None:
        from dbt.cli.main import dbtRunner  # imported here: dbt costs a second to import

        self._dbt_runner = dbtRunner
        self.target = target
        self.on_node = on_node
        self._warn = warn
        self._manifest: Any = None
        self._lock = threading.Lock()
        self._fallback: SubprocessRunner | None = None  # set, for good, once an internal broke

    def retarget(self, target: DbtTarget) -> None:
        self.target = target

    def _fall_back(self, broken: _Broken) -> SubprocessRunner:
        if self._fallback is None:
            self._warn(f"dbt's internals are not what the in-process runner relies on ({broken}); "
                       "running dbt as a subprocess from now on")
            self._fallback = SubprocessRunner(self.target, warn=self._warn)
        return self._fallback

    def parse(self) -> None:
        """Parse (partially, when dbt can; in full when that fails) and keep the manifest for the following builds."""
        if self._fallback is not None:
            return self._fallback.parse()
        try:
            result = self._invoke(["parse"], with_manifest=False)
            if (not result.success or result.result is None) and self.target.project.partial_parse_path.exists():
                failure = error_line(str(result.exception or "see log"))
                result = self._invoke(["parse", NO_PARTIAL_PARSE], with_manifest=False)
                if result.success and result.result is not None:
                    self._warn(partial_parse_broke(self.target.project, failure))
        except _Broken as broken:
            return self._fall_back(broken).parse()
        if not result.success or result.result is None:
            raise RunnerError(f"`dbt parse` failed in {self.target.project.directory}: {result.exception or 'see log'}"
                              f"; see {self.target.project.dbt_log}")
        self._manifest = result.result

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = (),
              verb: Verb = Verb.BUILD) -> BuildResult:
        if self._fallback is not None:
            return self._fallback.build(selectors, extra_args, verb)
        try:
            return self._build(selectors, extra_args, verb)
        except _Broken as broken:
            return self._fall_back(broken).build(selectors, extra_args, verb)

    def _build(self, selectors: Sequence[str], extra_args: Sequence[str], verb: Verb) -> BuildResult:
        args = build_command(selectors, extra_args, verb)
        log = self.target.project.dbt_log
        if self._manifest is None:
            try:
                self.parse()
            except RunnerError as exc:  # like a dbt subprocess that cannot parse: a crashed build, recorded
                return BuildResult(display(args), 2, (), log, crashed=str(exc))
        result = self._invoke(args, with_manifest=True)
        run = result.result
        if run is None or not hasattr(run, "results"):
            reason = result.exception or "no results"
            return BuildResult(display(args), 2, (), log, crashed=f"dbt could not run the build: {reason}")
        try:
            nodes = tuple(_node_result(r) for r in run.results)
        except (AttributeError, ValueError) as exc:  # ValueError: a status dbt did not have before
            raise _Broken(f"a dbt run result: {exc}") from None
        return BuildResult(display(args), 0 if result.success else 1, nodes, log)

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> dict[UniqueId, str]:
        """The compiled SQL of the selected nodes; nodes that fail to compile are left out."""
        if self._fallback is not None:
            return self._fallback.compile(selectors, full_refresh=full_refresh)
        try:
            return self._compile(selectors, full_refresh)
        except _Broken as broken:
            return self._fall_back(broken).compile(selectors, full_refresh=full_refresh)

    def _compile(self, selectors: Sequence[str], full_refresh: bool) -> dict[UniqueId, str]:
        if self._manifest is None:
            self.parse()
        result = self._invoke(compile_command(selectors, full_refresh), with_manifest=True)
        run = result.result
        if run is None or not hasattr(run, "results"):
            return {}
        return {UniqueId(r.node.unique_id): r.node.compiled_code for r in run.results
                if str(r.status) == NodeStatus.SUCCESS and getattr(r.node, "compiled_code", None)}

    def query(self, sql: str, timeout: float | None = None) -> list[list[Any]]:
        """With a ``timeout``, in a dbt subprocess: a query stuck in the driver cannot be stopped in this
        process (and would hold the lock every build takes), a child can."""
        if self._fallback is not None or timeout is not None:
            return (self._fallback or SubprocessRunner(self.target, warn=self._warn)).query(sql, timeout)
        try:
            return self._query(sql)
        except _Broken as broken:
            return self._fall_back(broken).query(sql)

    def _query(self, sql: str) -> list[list[Any]]:
        result = self._invoke(["show", "--inline", sql, "--limit", "-1"], with_manifest=True)
        if not result.success or result.result is None:
            text = str(result.exception or "")
            detail = database_error(text.splitlines()) or text or f"see {self.target.project.dbt_log}"
            raise ObservationError(f"the source query failed: {detail}")
        rows: list[list[Any]] = []
        for node_result in result.result.results:
            table = getattr(node_result, "agate_table", None)
            if table is not None:
                rows.extend([v if v is None or isinstance(v, int | float | str) else str(v) for v in row.values()]
                            for row in table.rows)
        return rows

    def _invoke(self, args: Sequence[str], *, with_manifest: bool) -> Any:
        with self._lock, _working_directory(self.target.project.directory):
            manifest = self._manifest if with_manifest else None
            try:
                if manifest is not None:
                    _reset_compilation(manifest)
                runner = self._dbt_runner(manifest=manifest, callbacks=[self._on_event])
            except (AttributeError, TypeError) as exc:
                raise _Broken(f"resetting a reused manifest: {exc}") from None
            try:
                # dbt's own console output is replaced by the watcher's log; the file log stays.
                quiet = ["--log-level", "none", "--log-level-file", "debug"]
                result = runner.invoke([*args, *quiet, *self.target.common_args()])
                if isinstance(result.exception, Interrupted):  # dbt catches BaseException: Ctrl-C goes on
                    raise result.exception
                return result
            finally:
                try:
                    release_connections()
                except (AttributeError, ImportError) as exc:
                    raise _Broken(f"closing dbt's connections: {exc}") from None
                finally:
                    self.target.invoked()

    def _on_event(self, message: Any) -> None:
        if self.on_node is None or message.info.name != "NodeFinished":
            return
        data = message.data
        run_result = data.run_result
        self.on_node(NodeResult(UniqueId(data.node_info.unique_id), NodeStatus(str(run_result.status)),
                                str(run_result.message or ""), float(run_result.execution_time or 0.0)))


def _node_result(result: Any) -> NodeResult:
    timing = [t for t in (result.timing or []) if t.completed_at is not None]
    rows = (result.adapter_response or {}).get("rows_affected")
    completed = timing[-1].completed_at.isoformat() if timing else None
    return NodeResult(UniqueId(result.node.unique_id), NodeStatus(str(result.status)), str(result.message or ""),
                      float(result.execution_time or 0.0), rows, completed,
                      getattr(result.node, "compiled_code", None))


def _reset_compilation(manifest: Any) -> None:
    """Undo the in-place compile state a previous invocation left on the manifest's nodes."""
    for node in manifest.nodes.values():
        if "extra_ctes_injected" in getattr(node, "__dict__", ()):  # compiled nodes; seeds only have a property
            node.compiled = False
            node.compiled_code = None
            node.extra_ctes_injected = False
            node.extra_ctes = []
            node._pre_injected_sql = None


def release_connections() -> None:
    """Close every warehouse connection dbt holds in this process (and DuckDB's file lock with it)."""
    from dbt.adapters.factory import cleanup_connections

    cleanup_connections()  # type: ignore[no-untyped-call]
    with contextlib.suppress(ImportError):
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        with DuckDBConnectionManager._LOCK:
            environment = DuckDBConnectionManager._ENV
            if environment is not None:
                environment.close()
            DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """dbt resolves relative paths (profiles, external files) against the working directory."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
