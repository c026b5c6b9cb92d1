"""A private PostgreSQL server for the tests: started in a temporary directory, stopped afterwards.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as ``nobody``
(through ``setpriv``), in a data directory ``nobody`` owns. It listens only on 127.0.0.1, on a
free port, and its Unix socket lives in the data directory; local connections are trusted and
TCP ones need the password (so a wrong password can be tested). ``fsync`` is off: the server's
own crash safety is not what is tested here, a client's (kill -9 of a writer) is.

Each test gets a database of its own (:meth:`PostgresServer.database`), so tests never see each
other's rows and the server is started once per session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

USER = "dbtassets"
PASSWORD = "team-mode-test"
_NOBODY = 65534


def binaries() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: on PATH, or Debian's versioned directory."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running private server; :meth:`stop` it when done (it removes its directory)."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None
    command: tuple[str, ...] = ()  # how to start it (again: :meth:`resume`), without its port
    env: dict[str, str] | None = None

    @classmethod
    def start(cls, bin_dir: Path, timeout: float = 60.0) -> PostgresServer:
        """initdb and start a server; raises RuntimeError saying why it could not."""
        as_nobody = os.geteuid() == 0
        if as_nobody and shutil.which("setpriv") is None:
            raise RuntimeError("running as root and setpriv (util-linux) is missing: cannot start PostgreSQL "
                               "as an unprivileged user")
        prefix = ["setpriv", f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups", "--"] if as_nobody else []
        directory = Path(tempfile.mkdtemp(prefix="dbtassets-pg-"))
        try:
            directory.chmod(0o700)
            pwfile = directory / "pwfile"
            pwfile.write_text(PASSWORD + "\n")
            if as_nobody:
                os.chown(directory, _NOBODY, _NOBODY)
                os.chown(pwfile, _NOBODY, _NOBODY)
            env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(directory)}
            init = subprocess.run(
                [*prefix, str(bin_dir / "initdb"), "-D", str(directory / "data"), "-U", USER, "-E", "UTF8",
                 "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                 "--no-sync"], capture_output=True, text=True, env=env, timeout=timeout, check=False)
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip()[-500:]}")
            command = (*prefix, str(bin_dir / "postgres"), "-D", str(directory / "data"),
                       "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={directory}",
                       "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
                       "-c", "shared_buffers=32MB")
            for _attempt in range(3):  # a free port can be taken by someone else before the server binds it
                server = cls(directory, free_port(), None, command, env)
                if server.resume(timeout):
                    return server
                server._terminate()
            raise RuntimeError(f"PostgreSQL did not start: {server.log_tail()}")
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    def resume(self, timeout: float = 60.0) -> bool:
        """Start the server (again, after :meth:`halt`) on its port; True once it accepts connections."""
        with (self.directory / "server.log").open("ab") as log:
            self.process = subprocess.Popen([*self.command, "-p", str(self.port)], stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env)
        return self._wait_ready(timeout)

    def halt(self, *, immediate: bool = False) -> None:
        """Stop the server but keep its data (a restart is :meth:`resume`): fast shutdown (it closes
        every connection), or ``immediate`` (no clean shutdown at all, as a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(3 if immediate else 2)  # SIGQUIT: immediate; SIGINT: fast
            self.process.wait(timeout=30)

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                if self._psql("select 1").returncode == 0:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
        import psycopg2

        try:
            db = psycopg2.connect(self.url(database), connect_timeout=5)
        except psycopg2.Error as exc:
            return subprocess.CompletedProcess([sql], 1, "", str(exc))
        try:
            db.autocommit = True
            db.cursor().execute(sql)
        except psycopg2.Error as exc:
            return subprocess.CompletedProcess([sql], 1, "", str(exc))
        finally:
            db.close()
        return subprocess.CompletedProcess([sql], 0, "", "")

    def query(self, database: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Rows of ``sql`` (autocommit) in ``database``, for tests that look at a table."""
        import psycopg2

        db = psycopg2.connect(self.url(database), connect_timeout=10)
        try:
            db.autocommit = True
            cursor = db.cursor()
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description is not None else []
        finally:
            db.close()

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def database(self, prefix: str = "t") -> str:
        """A new, empty database; returns its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        result = self._psql(f"create database {name}")
        if result.returncode != 0:
            raise RuntimeError(f"cannot create database {name}: {result.stderr}")
        return name

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " / ".join((self.directory / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.directory, ignore_errors=True)
