"""What is happening now: the watcher's events, the assets being built, and the store's newest records.

:class:`Live` keeps the last events (the page's log pane), the assets the build in flight is building,
and a sequence number each subscriber (a server-sent-events stream) waits on. The watcher feeds it
its typed events (as their ``watch --format json`` objects); :class:`StorePoll` feeds it a
``changed`` event whenever another process records something, so ``dbtassets ui`` without a watcher
follows too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Any

Event = dict[str, Any]

HISTORY = 500  # events kept for a page that connects (or reconnects) later
ENDS_A_BUILD = {"build_finished", "error", "stopped", "lease_lost"}


class Live:
    """The events so far and who is being built; thread-safe (the watcher's thread publishes, the server's read)."""

    def __init__(self, watcher: bool) -> None:
        self.watcher = watcher  # fed by a watcher (``watch --ui``), or only by the store poll (``ui``)
        self._cond = threading.Condition()
        self._events: deque[tuple[int, Event]] = deque(maxlen=HISTORY)
        self._seq = 0
        self._next: tuple[str, ...] = ()  # the assets the coming build will build (from the ``stale`` event)
        self.building: set[str] = set()
        self.build_started: float | None = None  # monotonic time the build in flight started
        self.stopped = False
        self.closed = False
        self.last_event: float | None = None  # monotonic time of the watcher's last event: its loop is alive

    def publish(self, event: Event) -> None:
        with self._cond:
            kind = event.get("event")
            if kind == "stale":
                self._next = tuple(a["name"] for a in event.get("assets", ()))
            elif kind == "build_started":
                self.building = set(self._next)
                self.build_started = time.monotonic()
            elif kind == "node_finished":
                self.building.discard(event.get("name", ""))
            elif kind in ENDS_A_BUILD:
                self.building = set()
                self.build_started = None
            if kind == "stopped":
                self.stopped = True
            if kind != "changed":
                self.last_event = time.monotonic()
            if kind != "changed" or not self.watcher:  # a watcher's own builds are told by its events
                event = {**event, "building": sorted(self.building)}
            self._seq += 1
            self._events.append((self._seq, event))
            self._cond.notify_all()

    def changed(self) -> None:
        """Another process (or this watcher) recorded something: the page reads the statuses again."""
        self.publish({"event": "changed", "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def recent(self) -> list[Event]:
        with self._cond:
            return [e for _, e in self._events if e.get("event") != "changed"]

    def close(self) -> None:
        """Wake every subscriber so that its stream ends (the server is shutting down)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def follow(self, after: int | None = None, keepalive: float = 15.0) -> Iterator[tuple[int, Event | None]]:
        """(sequence number, event) as they come, after ``after`` (None: from now); None every ``keepalive``
        seconds without one (so a proxy keeps the stream open and a gone client is noticed)."""
        with self._cond:
            last = self._seq if after is None else after
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda seen=last: self._seq > seen or self.closed, keepalive):  # type: ignore[misc]
                    item: list[tuple[int, Event]] = []
                elif self.closed:
                    return
                else:
                    item = [(s, e) for s, e in self._events if s > last]
            if not item:
                yield last, None
            for seq, event in item:
                last = seq
                yield seq, event


class StorePoll:
    """Reads a cheap change token from the store every ``every`` seconds; publishes ``changed`` when it moves.

    ``token`` may raise: the error is kept (``/healthz`` says it) until a read succeeds again.
    """

    def __init__(self, live: Live, token: Callable[[], Hashable], every: float = 0.5) -> None:
        self.live = live
        self.token = token
        self.every = every
        self.error: str | None = None
        self.last_ok: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbtassets-ui-poll", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        seen: Hashable = None
        first = True
        while not self._stop.is_set():
            try:
                token = self.token()
            except Exception as exc:
                self.error = " ".join(str(exc).split()) or type(exc).__name__
            else:
                self.error = None
                self.last_ok = time.monotonic()
                if token != seen and not first:
                    self.live.changed()
                seen, first = token, False
            self._stop.wait(self.every)
