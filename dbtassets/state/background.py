"""Work on the state store from a thread of its own while a build runs: lease renewals, a watcher's heartbeat."""

from __future__ import annotations

import threading
from typing import TypeVar

from dbtassets.errors import DbtAssetsError
from dbtassets.state.backends import Location
from dbtassets.state.store import StateStore

_B = TypeVar("_B", bound="Background")


class Background:
    """Calls :meth:`tick` every ``every`` seconds, through a connection of its own, while a ``with`` block lasts.

    A tick that fails (the server restarting) goes to :meth:`failed` and is retried at the next one on a
    new connection. The block's end stops the thread and joins it.
    """

    def __init__(self, location: Location, every: float, name: str) -> None:
        self.location, self.every = location, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self, store: StateStore) -> None:
        raise NotImplementedError

    def failed(self, error: DbtAssetsError) -> None:
        """A tick failed; the next one opens a new connection."""

    def _run(self) -> None:
        store: StateStore | None = None
        try:
            while not self._stop.wait(self.every):
                try:
                    store = store or StateStore.open(self.location)
                    self.tick(store)
                except DbtAssetsError as exc:
                    self.failed(exc)
                    if store is not None:
                        store.close()
                    store = None
        finally:
            if store is not None:
                store.close()

    def __enter__(self: _B) -> _B:  # the renewer or keeper itself, with its own fields
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
