"""Running dbt: a small protocol, and the subprocess implementation.

The :class:`Runner` protocol is the boundary tests replace with a fake. The subprocess runner
starts ``python -m dbtassets.building._dbt`` in the project directory (dbt resolves relative paths in
profiles and ``external_location`` against the working directory), passes dbt's arguments in
a request file, streams dbt's log lines to a callback, and reads ``run_results.json``. A
process that ends gives back every file lock it held, so the warehouse is free between builds.
On Linux the child is killed with its parent: a dbt build outliving a ``kill -9``-ed watcher
or ``sync`` would run alongside the next one, which takes the build lock the dead one released.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from dbtassets.building.reachability import why_unreachable
from dbtassets.errors import ObservationError, RunnerError, WarehouseUnreachable
from dbtassets.model.manifest import UniqueId
from dbtassets.model.project import DbtProject
from dbtassets.model.targets import note_manifest


@dataclass(frozen=True)
class DbtTarget:
    """How to invoke dbt for a project: ``--profiles-dir``, ``--target`` and ``--vars`` when the user gave them."""

    project: DbtProject
    profiles_dir: Path | None = None
    target: str | None = None
    warehouse: str = ""  # the target's warehouse key (see dbtassets.model.targets); "" when unknown
    vars: Mapping[str, Any] = field(default_factory=dict)  # dbt's --vars, passed to every dbt command

    def invoked(self) -> None:
        """After any dbt command: target/manifest.json is now the one for this target."""
        if self.warehouse:
            note_manifest(self.project, self.warehouse)

    def common_args(self) -> list[str]:
        args = ["--project-dir", str(self.project.directory)]
        if self.profiles_dir is not None:
            args += ["--profiles-dir", str(self.profiles_dir)]
        if self.target is not None:
            args += ["--target", self.target]
        if self.vars:
            args += ["--vars", json.dumps(dict(self.vars))]
        if self.project.target_name:  # a target other than the default keeps its own artifacts
            args += ["--target-path", str(self.project.target_path)]
        return args


class NodeStatus(str, Enum):
    """A node's status in dbt's run results: dbt's own ``NodeStatus``, for every kind of node.

    Models, seeds and snapshots end ``success``, ``error`` or ``skipped``; data tests and unit
    tests ``pass``, ``warn``, ``fail``, ``error`` or ``skipped``; source freshness may end in a
    ``runtime error``. A test checks that every status dbt has is one of these.
    """

    SUCCESS = "success"
    ERROR = "error"
    FAIL = "fail"
    WARN = "warn"
    SKIPPED = "skipped"
    PARTIAL_SUCCESS = "partial success"
    PASS = "pass"
    RUNTIME_ERROR = "runtime error"
    NO_OP = "no-op"

    @property
    def failed(self) -> bool:
        """Whether dbt counts this as a failure: an error, a failing test, a runtime error (not a warning)."""
        return self in _FAILED

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> NodeStatus:
        """A status a newer dbt may add: counted as an error, so nothing is recorded built on its word."""
        return cls.ERROR


_FAILED = frozenset({NodeStatus.ERROR, NodeStatus.FAIL, NodeStatus.RUNTIME_ERROR})


class Verb(str, Enum):
    """The dbt command of a build step."""

    BUILD = "build"  # build the selected assets, each with its data tests and unit tests
    TEST = "test"  # run the selected checks alone: `dbt build` runs no unit test whose model it does not build

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class NodeResult:
    """One node's line in run_results.json."""

    unique_id: UniqueId
    status: NodeStatus
    message: str
    execution_time: float
    rows_affected: int | None = None
    completed_at: str | None = None
    compiled_code: str | None = None


@dataclass(frozen=True)
class BuildResult:
    """What a ``dbt build`` did. ``crashed`` is set when dbt ended without writing results."""

    command: str
    returncode: int
    results: tuple[NodeResult, ...]
    log_path: Path
    crashed: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """Runs dbt for one project. Implementations must not run two invocations at once."""

    on_node: Callable[[NodeResult], None] | None
    """Told each node as dbt finishes it, by a runner that can tell (the in-process one); a runner that
    hears of nodes only once dbt ends (the subprocess one, the fakes) never calls it."""

    def retarget(self, target: DbtTarget) -> None:
        """Invoke dbt for ``target`` from now on (profiles.yml changed, or was read for the first time)."""

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = (),
              verb: Verb = Verb.BUILD) -> BuildResult:
        """``dbt VERB --select SELECTORS EXTRA_ARGS`` (``dbt build`` unless told), and what it reported."""

    def parse(self) -> None: ...

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> dict[UniqueId, str]:
        """The compiled SQL of the selected nodes; with ``full_refresh``, as ``--full-refresh`` renders it."""
        ...

    def query(self, sql: str, timeout: float | None = None) -> list[list[Any]]: ...  # observe.observer.Querier


@contextlib.contextmanager
def listening(runner: Runner, on_node: Callable[[NodeResult], None] | None) -> Iterator[None]:
    """Point ``runner`` at ``on_node`` for one invocation (a runner that cannot tell never calls it)."""
    if on_node is None:
        yield
        return
    previous = runner.on_node
    runner.on_node = on_node
    try:
        yield
    finally:
        runner.on_node = previous


def build_command(selectors: Sequence[str], extra_args: Sequence[str] = (), verb: Verb = Verb.BUILD) -> list[str]:
    """The dbt arguments of a selective build (or test), as a user would type them after ``dbt``."""
    return [verb.value, "--select", *selectors, *extra_args]


def compile_command(selectors: Sequence[str], full_refresh: bool = False) -> list[str]:
    """The dbt arguments of ``dbt compile``; ``--full-refresh`` renders ``is_incremental()`` false."""
    return ["compile", "--select", *selectors, *(["--full-refresh"] if full_refresh else [])]


NO_PARTIAL_PARSE = "--no-partial-parse"


def partial_parse_broke(project: DbtProject, failure: str) -> str:
    """What to say when ``dbt parse`` failed, and passed once parsing in full: dbt's saved state was wrong."""
    return (f"dbt's partial parse failed ({failure}); parsed again with {NO_PARTIAL_PARSE}, which passed: "
            f"{project.partial_parse_path} was out of step with the project (a dbt bug) and is now rewritten")


def display(args: Sequence[str], limit: int = 400) -> str:
    """``dbt build --select a+ b`` for messages, shortened past ``limit`` characters."""
    text = " ".join(["dbt", *(_quote(a) for a in args)])
    return text if len(text) <= limit else f"{text[:limit]}… ({len(args)} arguments)"


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "+-_./:,@*=" for c in arg) else json.dumps(arg)


class SubprocessRunner:
    """Run each dbt invocation in a fresh ``python`` child process."""

    def __init__(self, target: DbtTarget, on_line: Callable[[str], None] | None = None,
                 on_command: Callable[[str], None] | None = None, *,
                 warn: Callable[[str], None] = lambda message: None) -> None:
        self.target = target
        self.on_line = on_line
        self.on_command = on_command  # told each dbt command as it starts, as display() shows it
        self.warn = warn
        self.on_node: Callable[[NodeResult], None] | None = None  # never called: results come when dbt ends

    def retarget(self, target: DbtTarget) -> None:
        self.target = target

    def build(self, selectors: Sequence[str], extra_args: Sequence[str] = (),
              verb: Verb = Verb.BUILD) -> BuildResult:
        args = build_command(selectors, extra_args, verb)
        results_path = self.target.project.run_results_path
        before = _mtime(results_path)
        returncode, output = self._invoke(args)
        log_path = self.target.project.dbt_log
        if _mtime(results_path) == before:
            tail = _tail(output, 3) or "no output"
            return BuildResult(display(args), returncode, (), log_path,
                               crashed=f"dbt exited with code {returncode} without writing run results: {tail}")
        return BuildResult(display(args), returncode, read_run_results(results_path), log_path)

    def parse(self) -> None:
        """``dbt parse``; once more in full when a partial parse failed (dbt's saved state can be wrong)."""
        returncode, output = self._invoke(["parse"])
        if returncode != 0 and self.target.project.partial_parse_path.exists():
            failure = _error(output)
            returncode, output = self._invoke(["parse", NO_PARTIAL_PARSE])
            if returncode == 0:
                self.warn(partial_parse_broke(self.target.project, failure))
        if returncode != 0:
            tail = _tail(output, 5)
            raise RunnerError(
                f"`dbt parse` failed with exit code {returncode} in {self.target.project.directory}: {tail}; "
                f"see {self.target.project.dbt_log}"
            )

    def compile(self, selectors: Sequence[str], *, full_refresh: bool = False) -> dict[UniqueId, str]:
        """The compiled SQL of the selected nodes (``dbt compile``); nodes that fail to compile are left out."""
        results_path = self.target.project.run_results_path
        before = _mtime(results_path)
        self._invoke(compile_command(selectors, full_refresh))
        if _mtime(results_path) == before:
            return {}
        return {r.unique_id: r.compiled_code for r in read_run_results(results_path)
                if r.compiled_code is not None and r.status is NodeStatus.SUCCESS}

    def query(self, sql: str, timeout: float | None = None) -> list[list[Any]]:
        """The rows ``sql`` returns, by ``dbt show`` through the profile; given up ``timeout`` s after it connects."""
        import tempfile  # here: most commands never query
        with tempfile.TemporaryDirectory(prefix="dbtassets-") as scratch:
            out = Path(scratch) / "rows.json"
            returncode, output = self._invoke(["show", "--inline", sql, "--limit", "-1"], out=out, timeout=timeout)
            unreachable = why_unreachable(returncode, output, timeout)
            if unreachable is not None:
                raise WarehouseUnreachable(unreachable)
            if returncode != 0 or not out.exists():
                detail = database_error(output) or f"dbt show exit code {returncode}: {_tail(output, 3)}"
                raise ObservationError(f"the source query failed: {detail}")
            rows: list[list[Any]] = json.loads(out.read_text())
            return rows

    def _invoke(self, args: Sequence[str], out: Path | None = None,
                timeout: float | None = None) -> tuple[int, list[str]]:
        """Run dbt with ``args`` in a child; return its exit code and its output lines. With a ``timeout``,
        the child gives up (``TIMED_OUT``) that long after dbt first connects: parsing is not the warehouse's time."""
        if self.on_command is not None:
            self.on_command(display(args))
        import tempfile  # here: a reader whose manifest is current never runs dbt
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="dbtassets-", delete=False) as request:
            json.dump({"args": [*args, *self.target.common_args()], "out": str(out) if out else None,
                       "timeout": timeout}, request)
        env = dict(os.environ)
        env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        output: list[str] = []
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "dbtassets.building._dbt", request.name],
                cwd=self.target.project.directory, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, errors="replace", preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            os.unlink(request.name)
            raise RunnerError(f"cannot start dbt ({sys.executable} -m dbtassets.building._dbt): {exc}") from None
        try:
            with process:  # whose exit waits for dbt: stop it first when we are interrupted
                try:
                    assert process.stdout is not None
                    for line in process.stdout:
                        output.append(line.rstrip("\n"))
                        if self.on_line is not None:
                            self.on_line(line.rstrip("\n"))
                    return process.wait(), output
                finally:
                    if process.poll() is None:
                        process.terminate()
                        try:
                            process.wait(timeout=_GRACE)
                        except subprocess.TimeoutExpired:
                            process.kill()
        finally:
            os.unlink(request.name)
            self.target.invoked()


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_GRACE = 10.0  # seconds dbt gets to stop after SIGTERM before it is killed


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the kernel SIGKILL the child when this process dies (Linux only).

    It only calls a function resolved here, in the parent, so nothing is loaded or imported between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # here: only for a child process
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent, kill = os.getpid(), int(signal.SIGKILL)

    def request_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, kill)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), kill)

    return request_death_signal


def read_run_results(path: Path) -> tuple[NodeResult, ...]:
    """The node results of a run_results.json."""
    try:
        raw = json.loads(path.read_text())
        return tuple(
            NodeResult(
                UniqueId(r["unique_id"]), NodeStatus(r["status"]), str(r.get("message") or ""),
                float(r.get("execution_time") or 0.0),
                (r.get("adapter_response") or {}).get("rows_affected"),
                next((t.get("completed_at") for t in reversed(r.get("timing") or []) if t.get("completed_at")), None),
                r.get("compiled_code"),
            )
            for r in raw["results"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunnerError(f"{path}: cannot read dbt's run results ({exc}); see the dbt log") from None


_DATABASE_ERROR = re.compile(r"\b[A-Z]\w* Error: .+")


def database_error(output: Sequence[str]) -> str | None:
    """The database's own message in dbt's output (``Catalog Error: Table … does not exist!``), if any."""
    found = [match.group(0).strip() for line in output if (match := _DATABASE_ERROR.search(line))]
    return found[-1] if found else None


def _tail(output: Sequence[str], count: int) -> str:
    """dbt's last lines, joined; a message dbt repeats (the exception, then "dbt could not run: …") once."""
    kept: list[str] = []
    for line in (line.strip() for line in output[-count:]):
        if line:
            kept = [k for k in kept if not _same_message(k, line)]
            kept.append(line)
    return " / ".join(kept)


def _error(output: Sequence[str]) -> str:
    """The exception that ``_dbt`` printed last (``dbt could not run: …``) in one line, else dbt's last lines."""
    starts = [i for i, line in enumerate(output) if line.startswith("dbt could not run: ")]
    if not starts:
        return _tail(output, 3)
    return error_line("\n".join([output[starts[-1]].removeprefix("dbt could not run: "), *output[starts[-1] + 1:]]))


def error_line(text: str, limit: int = 300) -> str:
    """dbt's multi-line error (``Compilation Error`` and, indented, what it is) as one line: ``Compilation Error:
    Model 'model.shop.x' depends on …``."""
    head, *rest = [line.strip() for line in text.strip().splitlines() if line.strip()] or [""]
    line = f"{head}: {' '.join(rest)}" if rest else head
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _same_message(a: str, b: str) -> bool:
    """Whether two lines end alike for most of the shorter one (their prefixes name who reported it)."""
    common = 0
    while common < min(len(a), len(b)) and a[-1 - common] == b[-1 - common]:
        common += 1
    return common >= 0.6 * min(len(a), len(b))


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
