"""Sending events from a thread of their own, through a bounded queue: a receiver that is down, slow or
refusing never slows or stops a build.

The build's thread only puts work on the queue (a callable making the events, so even making them costs the
build nothing); when the queue is full the work is dropped and counted. The sender's thread makes the
transport when the first work comes (importing the OpenLineage client: half a second no command waits for,
while dbt builds; a command with nothing to send never imports it), then makes the events and
hands each to the transport; a transport it cannot make is said once, and what comes is dropped and counted.
When the receiver fails, it says so once, keeps the event, and tries again every ``retry_every`` seconds; when
it answers again, it says that once too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from dbtassets.words import plural

Work = Callable[[], list[dict[str, Any]]]


class Transport(Protocol):
    """What the sender needs of an OpenLineage transport (``openlineage.client.transport.Transport``)."""

    def emit(self, event: Any) -> Any: ...


class Sender:
    """One thread sending the events ``put`` makes; ``dropped`` counts the batches (a pass's events, an
    observation's) never sent, or not sent whole: dropped at a full queue or left when closing."""

    def __init__(self, connect: Callable[[], Transport], warn: Callable[[str], None], *, capacity: int = 1000,
                 retry_every: float = 5.0, where: str = "the OpenLineage receiver",
                 reach: Callable[[], None] | None = None) -> None:
        self.connect = connect
        self.reach = reach  # raises OSError while an http receiver refuses connections: no client is made for it
        self.transport: Transport | None = None
        self.warn = warn
        self.where = where
        self.retry_every = retry_every
        self.dropped = 0
        self.sent = 0
        self.down = False
        self._queue: queue.Queue[Work | None] = queue.Queue(maxsize=capacity)  # None: the end, once sent up to it
        self._stop = threading.Event()  # stop now
        self._go = threading.Event()  # the transport may be made: work that cannot wait came, or the end
        self._full = False  # said that the queue is full, during this outage
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dbtassets-openlineage", daemon=True)
        self._thread.start()

    def put(self, work: Work, *, wait: bool = False) -> None:
        """Queue ``work``; never blocks: a full queue drops it (counted). With ``wait``, the transport is not made
        for it alone: only when work without it comes, or the end (``sync``'s observations wait for its build, so
        that importing the client overlaps dbt's build, not the planning that holds this process's GIL)."""
        if not wait:
            self._go.set()
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                first = not self._full
                self._full = True
            if first:  # once per outage: the count goes on in `dropped` (/metrics with watch --ui)
                self.warn(f"OpenLineage: {self._queue.maxsize} batches of events wait for {self.where}: dropping "
                          "new ones (counted) until it answers")

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued for up to ``timeout`` seconds (nothing more while the receiver is down), then stop;
        what is left unsent is counted in ``dropped``."""
        if self.down:
            self._stop.set()
        self._go.set()
        try:
            self._queue.put_nowait(None)  # the thread sleeps on the queue until work or this comes
        except queue.Full:
            self._stop.set()
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join(timeout)
        with self._lock:
            while True:
                try:
                    left = self._queue.get_nowait()
                except queue.Empty:
                    break
                self.dropped += left is not None

    def _run(self) -> None:
        work = self._queue.get()  # the transport is made for the first work: a command with none never imports it
        if work is None:
            return
        self._go.wait()
        if self.reach is not None and not self._until_done(self.reach):
            with self._lock:
                self.dropped += 1  # asked to stop while the receiver was still away: close() counts the rest
            return
        try:
            self.transport = self.connect()
        except Exception as exc:  # the client's own configuration errors: a wrong transport type, a missing key
            self.warn(f"OpenLineage: cannot send to {self.where}: {type(exc).__name__}: {exc}; fix that "
                      "configuration (docs/openlineage.md): events are not sent")
            with self._lock:
                self.dropped += 1
            self._drain()
            return
        while work is not None:
            try:
                events = work()
            except Exception as exc:  # a bug making events: say it, never let it end the thread
                self.warn(f"OpenLineage: could not make an event: {type(exc).__name__}: {exc}")
                events = []
            for event in events:
                if not self._send(event):
                    with self._lock:
                        self.dropped += 1
                    break
            if self._stop.is_set():  # what is left is counted by close()
                return
            work = self._queue.get()

    def _drain(self) -> None:
        """Without a transport: count every batch put until the end as dropped."""
        while not self._stop.is_set() and self._queue.get() is not None:
            with self._lock:
                self.dropped += 1

    def _send(self, event: dict[str, Any]) -> bool:
        """Send one event, trying again while the receiver is down; False once asked to stop."""
        transport = self.transport
        assert transport is not None
        if not self._until_done(lambda: transport.emit(event)):
            return False
        self.sent += 1
        return True

    def _until_done(self, action: Callable[[], Any]) -> bool:
        """``action()``, again every ``retry_every`` seconds while the receiver is down; False once asked to stop."""
        while True:
            try:
                action()
            except Exception as exc:
                if not self.down:
                    self.down = True
                    self.warn(f"OpenLineage: {self.where} is not answering ({type(exc).__name__}: {exc}); events "
                              f"wait (up to a full queue) and builds go on; trying again every {self.retry_every:g}s")
                if self._stop.wait(self.retry_every):
                    return False
                continue
            if self.down:
                self.down = False
                with self._lock:
                    self._full, dropped = False, self.dropped
                lost = f" ({plural(dropped, 'batch', 'batches')} dropped so far)" if dropped else ""
                self.warn(f"OpenLineage: {self.where} answers again; sending the events that waited{lost}")
            return True
