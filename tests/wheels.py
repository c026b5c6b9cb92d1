"""dbtassets as pip installs it: what its wheel holds, and the Quick start run from an installed wheel.

dbtassets is on no package index: users install it from this repository (``pip install "dbtassets @
git+…"``, which builds a wheel from the checkout) or from a wheel built here. A file the code needs
that the wheel leaves out (a template, a schema, SQL, ``py.typed``) works in a clone and fails for them.

``python tests/wheels.py`` is that user, run by ``.ci/run`` with the test venv's Python (it needs
``build`` and PyYAML, which the ``test`` extra brings). It builds the sdist and, from it, the wheel
(``python -m build``), checks that the wheel holds exactly the files of the package, installs it (not
editable) into a fresh virtual environment with the ``install`` step of ``examples/ci/dbtassets.yml``,
and runs the README's Quick start loop from there, outside the checkout: ``dbtassets watch`` on a copy
of example_project, ``ingest_orders.py``, the orders lineage rebuilt, ``status`` all fresh.
``tests/test_packaging.py`` uses the functions here to check the wheel ``pip wheel`` builds.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "dbtassets"
# What a build leaves in a tree and a clone does not have (used where there is no git to ask).
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.py[cod]",
                                     "site", ".work", "target", "logs", ".dbtassets", "*.duckdb", "*.duckdb.wal")
ORDERS_LINEAGE = {"stg_orders", "fact_sales", "dim_customer"}
EVERYTHING = {"country_codes", "stg_orders", "stg_customers", "fact_sales", "dim_customer", "customers_snapshot"}


def checkout_files(repo: Path = REPO) -> list[str]:
    """The files a clone of ``repo`` has (plus new ones not ignored), as relative POSIX paths."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, check=False) if shutil.which("git") else None
    if listed is not None and listed.returncode == 0:
        return sorted(p for p in listed.stdout.decode().split("\0") if p and (repo / p).is_file())
    names = []  # no git, or not a clone (a source tarball): the tree, less what builds leave
    for root, dirs, files in os.walk(repo):
        ignored = _NOT_SOURCE(root, [*dirs, *files])
        dirs[:] = [d for d in dirs if d not in ignored]
        names += [(Path(root) / f).relative_to(repo).as_posix() for f in files if f not in ignored]
    return sorted(names)


def copy_checkout(destination: Path, repo: Path = REPO) -> Path:
    """A copy of what a clone of ``repo`` holds, so a build sees no leftovers of earlier builds."""
    for name in checkout_files(repo):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, destination / name)
    return destination


def package_files(tree: Path) -> set[str]:
    """Every file of the package in a source tree (the code and whatever it loads beside it)."""
    return {p.relative_to(tree).as_posix() for p in (tree / PACKAGE).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")}


def wheel_files(wheel: Path) -> set[str]:
    """The package's files in a wheel (its ``.dist-info`` left out)."""
    with zipfile.ZipFile(wheel) as archive:
        return {n for n in archive.namelist() if n.startswith(f"{PACKAGE}/") and not n.endswith("/")}


def compare(tree: Path, wheel: Path) -> list[str]:
    """What differs between the package in ``tree`` and in ``wheel``, one line per file; empty when alike."""
    source, shipped = package_files(tree), wheel_files(wheel)
    return ([f"{wheel.name} lacks {name}, which the package holds" for name in sorted(source - shipped)]
            + [f"{wheel.name} holds {name}, which the package does not" for name in sorted(shipped - source)])


def pip_wheel(tree: Path, out: Path) -> Path:
    """The wheel ``pip`` builds from ``tree``, as ``pip install git+…`` does (isolated build, no deps)."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(tree)],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise AssertionError(f"pip wheel {tree} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    (wheel,) = out.glob(f"{PACKAGE}-*.whl")
    return wheel


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would let a child import the checkout instead of the wheel."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **extra}


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"wheel smoke: {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def build_sdist_and_wheel(tree: Path, out: Path) -> tuple[Path, Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist (so the sdist must be whole)."""
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(tree)], timeout=600)
    (sdist,) = out.glob(f"{PACKAGE}-*.tar.gz")
    (wheel,) = out.glob(f"{PACKAGE}-*.whl")
    return sdist, wheel


def install_as_the_ci_example_does(wheel: Path, venv: Path) -> None:
    """Run the ``install`` step of examples/ci/dbtassets.yml with ``venv`` first on PATH and the wheel as
    the dbtassets it installs (the workflow itself installs from the git repository)."""
    import yaml  # PyYAML: a dependency of dbtassets, so the test venv has it

    workflow = yaml.safe_load((REPO / "examples" / "ci" / "dbtassets.yml").read_text())
    steps = [s["run"] for job in workflow["jobs"].values() for s in job["steps"] if s.get("id") == "install"]
    if len({run.split("#")[0].strip() for run in steps}) != 1:  # then running one of them tests them all
        raise SystemExit(f"wheel smoke: the jobs of examples/ci/dbtassets.yml install differently: {steps}")
    env = {k: str(v) for k, v in workflow["env"].items()}
    env["DBTASSETS_INSTALL"] = f"{PACKAGE} @ {wheel.resolve().as_uri()}"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    _run(["bash", "-e", "-c", steps[0]], cwd=venv.parent, timeout=900,
         env=_clean_env(**env, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"))


class _Watcher:
    """``dbtassets watch --format json`` from the installed wheel, read line by line."""

    def __init__(self, venv: Path, project: Path, cwd: Path) -> None:
        self.log = cwd / "watch.stderr"
        with self.log.open("w") as stderr:  # a file, not a pipe nobody reads until the end
            self.process = subprocess.Popen([str(venv / "bin" / "dbtassets"), "--project-dir", str(project), "watch",
                                             "--format", "json"], cwd=cwd, env=_clean_env(), text=True,
                                            stdout=subprocess.PIPE, stderr=stderr)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self.ended = True
                self.stop()
                raise SystemExit(f"wheel smoke: watch exited {self.process.returncode} before a {kind} event; "
                                 f"saw {[e['event'] for e in self.seen]}; stderr:\n{self._stderr()}")
            if line.startswith("{"):
                self.seen.append(json.loads(line))
                if self.seen[-1]["event"] == kind:
                    return self.seen[-1]
        self.stop()
        raise SystemExit(f"wheel smoke: no {kind} event from watch within {timeout:.0f}s; "
                         f"saw {[e['event'] for e in self.seen]}; stderr:\n{self._stderr()}")

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C would; the exit code, with every event printed until then in ``seen``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        while not self.ended:
            try:
                line = self.lines.get(timeout=10)
            except queue.Empty:
                break
            if line is None:
                self.ended = True
            elif line.startswith("{"):
                self.seen.append(json.loads(line))
        return self.process.wait()

    def _stderr(self) -> str:
        return self.log.read_text()[-3000:]


def quick_start_loop(venv: Path, work: Path) -> None:
    """The README's Quick start, from the installed wheel, on a copy of example_project outside the checkout."""
    project = work / "example_project"
    for name in checkout_files():
        if name.startswith("example_project/"):
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    python = str(venv / "bin" / "python")
    where = _run([python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"], cwd=work, env=_clean_env())
    if not Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve()):
        raise SystemExit(f"wheel smoke: {PACKAGE} was imported from {where.stdout.strip()}, not from {venv}")
    watcher = _Watcher(venv, project, cwd=work)
    try:
        first = watcher.wait_for("build_finished", timeout=300)
        if set(first["built"]) != EVERYTHING or first["failed"]:
            raise SystemExit(f"wheel smoke: the first build was {first}; expected {sorted(EVERYTHING)} built")
        print(f"wheel smoke: watch built {len(EVERYTHING)} assets", flush=True)
        _run([python, str(project / "ingest_orders.py")], cwd=work, env=_clean_env(), timeout=60)
        landed = watcher.wait_for("build_finished", timeout=120)
        if set(landed["built"]) != ORDERS_LINEAGE or landed["failed"]:
            raise SystemExit(f"wheel smoke: after ingest_orders.py the build was {landed}; "
                             f"expected {sorted(ORDERS_LINEAGE)} built")
    finally:
        code = watcher.stop()
    if code != 0 or watcher.seen[-1]["event"] != "stopped":
        raise SystemExit(f"wheel smoke: watch exited {code} on SIGTERM, last event {watcher.seen[-1]}")
    status = _run([str(venv / "bin" / "dbtassets"), "--project-dir", str(project), "status", "--all", "--format",
                   "json"], cwd=work, env=_clean_env(), timeout=300)
    assets = {a["name"]: a["status"] for a in json.loads(status.stdout)["assets"]}
    if not set(assets) >= EVERYTHING or set(assets.values()) != {"fresh"}:
        raise SystemExit(f"wheel smoke: status after the loop: {assets}; expected every asset fresh")


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dbtassets-wheel-") as temporary:
        work = Path(temporary)
        tree = copy_checkout(work / "checkout")
        sdist, wheel = build_sdist_and_wheel(tree, work / "dist")
        if differences := compare(tree, wheel):
            raise SystemExit("wheel smoke: the wheel built from the sdist is not the package:\n"
                             + "\n".join(differences)
                             + "\n(MANIFEST.in grafts dbtassets/ into the sdist and so into the wheel)")
        print(f"wheel smoke: built {sdist.name} and, from it, {wheel.name}: {len(wheel_files(wheel))} package "
              f"files, as in the tree ({time.monotonic() - started:.0f}s)", flush=True)
        install_as_the_ci_example_does(wheel, work / "venv")
        print(f"wheel smoke: installed it with the install step of examples/ci/dbtassets.yml "
              f"({time.monotonic() - started:.0f}s)", flush=True)
        quick_start_loop(work / "venv", work / "quick-start")
    print(f"wheel smoke: the Quick start loop ran from the installed wheel: watch built everything, "
          f"ingest_orders.py rebuilt {', '.join(sorted(ORDERS_LINEAGE))}, status all fresh "
          f"({time.monotonic() - started:.0f}s in all)", flush=True)


if __name__ == "__main__":
    main()
