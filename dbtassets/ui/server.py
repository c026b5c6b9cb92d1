"""The page's HTTP server: the standard library's threading server in a daemon thread, read-only.

Routes: ``/`` (the page) and ``/static/…`` (its script and style, shipped in the package),
``/api/graph?select=…&exclude=…``, ``/api/asset?name=…``, ``/api/log``, ``/events`` (server-sent
events), ``/healthz`` and ``/metrics``. Only GET and HEAD: no request can start a build or change
the state. Bound to loopback unless told otherwise, and then only with a token, which every
request must carry (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dbtassets.errors import ConfigError, DbtAssetsError
from dbtassets.ui.reader import Reader

TOKEN_ENV = "DBTASSETS_UI_TOKEN"
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``8080``, ``:8080``, ``0.0.0.0:8080`` or ``[::1]:8080`` → (host, port).

    Raises:
        ConfigError: not a port, or a port out of range.
    """
    host, _, port = value.rpartition(":") if ":" in value else ("", "", value)
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--ui {value!r}: give a port (8080) or HOST:PORT (0.0.0.0:8080)")
    return host, int(port)


class UiServer:
    """The running server: its URL, and :meth:`close` to stop it (the watcher's exit does)."""

    def __init__(self, host: str, port: int, reader: Reader, token: str | None) -> None:
        if not is_loopback(host) and not token:
            raise ConfigError(f"the page would listen on {host}, which is not loopback: give a token with "
                              f"--ui-token or {TOKEN_ENV} (every request must then carry it), or bind to 127.0.0.1")
        handler = type("Handler", (_Handler,), {"reader": reader, "token": token or None})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"the page cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self.reader = reader
        self.host, self.port = host, int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="dbtassets-ui", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> UiServer:
        self.reader.poll.start()
        self._thread.start()
        threading.Thread(target=self.reader.warm, name="dbtassets-ui-warm", daemon=True).start()
        return self

    def close(self) -> None:
        self.reader.live.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
        self.reader.close()


class _Handler(BaseHTTPRequestHandler):
    reader: Reader
    token: str | None
    protocol_version = "HTTP/1.1"
    server_version = "dbtassets"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the watcher's output is its events, not an access log

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, document: Any) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def _authorized(self, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        given = query.get("token", [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorized(query):
            self._send(HTTPStatus.UNAUTHORIZED, b"a token is required: ?token=... or Authorization: Bearer ...\n",
                       "text/plain; charset=utf-8", {"WWW-Authenticate": "Bearer"})
            return
        try:
            self._route(url.path, query)
        except DbtAssetsError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"dbtassets: error: {' '.join(str(exc).split())}"})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        reader = self.reader
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/") and path[len("/static/"):] in STATIC:
            self._static(path[len("/static/"):])
        elif path == "/api/graph":
            self._json(HTTPStatus.OK, reader.graph(_words(query, "select"), _words(query, "exclude")))
        elif path == "/api/asset":
            self._json(HTTPStatus.OK, reader.asset(query.get("name", [""])[0]))
        elif path == "/api/log":
            self._json(HTTPStatus.OK, {"events": reader.live.recent(), "watcher": reader.live.watcher})
        elif path == "/events":
            self._events(query)
        elif path == "/healthz":
            ok, why = reader.health()
            self._json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, {"ok": ok, "why": why})
        elif path == "/metrics":
            self._send(HTTPStatus.OK, reader.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def _static(self, name: str) -> None:
        body = resources.files("dbtassets.ui").joinpath("static", name).read_bytes()
        self._send(HTTPStatus.OK, body, STATIC[name])

    def _events(self, query: dict[str, list[str]]) -> None:
        """Server-sent events until the client goes away; ``Last-Event-ID`` resumes after a reconnect."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        last = self.headers.get("Last-Event-ID")
        after = int(last) if last and last.isdigit() else None
        self.wfile.write(b"retry: 1000\n\n")
        self.wfile.flush()
        for seq, event in self.reader.live.follow(after):
            chunk = b": keepalive\n\n" if event is None else f"id: {seq}\ndata: {json.dumps(event)}\n\n".encode()
            self.wfile.write(chunk)
            self.wfile.flush()

    def do_POST(self) -> None:
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "the page is read-only"})

    do_PUT = do_DELETE = do_PATCH = do_POST


def _words(query: dict[str, list[str]], key: str) -> list[str]:
    return [w for value in query.get(key, []) for w in value.split() if w]
